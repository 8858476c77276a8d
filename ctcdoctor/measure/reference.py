"""Model batches made ready for reference CTC: normalised log-probs and output lengths, or why not.

The criterion audit, the loss at initialisation, the backward pass and the spikiness metric all
start from these. A set-up that cannot support reference CTC (unknown output lengths, targets
outside the class range) degrades to a "skipped" reason instead of raising: those problems
have their own codes, and must not turn into a second, louder CTC999.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from ctcdoctor.engine import Context, provides
from ctcdoctor.measure.model import to_tnc

#: Relative tolerance when comparing the user's loss with a reference value, or with a mistake recomputed:
#: float32 CTC of the same log-probabilities agrees to about 1e-6 (CPU, CUDA and cuDNN alike), while two
#: different mistakes can land within 1e-3 of each other (a wrong blank on near-uniform outputs changes a
#: summed loss by 0.1 %), so a looser tolerance names the wrong one.
RTOL = 1e-4
#: Absolute slack added to RTOL (for losses near 0).
ATOL = 1e-5

REDUCTIONS = ("mean", "sum", "batch_mean")
"""Tried on every batch: F.ctc_loss's mean and sum, and the plain batch mean (reduction="none" then .mean(), or a sum
divided by the batch's N)."""
DIVIDED = ("mean_by_batch", "sum_by_loader_batch", "mean_by_loader_batch")
"""Reductions divided by a batch size on top, tried where they differ from REDUCTIONS (see `reductions`): the default
mean divided again by the batch's N (`CTCLoss()(...) / batch_size`, a port from warp-ctc's sum), and the sum or the
mean divided by the loader's batch size B, a fixed number in the training loop (georgeretsi/HTR-best-practices:
`CTCLoss(reduction='sum')(...) / batch_size`), which differs from N on overfit's samples and a last, partial batch."""


def reductions(size: int, loader_batch: int | None = None) -> tuple[str, ...]:
    """The reductions to try on a batch of `size` samples from a loader of batch size `loader_batch` (None: unknown);
    one that gives the same numbers as an earlier one on this batch is left out (at N = 1 the batch mean is the sum)."""
    tried = [*REDUCTIONS]
    if size > 1:
        tried.append("mean_by_batch")
    if loader_batch is not None and loader_batch > 1 and loader_batch != size:
        tried += ["sum_by_loader_batch", "mean_by_loader_batch"]
    return tuple(tried)


def divisor(how: str, size: int, loader_batch: int | None) -> int | None:
    """The batch size a DIVIDED reduction divides by (N or the loader's B); None for the others."""
    return size if how == "mean_by_batch" else loader_batch if how in DIVIDED else None


# ---------------------------------------------------------------- shared helpers

def normalised_log_probs(output: torch.Tensor, kind: str | None) -> torch.Tensor:
    """float32 log-probabilities of a (T, N, C) output, whatever the model emitted.

    Probabilities are logged (clamped at the smallest normal float); logits and
    log-probabilities go through log_softmax (the identity for log-probabilities).
    Differentiable, so the gradient pass uses it too.
    """
    values = output.float()
    if kind == "probs":
        values = values.clamp_min(torch.finfo(torch.float32).tiny).log()
    return values.log_softmax(-1)


def per_sample_ctc(log_probs, targets, input_lengths, target_lengths, blank: int) -> torch.Tensor:
    """Unreduced CTC (N,), no zero_infinity: infeasible samples are +inf."""
    return F.ctc_loss(
        log_probs, targets, input_lengths, target_lengths, blank=blank, reduction="none", zero_infinity=False
    )


def reduce_losses(per_sample: torch.Tensor, target_lengths: torch.Tensor, how: str, zero_infinity: bool = False,
                  loader_batch: int | None = None) -> float:
    """Reduce per-sample losses as F.ctc_loss would (`mean` divides by target length first), or as a REDUCTIONS or
    DIVIDED name says (`loader_batch`: the loader's batch size, which the `*_by_loader_batch` ones divide by)."""
    values = per_sample.double()
    if zero_infinity:
        values = torch.where(torch.isinf(values), torch.zeros_like(values), values)
    if how in ("mean", "mean_by_batch", "mean_by_loader_batch"):
        mean = float((values / target_lengths.clamp_min(1).double()).mean())
        return mean if how == "mean" else mean / _divisor(how, values.numel(), loader_batch)
    if how in ("sum", "sum_by_loader_batch"):
        return float(values.sum()) / (_divisor(how, values.numel(), loader_batch) if how != "sum" else 1)
    if how == "batch_mean":
        return float(values.mean())
    raise ValueError(how)


def _divisor(how: str, size: int, loader_batch: int | None) -> int:
    found = divisor(how, size, loader_batch)
    if not found:
        raise ValueError(f"{how} needs the loader's batch size")
    return found


def deviation(user: float, candidate: float) -> float:
    """How far `user` is from `candidate`, in units of the tolerance (<= 1: close); inf when not comparable."""
    if math.isnan(user) or math.isnan(candidate):
        return 0.0 if math.isnan(user) and math.isnan(candidate) else math.inf
    if math.isinf(user) or math.isinf(candidate):
        return 0.0 if user == candidate else math.inf
    return abs(user - candidate) / (RTOL * abs(candidate) + ATOL)


def close(user: float, candidate: float) -> bool:
    """Equal within RTOL (relative) + ATOL (absolute)."""
    return deviation(user, candidate) <= 1.0


def prepared_kind(kind: Any) -> str:
    """An `OutputKind` as reference CTC reads it: "log_probs", "probs", "logits", "empty", or "wrong_axis"
    (normalised over time or batch, CTC024)."""
    return kind.kind if kind.axis == 2 or kind.kind not in ("log_probs", "probs") else "wrong_axis"


def _kinds(context: Context) -> list[str | None]:
    """"log_probs", "probs", "logits", or "wrong_axis" (normalised over time or batch, CTC024), per run."""
    try:
        return [prepared_kind(kind) for kind in context.output_kinds]
    except Exception:
        return [None] * len(context.runs)


def _targets_usable(batch, num_classes: int, blank: int) -> str | None:
    """Why F.ctc_loss cannot be trusted on this batch's targets (CTC010-012 report it), or None."""
    from ctcdoctor.load.batches import split_targets

    sequences, problems = split_targets(batch)
    if problems:
        return "target_lengths are inconsistent with the targets (CTC012)"
    for sequence in sequences:
        if sequence.numel() and (int(sequence.min()) < 0 or int(sequence.max()) >= num_classes):
            return "targets hold indices outside [0, C) (CTC010)"
    return None


@dataclass(frozen=True)
class Prepared:
    """One model batch ready for reference CTC."""

    batch: Any
    output: torch.Tensor
    """As returned by the model (detached), in its own layout."""
    log_probs: torch.Tensor
    """(T, N, C) float32 log-probabilities."""
    lengths: torch.Tensor
    """(N,) output lengths."""
    kind: str | None
    layout: str | None
    returned: Any = None
    """Exactly what `model(inputs)` returned (see `ModelRun.returned`): what the user's criterion is given."""


@dataclass(frozen=True)
class PreparedBatches:
    items: tuple[Prepared, ...]
    skipped: str | None = None


@provides("ctc_batches")
def _ctc_batches(context: Context) -> PreparedBatches:
    """The model batches with normalised log-probs and output lengths, or why reference CTC cannot run."""
    context.outputs  # noqa: B018 - an output that cannot hold scores (CTC026) skips everything built on it
    lengths = context.output_lengths
    if not lengths.known:
        return PreparedBatches((), "output lengths are unknown (CTC003)")
    layout = context.layout.layout
    num_classes = context.num_classes
    blank = context.setup.blank
    if not 0 <= blank < num_classes:
        return PreparedBatches((), f"{context.vocabulary.blank_setting} {blank} is outside the {num_classes} classes (CTC015)")
    items = []
    kinds = _kinds(context)
    for run, out_lengths, kind in zip(context.runs, lengths.per_run, kinds):
        reason = _targets_usable(run.batch, num_classes, blank)
        if reason:
            return PreparedBatches((), reason)
        tnc = to_tnc(run.output, layout)
        frames = tnc.shape[0]
        if frames == 0:
            return PreparedBatches((), f"the output of batch {run.batch.index} has 0 frames (CTC001, CTC003)")
        if out_lengths.shape[0] != run.batch.size or bool((out_lengths < 0).any()) or bool((out_lengths > frames).any()):
            return PreparedBatches((), "output lengths do not fit the output tensor (CTC003)")
        log_probs = normalised_log_probs(tnc.detach().cpu(), kind)
        items.append(Prepared(run.batch, run.output, log_probs, out_lengths.cpu(), kind, layout, run.returned))
    return PreparedBatches(tuple(items))


