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
"""... whose mean profile explains at least this share of the detrended variance..."""
SWING_OF_LEVEL = 0.2
"""... and spans at least this share of the median level..."""
SWING_OF_START = 0.05
"""... and this share of the loss the run started from (a ripple near convergence is no problem)."""
FUNDAMENTAL = 0.9
"""Multiples of the period explain as much: the shortest period within this share of the best is taken."""


@dataclass(frozen=True)
class Cycles:
    period: float
    """Steps per cycle."""
    count: int
    start_step: int
    end_step: int
    swing: float
    """Range of the mean cycle (top minus bottom of the profile)."""
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
    return 1.0 - within / total, profile, first


def best_period(values: np.ndarray) -> tuple[int, float, np.ndarray, int] | None:
    """(period in points, share explained, its profile, first folded index) of the shortest period
    that explains nearly as much as the best one; None when none explains EXPLAINED."""
    if values.size < (MIN_CYCLES + 1) * MIN_PERIOD_BINS:
        return None
    sums = np.concatenate([[0.0], np.cumsum(values, dtype=np.float64)])
    scores: dict[int, tuple[float, np.ndarray, int]] = {}
    for period in range(MIN_PERIOD_BINS, values.size // (MIN_CYCLES + 1) + 1):
        scored = _explained(values, sums, period)
        if scored is not None and scored[0] >= EXPLAINED:
            scores[period] = scored
    if not scores:
        return None
    best = max(score for score, _, _ in scores.values())
    period = min(p for p, (score, _, _) in scores.items() if score >= FUNDAMENTAL * best)
    return (period, *scores[period])


def find_cycles(curve: Curve) -> Cycles | None:
    """The period the loss repeats with, when one explains most of its shape (else None)."""
    levels = curve.level
    found = best_period(levels) if curve.positive else None
    if found is None:
        return None
    period, explained, profile, first = found
    level = float(np.median(levels))
    swing = float(profile.max() - profile.min())
    if level <= 0 or swing < SWING_OF_LEVEL * level or swing < SWING_OF_START * curve.start:
        return None
    bin_steps = float(np.median(np.diff(curve.bin_first_step)))
    # Over the last two thirds: the first cycles often hold the run's initial descent.
    third = levels.size // 3
    head, tail = float(np.median(levels[third : third + period])), float(np.median(levels[-period:]))
    return Cycles(
        period=period * bin_steps,
        count=levels.size // period,
        start_step=curve.first_step,
        end_step=curve.last_step,
        swing=swing,
        level=level,
        drop=(head - tail) / head if head > 0 else 0.0,
        # profile[j] is bin first + j of a cycle: the peak's place in the cycle, as a share of it
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
