"""Statistics of the model inputs over each sample's valid (unpadded) region, one set per tensor.

Inputs are a tensor, or a structure holding several: a tuple `(padded, lengths)`, a mapping
`{"features": ..., "mask": ...}`, a named tuple, a `PackedSequence`. Every floating-point
tensor inside whose first axis is the batch is measured on its own (a normalised spectrogram
next to raw ±15,000 audio must not average out); a plain tensor input is measured whatever its
dtype (raw 0–255 pixels come as uint8). Inside a structure, integer tensors (lengths, token ids,
attention masks), tensors holding only 0 and 1 (float masks) and 1-D tensors (one number per
sample: float lengths, an SNR) are left out.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import torch

from ctcdoctor.engine import Context, provides
from ctcdoctor.load.batches import Batch, batch_first, is_packed, time_axis

NUMERIC = (torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64)


@dataclass(frozen=True)
class InputStats:
    samples: int
    nonfinite_samples: tuple[int, ...]
    """Samples holding NaN or Inf."""
    nan: int
    inf: int
    mean: float
    std: float
    min: float
    max: float
    integral: bool
    """Every finite value is a whole number (raw pixel values, byte data)."""
    constant_samples: tuple[int, ...]
    """Samples whose valid region has (almost) no variation."""
    values: int
    name: str = "inputs"
    """Which tensor: `inputs` when the inputs are one tensor, else its path (`inputs[0]`, `inputs['features']`)."""

    @property
    def structured(self) -> bool:
        """The tensor is one part of structured inputs (findings then name it)."""
        return self.name != "inputs"


def _valid_region(inputs: torch.Tensor, lengths: torch.Tensor, axis: int | None, row: int) -> torch.Tensor:
    sample = inputs[row]
    if axis is None:
        return sample
    length = int(lengths[row])
    return sample.narrow(axis - 1, 0, max(0, min(length, sample.shape[axis - 1])))


@dataclass
class _Running:
    """Statistics of one tensor, gathered sample by sample over the batches."""

    count: int = 0
    total: int = 0
    nan: int = 0
    inf: int = 0
    running_sum: float = 0.0
    running_square: float = 0.0
    low: float = float("inf")
    high: float = float("-inf")
    integral: bool = True
    nonfinite: list[int] = field(default_factory=list)
    constant: list[int] = field(default_factory=list)

    def add(self, values: torch.Tensor, sample: int) -> None:
        bad = ~torch.isfinite(values)
        if bool(bad.any()):
            self.nonfinite.append(sample)
            self.nan += int(torch.isnan(values).sum())
            self.inf += int(torch.isinf(values).sum())
            values = values[~bad]
        self.count += 1
        if values.numel() == 0:
            return
        self.total += values.numel()
        self.running_sum += float(values.sum())
        self.running_square += float((values * values).sum())
        self.low = min(self.low, float(values.min()))
        self.high = max(self.high, float(values.max()))
        if self.integral and not bool((values == values.round()).all()):
            self.integral = False
        if values.numel() > 1 and float(values.max() - values.min()) <= 1e-6 * max(1.0, abs(float(values.max()))):
            self.constant.append(sample)

    def stats(self, name: str) -> InputStats:
        if self.total == 0:
            nan = float("nan")
            return InputStats(self.count, tuple(self.nonfinite), self.nan, self.inf, nan, nan, nan, nan, False,
                              tuple(self.constant), 0, name)
        mean = self.running_sum / self.total
        variance = max(0.0, self.running_square / self.total - mean * mean)
        return InputStats(self.count, tuple(self.nonfinite), self.nan, self.inf, mean, variance**0.5, self.low, self.high,
                          self.integral, tuple(self.constant), self.total, name)


def _is_mask(tensor: torch.Tensor) -> bool:
    finite = tensor[torch.isfinite(tensor)]
    return finite.numel() > 0 and bool(((finite == 0) | (finite == 1)).all())


def measured_tensors(batch: Batch) -> Iterator[tuple[str, torch.Tensor, torch.Tensor]]:
    """(name, (N, ...) tensor on the CPU, the lengths that bound each sample) for every tensor measured."""
    inputs = batch_first(batch.inputs, batch.batch_axis)  # time-major (T, N, ...) -> (N, T, ...)
    if isinstance(inputs, torch.Tensor):
        if inputs.is_floating_point() or inputs.dtype in NUMERIC:
            yield "inputs", inputs.detach().to("cpu"), batch.input_lengths
        return
    yield from _structured(inputs, "inputs", batch)


def _structured(value: Any, path: str, batch: Batch) -> Iterator[tuple[str, torch.Tensor, torch.Tensor]]:
    if isinstance(value, torch.Tensor):
        # (N,) holds one number per sample (lengths, an SNR, a speaker id), not features: left out.
        if value.is_floating_point() and value.dim() > 1 and value.shape[0] == batch.size:
            tensor = value.detach().to("cpu")
            if not _is_mask(tensor):
                yield path, tensor, batch.input_lengths
    elif is_packed(value):
        from torch.nn.utils.rnn import pad_packed_sequence

        padded, lengths = pad_packed_sequence(value, batch_first=True)
        if padded.is_floating_point() and padded.shape[0] == batch.size:
            yield path, padded.detach().to("cpu"), lengths
    elif isinstance(value, tuple) and hasattr(value, "_fields"):
        for name, item in zip(value._fields, value):
            yield from _structured(item, f"{path}.{name}", batch)
    elif isinstance(value, (tuple, list)):
        for position, item in enumerate(value):
            yield from _structured(item, f"{path}[{position}]", batch)
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _structured(item, f"{path}[{key!r}]", batch)


def input_statistics(batches: list[Batch]) -> list[InputStats]:
    """Statistics per measured tensor (see the module docstring), in the order met; empty when none can be measured."""
    running: dict[str, _Running] = {}
    for batch in batches:
        for name, inputs, lengths in measured_tensors(batch):
            axis = time_axis(inputs, lengths)
            accumulator = running.setdefault(name, _Running())
            for row in range(inputs.shape[0]):
                values = _valid_region(inputs, lengths, axis, row).to(torch.float64).flatten()
                accumulator.add(values, batch.sample_id(row))
    return [accumulator.stats(name) for name, accumulator in running.items()]


@provides("input_stats")
def _input_stats(context: Context) -> list[InputStats]:
    return input_statistics(context.batches)
