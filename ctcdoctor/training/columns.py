"""The training monitor's metrics in memory: one growing column per key.

Appending is amortised O(1) (numpy buffers that double), and `run()` hands the curve rules
views of the buffers, not copies. Columns are kept in the order in which their keys first
appear in the records, which is the order in which the JSONL reader meets them: the monitor
and `ctcdoctor logs` on its JSONL build the same `Run`, so they reach the same verdict.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ctcdoctor.training.series import Run, Series


class Growing:
    """A 1-D numpy buffer with amortised O(1) append and in-place change of its last value."""

    def __init__(self, dtype: Any, capacity: int = 256) -> None:
        self._data = np.empty(capacity, dtype=dtype)
        self._size = 0

    def __len__(self) -> int:
        return self._size

    def append(self, value: Any) -> None:
        if self._size == self._data.size:
            grown = np.empty(2 * self._data.size, dtype=self._data.dtype)
            grown[: self._size] = self._data[: self._size]
            self._data = grown
        self._data[self._size] = value
        self._size += 1

    def last(self) -> Any:
        return self._data[self._size - 1] if self._size else None

    def set_last(self, value: Any) -> None:
        self._data[self._size - 1] = value

    def view(self) -> np.ndarray:
        return self._data[: self._size]


class Columns:
    """Per key, the steps at which it was recorded and its values."""

    def __init__(self) -> None:
        self._columns: dict[str, tuple[Growing, Growing]] = {}

    def add(self, step: int, values: dict[str, float]) -> None:
        """One record; a key recorded again at the same step replaces its value (the JSONL keeps one record per step)."""
        for key, value in values.items():
            column = self._columns.get(key)
            if column is None:
                column = self._columns[key] = (Growing(np.int64), Growing(np.float64))
            steps, column_values = column
            if len(steps) and steps.last() == step:
                column_values.set_last(value)
            else:
                steps.append(step)
                column_values.append(value)

    def __contains__(self, key: str) -> bool:
        return key in self._columns

    def last(self, key: str) -> float | None:
        column = self._columns.get(key)
        return None if column is None or not len(column[1]) else float(column[1].last())

    def run(self, source: str, meta: dict[str, Any]) -> Run:
        scalars = {}
        for key, (steps, values) in self._columns.items():
            step_view, value_view = steps.view(), values.view()
            if step_view.size > 1 and not np.all(step_view[1:] > step_view[:-1]):
                scalars[key] = Series.from_points(key, step_view, value_view)  # a step went back: sort, keep the last
            else:
                scalars[key] = Series(key, step_view, value_view)
        return Run(source, "monitor", scalars, unit=str(meta.get("unit", "step")), meta=dict(meta))
