"""The rules that name a failed overfit run: pure functions of its numbers (loss curve, gradient norms, decodes).

`classify_failure` decides the kind; `ctcdoctor.overfit.explain` turns it into words with the numbers.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ctcdoctor.overfit.curve import loss_trend, median
from ctcdoctor.overfit.negative import negative_loss
from ctcdoctor.overfit.result import DEFAULT_LR, DEFAULT_STEPS

if TYPE_CHECKING:  # pragma: no cover
    from ctcdoctor.overfit.result import OverfitResult

BLANK_COLLAPSE_RATIO = 0.95
"""CTC071 when, at the end, blank is the argmax on at least this share of frames and every decode is empty."""
DIVERGED_FACTOR = 1.5
"""CTC072 "diverged" when the median loss of the last tenth exceeds the first steps' by this factor."""
REBOUND_FACTOR = 3.0
"""CTC072 "diverged" too when the end sits this far above the best loss reached (and above 0.5)."""
OSCILLATION_JUMPS = 0.2
"""CTC072 "oscillated" when at least this share of the last half's steps jump up by >= 20% and the
loss at the end is still above half its starting value (a noisy loss that keeps falling is not this)."""
EXPLODING_GROWTH = 100.0
"""CTC072 "exploding" when the gradient norm of the last quarter is this many times that of the first steps ..."""
EXPLODING_NORM = 10.0
"""... and at least this large."""
DEAD_NORM = 1e-6
"""CTC070 "dead" when the median gradient norm of the first steps is below this (CTC061's threshold) and the
loss does not fall: nothing reaches the weights."""
SMALL_LR = 1e-4
"""A learning rate below this is named as a likely cause of a blank collapse (for Adam-like optimizers)."""
BLANK_BIAS_NATS = 3.0
"""A head bias favouring blank by more than this many nats is named as a likely cause."""
BLANK_PHASE_DROP = 0.05
"""All-blank output with the loss still dropping by more than this share over the last quarter is the
normal early blank phase of CTC training (CTC070, more steps), not a collapse (CTC071), unless a
cause of a collapse was measured (blank bias, tiny learning rate, frozen layers, vanishing gradients)."""
BLANK_ENDING_RATIO = 0.9
"""CTC070 "blank_phase_ending": blank still on this share of frames, the first labels only in the second half."""
FIRST_STEPS = 10
"""Gradient norms "at the start" are the median of this many first steps."""


def suggested_steps(steps: int) -> int:
    """A budget worth trying when the loss was still falling: twice this run's, at least the default."""
    return max(2 * steps, DEFAULT_STEPS)


@dataclass(frozen=True)
class Verdict:
    code: str
    kind: str
    """"negative" (CTC074); "nonfinite", "diverged", "exploding", "oscillated" (CTC072); "blank" (CTC071); "dead", "clipped",
    "eval_mode", "blank_phase", "blank_phase_ending", "unconfirmed", "budget", "plateau" (CTC070; CTC073 for several
    samples)."""
    step: int | None = None


def norm_growth(norms: Sequence[float]) -> tuple[float, float] | None:
    """(median norm of the first steps, median of the last quarter), or None with too few finite norms."""
    finite = [value for value in norms if value == value and value != float("inf")]
    if len(finite) < 2 * FIRST_STEPS:
        return None
    return median(finite[:FIRST_STEPS]), median(finite[-max(FIRST_STEPS, len(finite) // 4):])


def _diverged(losses: Sequence[float]) -> Verdict | None:
    early = median(losses[:5])
    tail = median(losses[-max(5, len(losses) // 10):])
    best = min(losses)
    if tail > DIVERGED_FACTOR * early or (tail > REBOUND_FACTOR * best and tail - best > 0.5):
        peak = max(range(len(losses)), key=lambda i: losses[i]) + 1
        return Verdict("CTC072", "diverged", peak)
    return None


def _oscillated(losses: Sequence[float]) -> Verdict | None:
    early_median = median(losses[:5]) if losses else float("nan")
    stalled = bool(losses) and median(losses[-max(5, len(losses) // 10):]) > 0.5 * early_median
    if len(losses) < 20 or not stalled:  # noisy but still learning (dropout) is not oscillation
        return None
    half = losses[len(losses) // 2:]
    jumps = [i for i, (a, b) in enumerate(zip(half, half[1:])) if b > 1.2 * a and b - a > 0.05]
    if len(jumps) >= OSCILLATION_JUMPS * (len(half) - 1):
        return Verdict("CTC072", "oscillated", len(losses) - len(half) + jumps[0] + 2)
    return None


def _gradient_verdict(norms: Sequence[float], falling: bool) -> Verdict | None:
    growth = norm_growth(norms)
    if growth is None:
        return None
    start, end = growth
    if end >= EXPLODING_GROWTH * start and end >= EXPLODING_NORM:
        first = next((i + 1 for i, value in enumerate(norms) if value > EXPLODING_GROWTH * start), None)
        return Verdict("CTC072", "exploding", first)
    if start < DEAD_NORM and not falling:
        return Verdict("CTC070", "dead")
    return None


def _blank_verdict(losses: Sequence[float], final_blank_ratio: float, decodes_empty: bool, explained: bool,
                   labels_from: int | None) -> Verdict | None:
    recent = loss_trend(losses)
    falling = recent["trend"] == "falling"
    if decodes_empty and final_blank_ratio >= BLANK_COLLAPSE_RATIO:
        if not explained and falling and recent["drop"] > BLANK_PHASE_DROP:
            return Verdict("CTC070", "blank_phase")
        return Verdict("CTC071", "blank")
    if final_blank_ratio >= BLANK_ENDING_RATIO and falling and labels_from is not None and labels_from > len(losses) / 2:
        return Verdict("CTC070", "blank_phase_ending", labels_from)
    return None


def final_streak(result: OverfitResult) -> tuple[int, int | None]:
    """How many evaluations in a row ended the run with every eval-mode decode exact, and the step of the first."""
    streak, first = 0, None
    for evaluation in reversed(result.evaluations):
        if not (evaluation.exact and all(evaluation.exact)):
            break
        streak, first = streak + 1, evaluation.step
    return streak, first


def classify_failure(
    losses: Sequence[float],
    final_blank_ratio: float,
    decodes_empty: bool,
    nonfinite_step: int | None,
    collapse_explained: bool = False,
    *,
    norms: Sequence[float] = (),
    train_fits: bool = False,
    labels_from: int | None = None,
    samples: int = 1,
    clipped: bool = False,
    exact_from: int | None = None,
) -> Verdict:
    """Pure rule that names a failed run. Order: a negative loss (CTC074), non-finite, diverged, exploding gradients, dead network,
    a fit in train mode only, blank collapse (or a blank phase still ending), oscillation, then the budget
    (still falling) or a plateau. Several samples that only ran out of budget or plateaued are CTC073.

    All-blank output while the loss still falls fast (`BLANK_PHASE_DROP`) is the normal early blank
    phase (CTC070 "blank_phase": more steps), unless `collapse_explained` (a measured cause of a
    collapse: `collapse_causes`, or a static error). `labels_from` is the first evaluation step whose
    decode was not empty; `train_fits` says the training steps' own decode matched the targets at the end;
    `clipped` that labels missing from the decode sit at a clipped floor on every frame (OverfitResult.clipped_labels);
    `exact_from` the step from which the eval-mode decode was exact up to the end, too few evaluations to confirm a fit
    (CTC070 "unconfirmed": the budget ran out as the run fitted).
    """
    negative = negative_loss(losses)
    if negative is not None:  # a wiring bug (not log-probabilities) that makes every other reading meaningless
        return Verdict("CTC074", "negative", negative.first_step)
    if nonfinite_step is not None:
        return Verdict("CTC072", "nonfinite", nonfinite_step)
    if not losses:
        return Verdict("CTC073" if samples > 1 else "CTC070", "budget")
    recent = loss_trend(losses)
    falling = recent["trend"] == "falling" and (recent["to"] or 0) < (recent["from"] or 0)
    verdict = (_diverged(losses) or _gradient_verdict(norms, falling)
               or (Verdict("CTC073" if samples > 1 else "CTC070", "unconfirmed", exact_from)
                   if exact_from is not None else None)
               or (Verdict("CTC070", "eval_mode") if train_fits else None)
               or _blank_verdict(losses, final_blank_ratio, decodes_empty, collapse_explained, labels_from)
               or (Verdict("CTC070", "clipped") if clipped and not falling else None)
               or _oscillated(losses))
    if verdict is not None:
        return verdict
    kind = "budget" if falling else "plateau"
    return Verdict("CTC073" if samples > 1 else "CTC070", kind)


def collapse_causes(result: OverfitResult, context: dict[str, Any]) -> list[str]:
    """Measured reasons for an all-blank output other than too few steps (empty: none measured)."""
    causes: list[str] = []
    gap = context.get("blank_bias_gap")
    lr = result.lr
    frozen = result.parameters.get("frozen", 0)
    median_norm = result.clipping.get("median_grad_norm")
    if gap is not None and gap > BLANK_BIAS_NATS:
        causes.append(f"the head ({result.head}) bias favours blank by {gap:.1f} nats: initialise it at 0 (or at most log(T/U))")
    if lr is not None and lr < SMALL_LR:
        causes.append(f"learning rate {lr:g} is tiny: Adam-like optimizers want about {DEFAULT_LR:g}")
    if frozen and not result.parameters.get("freeze_except_head"):
        modules = ", ".join(context.get("frozen_modules", [])[:4])
        causes.append(
            f"{frozen:,} of {result.parameters.get('total', 0):,} parameters are frozen (requires_grad=False)"
            + (f": {modules}" if modules else "")
        )
    if median_norm is not None and median_norm < 1e-4:
        causes.append(f"gradients vanish (median norm {median_norm:.2g}): check the features reaching the head")
    return causes
