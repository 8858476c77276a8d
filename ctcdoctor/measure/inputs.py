"""Statistics of the model inputs over each sample's valid (unpadded) region."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ctcdoctor.engine import Context, provides
from ctcdoctor.load.batches import Batch, batch_first, time_axis


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


def _valid_region(inputs: torch.Tensor, lengths: torch.Tensor, axis: int | None, row: int) -> torch.Tensor:
    sample = inputs[row]
    if axis is None:
        return sample
    length = int(lengths[row])
    return sample.narrow(axis - 1, 0, max(0, min(length, sample.shape[axis - 1])))


def input_statistics(batches: list[Batch]) -> InputStats | None:
    """None when the inputs are not tensors (ctcdoctor then cannot judge them)."""
    count = total = nan = inf = 0
    running_sum = running_square = 0.0
    low, high = float("inf"), float("-inf")
    integral = True
    nonfinite: list[int] = []
    constant: list[int] = []
    for batch in batches:
        numeric = isinstance(batch.inputs, torch.Tensor) and (
            batch.inputs.is_floating_point() or batch.inputs.dtype in (torch.uint8, torch.int16, torch.int32, torch.int64))
        if not numeric:
            return None
        inputs = batch_first(batch.inputs, batch.batch_axis).detach().to("cpu")  # time-major (T, N, ...) -> (N, T, ...)
        axis = time_axis(inputs, batch.input_lengths)
        for row in range(inputs.shape[0]):
            values = _valid_region(inputs, batch.input_lengths, axis, row).to(torch.float64).flatten()
            sample = batch.first_sample + row
            bad = ~torch.isfinite(values)
            if bool(bad.any()):
                nonfinite.append(sample)
                nan += int(torch.isnan(values).sum())
                inf += int(torch.isinf(values).sum())
                values = values[~bad]
            count += 1
            if values.numel() == 0:
                continue
            total += values.numel()
            running_sum += float(values.sum())
            running_square += float((values * values).sum())
            low = min(low, float(values.min()))
            high = max(high, float(values.max()))
            if integral and not bool((values == values.round()).all()):
                integral = False
            if values.numel() > 1 and float(values.max() - values.min()) <= 1e-6 * max(1.0, abs(float(values.max()))):
                constant.append(sample)
    if total == 0:
        return InputStats(count, tuple(nonfinite), nan, inf, float("nan"), float("nan"), float("nan"), float("nan"), False, tuple(constant), 0)
    mean = running_sum / total
    variance = max(0.0, running_square / total - mean * mean)
    return InputStats(count, tuple(nonfinite), nan, inf, mean, variance**0.5, low, high, integral, tuple(constant), total)


@provides("input_stats")
def _input_stats(context: Context):
    return input_statistics(context.batches)


