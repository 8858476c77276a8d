"""benchmarks/gpu_suite.py cannot rot: its CPU dry run (Triton interpreter, a tiny shape) goes through
the same steps as the real run on a GPU: environment, the CUDA kernel tests, the timing table, the JSON."""
from __future__ import annotations

import ast
import json

from ctchelpers import ROOT, run_script

SCRIPT = ROOT / "benchmarks" / "gpu_suite.py"


def test_docstring_starts_with_the_command_to_run():
    doc = ast.get_docstring(ast.parse(SCRIPT.read_text()))
    commands = [line.strip() for line in doc.splitlines() if line.strip().startswith("python3 benchmarks/gpu_suite.py")]
    assert commands[0] == "python3 benchmarks/gpu_suite.py --out gpu_suite.json"


def test_dry_run_goes_through_every_step(tmp_path):
    out = tmp_path / "suite.json"
    # in this process (the script's own pytest run of the CUDA tests still gets a process of its own)
    code, stdout, stderr = run_script(SCRIPT, "--dry-run", "--out", str(out))
    assert code == 0, stdout[-2000:] + stderr[-2000:]
    assert "1/2 CUDA kernel tests: tests/kernels/test_triton_ctc_cuda.py" in stdout
    assert "2/2 forward+backward timings" in stdout
    report = json.loads(out.read_text())
    assert report["dry_run"] is True and report["tests"]["returncode"] == 0
    kinds = [row["kind"] for row in report["rows"]]
    assert kinds == ["plain", "alpha/gamma", "posterior"]
    for row in report["rows"]:
        assert row["triton_ms"] > 0 and row["native_ms"] > 0 and row["native_over_triton"] > 0
    # The timed Triton call is the real kernel: its gradient matches F.ctc_loss's.
    assert report["rows"][0]["max_grad_diff"] < 1e-5
