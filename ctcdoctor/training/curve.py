"""Robust, vectorised facts about one logged curve, computed once and shared by the rules.

Per-step CTC losses are noisy (a batch of long utterances costs more) and fall in steps
(a fast drop, the blank plateau, a second drop), so the rules never look at single
points. A curve of n finite points is cut into at most `MAX_BINS` bins of equal count;
each bin's level is its median, and a rolling median over bins (`smooth`) is the level the
rules read. Everything is numpy over arrays: O(n) for binning (a reshape and a median), then
O(bins) for the rest, so a run of 10^6 logged points costs a few milliseconds, and the live
monitor can call the rules on the series so far.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from ctcdoctor.training.series import Series

MAX_BINS = 500
"""Bins a curve is cut into; more points than this are summarised by bin medians."""
SMOOTH_POINTS = 15
"""The rolling median spans about this many logged points (at least one bin)."""
SMOOTH_MAX_SHARE = 8
"""... but never more than 1/8 of the bins, so a short log (50 evaluations) keeps its shape."""
END_SHARE = 0.05
"""The end level is the median of the last 5% of bins (at least 3)."""
FLAT_BAND = 0.10
"""A plateau: the smoothed level stays within +-10% of the plateau's level."""


def fmt(value: float) -> str:
    """3 significant digits, plain for ordinary magnitudes."""
    if value is None or not math.isfinite(value):
        return str(value)
    if value == 0:
        return "0"
    if 1e-3 <= abs(value) < 1e5:
        return f"{value:.3g}"
    return f"{value:.2e}"


def between(low: float, high: float) -> str:
    """'0.90-1.00', or '1.00' when both ends print the same."""
    return f"{low:.2f}" if f"{low:.2f}" == f"{high:.2f}" else f"{low:.2f}-{high:.2f}"


def rolling_median(values: np.ndarray, window: int) -> np.ndarray:
    """Centred rolling median; the window shrinks at the ends (no padding values invented)."""
    if window <= 1 or values.size <= 2:
        return values.copy()
    half = window // 2
    padded = np.concatenate([np.full(half, np.nan), values, np.full(half, np.nan)])
    windows = np.lib.stride_tricks.sliding_window_view(padded, window)
    return np.nanmedian(windows, axis=1)


def flat_extent(values: np.ndarray, width: float) -> np.ndarray:
    """For each i, the last j >= i with max(values[i..j]) - min(values[i..j]) <= width.

    Two pointers with monotonic deques: O(n). The end only moves forward, because dropping the
    first value of a window never widens its range."""
    from collections import deque

    n = values.size
    extent = np.empty(n, dtype=np.int64)
    highs: deque[int] = deque()
    lows: deque[int] = deque()
    j = -1
    for i in range(n):
        while j + 1 < n:
            candidate = values[j + 1]
            high = max(candidate, values[highs[0]]) if highs else candidate
            low = min(candidate, values[lows[0]]) if lows else candidate
            if high - low > width:
                break
            j += 1
            while highs and values[highs[-1]] <= candidate:
                highs.pop()
            highs.append(j)
            while lows and values[lows[-1]] >= candidate:
                lows.pop()
            lows.append(j)
        extent[i] = max(j, i)
        if highs and highs[0] == i:
            highs.popleft()
        if lows and lows[0] == i:
            lows.popleft()
        j = max(j, i)  # keeps the window valid (a window of one value always fits the band)
    return extent


@dataclass(frozen=True)
class Segment:
    """A stretch of bins [first, last] (inclusive) and the steps it spans."""

    first: int
    last: int
    start_step: int
    end_step: int
    level: float


class Curve:
    """Lazily computed, shared facts about one series (only its finite values take part)."""

    def __init__(self, series: Series) -> None:
        self.series = series
        self.tag = series.tag
        self.finite_mask = np.isfinite(series.values)
        self.steps = series.steps[self.finite_mask]
        self.values = series.values[self.finite_mask]
        self.n = int(self.values.size)

    # ------------------------------------------------------------------ bins
    @cached_property
    def bin_size(self) -> int:
        return max(1, math.ceil(self.n / MAX_BINS))

    @cached_property
    def _bins(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(level, first step, last step, index of each point's bin)."""
        k, n = self.bin_size, self.n
        if n == 0:
            empty = np.zeros(0)
            return empty, empty.astype(np.int64), empty.astype(np.int64), empty.astype(np.int64)
        full = (n // k) * k
        levels = np.median(self.values[:full].reshape(-1, k), axis=1) if full else np.zeros(0)
        if full < n:
            levels = np.append(levels, np.median(self.values[full:]))
        starts = np.arange(0, n, k)
        ends = np.minimum(starts + k, n) - 1
        return levels, self.steps[starts], self.steps[ends], np.arange(n) // k

    @property
    def level(self) -> np.ndarray:
        """Median of each bin."""
        return self._bins[0]

    @property
    def bin_first_step(self) -> np.ndarray:
        return self._bins[1]

    @property
    def bin_last_step(self) -> np.ndarray:
        return self._bins[2]

    @property
    def point_bin(self) -> np.ndarray:
        return self._bins[3]

    @property
    def bins(self) -> int:
        return int(self.level.size)

    @cached_property
    def smooth(self) -> np.ndarray:
        """Rolling median of the bin levels: the level the rules read."""
        window = max(1, min(math.ceil(SMOOTH_POINTS / self.bin_size), self.bins // SMOOTH_MAX_SHARE))
        return rolling_median(self.level, window | 1)

    # ------------------------------------------------------------------ levels
    @cached_property
    def first(self) -> float:
        return float(self.values[0]) if self.n else math.nan

    @cached_property
    def early(self) -> float:
        """Median of the first 3 finite values: where the run started, robust to one odd point."""
        return float(np.median(self.values[:3])) if self.n else math.nan

    @cached_property
    def start(self) -> float:
        """The higher of the first value and the early level: the top of the range the run descends."""
        return max(self.first, self.early)

    def end_bins(self) -> int:
        return max(3, math.ceil(END_SHARE * self.bins)) if self.bins >= 6 else max(1, self.bins // 2)

    @cached_property
    def end(self) -> float:
        """Median level of the last 5% of bins."""
        return float(np.median(self.level[-self.end_bins():])) if self.n else math.nan

    @cached_property
    def best_bin(self) -> int:
        return int(np.argmin(self.smooth)) if self.n else 0

    @cached_property
    def best(self) -> float:
        return float(self.smooth[self.best_bin]) if self.n else math.nan

    @property
    def positive(self) -> bool:
        return bool(self.n and self.values.min() > 0)

    @property
    def first_step(self) -> int:
        return int(self.series.steps[0]) if len(self.series) else 0

    @property
    def last_step(self) -> int:
        return int(self.series.steps[-1]) if len(self.series) else 0

    @property
    def span(self) -> int:
        """Steps covered by the whole log (at least 1)."""
        return max(1, self.last_step - self.first_step)

    def share(self, start_step: int, end_step: int) -> float:
        return (end_step - start_step) / self.span

    def value_at(self, step: int) -> float:
        """Smoothed level at (or just before) `step`."""
        index = int(np.searchsorted(self.bin_first_step, step, side="right")) - 1
        return float(self.smooth[max(0, min(index, self.bins - 1))])

    def levels_between(self, start_step: int, end_step: int) -> np.ndarray:
        """Bin levels whose bins lie in [start_step, end_step]."""
        mask = (self.bin_last_step >= start_step) & (self.bin_first_step <= end_step)
        return self.level[mask]

    # ------------------------------------------------------------------ shapes
    @cached_property
    def final_plateau(self) -> Segment | None:
        """The stretch at the end where the smoothed level stays within +-FLAT_BAND of the end level."""
        if self.bins < 6 or not self.positive or self.end <= 0:
            return None
        deviation = np.abs(np.log(self.smooth) - math.log(self.end))
        outside = np.flatnonzero(deviation > math.log1p(FLAT_BAND))
        first = int(outside[-1]) + 1 if outside.size else 0
        if first >= self.bins - 1:
            return None
        return Segment(first, self.bins - 1, int(self.bin_first_step[first]), self.last_step, self.end)

    def drop_within(self, segment: Segment) -> float:
        """Relative fall of the level across a segment: median of its first fifth vs its last fifth."""
        levels = self.level[segment.first : segment.last + 1]
        few = max(1, levels.size // 5)
        head, tail = float(np.median(levels[:few])), float(np.median(levels[-few:]))
        return (head - tail) / head if head > 0 else 0.0

    def flat_segments(self, min_bins: int) -> list[Segment]:
        """Maximal stretches (left to right, not overlapping) whose smoothed level varies by at most
        +-FLAT_BAND, at least `min_bins` long."""
        if not self.positive or self.bins < min_bins:
            return []
        extent = flat_extent(np.log(self.smooth), 2 * math.log1p(FLAT_BAND))
        segments, i = [], 0
        while i < self.bins:
            j = int(extent[i])
            if j - i + 1 >= min_bins:
                level = float(np.median(self.level[i : j + 1]))
                segments.append(Segment(i, j, int(self.bin_first_step[i]), int(self.bin_last_step[j]), level))
                i = j + 1
            else:
                i += 1
        return segments

    def trend_drop(self, start_step: int, end_step: int) -> float:
        """Relative fall between the first and last quarter of the bins in [start_step, end_step]."""
        levels = self.levels_between(start_step, end_step)
        if levels.size < 2:
            return 0.0
        few = max(1, levels.size // 4)
        head, tail = float(np.median(levels[:few])), float(np.median(levels[-few:]))
        return (head - tail) / abs(head) if head else 0.0
