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

import math
from collections.abc import Callable
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
"""A period found on bins is refined on the points themselves, or, in a longer log, on medians of as few points
as keep this many values."""
DIVISORS = 6
"""A period found on bins may be a few whole cycles (an epoch of 12.5 bins is found as 25): its divisors up to
this are tried on the points."""


def _refined(values: np.ndarray, scale: float, period_bins: int) -> tuple[int, float, np.ndarray, int] | None:
    """The period in units of `values` (`scale` of them to a bin): the shortest of the bin period's divisors
    (within a bin either way) that passes on these values, best of its neighbours; None when none does (the bins'
    answer stands)."""
    sums = np.concatenate([[0.0], np.cumsum(values, dtype=np.float64)])
    longest = values.size // (MIN_CYCLES + 1)
    stride = max(1, int(scale) // 4)
    for divisor in range(DIVISORS, 0, -1):
        centre = period_bins * scale / divisor
        if centre < MIN_PERIOD_BINS:
            continue
        candidates = range(max(MIN_PERIOD_BINS, int(centre - scale)), min(longest, int(centre + scale)) + 1, stride)
        scored = [(p, _explained(values, sums, p)) for p in candidates]
        passing = [(p, x) for p, x in scored if x is not None and x[0] >= EXPLAINED]
        if passing:
            period, found = max(passing, key=lambda item: item[1][0])
            return (period, *found)
    return None


@dataclass(frozen=True)
class Period:
    """A period found on a curve: in units of `values` (bins, or points when refined), and in steps."""

    length: int
    steps: float
    explained: float
    profile: np.ndarray
    first: int
    values: np.ndarray
    """The curve's values at that resolution (bin levels or the points), untransformed."""


def find_period(curve: Curve, transform: Callable[[np.ndarray], np.ndarray]) -> Period | None:
    """The period of `transform(curve)`: found on the bins first (cheap at any length), then, for logs of up to
    REFINE_MAX_POINTS points cut into bins of several points, on the points themselves (a period is rarely a whole
    number of bins)."""
    if curve.bins < 2:
        return None
    found = best_period(transform(curve.level))
    if found is None:
        return None
    length, explained, profile, first = found
    # The finer resolution: the points themselves, or medians of a few points for a log longer than REFINE_MAX_POINTS.
    chunk = max(1, math.ceil(curve.n / REFINE_MAX_POINTS))
    if curve.bin_size > chunk:
        usable = (curve.n // chunk) * chunk
        fine = curve.values if chunk == 1 else np.median(curve.values[:usable].reshape(-1, chunk), axis=1)
        refined = _refined(transform(fine), curve.bin_size / chunk, length)
        if refined is not None:
            length, explained, profile, first = refined
            step = chunk * float(np.median(np.diff(curve.steps)))
            return Period(length, length * step, explained, profile, first, fine)
    return Period(length, length * float(np.median(np.diff(curve.bin_first_step))), explained, profile, first,
                  curve.level)


def find_cycles(curve: Curve) -> Cycles | None:
    """The period the loss repeats with, when one explains most of its shape (else None).

    Read on the log of the loss: a cycle from the data order scales with the loss (a batch of long
    labels costs a fixed factor more), so it keeps its shape in log space while the loss falls.
    """
    found = find_period(curve, np.log) if curve.positive else None
    if found is None:
        return None
    period, period_steps, explained, profile, first, levels = (
        found.length, found.steps, found.explained, found.profile, found.first, found.values)
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
    """Whether the logged learning rate repeats with about the same period (warm restarts, CyclicLR). Found as the
    loss's period is (binned, then refined), so a log of 10^6 rates costs what its loss does."""
    if lr is None:
        return False
    curve = Curve(lr)
    if curve.n < 2 or np.ptp(curve.values) <= 0:
        return False
    found = find_period(curve, lambda values: values.astype(np.float64))
    return found is not None and abs(found.steps - cycles.period) <= 0.25 * cycles.period
