"""A loss that repeats one cycle: every N steps it climbs (or jumps) and comes back (part of CTC206).

The per-point sawtooth test (`oscillation.find_sawtooth`) reads swings around the smoothed level,
so a slow cycle (tens of logged points, as long as an epoch) is followed by the smoothing and
never seen; worse, its flat stretches look like plateaus and its last climb like a divergence.
Here a cycle is found directly: for each candidate period p (in bins), the level minus its
moving average over exactly p bins (which cancels a p-periodic component and keeps the trend
out) is folded into rows of one period; when the mean row (the cycle's profile) explains most
of the variance, the curve repeats with period p. A smooth trend leaves residuals that change
from row to row but not along a row, so it explains nothing; noise explains about 1 / (number
of rows), hence at least MIN_CYCLES rows. Cost: O(bins) per candidate, O(bins^2) in all (at
most 500 bins).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ctcdoctor.training.curve import Curve
from ctcdoctor.training.series import Series

MIN_CYCLES = 4
"""At least this many whole cycles in the log..."""
MIN_PERIOD_BINS = 4
"""... each at least this many bins long (shorter swings are the per-point sawtooth's)..."""
EXPLAINED = 0.6
"""... whose mean profile explains at least this share of the detrended variance (beyond chance)..."""
SWING_OF_LEVEL = 0.2
"""... and whose top is at least this much above its bottom (1.2x)..."""
SWING_OF_START = 0.02
"""... and spans, at the median level, at least this share of the loss the run started from (a ripple near
convergence is no problem)."""


@dataclass(frozen=True)
class Cycles:
    period: float
    """Steps per cycle."""
    count: int
    start_step: int
    end_step: int
    factor: float
    """Top of the mean cycle over its bottom."""
    swing: float
    """That range at the median level: level * (factor - 1)."""
    level: float
    """Median level over the cycles."""
    drop: float
    """Relative fall of the level over the last two thirds of the log (a cycle's median at a third, against the last one)."""
    peak_at: float
    """Where in a cycle the loss is highest, as a share of the cycle (0 = its start)."""
    explained: float


def _explained(levels: np.ndarray, sums: np.ndarray, period: int) -> tuple[float, np.ndarray, int] | None:
    """(share of variance the period's profile explains, the profile, index of the first folded bin);
    `sums` is the cumulative sum of `levels` with a leading 0."""
    moving = (sums[period:] - sums[:-period]) / period  # moving[i] = mean(levels[i : i + period])
    first = period // 2
    residual = levels[first : first + moving.size] - moving
    rows = residual.size // period
    if rows < MIN_CYCLES:
        return None
    folded = residual[: rows * period].reshape(rows, period)
    total = float(folded.var()) * folded.size
    if total <= 0:
        return None
    profile = folded.mean(0)
    # Within-phase scatter: the total minus what the profile carries (rows * its variance about the mean).
    within = total - rows * float(np.sum((profile - profile.mean()) ** 2))
    # A profile averaged from `rows` rows explains about 1/rows of pure noise: adjusted, as R^2 is, so that
    # multiples of the period (fewer rows, more free points) do not win by overfitting.
    chance = 1.0 / rows
    return (1.0 - within / total - chance) / (1.0 - chance), profile, first


def best_period(values: np.ndarray) -> tuple[int, float, np.ndarray, int] | None:
    """(period in points, share explained, its profile, first folded index) of the shortest period whose
    profile explains EXPLAINED of the detrended values (its multiples explain as much); None when none does."""
    if values.size < (MIN_CYCLES + 1) * MIN_PERIOD_BINS:
        return None
    sums = np.concatenate([[0.0], np.cumsum(values, dtype=np.float64)])
    longest = values.size // (MIN_CYCLES + 1)
    for period in range(MIN_PERIOD_BINS, longest + 1):
        scored = _explained(values, sums, period)
        if scored is not None and scored[0] >= EXPLAINED:
            # A period just short of the true one also passes (the rows drift by a bin each): take the
            # best of the neighbours within 10% above it.
            near = [(p, _explained(values, sums, p)) for p in range(period, min(longest, period + period // 10 + 1) + 1)]
            period, scored = max(((p, x) for p, x in near if x is not None), key=lambda item: item[1][0])
            return (period, *scored)
    return None


REFINE_MAX_POINTS = 20000
"""Logs up to this many points refine a period found on bins against the points themselves."""
DIVISORS = 6
"""A period found on bins may be a few whole cycles (an epoch of 12.5 bins is found as 25): its divisors up to
this are tried on the points."""


def _refined(values: np.ndarray, bin_size: int, period_bins: int) -> tuple[int, float, np.ndarray, int] | None:
    """The period in points: the shortest of the bin period's divisors (within a bin either way) that passes on the
    points themselves, best of its neighbours; None when none does (the bins' answer stands)."""
    sums = np.concatenate([[0.0], np.cumsum(values, dtype=np.float64)])
    longest = values.size // (MIN_CYCLES + 1)
    stride = max(1, bin_size // 4)
    for divisor in range(DIVISORS, 0, -1):
        centre = period_bins * bin_size / divisor
        if centre < MIN_PERIOD_BINS:
            continue
        candidates = range(max(MIN_PERIOD_BINS, int(centre - bin_size)), min(longest, int(centre + bin_size)) + 1, stride)
        scored = [(p, _explained(values, sums, p)) for p in candidates]
        passing = [(p, x) for p, x in scored if x is not None and x[0] >= EXPLAINED]
        if passing:
            period, found = max(passing, key=lambda item: item[1][0])
            return (period, *found)
    return None


def find_cycles(curve: Curve) -> Cycles | None:
    """The period the loss repeats with, when one explains most of its shape (else None).

    Read on the log of the loss: a cycle from the data order scales with the loss (a batch of long
    labels costs a fixed factor more), so it keeps its shape in log space while the loss falls.
    Found on the bins first (cheap at any length), then, for logs of up to REFINE_MAX_POINTS points
    cut into bins of several points, on the points themselves: a period is rarely a whole number of bins.
    """
    if not curve.positive or curve.bins < 2:
        return None
    levels = curve.level
    found = best_period(np.log(levels))
    if found is None:
        return None
    period, explained, profile, first = found
    step_per_point = float(np.median(np.diff(curve.steps))) if curve.n > 1 else 1.0
    period_steps = period * float(np.median(np.diff(curve.bin_first_step)))
    if curve.bin_size > 1 and curve.n <= REFINE_MAX_POINTS:
        points = _refined(np.log(curve.values), curve.bin_size, period)
        if points is not None:
            period, explained, profile, first = points
            period_steps = period * step_per_point
            levels = curve.values
    level = float(np.median(levels))
    factor = float(np.exp(profile.max() - profile.min()))
    swing = level * (factor - 1.0)
    if factor - 1.0 < SWING_OF_LEVEL or swing < SWING_OF_START * curve.start:
        return None
    # Over the last two thirds: the first cycles often hold the run's initial descent.
    third = levels.size // 3
    head, tail = float(np.median(levels[third : third + period])), float(np.median(levels[-period:]))
    return Cycles(
        period=period_steps,
        count=levels.size // period,
        start_step=curve.first_step,
        end_step=curve.last_step,
        factor=factor,
        swing=swing,
        level=level,
        drop=(head - tail) / head if head > 0 else 0.0,
        # profile[j] is point (or bin) first + j of a cycle: the peak's place in the cycle, as a share of it
        peak_at=float(((first + int(np.argmax(profile))) % period) / period),
        explained=explained,
    )


def follows_schedule(lr: Series | None, cycles: Cycles) -> bool:
    """Whether the logged learning rate repeats with about the same period (warm restarts, CyclicLR)."""
    if lr is None:
        return False
    finite = np.isfinite(lr.values)
    values, steps = lr.values[finite].astype(np.float64), lr.steps[finite]
    if values.size < 2 or np.ptp(values) <= 0:
        return False
    found = best_period(values)
    if found is None:
        return False
    return abs(found[0] * float(np.median(np.diff(steps))) - cycles.period) <= 0.25 * cycles.period
