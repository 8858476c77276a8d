"""benchmarks/monitor_overhead.py still runs and prints its ratio (tiny size)."""
from __future__ import annotations

import subprocess
import sys

from ctchelpers import ROOT


def test_monitor_overhead_benchmark_prints_the_ratio():
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "monitor_overhead.py"), "--examples", "speech_ctc",
                           "--steps", "4", "--every", "2", "--rounds", "1"],
                          check=False, capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "ratio monitored / plain" in done.stdout and "speech_ctc" in done.stdout
