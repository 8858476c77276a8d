"""The overfit loss curve as numbers: its summary and its recent trend (pure functions)."""
from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from typing import Any

TREND_MIN_STEPS = 8
"""The trend is read over the last quarter of the steps, and at least this many."""
TREND_SIGNIFICANCE = 3.0
"""A trend needs a slope this many standard errors away from zero (dropout noise is not a trend)."""
FALLING_SHARE = 0.02
"""... and a change of more than this share of the loss over the window."""


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values)) if values else float("nan")


def loss_trend(losses: Sequence[float]) -> dict[str, Any]:
    """How the loss moved over the last quarter of the run (at least `TREND_MIN_STEPS` steps).

    A least-squares line through that window decides: "falling" when its slope is
    `TREND_SIGNIFICANCE` standard errors below zero (so noise from dropout does not count)
    and the line drops by more than `FALLING_SHARE` of its starting level; "rising" the
    other way round; otherwise "flat". `from`/`to` are the medians of the window's first
    and last few steps (measured values, for the message); `drop` is the line's relative
    drop over the window.
    """
    empty = {"trend": None, "from": None, "to": None, "steps": 0, "drop": None}
    window = max(TREND_MIN_STEPS, len(losses) // 4)
    points = [(step, value) for step, value in enumerate(losses, 1) if math.isfinite(value)][-window:]
    if len(losses) < TREND_MIN_STEPS or len(points) < TREND_MIN_STEPS:
        return empty
    xs = [float(step) for step, _ in points]
    ys = [value for _, value in points]
    mean_x, mean_y = sum(xs) / len(xs), sum(ys) / len(ys)
    sxx = sum((x - mean_x) ** 2 for x in xs)
    slope = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys)) / sxx
    intercept = mean_y - slope * mean_x
    residual = sum((y - intercept - slope * x) ** 2 for x, y in zip(xs, ys))
    error = math.sqrt(residual / max(len(xs) - 2, 1) / sxx)
    start = intercept + slope * xs[0]
    end = intercept + slope * xs[-1]
    drop = (start - end) / max(abs(start), 1e-12)
    significance = slope / error if error > 0 else (math.copysign(math.inf, slope) if slope else 0.0)
    if significance < -TREND_SIGNIFICANCE and drop > FALLING_SHARE:
        trend = "falling"
    elif significance > TREND_SIGNIFICANCE and drop < -FALLING_SHARE:
        trend = "rising"
    else:
        trend = "flat"
    few = max(1, min(5, len(ys) // 4))
    return {
        "trend": trend,
        "from": median(ys[:few]),
        "to": median(ys[-few:]),
        "steps": int(xs[-1] - xs[0]) + 1,
        "drop": drop,
    }


def loss_summary(losses: Sequence[float]) -> dict[str, Any]:
    """First, best (with step), last, tail median and recent trend of a loss curve (steps are 1-based)."""
    if not losses:
        return {"first": None, "best": None, "best_step": None, "last": None, "tail_median": None, "trend": None, "recent": None}
    finite = [(value, step) for step, value in enumerate(losses, 1) if math.isfinite(value)]
    best, best_step = min(finite) if finite else (float("nan"), None)
    tail = [value for value in losses[-max(5, len(losses) // 10):] if math.isfinite(value)]
    recent = loss_trend(losses)
    return {
        "first": losses[0],
        "best": best,
        "best_step": best_step,
        "last": losses[-1],
        "tail_median": median(tail) if tail else float("nan"),
        "trend": recent["trend"],
        "recent": {key: recent[key] for key in ("from", "to", "steps", "drop")},
    }
