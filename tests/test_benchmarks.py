"""The benchmark scripts still run (tiny sizes): a benchmark that rots is found here, not in a release.

Each runs as `__main__` in this process (ctchelpers.run_script): a fresh interpreter would cost a torch import per
script. check_time.py is the exception: what it measures is fresh processes, and it sets the check's thread count
for good, so it keeps its own process."""
from __future__ import annotations

import subprocess
import sys

import pytest

from ctchelpers import ROOT, run_script

RUNS = {
    "scan.py": (["--samples", "3000", "--rounds", "1"], "ratio loop / vectorised"),
    "ctc_cpu.py": (["--rounds", "1", "--reps", "1", "--threads", "1", "--shapes", "60,4,20,10", "40,2,50,8"],
                   "F.ctc_loss fwd+bwd"),
    "overfit_overhead.py": (["--steps", "3", "--rounds", "1"], "ratio overfit / plain"),
    "ctc_gpu.py": (["--reps", "1"], "needs a CUDA device"),
    "check_time.py": (["examples/speech_ctc.py", "--rounds", "1"], "ratio ctcdoctor's own share / torch import"),
}


@pytest.mark.parametrize("script", sorted(RUNS))
def test_benchmark_runs_and_prints_a_ratio(script):
    path, args = ROOT / "benchmarks" / script, RUNS[script][0]
    if script == "check_time.py":
        done = subprocess.run([sys.executable, str(path), *args], capture_output=True, text=True, cwd=ROOT, timeout=300)
        code, stdout, stderr = done.returncode, done.stdout, done.stderr
    else:
        code, stdout, stderr = run_script(path, *args)
    assert code == 0, stderr[-2000:]
    import torch

    if script == "ctc_gpu.py" and torch.cuda.is_available():
        return  # measured for real on a GPU; here only that it runs
    assert RUNS[script][1] in stdout
