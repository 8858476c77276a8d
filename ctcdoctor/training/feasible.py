"""Samples CTC cannot align, counted from the lengths at every monitored step.

CTC needs at least U + (adjacent repeats) frames for a target of U labels (a repeated label needs
a blank between the two). A batch holding one sample with fewer frames gives an infinite loss
(or, with `zero_infinity=True`, a silent 0). The monitor measures its outputs only every `every`
steps, so the batch with the bad sample is rarely the one evaluated; this count is cheap (a
vectorised compare of lengths, on the tensors' device, read back with the loss at the next
evaluation), so it runs at every `update()` that has the lengths.
"""
from __future__ import annotations

from typing import Any

import torch


def count_infeasible(targets: Any, target_lengths: Any, output_lengths: Any, max_samples: int) -> torch.Tensor | None:
    """How many of the first `max_samples` samples have fewer frames than labels + adjacent repeats, as a 0-d
    tensor (not read back: no sync); None when the lengths cannot be read. `targets` padded (N, S) or
    concatenated; None counts labels only (no repeats)."""
    try:
        lengths = torch.as_tensor(target_lengths).detach().reshape(-1).long()
        frames = torch.as_tensor(output_lengths).detach().reshape(-1).long().to(lengths.device)
        need = lengths + _repeats(targets, lengths)
    except (TypeError, ValueError, RuntimeError):
        return None  # odd inputs: the evaluation's measure reports them with a message; never break a step
    count = min(int(lengths.numel()), int(frames.numel()), max_samples)
    return (frames[:count] < need[:count]).sum()


def _repeats(targets: Any, lengths: torch.Tensor) -> torch.Tensor:
    """Adjacent repeats within each sample's labels (0 without targets)."""
    if targets is None:
        return torch.zeros_like(lengths)
    labels = torch.as_tensor(targets).detach().long().to(lengths.device)
    if labels.dim() == 2:  # padded (N, S): pairs inside each sample's length
        inside = torch.arange(1, labels.shape[1], device=labels.device)[None, :] < lengths[: labels.shape[0], None]
        same = (labels[:, 1:] == labels[:, :-1]) & inside
        return torch.nn.functional.pad(same.sum(1), (0, lengths.numel() - labels.shape[0]))
    if labels.device.type != "cpu":
        return torch.zeros_like(lengths)  # concatenated on an accelerator: splitting it would synchronise
    if int(lengths.clamp(min=0).sum()) != labels.numel():
        raise ValueError("concatenated targets do not match target_lengths")
    owner = torch.repeat_interleave(torch.arange(lengths.numel()), lengths.clamp(min=0))
    same = ((labels[1:] == labels[:-1]) & (owner[1:] == owner[:-1])).long()
    return torch.zeros_like(lengths).index_add_(0, owner[1:], same)
