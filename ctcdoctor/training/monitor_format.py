"""The training monitor's metrics file: JSON Lines that `ctcdoctor logs` reads.

Format (version 1), UTF-8, one JSON object per line:

* first line, the header: ``{"meta": {"format": "ctcdoctor-monitor", "version": 1, ...}}``.
  Optional keys the curve rules use when present: ``classes`` (C, blank included),
  ``label_length`` (mean target length U), ``reduction`` ("mean": F.ctc_loss's default,
  loss per label; "sum"/"none": loss per sample), ``blank`` (the blank index), ``unit``
  ("step" or "epoch"), ``optimizer`` (its class name, "Adam": sets how far learning-rate
  advice goes). Anything else is kept as-is.
* every other line, one record: ``{"step": 120, "loss": 3.21, ...}``. ``step`` (an
  integer) and ``loss`` (the training loss of that step) are required; the monitor adds
  what it measured at that step, under these names:
  ``lr``, ``grad_norm``, ``cer``, ``wer``, ``blank_ratio`` (argmax blank share),
  ``blank_prob`` (mean soft blank probability), ``empty_rate`` (share of empty decodes),
  ``infeasible`` (samples CTC cannot align), ``eval_loss``, ``eval_cer``, ``eval_wer``,
  and any other numeric key (a loss part such as ``loss_ctc``). At each evaluation the
  monitor also writes ``evaluated``, ``entropy``, ``nonblank``, ``label_density``,
  ``nonfinite_outputs`` and ``alt_decode_rate`` (`ctcdoctor.training.outputs.OutputStats`),
  which the output rules (`ctcdoctor.training.rules.outputs`) read; its header also carries
  ``patience`` (the default patience of ``logs``), ``every`` and ``trainer`` ("loop", or the
  integration: "huggingface", "lightning", "keras"), and ``check`` when ``ctcdoctor.check`` ran
  before training (`Monitor.preflight`, as the callbacks run it): ``{"findings": [...], "stopped":
  {"step": 0, "code": "CTC001"} or null}``, the findings as the JSON report writes them (code,
  severity, title, message, hint, evidence) and, when they stopped the run, the step after which it
  stopped (0: before step 1) and the finding's code. A run the check stopped before step 1 has
  this header and no record; ``logs`` reports the check's findings and the stop.
  ``infeasible`` is written at every step
  whose ``update()`` had the lengths (counted from them, among the first ``max_samples``
  samples), not only at evaluations.
* the last record written by the monitor's ``close()`` carries ``"finished": true`` (a JSON
  boolean, not a scalar): the run is over, so ``logs`` tells a blank phase that lasts to its end
  within the ``patience`` budget as too short to judge ("train longer"), as ``close()`` did.
  A file without it is a run in progress (or one that crashed).
* a step may appear again (the monitor writes a record at its evaluation and again with a value
  logged later for it, or with the ``finished`` mark): the reader keeps the latest value of
  each key at each step.
* non-finite numbers are the strings ``"nan"``, ``"inf"``, ``"-inf"`` (valid JSON); the
  reader also accepts Python's bare ``NaN``/``Infinity``.
* a key missing from a record means "not measured at this step", never zero.

`header()`, `record()` and `finished()` write lines in this format; the monitor uses them;
`checked_before(meta)` reads the header's ``check`` back as findings.
"""
from __future__ import annotations

import json
import math
from typing import Any

from ctcdoctor.findings import Finding, Severity

FORMAT = "ctcdoctor-monitor"
VERSION = 1
FINISHED = "finished"
"""The key that marks the last record of a finished run (the reader moves it to the run's meta)."""
CHECK = "check"
"""The header key that records the check run before training: its findings and the stop they caused."""
CHECK_PREFIX = "[the check before training] "
"""How `logs` marks the findings it reads from the header's `check` (they come from no curve)."""
KNOWN_KEYS = (
    "loss", "lr", "grad_norm", "cer", "wer", "blank_ratio", "blank_prob", "empty_rate", "infeasible",
    "eval_loss", "eval_cer", "eval_wer",
)


def _number(value: Any) -> Any:
    value = float(value)
    if math.isfinite(value):
        return value
    return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")


def header(**meta: Any) -> str:
    """The first line: ``header(classes=27, label_length=6.2, reduction="mean")``."""
    return json.dumps({"meta": {"format": FORMAT, "version": VERSION, **meta}}, allow_nan=False)


def record(step: int, loss: float, **values: float | None) -> str:
    """One line for one step; values that are None are left out (not measured)."""
    line: dict[str, Any] = {"step": int(step), "loss": _number(loss)}
    line.update({key: _number(value) for key, value in values.items() if value is not None})
    return json.dumps(line, allow_nan=False)


def finished(line: str) -> str:
    """The last record of a run that is over: `line` (from `record`) with ``"finished": true``."""
    return json.dumps({**json.loads(line), FINISHED: True}, allow_nan=False)


def parse_number(value: Any) -> float | None:
    """A JSON value as a float: numbers, bools excluded, "nan"/"inf"/"-inf" strings; else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str) and value.strip().lower() in ("nan", "inf", "-inf", "+inf", "infinity", "-infinity"):
        return float(value.strip().lower().replace("infinity", "inf"))
    return None


def is_header(obj: Any) -> bool:
    return isinstance(obj, dict) and isinstance(obj.get("meta"), dict) and obj["meta"].get("format") == FORMAT


def check_stop(meta: dict[str, Any]) -> tuple[int, str] | None:
    """(step, code) of a stop the header's `check` records (step 0: before step 1); None when the check did not stop
    the run, or did not run."""
    record = meta.get(CHECK)
    stopped = record.get("stopped") if isinstance(record, dict) else None
    if not isinstance(stopped, dict) or not isinstance(stopped.get("code"), str):
        return None
    step = stopped.get("step")
    return (step if isinstance(step, int) and not isinstance(step, bool) and step > 0 else 0), stopped["code"]


def checked_before(meta: dict[str, Any]) -> tuple[list[Finding], str | None]:
    """The findings of the check run before training, from the header's `check` (each message marked as the check's),
    and a note on the stop when they stopped the run; ([], None) when the header has no `check`."""
    record = meta.get(CHECK)
    found: list[Finding] = []
    for item in (record.get("findings") if isinstance(record, dict) else None) or []:
        try:
            found.append(Finding(str(item["code"]), Severity.parse(str(item["severity"])), str(item.get("title", "")),
                                 CHECK_PREFIX + str(item.get("message", "")), str(item.get("hint", "")),
                                 dict(item.get("evidence") or {})))
        except (KeyError, TypeError, ValueError, AttributeError):
            continue  # a finding this reader cannot rebuild: the others still count
    stop = check_stop(meta)
    if stop is None:
        return found, None
    step, code = stop
    when = "before step 1" if step == 0 else f"after step {step:,}"
    return found, f"the check before training stopped the run {when} on {code} (the monitor's stop_on)"
