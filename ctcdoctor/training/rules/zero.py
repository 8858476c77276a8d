"""A CTC loss exactly 0 or negative (CTC209)."""
from __future__ import annotations

import numpy as np

from ctcdoctor.findings import Finding
from ctcdoctor.registry import document, finding
from ctcdoctor.training.curve import fmt
from ctcdoctor.training.rules.context import Analysis
from ctcdoctor.training.series import Series

document(
    "CTC209",
    "error",
    "the loss is exactly 0 or negative",
    """
    **What it means.** A CTC loss is a negative log-likelihood: it is positive, and reaches 0
    only for a model certain of the one right alignment. A negative value means the loss was
    not given log-probabilities (raw logits or softmax probabilities: CTC020/CTC021), or the
    logged total includes a negative term. Exactly 0 from a level well above 0 means every
    sample of those batches was dropped: `zero_infinity=True` zeroes infeasible samples (a
    target longer than its frames allow), and a batch of only those logs 0. A loss that
    approaches 0 smoothly while fitting is not reported.

    **Example.** `error CTC209 loss is exactly 0 at 37 of 2,000 logged steps (first at step
    120, jumping from 3.1) and negative at 0.`

    **Fix.** Negative: apply `log_softmax` over the class axis before the loss
    (`ctcdoctor check SPEC` finds it), or judge the CTC term alone (`logs --loss TAG`). Zero:
    find the infeasible samples (`ctcdoctor scan`) and fix their lengths (less downsampling,
    shorter label chunks); keep `zero_infinity=False` until then so they show. Hugging Face's
    Trainer also logs 0 for a logging window of only NaN or inf losses
    (`logging_nan_inf_filter=True`): the same samples, usually.
    """,
)

NEGATIVE_TOLERANCE = 1e-6
"""Values below -1e-6 times the typical level count as negative (float rounding gives -1e-8)."""
ZERO_FROM = 1e-3
"""A zero counts when the last positive value before it was at least this share of the first loss."""


def zero_or_negative(analysis: Analysis, series: Series, what: str) -> list[Finding]:
    values, steps = series.values, series.steps
    finite = np.isfinite(values)
    if not finite.any():
        return []
    typical = float(np.median(np.abs(values[finite]))) or 1.0
    negative = finite & (values < -NEGATIVE_TOLERANCE * max(typical, 1.0))
    zero = finite & (values == 0.0)
    if zero.any():
        # the last positive value before each point (forward fill of indices)
        positive = finite & (values > 0)
        last_positive = np.maximum.accumulate(np.where(positive, np.arange(values.size), -1))
        previous = np.where(last_positive >= 0, values[np.maximum(last_positive, 0)], np.inf)
        first_value = float(values[np.flatnonzero(finite)[0]])
        zero &= previous >= ZERO_FROM * max(first_value, 0.0)
    if not (negative.any() or zero.any()):
        return []
    bad = negative | zero
    first_index = int(np.flatnonzero(bad)[0])
    first = int(steps[first_index])
    parts = []
    if zero.any():
        parts.append(f"exactly 0 at {int(zero.sum()):,}")
    if negative.any():
        parts.append(f"negative at {int(negative.sum()):,} (lowest {fmt(float(values[negative].min()))})")
    logged = int(finite.sum())
    # "train loss is ...", not "train loss loss is ...", when the tag is the word itself.
    name = what if series.tag == what.split()[-1] else f"{what} {series.tag}"
    message = f"{name} is {' and '.join(parts)} of {analysis.logged(logged)} " \
              f"(first at {analysis.step(first)}"
    before = np.flatnonzero(finite[:first_index] & (values[:first_index] > 0))
    if before.size:
        message += f", after {fmt(float(values[before[-1]]))}"
    message += ")"
    if negative.any():
        hint = ("Pass log-probabilities to the CTC loss: apply log_softmax over the class axis (`ctcdoctor check SPEC` "
                "finds raw logits and probabilities); if the logged loss adds other terms, judge the CTC term alone "
                "(`ctcdoctor logs --loss TAG`, or give the monitor the CTC term).")
    elif analysis.options.trainer == "huggingface":
        # Its logging_nan_inf_filter leaves non-finite steps out of the average: a window of only those logs 0.
        hint = ("Hugging Face's Trainer logs 0 for a logging window whose losses were all NaN or inf "
                "(logging_nan_inf_filter=True), and with zero_infinity=True a batch of infeasible samples logs 0 too: "
                "find the infeasible samples (`ctcdoctor scan`), fix their lengths (less downsampling, shorter label "
                "chunks), and set logging_nan_inf_filter=False to see such steps as they are.")
    else:
        hint = ("Find the infeasible samples (`ctcdoctor scan`): with zero_infinity=True a batch of them logs 0. Fix their "
                "lengths (less downsampling, shorter label chunks) and keep zero_infinity=False until then.")
    evidence = {"series": series.tag, "steps": [first, int(steps[np.flatnonzero(bad)[-1]])], "zero": int(zero.sum()),
                "negative": int(negative.sum()), "first_step": first}
    return [finding("CTC209", message + ".", hint, evidence)]


def check_zero(analysis: Analysis) -> list[Finding]:
    found = zero_or_negative(analysis, analysis.curves.loss, "train loss")
    if analysis.curves.eval_loss is not None:
        found += zero_or_negative(analysis, analysis.curves.eval_loss, "eval loss")
    return found
