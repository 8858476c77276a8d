"""A negative overfit loss (CTC074): the trained loss is not given log-probabilities, or its blank is a label.

A CTC loss is a negative log-likelihood, never below 0. The overfit trains the user's own
`Setup.criterion` as written, so a criterion fed softmax probabilities (or raw logits) where
`F.ctc_loss` expects log-probabilities gives a loss below 0 that keeps "falling" without meaning
anything. A model that does output log-probabilities gets a negative loss too when the loss's blank is a label
in the targets (F.ctc_loss's default blank=0 with labels 0..25 and the blank meant last): the fix is then
the loss's blank=, not log_softmax. Either is a wiring bug, not a learning-rate problem: the detection is the `logs` command's
(CTC209, `ctcdoctor.training.rules.zero`), so both commands call the same values negative.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from ctcdoctor.findings import Finding


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


WRONG_OUTPUT = ("CTC020", "CTC021", "CTC024")
"""Static findings that say the output is not log-probabilities over the classes."""
CTC_DEFAULT_BLANK = 0
"""F.ctc_loss's (and most CTC losses') blank when none is passed."""


@dataclass(frozen=True)
class NamedCause:
    """Why the loss went negative, named from the static findings (the loss's blank among the labels, or what the
    criterion gives the loss), with its fix."""

    words: str
    fix: str


def blank_cause(kind: str | None, static: Sequence[Finding], labels: Sequence[int], blank: int | None) -> NamedCause | None:
    """A log-probability output (the static checks measured rows whose logsumexp is 0; CTC020/021/024 silent) with
    targets that hold the loss's blank: CTC030's wrong blank when the criterion audit found it, else label 0 (the
    default blank of F.ctc_loss) in the targets while Setup.blank is another class. None when neither holds."""
    if kind != "log_probs" or any(item.code in WRONG_OUTPUT and item.severity.value != "info" for item in static):
        return None
    audit = next((item for item in static if item.code == "CTC030" and item.evidence.get("mistake") == "wrong_blank"), None)
    if audit is not None:
        used, meant = audit.evidence.get("criterion_blank"), audit.evidence.get("setup_blank")
        if used is not None and used in labels:
            return NamedCause(_blank_words(int(used), meant, "(CTC030, reported above)"), audit.hint)
    if blank is not None and blank != CTC_DEFAULT_BLANK and CTC_DEFAULT_BLANK in labels:
        return NamedCause(_blank_words(CTC_DEFAULT_BLANK, blank, "if the loss keeps its default blank=0"),
                          f"Call the loss with blank={blank}, Setup.blank: F.ctc_loss(output, targets, output_lengths, "
                          f"target_lengths, blank={blank}) (its default is 0, a label in these targets).")
    return None


SOFTMAX_IN_CRITERION = NamedCause(
    "the criterion turns the model's raw logits into probabilities (softmax) and gives those to the loss, which reads "
    "them as log-probabilities (CTC030, reported above)",
    "In the criterion, apply log_softmax(dim=-1) over the classes where it applies softmax.")
"""Why the loss is negative when the model outputs raw logits and the criterion audit (CTC030) found the loss getting
probabilities: the criterion's softmax, which the model's output kind alone would not show."""


def criterion_cause(kind: str | None, static: Sequence[Finding]) -> NamedCause | None:
    """The criterion's softmax, when the model outputs raw logits and CTC030 found probabilities reaching the loss."""
    found = any(item.code == "CTC030" and item.evidence.get("mistake") == "probabilities" for item in static)
    return SOFTMAX_IN_CRITERION if kind == "logits" and found else None


def _blank_words(used: int, meant: Any, how: str) -> str:
    return (f"the model's output is log-probabilities already, but the loss takes class {used} as its blank while "
            f"Setup.blank is {meant} and the targets use {used} as a label {how}: with a target equal to its blank, "
            "CTC counts the same alignments more than once, so its 'likelihood' can exceed 1 and the loss go below 0")


def negative_words(found: NegativeLoss, label: str, kind: str | None, cause: NamedCause | None = None) -> str:
    """What happened, with the numbers and the reason (the loss's blank in the targets, the measured output kind,
    else the possibilities)."""
    reason = CAUSES.get(kind or "", "the loss is not given log-probabilities (softmax probabilities or raw logits), "
                                    "or the total adds a negative term")
    return _words(found, label, cause.words if cause is not None else reason)


def _words(found: NegativeLoss, label: str, cause: str) -> str:
    return (f"the loss is negative on {label}: below 0 at {found.count:,} of {found.steps:,} steps (first at step "
            f"{found.first_step}, lowest {found.lowest:.4g} at step {found.lowest_step}). A CTC loss is a negative "
            f"log-likelihood and never goes below 0: {cause}. The loss curve means nothing until that is fixed; "
            "this is not a learning-rate problem.")


def negative_fix(kind: str | None) -> str:
    return FIXES.get(kind or "", "Pass log-probabilities to the loss: apply log_softmax(dim=-1) over the class axis "
                                 "(take .log() of probabilities); if the total adds other terms, keep each of them >= 0.")
