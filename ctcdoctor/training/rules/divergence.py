"""Divergence: the loss ends far above the best level it reached (CTC203)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ctcdoctor.findings import Finding
from ctcdoctor.registry import document, finding
from ctcdoctor.training.curve import Curve, fmt
from ctcdoctor.training.rules.context import Analysis
from ctcdoctor.training.rules.lr_advice import ADAPTIVE_HIGH, lower_lr

document(
    "CTC203",
    "error",
    "the loss diverged",
    """
    **What it means.** The loss fell to a best level, then rose and stayed high: at the end
    of the log its level is at least 1.5x the best, and the rise is a real share (at least
    10%) of what the run had gained. The step it began is the last step the smoothed loss
    was still near its best. Single bad batches do not count: levels are medians.

    **Example.** `error CTC203 the loss diverged: best 0.23 at step 300, rising from step
    310 to 3.2 at the end (14x the best, back 29% of the way to the first logged loss 10.5).` The picture: a
    normal fall, a valley, then a climb back toward (or above) the blank plateau, often with
    spikes on the way up.

    **Fix.** Lower the learning rate (most runs that diverge after learning had a learning
    rate at the edge of stability), clip gradients (`clip_grad_norm_(params, 1.0)`), and resume
    from the checkpoint at the best step. How far depends on the optimizer: Adam and AdamW
    usually train CTC models at 1e-4 to 1e-3, so a rate above that goes back into that range;
    otherwise divide it by 3-10 (SGD runs at much higher rates than Adam). The optimizer is
    read from `--optimizer`, `Monitor(optimizer=)` or the rate's tag (`lr-Adam`); unknown, the
    advice is relative. If the learning rate was rising when it began (warm-up), CTC214 says
    by how much to lower the peak. A run that still climbs at a lower rate often has
    unnormalised inputs (raw log-spectrograms, 0-255 pixels): their scale makes the first
    layers' steps too large at any rate; `ctcdoctor check SPEC` reports them (CTC041).
    """,
)

DIVERGE_RATIO = 1.5
"""End level at least this many times the best level..."""
DIVERGE_SHARE = 0.10
"""... and the rise at least this share of the range the run had descended (start - best), so
that noise around a tiny converged loss (0.02 -> 0.04) is not a divergence."""
ONSET_SHARE = 0.10
"""The divergence began at the last bin before the rise whose level was within 10% of the rise
above the best."""


@dataclass(frozen=True)
class Divergence:
    best: float
    best_step: int
    onset_step: int
    end: float
    peak: float
    peak_step: int
    start: float
    """The top of the range the run had descended (smoothed: it may hold a blow-up of the first steps); it sizes
    the rise, the messages quote the first logged value instead."""


#: Bins (values, in a short log) the rule needs.
MIN_BINS = 8


def find_divergence(curve: Curve) -> Divergence | None:
    """The loss ends at least DIVERGE_RATIO x its best and DIVERGE_SHARE of its range above it."""
    if curve.bins < MIN_BINS:
        return None
    end_first = curve.bins - curve.end_bins()
    smooth = curve.smooth
    best_bin = int(np.argmin(smooth[:end_first]))
    best = float(smooth[best_bin])
    end = curve.end
    start = max(curve.start, float(np.max(smooth[: best_bin + 1])))
    if best <= 0 or end < DIVERGE_RATIO * best or end - best < DIVERGE_SHARE * max(start - best, 0.0):
        return None
    rise = end - best
    after = smooth[best_bin:]
    crossing = best_bin + int(np.argmax(after > best + 0.5 * rise))
    near = np.flatnonzero(smooth[best_bin : crossing + 1] <= best + ONSET_SHARE * rise)
    onset_bin = best_bin + int(near[-1]) if near.size else best_bin
    peak_bin = onset_bin + int(np.argmax(smooth[onset_bin:]))
    return Divergence(
        best=best,
        best_step=int(curve.bin_last_step[best_bin]),
        onset_step=int(curve.bin_last_step[onset_bin]),
        end=end,
        peak=float(smooth[peak_bin]),
        peak_step=int(curve.bin_last_step[peak_bin]),
        start=start,
    )


SMOOTHED_BELOW = 0.8
"""The message names the lowest single value when it is below this share of the smoothed best."""


def check_divergence(analysis: Analysis) -> list[Finding]:
    found = analysis.divergence
    if found is None:
        return []
    curve = analysis.loss
    ratio = found.end / found.best
    lowest = float(curve.values.min())
    # The best is a smoothed level (a median of neighbours); say so where a single value went clearly lower,
    # or the reader compares it with the table's min and doubts both.
    smoothed = (f" (smoothed; the lowest single value was {fmt(lowest)})"
                if lowest < SMOOTHED_BELOW * found.best else "")
    message = (f"{analysis.called(curve.series, 'loss')} diverged: best {fmt(found.best)} at {analysis.step(found.best_step)}"
               f"{smoothed}, rising from {analysis.step(found.onset_step)} to {fmt(found.end)} at the end ({ratio:.1f}x the best"
               f"{_way_back(found, curve)})")
    if found.peak > 1.2 * found.end:
        message += f"; it peaked at {fmt(found.peak)} at {analysis.step(found.peak_step)}"
    lr = analysis.curves.lr
    at = _value_at(lr.steps, lr.values, found.onset_step) if lr is not None and len(lr) else None
    hint = lower_lr(analysis.optimizer, at if at is not None and at > 0 else None)
    resume = ("restart from the initial weights (the best was the first logged value)" if found.best_step <= curve.first_step
              else f"resume from the checkpoint at {analysis.step(found.best_step)}")
    hint += f", {clip_gradients(analysis.options.trainer)}, and {resume}."
    if at is None or at <= ADAPTIVE_HIGH:
        # No rate logged, or one in the usual range: the rate alone may not explain the climb.
        hint += (" If it climbs again at a lower rate, normalise the inputs (raw log-spectrograms or 0-255 pixels "
                 "do this at any rate; `ctcdoctor check SPEC` reports them as CTC041).")
    evidence = {"series": curve.tag, "steps": [found.onset_step, curve.last_step], "best": found.best,
                "best_step": found.best_step, "onset_step": found.onset_step, "end": found.end, "ratio": ratio,
                "peak": found.peak, "peak_step": found.peak_step}
    return [finding("CTC203", message + ".", hint, evidence)]


#: How each trainer clips gradients (its own setting, not a call the user cannot place in its loop).
CLIP_GRADIENTS = {
    "huggingface": "keep gradient clipping on (TrainingArguments(max_grad_norm=1.0), the Trainer's default)",
    "lightning": "clip gradients (Trainer(gradient_clip_val=1.0))",
    "keras": "clip gradients (the optimizer's clipnorm=1.0)",
}


def clip_gradients(trainer: str | None) -> str:
    """The clipping advice in the terms of what drove the run."""
    return CLIP_GRADIENTS.get(trainer or "", "clip gradients (clip_grad_norm_(params, 1.0))")


def _way_back(found: Divergence, curve: Curve) -> str:
    """How far the end is back toward where the run began, against the first logged value: the smoothed
    early level already holds a blow-up of the first steps (16.5 logged, 6.2e+04 smoothed)."""
    first = curve.first
    if not first > found.best or found.best_step <= curve.first_step:
        return ""  # best at the first step: there is no way back to measure
    if found.end >= first:
        return f", above the first logged loss {fmt(first)}"
    return f", back {(found.end - found.best) / (first - found.best):.0%} of the way to the first logged loss {fmt(first)}"


def _value_at(steps: np.ndarray, values: np.ndarray, step: int) -> float | None:
    """The value logged at `step`, or the last one before it (the first one if none before)."""
    if not steps.size:
        return None
    index = max(0, int(np.searchsorted(steps, step, side="right")) - 1)
    value = float(values[index])
    return value if np.isfinite(value) else None
