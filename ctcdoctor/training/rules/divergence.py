"""Divergence: the loss ends far above the best level it reached (CTC203)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ctcdoctor.findings import Finding
from ctcdoctor.registry import document, finding
from ctcdoctor.training.curve import Curve, fmt
from ctcdoctor.training.rules.context import Analysis
from ctcdoctor.training.rules.lr_advice import ADAPTIVE_HIGH, lower_lr
from ctcdoctor.training.series import Series

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
    advice is relative. When the log shows the gradients already clipped (the monitor, given
    the optimizer and `grad_norm=`, compares that norm with the gradients the optimizer holds,
    `grad_norm_applied`; or a logged norm that never exceeds a cap it keeps hitting), the fix
    says the clipping is in place instead of adding it: it did not stop the climb. When the
    loss rose from its first steps, the message quotes the first logged value, not a smoothed
    level that already holds the climb. If the learning rate was rising when it began (warm-up), CTC214 says
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
    lowest_index = int(np.argmin(curve.values))
    lowest, lowest_step = float(curve.values[lowest_index]), int(curve.steps[lowest_index])
    called = analysis.called(curve.series, 'loss')
    if found.best_step <= curve.first_step and lowest < SMOOTHED_BELOW * found.best:
        # Up from the first steps: a smoothed "best" there already holds the climb (727 where 13.5 was logged); the
        # logged first value is the clear reference.
        first = curve.first
        low = ("" if lowest_step == curve.first_step else
               f" ({fmt(lowest)} at its lowest, {analysis.step(lowest_step)})")
        message = (f"{called} diverged from its first steps: it was {fmt(first)} at {analysis.step(curve.first_step)}{low} "
                   f"and rose from {analysis.step(found.onset_step)} to {fmt(found.end)} at the end "
                   f"({found.end / first:,.0f}x the first value)" if first > 0 else
                   f"{called} diverged from its first steps, rising from {analysis.step(found.onset_step)} to "
                   f"{fmt(found.end)} at the end")
    else:
        # The best is a smoothed level (a median of neighbours); say so where a single value went clearly lower,
        # or the reader compares it with the table's min and doubts both.
        smoothed = (f" (the level of the smoothed curve; the lowest single value was {fmt(lowest)} at "
                    f"{analysis.step(lowest_step)})" if lowest < SMOOTHED_BELOW * found.best else "")
        message = (f"{called} diverged: best {fmt(found.best)} at {analysis.step(found.best_step)}"
                   f"{smoothed}, rising from {analysis.step(found.onset_step)} to {fmt(found.end)} at the end ({ratio:.1f}x "
                   f"the best{_way_back(found, curve)})")
    if found.peak > 1.2 * found.end:
        message += f"; it peaked at {fmt(found.peak)} at {analysis.step(found.peak_step)}"
    lr = analysis.curves.lr
    at = _value_at(lr.steps, lr.values, found.onset_step) if lr is not None and len(lr) else None
    hint = lower_lr(analysis.optimizer, at if at is not None and at > 0 else None)
    resume = ("restart from the initial weights (the best was the first logged value)" if found.best_step <= curve.first_step
              else f"resume from the checkpoint at {analysis.step(found.best_step)}")
    hint += f", {clip_gradients(analysis.options.trainer, analysis.options.clip)}, and {resume}."
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


def clip_gradients(trainer: str | None, clip: tuple[float, float] | None = None) -> str:
    """The clipping advice in the terms of what drove the run; when the gradients are known to be clipped already
    (`Options.clip`), that they are, so that the advice is not to add what the run has."""
    if clip is not None:
        cap, given = clip
        before = f", from norms up to {fmt(given)}" if given > 1.05 * cap else ""
        return (f"keep the gradient clipping you have (the gradients were already clipped to a norm of about "
                f"{fmt(cap)}{before}: clipping alone did not stop this)")
    return CLIP_GRADIENTS.get(trainer or "", "clip gradients (clip_grad_norm_(params, 1.0))")


CLIPPED_BELOW = 0.9
"""A step's gradients were clipped when the norm the optimizer held was below this share of the norm given..."""
CAP_HITS = 3
"""... or, with only the given norm, when it never exceeded a value it reached at least this many times..."""
CAP_SHARE = 0.1
"""... and at least this share of the steps (a norm reported after clipping: pre-clip norms do not repeat)."""


def find_clipping(given: Series | None, applied: Series | None) -> tuple[float, float] | None:
    """(the norm the gradients were clipped to, the largest norm given) when the log shows clipping: the monitor's
    `grad_norm_applied` (the norm of the gradients the optimizer held after the loop's clipping) below the `grad_norm`
    given at the same step, or a given norm bounded by a cap it keeps hitting. None when it does not show."""
    if given is None or not len(given):
        return None
    values = given.values[np.isfinite(given.values)]
    if not values.size or values.max() <= 0:
        return None
    top = float(values.max())
    if applied is not None and len(applied):
        steps, at_given, at_applied = np.intersect1d(given.steps, applied.steps, return_indices=True)
        before, after = given.values[at_given], applied.values[at_applied]
        ok = np.isfinite(before) & np.isfinite(after) & (after > 0)
        clipped = ok & (after < CLIPPED_BELOW * before)
        if clipped.any():
            return float(after[clipped].max()), top
    hits = int(np.sum(values >= top * (1 - 1e-3)))
    if hits >= CAP_HITS and hits >= CAP_SHARE * values.size:
        return top, top
    return None


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
