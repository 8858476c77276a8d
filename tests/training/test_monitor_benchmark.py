"""benchmarks/monitor_overhead.py still runs and prints its ratio (tiny size), as `__main__` in this process
(ctchelpers.run_script: no interpreter and torch import of its own)."""
from __future__ import annotations

from ctchelpers import ROOT, run_script


def test_monitor_overhead_benchmark_prints_the_ratio():
    code, stdout, stderr = run_script(ROOT / "benchmarks" / "monitor_overhead.py", "--examples", "speech_ctc",
                                      "--steps", "4", "--every", "2", "--rounds", "1")
    assert code == 0, stderr[-2000:]
    assert "ratio monitored / plain" in stdout and "speech_ctc" in stdout
