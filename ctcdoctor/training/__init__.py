"""Training curves: the `logs` command's readers and rules, shared with the training monitor.

* `diagnose_run(path, ...) -> LogsResult`: read a run's log and diagnose it (the `logs` command).
* `diagnose(curves, options) -> list[Finding]`: the curve rules on arrays (the monitor calls this
  on the series so far).
* `Series`, `Curves`, `Metric`, `Options`: the plain data the rules take.
* `monitor_format`: the JSONL the monitor writes and `logs` reads.
* `ctcdoctor.training.plot.plot(result, ax=None)`: the curves with each finding's steps shaded
  (imports matplotlib lazily).
* `ctcdoctor.training.monitor.Monitor`: the training monitor, fed once per step from a training
  loop (the framework callbacks in `ctcdoctor.integrations` wrap it); it measures the model's
  outputs (`outputs.py`), judges them (`rules/outputs.py`, CTC220-CTC224) together with the
  curve rules (`verdicts.py`) and writes the JSONL `logs` reads. Not imported here: it needs
  torch, and `ctcdoctor logs` does not.
"""
from __future__ import annotations

from ctcdoctor.training.logs import LogsResult, diagnose_run
from ctcdoctor.training.rules import Options, diagnose
from ctcdoctor.training.series import Curves, Metric, Run, Series

__all__ = ["Curves", "LogsResult", "Metric", "Options", "Run", "Series", "diagnose", "diagnose_run"]
