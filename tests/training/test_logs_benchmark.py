"""benchmarks/logs.py still runs and prints its ratio (tiny size)."""
from __future__ import annotations

import subprocess
import sys

from ctchelpers import ROOT


def test_logs_benchmark_prints_read_and_diagnose_side_by_side():
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "logs.py"), "--points", "5000", "--rounds", "1"],
                          check=False, capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "ratio diagnose / read" in done.stdout and "jsonl" in done.stdout and "csv" in done.stdout
