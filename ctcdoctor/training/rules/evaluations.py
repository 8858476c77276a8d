"""The monitor's output measurements as the output rules read them: one entry per evaluation.

The monitor writes what it measured on a batch's outputs to its JSONL every `every` steps
(`ctcdoctor.training.outputs.OutputStats.record`); `Evaluations` lines those numbers up by
evaluation step, so the rules (`rules.outputs`, `rules.blank_phase`) never touch tensors and
`ctcdoctor logs` on the JSONL judges the same numbers the monitor judged. Counts the monitor
takes at every step (`infeasible`, from the lengths alone) are kept whole as well.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ctcdoctor.training.series import Series

OUTPUT_KEYS = ("evaluated", "cer", "blank_ratio", "blank_prob", "empty_rate", "entropy", "infeasible", "alt_decode_rate",
               "class_norm_gap", "time_norm_gap", "batch_norm_gap", "prob_like")


@dataclass(frozen=True)
class Evaluations:
    """The monitor's output measurements, one entry per evaluation (NaN where not measured)."""

    steps: np.ndarray
    values: dict[str, np.ndarray]
    infeasible_steps: Series | None = None
    """`infeasible` at every step it was counted (the monitor counts it from the lengths at each
    `update()` that has them, not only at evaluations); None when not logged."""

    def __len__(self) -> int:
        return int(self.steps.size)

    def get(self, key: str) -> np.ndarray:
        return self.values.get(key, np.full(self.steps.shape, np.nan))

    def pooled(self, first: int) -> tuple[int, float]:
        """Decodes measured from evaluation `first` to the latest, and the share of them that were
        empty: a few evaluations of 4 decodes each say little one by one, together they do."""
        evaluated = np.nan_to_num(self.get("evaluated")[first:], nan=0.0)
        empty = self.get("empty_rate")[first:]
        known = np.isfinite(empty) & (evaluated > 0)
        decodes = float(evaluated[known].sum())
        return int(decodes), float((empty[known] * evaluated[known]).sum() / decodes) if decodes else float("nan")

    @classmethod
    def from_scalars(cls, scalars: dict[str, Series]) -> Evaluations | None:
        """None when the log holds no output measurements (not a monitor log, or no outputs given)."""
        index = scalars.get("evaluated")
        if index is None or not len(index):
            return None
        values = {}
        for key in OUTPUT_KEYS:
            series = scalars.get(key)
            column = np.full(index.steps.shape, np.nan)
            if series is not None and len(series):
                where = np.searchsorted(series.steps, index.steps)
                hit = (where < series.steps.size) & (series.steps[np.minimum(where, series.steps.size - 1)] == index.steps)
                column[hit] = series.values[where[hit]]
            values[key] = column
        infeasible = scalars.get("infeasible")
        return cls(index.steps, values, infeasible if infeasible is not None and len(infeasible) else None)
