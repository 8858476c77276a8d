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

import numpy as np
import torch


def count_infeasible(targets: Any, target_lengths: Any, output_lengths: Any, max_samples: int) -> torch.Tensor | int | None:
    """How many of the first `max_samples` samples have fewer frames than labels + adjacent repeats: an int when
    everything is on the host (numpy on views: a handful of microseconds, this runs every step), else a 0-d tensor
    on the device (not read back: no sync); None when the lengths cannot be read. `targets` padded (N, S) or
    concatenated; None counts labels only (no repeats)."""
    if all(_on_host(value) for value in (targets, target_lengths, output_lengths)):
        try:
            return _count_on_host(targets, target_lengths, output_lengths, max_samples)
        except (TypeError, ValueError):
            return None
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


def _on_host(value: Any) -> bool:
    return value is None or isinstance(value, (list, tuple, np.ndarray)) or (
        isinstance(value, torch.Tensor) and value.device.type == "cpu")


def _flat(value: Any) -> np.ndarray:
    array = value.detach().numpy() if isinstance(value, torch.Tensor) else np.asarray(value)
    if array.dtype.kind not in "iu":
        raise TypeError(f"lengths and labels must be integers, got {array.dtype}")
    return array.astype(np.int64, copy=False)


def _count_on_host(targets: Any, target_lengths: Any, output_lengths: Any, max_samples: int) -> int:
    """`count_infeasible` in numpy, for lengths and targets on the host (the usual case: lengths come from the
    collate function)."""
    lengths = _flat(target_lengths).reshape(-1)
    frames = _flat(output_lengths).reshape(-1)
    count = min(lengths.size, frames.size, max_samples)
    need = lengths[:count] + _host_repeats(targets, lengths)[:count]
    return int(np.count_nonzero(frames[:count] < need))


def _host_repeats(targets: Any, lengths: np.ndarray) -> np.ndarray:
    """`_repeats` in numpy."""
    if targets is None:
        return np.zeros_like(lengths)
    labels = _flat(targets)
    if labels.ndim == 2:
        rows = min(labels.shape[0], lengths.size)
        inside = np.arange(1, labels.shape[1])[None, :] < lengths[:rows, None]
        same = np.count_nonzero((labels[:rows, 1:] == labels[:rows, :-1]) & inside, axis=1)
        return np.concatenate([same, np.zeros(lengths.size - rows, np.int64)])
    kept = np.maximum(lengths, 0)
    if int(kept.sum()) != labels.size:
        raise ValueError("concatenated targets do not match target_lengths")
    owner = np.repeat(np.arange(lengths.size), kept)
    same = (labels[1:] == labels[:-1]) & (owner[1:] == owner[:-1])
    return np.bincount(owner[1:][same], minlength=lengths.size).astype(np.int64)
