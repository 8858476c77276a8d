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
    """(label, kernel, signature, constexprs, num_warps) for the launches forward_backward makes."""
    ptr = lambda ty: "*" + ty  # noqa: E731
    for lp_ty in ("fp32", "bf16"):
        for block_s in (64, 128, 512):
            warps = K._chain_warps(block_s)
            sig = {
                "lp_ptr": ptr(lp_ty), "tgt_ptr": ptr("i64"), "tgt_off_ptr": ptr("i64"),
                "in_len_ptr": ptr("i32"), "tgt_len_ptr": ptr("i32"),
                "la_ptr": ptr("fp32"), "lb_ptr": ptr("fp32"), "loss_ptr": ptr("fp32"),
                "stride_lt": _I32, "stride_ln": _I32, "stride_lc": _I32, "stride_tgt": _I32,
                "T": _I32, "S_max": _I32, "blank": _I32, "BLOCK_S": "constexpr",
            }
            yield (f"alpha_beta {lp_ty} BLOCK_S={block_s}", K._alpha_beta_kernel, sig,
                   {"BLOCK_S": block_s}, warps)
    sig = {
        "la_ptr": "*fp32", "lb_ptr": "*fp32", "tgt_ptr": "*i64", "tgt_off_ptr": "*i64",
        "in_len_ptr": "*i32", "tgt_len_ptr": "*i32", "f_ptr": "*fp32",
        "T": _I32, "S_max": _I32, "stride_tgt": _I32, "blank": _I32, "alpha": "fp32",
        "BLOCK_S": "constexpr", "CH": "constexpr",
    }
    for block_s in (64, 512):
        yield (f"alpha_factor BLOCK_S={block_s}", K._alpha_factor_kernel, sig,
               {"BLOCK_S": block_s, "CH": 16}, 4)
    flag_sets = [  # (HAS_ALPHA, HAS_OMEGA, WRITE_POST, WRITE_GRAD, WRITE_W): the four launches used
        (False, False, True, True, False),
        (True, False, True, True, False),
        (True, False, True, False, True),
        (True, True, False, True, False),
    ]
    for lp_ty in ("fp32", "fp16"):
        for flags in flag_sets:
            sig = {
                "lp_ptr": "*" + lp_ty, "tgt_ptr": "*i64", "tgt_off_ptr": "*i64",
                "in_len_ptr": "*i32", "tgt_len_ptr": "*i32",
                "la_ptr": "*fp32", "lb_ptr": "*fp32", "f_ptr": "*fp32", "omega_ptr": "*fp32",
                "post_ptr": "*fp32", "grad_ptr": "*" + lp_ty, "w_ptr": "*fp32",
            }
            for name in ("stride_lt", "stride_ln", "stride_lc", "stride_tgt", "stride_ot", "stride_on",
                         "stride_gt", "stride_gn", "T", "S_max", "C", "blank"):
                sig[name] = _I32
            names = ("HAS_ALPHA", "HAS_OMEGA", "WRITE_POST", "WRITE_GRAD", "WRITE_W")
            const = {"BLOCK_S": 64, "BLOCK_C": 128, "CH": 16, **dict(zip(names, flags))}
            for c in const:
                sig[c] = "constexpr"
            on = ",".join(n for n, v in zip(names, flags) if v)
            yield f"dense {lp_ty} {on}", K._dense_kernel, sig, const, 4


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
                     "shfl": ptx.count("shfl.sync")})
    return rows


if __name__ == "__main__":
    print(f"{'kernel':48} warps  regs  stack  local  shared  shfl")
    for r in compile_all():
        print(f"{r['kernel']:48} {r['num_warps']:5} {r['reg']:5} {r['stack']:6} {r['local']:6} "
              f"{r['shared']:7} {r['shfl']:5}")
