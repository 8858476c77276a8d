"""Compile every kernel variant for sm_90 without a GPU.

The interpreter executes the kernels' arithmetic but never lowers them: an op the compiler cannot
lower, a type the interpreter let through, or a register blow-up only shows up here. Runs in a
subprocess because TRITON_INTERPRET (set for the other tests) replaces the JIT functions.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("triton")

ROOT = Path(__file__).resolve().parents[2]


def test_all_variants_compile_for_sm90_without_spills():
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    env.setdefault("TRITON_DEFAULT_FP_FUSION", "1")
    code = "import json; from ctcdoctor.kernels.aot import compile_all; print(json.dumps(compile_all(90)))"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, f"sm_90 compile failed:\n{proc.stderr[-4000:]}"
    rows = json.loads(proc.stdout.strip().splitlines()[-1])
    kernels = {r["kernel"].split()[0] for r in rows}
    assert kernels == {"alpha_beta", "alpha_factor", "frame"}
    for r in rows:
        assert r["reg"] is not None and 0 < r["reg"] <= 255, r
        # Local memory is where spills go; the variants forward_backward launches must not spill.
        assert r["local"] == 0, f"{r['kernel']} spills to local memory: {r}"
