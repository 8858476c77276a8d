"""CTC050/CTC051: reference CTC per sample at initialisation, next to what uniform outputs give."""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ctcdoctor.engine import Context, provides
from ctcdoctor.measure.reference import per_sample_ctc

# ---------------------------------------------------------------- CTC050 / CTC051: loss at initialisation

@dataclass(frozen=True)
class InitLoss:
    """Reference CTC per sample at initialisation, and what uniform outputs would give."""

    samples: tuple[int, ...] = ()
    """Global sample indices."""
    loss: tuple[float, ...] = ()
    """Per-sample reference CTC (sum over the sequence, nats); +inf / nan kept."""
    uniform: tuple[float, ...] = ()
    """Per-sample CTC of uniform outputs (log 1/C everywhere) with the same lengths: +inf when infeasible."""
    target_lengths: tuple[int, ...] = ()
    num_classes: int = 0
    skipped: str | None = None


@provides("init_loss")
def _init_loss(context: Context) -> InitLoss:
    prepared = context.ctc_batches
    if prepared.skipped:
        return InitLoss(skipped=prepared.skipped)
    blank = context.setup.blank
    samples: list[int] = []
    losses: list[float] = []
    uniform: list[float] = []
    target_lengths: list[int] = []
    for item in prepared.items:
        batch = item.batch
        with torch.no_grad():
            loss = per_sample_ctc(item.log_probs, batch.targets, item.lengths, batch.target_lengths, blank)
            flat = torch.full_like(item.log_probs, -math.log(item.log_probs.shape[-1]))
            expected = per_sample_ctc(flat, batch.targets, item.lengths, batch.target_lengths, blank)
        samples.extend(batch.sample_id(position) for position in range(batch.size))
        losses.extend(float(v) for v in loss)
        uniform.extend(float(v) for v in expected)
        target_lengths.extend(int(v) for v in batch.target_lengths)
    return InitLoss(tuple(samples), tuple(losses), tuple(uniform), tuple(target_lengths), context.num_classes)


