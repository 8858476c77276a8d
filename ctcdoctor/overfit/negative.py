"""A negative overfit loss (CTC074): the trained loss is not given log-probabilities.

A CTC loss is a negative log-likelihood, never below 0. The overfit trains the user's own
`Setup.criterion` as written, so a criterion fed softmax probabilities (or raw logits) where
`F.ctc_loss` expects log-probabilities gives a loss below 0 that keeps "falling" without meaning
anything. That is a wiring bug, not a learning-rate problem: the detection is the `logs` command's
(CTC209, `ctcdoctor.training.rules.zero`), so both commands call the same values negative.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class NegativeLoss:
    """Where an overfit loss curve went below 0."""

    count: int
    """Steps whose loss is negative."""
    steps: int
    """Finite losses logged."""
    first_step: int
    lowest: float
    lowest_step: int


def negative_loss(losses: Sequence[float]) -> NegativeLoss | None:
    """The negative part of a loss curve (steps numbered from 1), as CTC209 counts it; None when there is none."""
    from ctcdoctor.training.rules.context import Analysis
    from ctcdoctor.training.rules.zero import zero_or_negative
    from ctcdoctor.training.series import Curves, Series

    finite = [value for value in losses if value == value and abs(value) != float("inf")]
    if not finite or min(finite) >= 0:
        return None
    series = Series.from_points("loss", range(1, len(losses) + 1), losses)
    found = [item for item in zero_or_negative(Analysis(Curves(series)), series, "overfit loss") if item.evidence["negative"]]
    if not found:
        return None
    lowest_index = losses.index(min(finite))
    return NegativeLoss(count=int(found[0].evidence["negative"]), steps=len(finite),
                        first_step=int(found[0].evidence["first_step"]), lowest=float(min(finite)), lowest_step=lowest_index + 1)


CAUSES = {
    "probs": ("the model's output is probabilities (softmax: every value in [0, 1], summing to 1 over the classes), "
              "and the loss reads them as log-probabilities"),
    "logits": "the model's output is raw logits (not normalised), and the loss reads them as log-probabilities",
}
"""Why the loss is negative, by the output kind the static checks measured (CTC020, CTC021)."""

FIXES = {
    "probs": ("Pass log-probabilities to the loss: replace softmax with log_softmax(dim=-1) at the model's head "
              "(or, in the criterion, call the loss on output.log(); log_softmax is the stabler)."),
    "logits": "Pass log-probabilities to the loss: apply log_softmax(dim=-1) over the class axis before the loss.",
}


def negative_words(found: NegativeLoss, label: str, kind: str | None) -> str:
    """What happened, with the numbers and the reason (the measured output kind, else the possibilities)."""
    cause = CAUSES.get(kind or "", "the loss is not given log-probabilities (softmax probabilities or raw logits), "
                                   "or the total adds a negative term")
    return (f"the loss is negative on {label}: below 0 at {found.count:,} of {found.steps:,} steps (first at step "
            f"{found.first_step}, lowest {found.lowest:.4g} at step {found.lowest_step}). A CTC loss is a negative "
            f"log-likelihood and never goes below 0: {cause}. The loss curve means nothing until that is fixed; "
            "this is not a learning-rate problem.")


def negative_fix(kind: str | None) -> str:
    return FIXES.get(kind or "", "Pass log-probabilities to the loss: apply log_softmax(dim=-1) over the class axis "
                                 "(take .log() of probabilities); if the total adds other terms, keep each of them >= 0.")
