"""Which layers downsample the time axis, and by how much (named in CTC001's fix).

The model runs on one sample at two input lengths with a hook on every leaf module; a module
whose input grows along an axis by `d` steps while its output grows by `d / s` downsamples that
axis by `s`. Measured, not read from `stride` attributes, so it follows the real time axis
(the width of an image, the frames of audio) whatever the layer type.
"""
from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch

from ctcdoctor.engine import Context, provides
from ctcdoctor.load.batches import Batch, sample_resizer
from ctcdoctor.measure.model import call_model, evaluating


@dataclass(frozen=True)
class TimeStride:
    """One layer that keeps one step in `stride` along the time axis."""

    module: str
    """Its name in `model.named_modules()`, e.g. "cnn.3.3"."""
    kind: str
    """Its class name, e.g. "MaxPool2d"."""
    stride: int
    axis: str
    """"width", "height", "time" or "dim N" of the module's input."""
    setting: str = ""
    """The module's stride argument with this axis set to 1, e.g. "stride=(2, 1)" for MaxPool2d(2) pooling width:
    what to write (empty when the module has no `stride`)."""

    def describe(self) -> str:
        return f"{self.kind} at {self.module} (stride {self.stride} along {self.axis})"


def _axis_name(dims: int, axis: int) -> str:
    if dims == 4:
        return {2: "height", 3: "width"}.get(axis, f"dim {axis}")
    if dims == 3 and axis == 2:
        return "time"
    return f"dim {axis}"


@contextlib.contextmanager
def _leaf_shapes(model: torch.nn.Module) -> Iterator[dict[str, tuple[torch.Size, torch.Size]]]:
    """(input shape, output shape) of each leaf module's first call while the block runs the model."""
    shapes: dict[str, tuple[torch.Size, torch.Size]] = {}

    def hook(name: str):  # noqa: ANN202 - a forward hook
        def record(_module: torch.nn.Module, args: tuple[Any, ...], output: Any) -> None:
            if name not in shapes and args and isinstance(args[0], torch.Tensor) and isinstance(output, torch.Tensor):
                shapes[name] = (args[0].shape, output.shape)
        return record

    leaves = [(name, module) for name, module in model.named_modules() if name and next(module.children(), None) is None]
    handles = [module.register_forward_hook(hook(name)) for name, module in leaves]
    try:
        yield shapes
    finally:
        for handle in handles:
            handle.remove()


def _run_at(model: torch.nn.Module, resized: Any, length: int) -> dict[str, tuple[torch.Size, torch.Size]]:
    with _leaf_shapes(model) as shapes, evaluating(model):
        call_model(model, resized(length))
    return shapes


def time_downsampling(model: torch.nn.Module, batch: Batch) -> tuple[TimeStride, ...]:
    """The layers that downsample the time axis, in execution order; () when none can be identified."""
    resized = sample_resizer(batch)
    if resized is None:
        return ()
    length = max(int(batch.input_lengths.max()), 1)
    short, long = _run_at(model, resized, length), _run_at(model, resized, 2 * length)
    kinds = dict(model.named_modules())
    found = []
    for name, (short_in, short_out) in short.items():  # dicts keep insertion order: the order modules ran
        if name not in long or len(short_in) != len(short_out):
            continue
        long_in, long_out = long[name]
        for axis in range(1, len(short_in)):
            grown_in, grown_out = long_in[axis] - short_in[axis], long_out[axis] - short_out[axis]
            if grown_in > 0 and grown_out > 0 and round(grown_in / grown_out) >= 2:
                stride = _stride(kinds[name], grown_in / grown_out)
                found.append(TimeStride(name, type(kinds[name]).__name__, stride, _axis_name(len(short_in), axis),
                                        _unit_stride(kinds[name], len(short_in) - 2, axis - 2)))
                break
    return tuple(found)


def _unit_stride(module: torch.nn.Module, spatial: int, index: int) -> str:
    """"stride=(2, 1)": the module's `stride` with spatial axis `index` set to 1 ("" when it has none, or the axis is
    not one of its spatial axes)."""
    declared = getattr(module, "stride", None)
    if declared is None or not 0 <= index < spatial:
        return ""
    values = list(declared) if isinstance(declared, (tuple, list)) else [declared] * spatial
    if len(values) != spatial or not all(isinstance(value, int) for value in values):
        return ""
    values[index] = 1
    return f"stride={values[0]}" if spatial == 1 else f"stride=({', '.join(str(value) for value in values)})"


def _stride(module: torch.nn.Module, measured: float) -> int:
    """The measured ratio, or the module's own `stride` when one matches it within 5%: a wide kernel makes
    the growth ratio miss it (Wav2Letter's Conv1d(kernel 250, stride 160) grows 159.4x from L to 2L)."""
    declared = getattr(module, "stride", None)
    for value in declared if isinstance(declared, (tuple, list)) else (declared,):
        if isinstance(value, int) and value >= 2 and abs(value - measured) <= 0.05 * value:
            return value
    return round(measured)


class TimeStrides:
    """The time-downsampling layers, measured on first use only (two extra forward passes: CTC001 needs them only
    when a sample is infeasible). A model that cannot be probed has none: CTC001's fix then stays generic."""

    def __init__(self, measure: Callable[[], tuple[TimeStride, ...]]) -> None:
        self._measure = measure
        self._layers: tuple[TimeStride, ...] | None = None

    def layers(self) -> tuple[TimeStride, ...]:
        if self._layers is None:
            try:
                self._layers = self._measure()
            except Exception:
                self._layers = ()
        return self._layers


@provides("time_strides")
def _time_strides(context: Context) -> TimeStrides:
    return TimeStrides(lambda: time_downsampling(context.model, context.runs[0].batch))
