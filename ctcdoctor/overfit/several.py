"""The small-batch mode (`--samples 0-7`): how many samples fit together, and what a failure means.

One sample that fits says the model and the loss work; a small batch that fits says the set-up can
hold several samples at once, which is the next step towards training on the data set. When the
batch does not fit, the worst sample is trained alone: if it fits alone, the batch is the problem
(the samples share every step; BatchNorm sees their padding); if its loss was still falling when the
steps ran out alone too, the budget was too small; else the sample is the problem.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ctcdoctor.overfit.rules import suggested_steps

if TYPE_CHECKING:  # pragma: no cover
    from ctcdoctor.overfit.result import OverfitResult

ADAPTIVE = ("Adam", "RMSprop", "Adagrad", "Adadelta", "NAdam", "RAdam", "Adamax")


def worst_sample(result: OverfitResult) -> int | None:
    """The chosen sample (its index in the data) whose final eval-mode decode is furthest from its target."""
    misses = [(distance, position) for position, distance in enumerate(result.edit_distance) if distance > 0]
    if not misses:
        return None
    return result.samples[max(misses)[1]]


def summarise(result: OverfitResult, input_lengths: list[int]) -> dict[str, Any]:
    """Per sample: fitted at the end, and the first step its eval-mode decode equalled its target."""
    exact = list(result.evaluations[-1].exact) if result.evaluations else [False] * len(result.samples)
    return {
        "size": len(result.samples),
        "fitted": exact,
        "first_exact_step": list(result.first_exact),
        "input_lengths": input_lengths,
        "alone": None,
    }


def fitted_words(result: OverfitResult) -> str:
    steps = [step for step in result.first_exact if step is not None]
    slowest = max(range(len(steps)), key=lambda i: steps[i]) if steps else None
    if slowest is None:
        return ""
    return (f"all {len(result.samples)} samples fit together; the slowest, sample {result.samples[slowest]}, decoded "
            f"exactly from step {steps[slowest]}: the set-up learns several samples at once")


def _batch_advice(result: OverfitResult, batch: dict[str, Any]) -> str:
    """What to change when the worst sample fits alone but not in the batch: batch size and learning rate."""
    size, more = batch["size"], suggested_steps(result.steps_run)
    name = result.optimizer.split("(")[0] or "the optimizer"
    if result.optimizer.startswith(ADAPTIVE):
        advice = (f"The loss is a mean over the {size} samples, so they share every step: {name} normalises the step "
                  f"size, so keep its learning rate and give the batch more steps (--steps {more}).")
    else:
        advice = (f"The loss is a mean over the {size} samples, so each gets 1/{size} of the gradient it gets alone: "
                  f"with {name} raise the learning rate (--lr-probe tries 10x) or the steps (--steps {more}).")
    lengths = batch["input_lengths"]
    if any(part["kind"] == "BatchNorm" for part in result.stochastic) and len(set(lengths)) > 1:
        advice += (f" BatchNorm computes its statistics over the padded frames of the shorter samples too (input lengths "
                   f"{min(lengths)}-{max(lengths)}): mask the padding, or use LayerNorm/GroupNorm.")
    return advice


def _cut_while_falling(alone: OverfitResult, alone_verdict: str | None) -> bool:
    """Whether the lone run failed only by running out of steps (CTC070 budget) with its loss still falling."""
    from ctcdoctor.overfit.explain import still_falling

    return bool(alone_verdict and alone_verdict.startswith("CTC070 budget") and still_falling(alone.loss_summary()))


def conclude(result: OverfitResult, alone: OverfitResult | None, alone_verdict: str | None) -> None:
    """Fill `result.batch` with the verdict and the advice (after the batch run, and the alone run if any)."""
    batch = result.batch
    if batch is None:
        return
    if result.fitted:
        batch["verdict"] = fitted_words(result)
        batch["advice"] = ""
        return
    count = sum(batch["fitted"])
    failing = [str(sample) for sample, hit in zip(result.samples, batch["fitted"]) if not hit]
    plural = len(failing) > 1
    batch["verdict"] = (f"{count} of {batch['size']} samples decode exactly; sample{'s' if plural else ''} "
                        f"{', '.join(failing)} do{'' if plural else 'es'} not")
    batch["cause"] = ""
    batch["advice"] = "Run overfit --sample N on the samples that do not fit, for their own diagnosis."
    if alone is None:
        return
    sample = alone.samples[0]
    batch["alone"] = {"sample": sample, "fitted": alone.fitted, "steps_to_fit": alone.steps_to_fit,
                      "steps": alone.steps_run, "diagnosis": alone_verdict}
    if alone.fitted:
        batch["cause"] = (f"sample {sample} fits alone in {alone.steps_to_fit} steps but not in the batch of "
                          f"{batch['size']}: the batch is the problem, not the sample")
        batch["advice"] = _batch_advice(result, batch)
    elif _cut_while_falling(alone, alone_verdict):
        # Alone too the loss was still falling when the steps ran out: that says the budget is short, not that the
        # sample cannot be learned (with more steps the batch may fit as it is).
        more = suggested_steps(max(result.steps_run, alone.steps_run))
        batch["cause"] = (f"sample {sample} does not fit alone either, but its loss was still falling when the "
                          f"{alone.steps_run}-step budget ran out ({alone_verdict}): the budget was too small, which "
                          "says nothing against the sample")
        batch["advice"] = (f"Raise the step budget (--steps {more}) and run again: the batch and sample {sample} alone "
                           "were both still learning when they were cut.")
    else:
        batch["cause"] = f"sample {sample} does not fit alone either ({alone_verdict}): the sample is the problem"
        batch["advice"] = f"Run overfit --sample {sample} for that sample's own diagnosis, and fix it first."
    batch["verdict"] += "; " + batch["cause"]
