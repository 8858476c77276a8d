"""The run model: what readers return and what the curve rules take.

Three layers, each plain data:

* `Series`: one logged scalar, its steps and values as numpy arrays (float64 values;
  NaN and inf are kept, because a non-finite loss is a finding, not a parse error).
* `Run`: everything one reader found in a log, by tag, plus where it came from.
* `Curves`: the series the rules need, by role (train loss, eval loss, learning rate,
  gradient norm, CER/WER/accuracy, blank ratio, parts of a summed loss). `names.py`
  builds it from a `Run`; the training monitor builds it from its own buffers.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Series:
    """One logged scalar: steps in increasing order, one value per step."""

    tag: str
    """The name in the log (`train/loss`, `eval_loss`, `lr-Adam`)."""
    steps: np.ndarray
    """Step (or epoch, see `Curves.unit`) of each value, strictly increasing, int64."""
    values: np.ndarray
    """float64; NaN and inf as logged."""

    def __len__(self) -> int:
        return int(self.values.shape[0])

    @classmethod
    def from_points(cls, tag: str, steps: Iterable[float], values: Iterable[float]) -> Series:
        """Sort by step and keep the last value logged at each step (a resumed run logs some steps twice)."""
        step_array = np.asarray(list(steps) if not isinstance(steps, np.ndarray) else steps, dtype=np.float64)
        value_array = np.asarray(list(values) if not isinstance(values, np.ndarray) else values, dtype=np.float64)
        if step_array.shape != value_array.shape or step_array.ndim != 1:
            raise ValueError(f"{tag}: steps and values must be 1-D arrays of the same length")
        return cls(tag, *_sorted_unique(step_array, value_array))


def _sorted_unique(steps: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    steps = np.rint(steps).astype(np.int64)
    if steps.size and np.all(steps[1:] > steps[:-1]):
        return steps, values
    # stable sort, then keep the last occurrence of each step
    order = np.argsort(steps, kind="stable")
    steps, values = steps[order], values[order]
    last = np.ones(steps.shape[0], dtype=bool)
    last[:-1] = steps[1:] != steps[:-1]
    return steps[last], values[last]


@dataclass(frozen=True)
class Run:
    """Everything a reader found in one log."""

    source: str
    """The file read (or the first of several event files)."""
    format: str
    """"tensorboard", "huggingface", "lightning", "keras", "csv", "jsonl" or "monitor"."""
    scalars: dict[str, Series]
    unit: str = "step"
    """What the step column counts: "step", or "epoch" for Keras' CSVLogger."""
    meta: dict[str, Any] = field(default_factory=dict)
    """Facts the log states about the run (the monitor's header: classes, label_length, reduction)."""
    notes: tuple[str, ...] = ()
    """What the reader could not see or had to assume, in one sentence each."""


@dataclass(frozen=True)
class Metric:
    """An error rate or accuracy series, oriented so that the rules can read it."""

    series: Series
    kind: str
    """"cer", "wer", "per", "ler", "error" (error rates) or "accuracy"."""
    eval: bool = False
    """Measured on held-out data (`eval_cer`, `val_wer`) rather than on training batches."""

    @property
    def error(self) -> np.ndarray:
        """Error rates in [0, 1]: accuracy turned into 1 - accuracy."""
        return 1.0 - self.series.values if self.kind == "accuracy" else self.series.values


@dataclass(frozen=True)
class Curves:
    """The series the rules read, by role. Only `loss` is required."""

    loss: Series
    eval_loss: Series | None = None
    lr: Series | None = None
    grad_norm: Series | None = None
    metrics: tuple[Metric, ...] = ()
    blank_ratio: Series | None = None
    """Share of frames whose argmax is blank (the monitor logs it)."""
    parts: tuple[Series, ...] = ()
    """Terms of a summed loss logged on their own (`loss_ctc`, `loss_att`)."""
    unit: str = "step"

    def roles(self) -> dict[str, str]:
        """Role -> tag, for the report."""
        roles = {"loss": self.loss.tag}
        for role in ("eval_loss", "lr", "grad_norm", "blank_ratio"):
            series = getattr(self, role)
            if series is not None:
                roles[role] = series.tag
        for metric in self.metrics:
            roles[f"metric:{metric.kind}" + (":eval" if metric.eval else "")] = metric.series.tag
        for part in self.parts:
            roles[f"part:{part.tag}"] = part.tag
        return roles

    def all_series(self) -> list[Series]:
        found = [self.loss, self.eval_loss, self.lr, self.grad_norm, self.blank_ratio]
        found += [metric.series for metric in self.metrics] + list(self.parts)
        return [series for series in found if series is not None]
