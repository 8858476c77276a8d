"""`ctcdoctor logs RUN`: read a training run's log and say what its curves show.

`diagnose_run(path, ...) -> LogsResult` is the whole command minus rendering: the CLI calls
it, prints `result.findings` with the shared renderers, puts `result.to_dict()` in the JSON
envelope's `result`, and draws `ctcdoctor.training.plot.plot(result)` for `--plot`.
Errors the user can fix (no log found, empty log, no loss, truncated event file) are
`UserInputError`s: exit 2 with one line.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ctcdoctor.errors import UserInputError
from ctcdoctor.findings import CheckResult, Finding
from ctcdoctor.training.monitor_format import check_stop, checked_before
from ctcdoctor.training.names import resolve
from ctcdoctor.training.readers import read_run
from ctcdoctor.training.rules import Options
from ctcdoctor.training.series import Curves, Run, Series
from ctcdoctor.training.verdicts import verdict


@dataclass(frozen=True)
class LogsResult:
    """What `ctcdoctor logs` found: the findings, the curves they were read from, and how."""

    source: str
    """The log file read."""
    format: str
    """"tensorboard", "huggingface", "lightning", "keras", "csv", "jsonl" or "monitor"."""
    findings: tuple[Finding, ...]
    curves: Curves
    """The series by role (train loss, eval loss, lr, ...): the data behind the plot."""
    run: Run
    """Every scalar the reader found, by tag."""
    options: Options
    notes: tuple[str, ...] = ()
    """What was assumed or could not be seen (one sentence each)."""
    seconds: dict[str, float] = field(default_factory=dict)
    """{"read": ..., "diagnose": ...}."""
    checks: tuple[CheckResult, ...] = ()
    """How each rule ended (`logs -v`, and the JSON's `checks`)."""

    def to_dict(self) -> dict[str, Any]:
        """The `result` object of the JSON envelope (no raw arrays: a summary per series)."""
        return {
            "source": self.source,
            "format": self.format,
            "unit": self.curves.unit,
            "series": {role: _summary(series) for role, series in _by_role(self.curves).items()},
            "other_scalars": sorted(set(self.run.scalars) - {s.tag for s in self.curves.all_series()}),
            "options": {key: value for key, value in vars(self.options).items() if value not in (None, 0)},
            "notes": list(self.notes),
            "seconds": {key: round(value, 4) for key, value in self.seconds.items()},
            **({"stopped_by_check": dict(zip(("step", "code"), stop))} if (stop := check_stop(self.run.meta)) else {}),
        }


def _by_role(curves: Curves) -> dict[str, Series]:
    roles: dict[str, Series] = {"loss": curves.loss}
    for role in ("eval_loss", "lr", "grad_norm", "blank_ratio"):
        if getattr(curves, role) is not None:
            roles[role] = getattr(curves, role)
    for metric in curves.metrics:
        roles[f"{'eval_' if metric.eval else ''}{metric.kind}:{metric.series.tag}"] = metric.series
    for part in curves.parts:
        roles[f"part:{part.tag}"] = part
    return roles


def _summary(series: Series) -> dict[str, Any]:
    finite = np.isfinite(series.values)
    values = series.values[finite]
    summary: dict[str, Any] = {"tag": series.tag, "points": len(series), "non_finite": int((~finite).sum())}
    if len(series):
        summary.update(first_step=int(series.steps[0]), last_step=int(series.steps[-1]))
    if values.size:
        summary.update(first=float(values[0]), last=float(values[-1]), min=float(values.min()), max=float(values.max()))
    return summary


def _meta_number(meta: dict[str, Any], key: str) -> float | None:
    value = meta.get(key)
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def diagnose_run(
    path: str | os.PathLike,
    *,
    loss: str | None = None,
    eval_loss: str | None = None,
    metric: str | None = None,
    lr: str | None = None,
    grad_norm: str | None = None,
    classes: int | None = None,
    label_length: float | None = None,
    reduction: str | None = None,
    patience: int | None = None,
    allow_truncated: bool = False,
    optimizer: str | None = None,
) -> LogsResult:
    """Read the log at `path` (file or run folder) and run the curve rules on it.

    `loss`, `eval_loss`, `metric`, `lr`, `grad_norm` choose a series by tag instead of by
    name recognition. `classes` (C, blank included), `label_length` (mean U) and `reduction`
    ("mean" or "sum") place the content-free CTC level; the monitor's JSONL header supplies
    them when they are not given. `patience` (steps) delays plateau verdicts for a run in
    progress (and is the budget of the monitor's blank-phase rules); unset, it is the monitor
    header's `patience`, else 0. `optimizer` (Adam, AdamW, SGD; else the monitor header's, else read from the
    learning rate's tag like `lr-Adam`) sets how far learning-rate advice goes. `allow_truncated` reads a TensorBoard file up to a cut-off record.
    A monitor log is judged by the output rules (CTC220-CTC224) too, as the monitor judged it, and the findings of
    the check the monitor ran before training (its header's `check`) are reported with it; a run that check stopped
    before step 1 has those findings alone.
    """
    if reduction not in (None, "mean", "sum", "none"):
        raise UserInputError(f"--reduction {reduction!r}: expected mean (loss per label) or sum (loss per sample)")
    if classes is not None and classes < 2:
        raise UserInputError(f"--classes {classes}: expected the number of output classes, blank included (>= 2)")
    if patience is not None and patience < 0:
        raise UserInputError(f"--patience {patience}: expected a number of steps (>= 0)")
    if label_length is not None and label_length <= 0:
        raise UserInputError(f"--label-length {label_length}: expected the mean number of labels per target (> 0)")
    started = time.perf_counter()
    run = read_run(path, allow_truncated=allow_truncated)
    read_seconds = time.perf_counter() - started
    checked, stop_note = checked_before(run.meta)  # the monitor's check before training: in its verdict, so in this one
    if not run.scalars:  # the reader allows no step only to a run that check stopped before step 1
        return LogsResult(run.source, run.format, tuple(checked), Curves(Series.from_points("loss", [], []), unit=run.unit),
                          run, Options(), notes=run.notes + (f"{stop_note}: no training step was logged",),
                          seconds={"read": read_seconds, "diagnose": 0.0})
    curves, notes = resolve(run, loss=loss, eval_loss=eval_loss, metric=metric, lr=lr, grad_norm=grad_norm)
    classes_value = classes if classes is not None else _meta_number(run.meta, "classes")
    options = Options(
        classes=int(classes_value) if classes_value is not None else None,
        label_length=label_length if label_length is not None else _meta_number(run.meta, "label_length"),
        reduction=reduction if reduction is not None else (run.meta.get("reduction") or None),
        patience=patience if patience is not None else int(_meta_number(run.meta, "patience") or 0),
        optimizer=optimizer or (str(run.meta["optimizer"]) if run.meta.get("optimizer") else None),
        finished=run.meta.get("finished") is True,
        sizes=("flags" if classes is not None or label_length is not None else
               "monitor" if run.format == "monitor" and classes_value is not None else None),
        trainer=str(run.meta["trainer"]) if run.meta.get("trainer") else ("huggingface" if run.format == "huggingface" else None),
    )
    started = time.perf_counter()
    checks: list[CheckResult] = []
    findings = checked + verdict(run, curves, options, checks)
    diagnose_seconds = time.perf_counter() - started
    notes += [stop_note] if stop_note else []
    return LogsResult(
        source=run.source,
        format=run.format,
        findings=tuple(findings),
        curves=curves,
        run=run,
        options=options,
        notes=run.notes + tuple(notes),
        seconds={"read": read_seconds, "diagnose": diagnose_seconds},
        checks=tuple(checks),
    )
