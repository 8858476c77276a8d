"""Run the user's model and measure what it does: layout, class count, frame counts.

Everything here leaves the user's model as found: eval mode under `no_grad` for the
probe, the original train/eval mode restored in `finally`.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import torch

from ctcdoctor.batches import Batch


@contextlib.contextmanager
def evaluating(model: torch.nn.Module) -> Iterator[torch.nn.Module]:
    """Eval mode and no autograd for a probe; the model's own modes come back afterwards."""
    modes = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        with torch.no_grad():
            yield model
    finally:
        for module, training in modes:
            module.training = training


def split_output(value: Any) -> tuple[torch.Tensor, torch.Tensor | None]:
    """`model(inputs)` returns the output tensor or `(output, output_lengths)`."""
    lengths = None
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise TypeError(
                f"model(inputs) returned a {type(value).__name__} of {len(value)} items; "
                "return the output tensor or (output, output_lengths)"
            )
        value, lengths = value
        if lengths is not None:
            lengths = torch.as_tensor(lengths).detach().to("cpu", torch.long).reshape(-1)
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"model(inputs) returned a {type(value).__name__}, not a tensor of shape (T, N, C) or (N, T, C)")
    if value.dim() != 3:
        raise TypeError(
            f"model(inputs) returned a tensor of shape {tuple(value.shape)}; CTC needs 3 axes, (T, N, C) or (N, T, C)"
        )
    return value.detach(), lengths


def move_inputs(inputs: Any, device: torch.device | None) -> Any:
    if device is None:
        return inputs
    if isinstance(inputs, torch.Tensor):
        return inputs.to(device)
    if isinstance(inputs, (tuple, list)):
        return type(inputs)(move_inputs(item, device) for item in inputs)
    if isinstance(inputs, dict):
        return {key: move_inputs(item, device) for key, item in inputs.items()}
    return inputs


def model_device(model: torch.nn.Module) -> torch.device | None:
    for parameter in model.parameters():
        return parameter.device
    return None


@dataclass(frozen=True)
class ModelRun:
    """The model's output on one batch."""

    batch: Batch
    output: torch.Tensor
    """Exactly as returned (detached), in the model's own layout and dtype."""
    returned_lengths: torch.Tensor | None
    """Output lengths the model returned alongside its output, if any."""


def run_model(model: torch.nn.Module, batch: Batch) -> ModelRun:
    with evaluating(model):
        raw = model(move_inputs(batch.inputs, model_device(model)))
    output, lengths = split_output(raw)
    return ModelRun(batch, output, lengths)


@dataclass(frozen=True)
class LayoutDecision:
    layout: str | None
    """"TNC", "NTC", or None when it could not be decided."""
    source: str
    """"setup", "shape", "probe" or "undecided"."""
    detail: str


def _slice_batch(inputs: Any, count: int) -> Any:
    if isinstance(inputs, torch.Tensor):
        if count <= inputs.shape[0]:
            return inputs[:count]
        repeats = -(-count // inputs.shape[0])
        return torch.cat([inputs] * repeats)[:count]
    raise TypeError("inputs are not a tensor, so they cannot be sliced to probe the layout")


def decide_layout(model: torch.nn.Module, run: ModelRun, declared: str | None) -> LayoutDecision:
    """Which output axis is time: declared, read off the shape, or probed with another batch size."""
    first, second = run.output.shape[0], run.output.shape[1]
    size = run.batch.size
    if declared is not None:
        return LayoutDecision(declared, "setup", f"Setup.layout = {declared!r}")
    if first == size and second != size:
        return LayoutDecision("NTC", "shape", f"output {tuple(run.output.shape)}: axis 0 has the batch size {size}")
    if second == size and first != size:
        return LayoutDecision("TNC", "shape", f"output {tuple(run.output.shape)}: axis 1 has the batch size {size}")
    if first != size and second != size:
        return LayoutDecision(
            None, "undecided", f"output {tuple(run.output.shape)} has no axis of the batch size {size}"
        )
    probe_size = size - 1 if size > 1 else 2
    try:
        with evaluating(model):
            probed, _ = split_output(model(move_inputs(_slice_batch(run.batch.inputs, probe_size), model_device(model))))
    except Exception as error:  # a model that only runs at one batch size cannot be probed
        return LayoutDecision(
            None,
            "undecided",
            f"T == N == {size} and the model failed on a batch of {probe_size} ({type(error).__name__}: {error})",
        )
    if probed.shape[0] == probe_size and probed.shape[1] != probe_size:
        return LayoutDecision("NTC", "probe", f"T == N == {size}; a batch of {probe_size} moved axis 0")
    if probed.shape[1] == probe_size and probed.shape[0] != probe_size:
        return LayoutDecision("TNC", "probe", f"T == N == {size}; a batch of {probe_size} moved axis 1")
    return LayoutDecision(None, "undecided", f"T == N == {size} and a batch of {probe_size} gave {tuple(probed.shape)}")


def to_tnc(output: torch.Tensor, layout: str | None) -> torch.Tensor:
    """A (T, N, C) view; an undecided layout is read as TNC, F.ctc_loss's own."""
    return output.transpose(0, 1) if layout == "NTC" else output


# ---------------------------------------------------------------- frame counts

def time_axis(inputs: Any, input_lengths: torch.Tensor) -> int | None:
    """The input axis that input_lengths measure: the last one as long as the longest sample."""
    if not isinstance(inputs, torch.Tensor) or inputs.dim() < 2 or input_lengths.numel() == 0:
        return None
    longest = int(input_lengths.max())
    exact = [axis for axis in range(1, inputs.dim()) if inputs.shape[axis] == longest]
    if exact:
        return exact[-1]
    longer = [axis for axis in range(1, inputs.dim()) if inputs.shape[axis] > longest]
    return longer[-1] if len(longer) == 1 else None


def _resize(sample: torch.Tensor, axis: int, length: int) -> torch.Tensor:
    current = sample.shape[axis]
    if length <= current:
        return sample.narrow(axis, 0, length)
    pad_shape = list(sample.shape)
    pad_shape[axis] = length - current
    return torch.cat([sample, sample.new_zeros(pad_shape)], dim=axis)


@dataclass(frozen=True)
class LengthModel:
    """Output frames as a function of input length, measured by running the model.

    Integer-stride subsampling stacks compose to `floor((L + offset) / stride)`; when the
    measurements fit that form it is used, otherwise the measured points are interpolated.
    """

    probed: tuple[tuple[int, int], ...]
    """(input length, output frames) pairs measured on the model."""
    stride: int | None
    offset: int | None

    def __call__(self, input_lengths: torch.Tensor) -> torch.Tensor:
        lengths = input_lengths.to(torch.long)
        if self.stride is not None and self.offset is not None:
            return torch.div(lengths + self.offset, self.stride, rounding_mode="floor").clamp(min=0)
        xs = torch.tensor([point[0] for point in self.probed], dtype=torch.float64)
        ys = torch.tensor([point[1] for point in self.probed], dtype=torch.float64)
        positions = torch.searchsorted(xs, lengths.to(torch.float64)).clamp(1, len(xs) - 1)
        x0, x1, y0, y1 = xs[positions - 1], xs[positions], ys[positions - 1], ys[positions]
        slope = (y1 - y0) / (x1 - x0).clamp(min=1)
        return (y0 + slope * (lengths - x0)).floor().to(torch.long).clamp(min=0)

    def describe(self) -> str:
        if self.stride is not None and self.offset is not None:
            if self.offset == 0:
                return f"frames = floor(L / {self.stride})" if self.stride > 1 else "frames = L"
            sign = "+" if self.offset > 0 else "-"
            return f"frames = floor((L {sign} {abs(self.offset)}) / {self.stride})"
        return "interpolated between " + ", ".join(f"{x}->{y}" for x, y in self.probed)


def _fit(points: list[tuple[int, int]]) -> tuple[int | None, int | None]:
    (low_in, low_out), (high_in, high_out) = points[0], points[-1]
    if high_out == low_out:
        return None, None
    stride = max(1, round((high_in - low_in) / (high_out - low_out)))
    for offset in sorted(range(-4 * stride, 4 * stride + 1), key=abs):
        if all((length + offset) // stride == frames for length, frames in points):
            return stride, offset
    return None, None


def probe_lengths(
    model: torch.nn.Module,
    batch: Batch,
    layout: str | None,
    wanted: torch.Tensor,
    max_probes: int = 8,
) -> LengthModel:
    """Run the model on one sample cut or padded to several lengths and fit the frame counts."""
    axis = time_axis(batch.inputs, batch.input_lengths)
    if axis is None:
        raise ValueError(
            "cannot tell which input axis input_lengths measure "
            f"(inputs {tuple(getattr(batch.inputs, 'shape', ()))}, longest length {int(batch.input_lengths.max())})"
        )
    sample = batch.inputs[:1]
    distinct = sorted(set(int(length) for length in wanted.tolist() if length > 0))
    if len(distinct) > max_probes:
        picks = torch.linspace(0, len(distinct) - 1, max_probes).round().long().tolist()
        distinct = sorted({distinct[pick] for pick in picks})
    if len(distinct) < 2:
        top = distinct[0] if distinct else int(batch.input_lengths.max())
        distinct = sorted({max(1, top // 2), top})
    time_dim = 1 if layout == "NTC" else 0
    points = []
    with evaluating(model):
        for length in distinct:
            output, _ = split_output(model(move_inputs(_resize(sample, axis, length), model_device(model))))
            points.append((length, int(output.shape[time_dim])))
    stride, offset = _fit(points)
    return LengthModel(tuple(points), stride, offset)


def call_length_function(function: Callable[..., Any], input_lengths: torch.Tensor) -> torch.Tensor:
    """Apply `Setup.output_lengths`, accepting tensor-, list- or int-valued functions."""
    try:
        result = function(input_lengths.clone())
    except Exception:
        result = [function(int(length)) for length in input_lengths.tolist()]
    result = torch.as_tensor(result)
    if result.is_floating_point():
        result = result.floor()
    return result.to("cpu", torch.long).reshape(-1)
