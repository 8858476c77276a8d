"""Learning-rate schedule facts, when the learning rate is logged: constant through a plateau
(CTC213) and rising into a divergence (CTC214)."""
from __future__ import annotations

import numpy as np

from ctcdoctor.findings import Finding
from ctcdoctor.registry import document, finding
from ctcdoctor.training.curve import fmt
from ctcdoctor.training.rules.context import Analysis
from ctcdoctor.training.rules.divergence import _value_at
from ctcdoctor.training.rules.lr_advice import lower_peak

document(
    "CTC213",
    "info",
    "the learning rate stayed constant through the plateau",
    """
    **What it means.** The loss fell, then ended on a plateau (CTC204), and the logged
    learning rate did not change over it (within 5%). Nothing reacted to the stall: a
    learning rate that is too large to settle lower stays too large. Not reported when the
    loss never left its start or sits at the blank plateau (CTC205, CTC212): there a smaller
    rate is not the fix, and their advice (a larger rate, the data) comes first.

    **Example.** `info CTC213 the learning rate stayed at 0.001 over the plateau, steps
    6,000-10,000.`

    **Fix.** Let the schedule react: `ReduceLROnPlateau(optimizer, mode="min", factor=0.1,
    patience=N)` on the eval loss (N about the plateau length you accept, in evaluations), or
    a decaying schedule (cosine, step decay).
    """,
)

document(
    "CTC214",
    "warning",
    "the loss diverged while the learning rate was rising (warm-up)",
    """
    **What it means.** The loss diverged (CTC203) at a step where the logged learning rate
    was still rising: during a warm-up, or after a restart of a cyclic schedule. The loss was
    fine at lower rates and broke when the rate passed some value: the peak is too high for
    this model and batch size.

    **Example.** `warning CTC214 the divergence began at step 310 while the learning rate was
    rising: 0.155 there, up from 0.0005 at step 1; it peaked at 0.25 at step 500.`

    **Fix.** Lower the peak learning rate to about half the rate at which the loss began to
    rise, or warm up over more steps; clip gradients at 1.0. With Adam or AdamW (known from
    `--optimizer`, `Monitor(optimizer=)` or a tag like `lr-Adam`) the peak goes to at most
    1e-3, their usual range for CTC being 1e-4 to 1e-3: half of a rate of 0.155 is still far
    too high for them.
    """,
)

CONSTANT = 1.05
"""Constant: max / min of the logged learning rate over the stretch at most this."""
STILL_RISING = 1.05
"""Rising into the divergence: the rate at the onset at least 1.05x the rate at the best step or a tenth
of the run earlier, whichever is earlier..."""
RISING = 1.2
"""... and at least 1.2x the rate at the start of the log (a warm-up or a restart raised it)."""


def check_schedule(analysis: Analysis) -> list[Finding]:
    lr = analysis.curves.lr
    if lr is None or not len(lr):
        return []
    found: list[Finding] = []
    tail = analysis.tail
    # Only a plateau after the loss fell: lowering the rate contradicts CTC205/CTC212's advice.
    if tail is not None and tail.kind == "plateau":
        inside = (lr.steps >= tail.start_step) & (lr.steps <= tail.end_step) & np.isfinite(lr.values)
        rates = lr.values[inside]
        if rates.size >= 2 and rates.min() > 0 and rates.max() / rates.min() <= CONSTANT:
            message = (f"{analysis.called(lr, 'learning rate')} stayed at {fmt(float(np.median(rates)))} over the plateau, "
                       f"{analysis.steps(tail.start_step, tail.end_step)}.")
            hint = ("Let the schedule react to the stall: ReduceLROnPlateau(optimizer, mode='min', factor=0.1, "
                    "patience=N) on the eval loss, or a decaying schedule (cosine, step decay).")
            evidence = {"series": lr.tag, "steps": [tail.start_step, tail.end_step], "lr": float(np.median(rates))}
            found.append(finding("CTC213", message, hint, evidence))
    divergence = analysis.divergence
    if divergence is not None:
        onset = divergence.onset_step
        earlier_step = min(divergence.best_step, max(analysis.loss.first_step, onset - analysis.loss.span // 10))
        at_onset = _value_at(lr.steps, lr.values, onset)
        earlier = _value_at(lr.steps, lr.values, earlier_step)
        first = _value_at(lr.steps, lr.values, analysis.loss.first_step)
        finite = np.isfinite(lr.values)
        if at_onset and earlier and first and at_onset >= STILL_RISING * earlier and at_onset >= RISING * first:
            peak_index = int(np.argmax(np.where(finite, lr.values, -np.inf)))
            message = (f"the divergence began at {analysis.step(onset)} while {analysis.called(lr, 'learning rate')} was rising: "
                       f"{fmt(at_onset)} there, up from {fmt(first)} at {analysis.step(analysis.loss.first_step)}; it "
                       f"peaked at {fmt(float(lr.values[peak_index]))} at {analysis.step(int(lr.steps[peak_index]))}.")
            lower, suggested = lower_peak(analysis.optimizer, at_onset)
            hint = f"{lower}, or warm up over more steps; clip gradients at 1.0."
            # The steps shaded on the plot: from the onset the message names to the peak rate (at least the onset), so
            # the band starts where the text says the divergence began.
            shaded = [onset, max(onset, int(lr.steps[peak_index]))]
            evidence = {"series": lr.tag, "steps": shaded, "lr_at_onset": at_onset,
                        "lr_peak": float(lr.values[peak_index]), "peak_step": int(lr.steps[peak_index]),
                        "suggested_peak": suggested}
            found.append(finding("CTC214", message, hint, evidence))
    return found
