"""Compile the CTC kernels ahead of time for a GPU architecture, without a GPU.

The Triton interpreter runs the kernels' arithmetic but not the compiler: it cannot see lowering
errors, register pressure or spills. This compiles every launch variant through ptxas (bundled
with triton) and reads the resource usage back from the cubin with cuobjdump.

    python -m ctcdoctor.kernels.aot          # table for sm_90

Must run with TRITON_INTERPRET unset: under the interpreter the kernels are not JIT functions.
"""
from __future__ import annotations

import os
import re
import subprocess
import tempfile

import triton
from triton.backends.compiler import GPUTarget

from ctcdoctor.kernels import triton_ctc as K

_I32 = "i32"


def _variants():
    """(label, kernel, signature, constexprs, num_warps) for the launches the kernels make."""
    ptr = lambda ty: "*" + ty  # noqa: E731
    for lp_ty, sizes in (("fp32", (64, 128, 256, 512)), ("bf16", (64, 512))):
        for block_s in sizes:
            warps = K._chain_warps(block_s)
            sig = {
                "lp_ptr": ptr(lp_ty), "tgt_ptr": ptr("i64"), "tgt_off_ptr": ptr("i64"),
                "in_len_ptr": ptr("i32"), "tgt_len_ptr": ptr("i32"),
                "la_ptr": ptr("fp32"), "lb_ptr": ptr("fp32"), "loss_ptr": ptr("fp32"),
                "stride_lt": _I32, "stride_ln": _I32, "stride_lc": _I32, "stride_tgt": _I32,
                "T": _I32, "S_max": _I32, "blank": _I32, "BLOCK_S": "constexpr", "SHIFT": "constexpr",
            }
            yield (f"alpha_beta {lp_ty} BLOCK_S={block_s}", K._alpha_beta_kernel, sig,
                   {"BLOCK_S": block_s, "SHIFT": K.SHIFT_EVERY}, warps)
    sig = {
        "la_ptr": "*fp32", "lb_ptr": "*fp32", "tgt_ptr": "*i64", "tgt_off_ptr": "*i64",
        "in_len_ptr": "*i32", "tgt_len_ptr": "*i32", "f_ptr": "*fp32",
        "T": _I32, "S_max": _I32, "stride_tgt": _I32, "blank": _I32, "alpha": "fp32",
        "BLOCK_S": "constexpr", "CH": "constexpr",
    }
    for block_s in (64, 512):
        yield (f"alpha_factor BLOCK_S={block_s}", K._alpha_factor_kernel, sig,
               {"BLOCK_S": block_s, "CH": 16}, 4)
    modes = [  # (MODE, HAS_ALPHA, HAS_OMEGA): the launches used
        (K.GRAD, False, False), (K.GRAD, True, False), (K.GRAD, True, True), (K.GRAD, False, True),
        (K.POST, False, False), (K.W, True, False), (K.W, False, False),
    ]
    names = {K.GRAD: "grad", K.POST: "post", K.W: "w"}
    for lp_ty in ("fp32", "fp16"):
        # Half inputs change only the loads and the gradient's store: two variants cover them.
        for mode, has_alpha, has_omega in modes if lp_ty == "fp32" else modes[:3:2]:
            out_ty = lp_ty if mode == K.GRAD else "fp32"
            sig = {
                "lp_ptr": "*" + lp_ty, "tgt_ptr": "*i64", "tgt_off_ptr": "*i64",
                "in_len_ptr": "*i32", "tgt_len_ptr": "*i32",
                "la_ptr": "*fp32", "lb_ptr": "*fp32", "f_ptr": "*fp32", "omega_ptr": "*fp32",
                "scale_ptr": "*fp32", "bad_ptr": "*fp32", "out_ptr": "*" + out_ty, "w_ptr": "*fp32",
            }
            for name in ("stride_lt", "stride_ln", "stride_lc", "stride_tgt", "stride_ot", "stride_on",
                         "T", "S_max", "C", "blank"):
                sig[name] = _I32
            const = {"BLOCK_S": 64, "BLOCK_C": 128, "CH": 16, "MODE": mode,
                     "HAS_ALPHA": has_alpha, "HAS_OMEGA": has_omega}
            for c in const:
                sig[c] = "constexpr"
            flags = ",".join(f for f, on in (("alpha", has_alpha), ("omega", has_omega)) if on)
            yield f"frame {lp_ty} {names[mode]} {flags}".rstrip(), K._frame_kernel, sig, const, 4


def _resource_usage(cubin: bytes) -> dict:
    tool = os.path.join(os.path.dirname(triton.__file__), "backends", "nvidia", "bin", "cuobjdump")
    with tempfile.NamedTemporaryFile(suffix=".cubin") as fh:
        fh.write(cubin)
        fh.flush()
        out = subprocess.run([tool, "--dump-resource-usage", fh.name], capture_output=True, text=True,
                             check=True).stdout
    usage = {}
    for key in ("REG", "STACK", "SHARED", "LOCAL"):
        m = re.search(rf"\b{key}:(\d+)", out)
        usage[key.lower()] = int(m.group(1)) if m else None
    return usage


def compile_all(arch: int = 90) -> list[dict]:
    """Compile every variant for ``sm_<arch>``; raises on any lowering or ptxas error."""
    if os.environ.get("TRITON_INTERPRET", "0") not in ("", "0"):
        raise RuntimeError("unset TRITON_INTERPRET: the interpreter replaces the JIT functions")
    rows = []
    target = GPUTarget("cuda", arch, 32)
    for label, fn, sig, const, warps in _variants():
        src = triton.compiler.ASTSource(fn=fn, signature=sig, constexprs=const)
        compiled = triton.compile(src, target=target, options={"num_warps": warps})
        ptx = compiled.asm["ptx"]
        rows.append({"kernel": label, "num_warps": warps, **_resource_usage(compiled.asm["cubin"]),
                     "shfl": ptx.count("shfl.sync"), "bar": ptx.count("bar.sync")})
    return rows


if __name__ == "__main__":
    print(f"{'kernel':48} warps  regs  stack  local  shared  shfl  bar")
    for r in compile_all():
        print(f"{r['kernel']:48} {r['num_warps']:5} {r['reg']:5} {r['stack']:6} {r['local']:6} "
              f"{r['shared']:7} {r['shfl']:5} {r['bar']:4}")
