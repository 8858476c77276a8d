"""Held-out curves: overfitting onset (CTC207) and an eval loss that rises from the start (CTC208).

Criteria after Prechelt, "Early Stopping - But When?" (1998). With E(t) the validation
error at evaluation t and E_opt(t) the lowest one so far, the generalisation loss is
GL(t) = 100 * (E(t) / E_opt(t) - 1); GL_alpha stops training when GL > alpha. UP_s stops
when the validation error rose in s successive strips (here: evaluations). Prechelt's
criteria decide *when to stop* a run in progress; here the run is over, so the finding asks
for more: the eval loss is still well above its best at the end (GL of the last evaluations
at least 10, not one noisy evaluation), and it names the onset (the best evaluation) and the
step where GL5 and UP3 would have stopped.
"""
from __future__ import annotations

import numpy as np

from ctcdoctor.findings import Finding
from ctcdoctor.registry import document, finding
from ctcdoctor.training.curve import fmt
from ctcdoctor.training.rules.context import Analysis
from ctcdoctor.training.series import Series

document(
    "CTC207",
    "warning",
    "overfitting: the eval loss rose from its best while the train loss kept falling",
    """
    **What it means.** The held-out loss (or error rate, when no eval loss is logged) reached
    its best and then rose: the last evaluations are at least 10% above the best, at least 3
    evaluations after it, while the train loss did not rise. The model is memorising its
    training set. The finding names the onset (the best evaluation: the checkpoint to keep)
    and where two common early-stopping rules would have stopped the run: once the eval loss
    is 5% above its best, and after 3 rises in a row (Prechelt, "Early Stopping - But When?",
    1998, calls them GL5 and UP3).

    **Example.** `warning CTC207 overfitting from step 150: eval_loss is 53% above its best
    (0.92 at step 150; 1.41 at the end) while the train loss still falls (0.61 to 0.02 over the
    same steps); stopping once it was 5% above its best would have ended the run at step 200,
    stopping after 3 rises in a row at step 250.`

    **Fix.** Keep the checkpoint from the onset step (`load_best_model_at_end=True` with
    `metric_for_best_model="eval_loss"`; Lightning `ModelCheckpoint(monitor="val_loss")`),
    stop early (patience of 3 evaluations), and regularise: data augmentation (SpecAugment for
    speech, random crops and distortions for images), dropout, weight decay, or more data.
    """,
)

document(
    "CTC208",
    "warning",
    "the eval loss rose from the start while the train loss fell",
    """
    **What it means.** The held-out loss was never better than at its first evaluation and
    ended at least 10% above it, while the train loss fell by 30% or more over the same
    steps. This is not the usual overfitting (which first improves, then worsens): nothing
    learned on the training data ever helped the held-out data. The usual causes are a
    mismatch between the two: different preprocessing (normalisation, sample rate, image
    height), labels encoded differently (another alphabet, tokenizer or blank index),
    evaluation in training mode, or a training set so small that it is memorised at once.

    **Example.** `warning CTC208 eval_loss was best at its first evaluation (step 50: 3.4) and
    rose to 5.9 at the end while the train loss fell from 3.3 to 0.4.`

    **Fix.** Run the eval data through the training pipeline and compare (shapes, value
    ranges, a few decoded labels); evaluate under `model.eval()` and `torch.no_grad()`; use
    the same alphabet/tokenizer object for both splits; and check the train set's size.
    """,
)

MIN_EVALS = 5
"""Held-out rules need at least this many evaluations..."""
MIN_AFTER_BEST = 3
"""... and at least this many after the best one."""
GL_END = 10.0
"""The median of the last (up to) 3 evaluations must be GL >= 10 above the best."""
GL_STOP = 5.0
"""Prechelt's GL5, named in the message."""
UP_STRIPS = 3
"""Prechelt's UP3, named in the message."""
TRAIN_RISE = 1.05
"""Overfitting needs the train loss not to have risen over the same steps (else it is a divergence)."""
FROM_START_RISE = 1.10
"""CTC208: the eval loss ends at least 10% above its first evaluation..."""
FROM_START_TRAIN_FALL = 0.30
"""... while the train loss fell at least 30%."""


def _held_out(analysis: Analysis) -> tuple[Series, np.ndarray] | None:
    """The eval loss, else the first held-out error rate (as error: lower is better)."""
    if analysis.curves.eval_loss is not None:
        series = analysis.curves.eval_loss
        return series, series.values
    for metric in analysis.curves.metrics:
        if metric.eval:
            return metric.series, metric.error
    return None


def prechelt(errors: np.ndarray, after: int = 0) -> tuple[np.ndarray, int | None, int | None]:
    """GL(t) for every evaluation, and the first index after `after` where GL5 and UP3 would stop (None if never)."""
    best_so_far = np.minimum.accumulate(errors)
    gl = 100.0 * (errors / best_so_far - 1.0)
    gl5 = np.flatnonzero(gl > GL_STOP)
    gl5 = gl5[gl5 > after]
    rises = np.diff(errors) > 0
    # UP_s: s successive rises; a window of s rises starting at diff index i ends at evaluation i + s
    run = np.convolve(rises.astype(int), np.ones(UP_STRIPS, dtype=int), mode="valid") == UP_STRIPS
    up = np.flatnonzero(run) + UP_STRIPS
    up = up[up > after]
    return gl, (int(gl5[0]) if gl5.size else None), (int(up[0]) if up.size else None)


def check_generalisation(analysis: Analysis) -> list[Finding]:
    held = _held_out(analysis)
    if held is None or analysis.loss.n < 2:
        return []
    series, raw = held
    finite = np.isfinite(raw)
    steps, errors = series.steps[finite], raw[finite]
    if errors.size < MIN_EVALS or errors.min() <= 0:
        return []
    best = int(np.argmin(errors))
    end = float(np.median(errors[-max(1, min(3, errors.size - best - 1)):]))
    if best == 0:  # never better than the first evaluation
        return _from_start(analysis, series, steps, errors, end)
    return _overfitting(analysis, series, steps, errors, best, end)


def _from_start(analysis: Analysis, series: Series, steps: np.ndarray, errors: np.ndarray, end: float) -> list[Finding]:
    """CTC208: the eval loss rose from its first evaluation while the train loss fell."""
    train = analysis.loss
    train_from, train_to = train.value_at(int(steps[0])), train.end
    if end < FROM_START_RISE * errors[0] or train_from <= 0 or (train_from - train_to) / train_from < FROM_START_TRAIN_FALL:
        return []
    message = (f"{series.tag} was best at its first evaluation ({analysis.step(int(steps[0]))}: "
               f"{fmt(float(errors[0]))}) and rose to {fmt(end)} at the end while "
               f"{analysis.called(train.series, 'train loss')} fell from {fmt(train_from)} to {fmt(train_to)}")
    hint = ("Compare the eval pipeline with the training one (normalisation, sample rate or image height, "
            "the alphabet/tokenizer and blank index), evaluate under model.eval() and torch.no_grad(), and "
            "check the size of the training set.")
    evidence = {"series": series.tag, "steps": [int(steps[0]), int(steps[-1])], "first": float(errors[0]),
                "end": end, "train_from": train_from, "train_to": train_to}
    return [finding("CTC208", message + ".", hint, evidence)]


def _overfitting(analysis: Analysis, series: Series, steps: np.ndarray, errors: np.ndarray, best: int,
                 end: float) -> list[Finding]:
    """CTC207: the eval loss ends >= 10% above its best, at least 3 evaluations on, the train loss not rising."""
    train = analysis.loss
    best_value, best_step = float(errors[best]), int(steps[best])
    gl_end = 100.0 * (end / best_value - 1.0)
    if errors.size - best - 1 < MIN_AFTER_BEST or gl_end < GL_END:
        return []
    train_at_best, train_end = train.value_at(best_step), train.end
    if train_at_best > 0 and train_end > TRAIN_RISE * train_at_best:
        return []  # the train loss rose too: a divergence, not overfitting
    _, gl5, up3 = prechelt(errors, after=best)
    stops = []
    if gl5 is not None:
        stops.append(f"stopping once it was {GL_STOP:.0f}% above its best would have ended the run at "
                     f"{analysis.step(int(steps[gl5]))}")
    if up3 is not None:
        stops.append(f"stopping after {UP_STRIPS} rises in a row at {analysis.step(int(steps[up3]))}")
    train_name = analysis.called(train.series, "train loss")
    trend = "still falls" if train_end < 0.95 * train_at_best else "stays flat"
    message = (f"overfitting from {analysis.step(best_step)}: {series.tag} is {gl_end:.0f}% above its best "
               f"({fmt(best_value)} at {analysis.step(best_step)}; {fmt(end)} at the end) while {train_name} {trend} "
               f"({fmt(train_at_best)} to {fmt(train_end)} over the same {analysis.unit}s)")
    if stops:
        message += "; " + ", ".join(stops)
    what = "eval loss" if series is analysis.curves.eval_loss else "eval error rate"
    hint = (f"Keep the checkpoint from {analysis.step(best_step)} (load_best_model_at_end / ModelCheckpoint on the "
            f"{what}), stop early (patience 3 evaluations), and regularise: augmentation (SpecAugment, random crops), "
            "dropout, weight decay, or more data.")
    evidence = {"series": series.tag, "steps": [best_step, int(steps[-1])], "best": best_value, "best_step": best_step,
                "end": end, "gl_end": gl_end, "gl5_step": int(steps[gl5]) if gl5 is not None else None,
                "up3_step": int(steps[up3]) if up3 is not None else None, "train_at_best": train_at_best,
                "train_end": train_end}
    return [finding("CTC207", message + ".", hint, evidence)]
