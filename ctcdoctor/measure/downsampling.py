"""Which layers downsample the time axis, and by how much (named in CTC001's fix).

The model runs on one sample at two input lengths with a hook on every module; a leaf module
whose input grows along an axis by `d` steps while its output grows by `d / s` downsamples that
axis by `s`. Measured, not read from `stride` attributes, so it follows the real time axis
(the width of an image, the frames of audio) whatever the layer type.

Only layers on the path that sets the output's length count: a module whose input grows but whose output does not
(a branch ending in a global or adaptive pool, a localization network whose output is a few parameters) cuts its
layers off that path. When the model's output does not grow at all, some module resamples every input to a fixed
size (TPS's grid_sample to `I_r_size`, an adaptive pool to a fixed width): it is found by resizing that module's
output and watching the frames follow, and the layers after it are measured the same way, from its output.
"""
from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch

from ctcdoctor.engine import Context, provides
from ctcdoctor.load.batches import Batch, sample_resizer
from ctcdoctor.measure.lengths import LengthModel, fit_rule
from ctcdoctor.measure.model import call_model, evaluating, split_output

Shapes = dict[str, tuple[torch.Size, torch.Size]]

#: At most this many modules with a fixed-size output are tried as the model's resampler (one forward pass per axis).
RESAMPLER_CANDIDATES = 6


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


@dataclass(frozen=True)
class FixedLength:
    """The model gives the same number of frames whatever the input length: one module resamples every input to a
    fixed size along time, and the frames follow that size only."""

    frames: int
    """The frames every input gets."""
    module: str = ""
    """The module whose output size sets the frames (e.g. "Transformation"); "" when none was found."""
    kind: str = ""
    axis: str = ""
    """The axis of that module's output that becomes time ("width")."""
    size: int = 0
    """That module's output size along `axis`, e.g. 100 for TPS with I_r_size (32, 100)."""
    rule: LengthModel | None = None
    """Frames as a function of that size (L = the module's output size), measured by resizing its output."""

    def describe(self) -> str:
        return f"{self.kind} at {self.module}" if self.module else ""

    def to_json(self) -> dict[str, Any]:
        """Plain data (a scan shard's state carries it to the merge)."""
        rule = None if self.rule is None else {"probed": [list(point) for point in self.rule.probed],
                                               "stride": self.rule.stride, "offset": self.rule.offset}
        return {"frames": self.frames, "module": self.module, "kind": self.kind, "axis": self.axis, "size": self.size,
                "rule": rule}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FixedLength:
        rule = data.get("rule")
        model = None if rule is None else LengthModel(tuple((int(x), int(y)) for x, y in rule["probed"]), rule["stride"],
                                                      rule["offset"])
        return cls(int(data["frames"]), data.get("module", ""), data.get("kind", ""), data.get("axis", ""),
                   int(data.get("size", 0)), model)

    def size_for(self, frames: int) -> int | None:
        """The smallest output size of the resampler that gives `frames` frames, by its measured rule; None if unknown."""
        if self.rule is None or self.rule.stride is None or self.rule.offset is None:
            return None
        return max(1, frames * self.rule.stride - self.rule.offset)


@dataclass(frozen=True)
class Downsampling:
    """What sets the output's time length: the layers that downsample it, and a fixed resampling if there is one."""

    layers: tuple[TimeStride, ...] = ()
    fixed: FixedLength | None = None


def _axis_name(dims: int, axis: int) -> str:
    if dims == 4:
        return {2: "height", 3: "width"}.get(axis, f"dim {axis}")
    if dims == 3 and axis == 2:
        return "time"
    return f"dim {axis}"


@contextlib.contextmanager
def _module_shapes(model: torch.nn.Module) -> Iterator[Shapes]:
    """(input shape, output shape) of each module's first call while the block runs the model, in the order the
    calls ended (a leaf's order is the order modules ran); the root model is left out."""
    shapes: Shapes = {}

    def hook(name: str):  # noqa: ANN202 - a forward hook
        def record(_module: torch.nn.Module, args: tuple[Any, ...], output: Any) -> None:
            if name not in shapes and args and isinstance(args[0], torch.Tensor) and isinstance(output, torch.Tensor):
                shapes[name] = (args[0].shape, output.shape)
        return record

    handles = [module.register_forward_hook(hook(name)) for name, module in model.named_modules() if name]
    try:
        yield shapes
    finally:
        for handle in handles:
            handle.remove()


def _resized_along(tensor: torch.Tensor, axis: int, size: int) -> torch.Tensor:
    """`tensor` cut or tiled along `axis` to `size`."""
    if size > tensor.shape[axis]:
        tensor = torch.cat([tensor] * (-(-size // tensor.shape[axis])), dim=axis)
    return tensor.narrow(axis, 0, size)


@contextlib.contextmanager
def _resizing(module: torch.nn.Module, axis: int, size: int) -> Iterator[None]:
    """While the block runs, `module`'s first output of each forward pass is resized along `axis` to `size`."""
    handle = module.register_forward_hook(
        lambda _module, _args, output: _resized_along(output, axis, size) if isinstance(output, torch.Tensor) else None)
    try:
        yield
    finally:
        handle.remove()


def _run(model: torch.nn.Module, inputs: Any) -> tuple[Shapes, torch.Size | None]:
    """Every module's shapes and the model's output shape (None when the output cannot be read)."""
    with _module_shapes(model) as shapes, evaluating(model):
        value = call_model(model, inputs)
    try:
        output = split_output(value)[0]
    except Exception:  # noqa: BLE001 - an output the checks cannot read: no shape to compare
        return shapes, None
    return shapes, output.shape


def _grows(short: torch.Size, long: torch.Size) -> bool:
    return len(short) == len(long) and any(b > a for a, b in zip(short, long))


def _collapsers(short: Shapes, long: Shapes) -> list[str]:
    """Modules whose input grows but whose output does not: nothing inside them sets the output's length."""
    return [name for name, (short_in, short_out) in short.items() if name in long
            and _grows(short_in, long[name][0]) and not _grows(short_out, long[name][1])]


def _leaves(model: torch.nn.Module) -> dict[str, torch.nn.Module]:
    return {name: module for name, module in model.named_modules() if name and next(module.children(), None) is None}


def _strides(model: torch.nn.Module, short: Shapes, long: Shapes) -> tuple[TimeStride, ...]:
    """The leaf layers that downsample an axis that grows from `short` to `long`, off-path branches left out."""
    leaves = _leaves(model)
    cut = tuple(f"{name}." for name in _collapsers(short, long))
    found = []
    for name, (short_in, short_out) in short.items():  # dicts keep insertion order: the order modules ran
        if name not in leaves or name not in long or len(short_in) != len(short_out) or name.startswith(cut):
            continue
        long_in, long_out = long[name]
        for axis in range(1, len(short_in)):
            grown_in, grown_out = long_in[axis] - short_in[axis], long_out[axis] - short_out[axis]
            if grown_in > 0 and grown_out > 0 and round(grown_in / grown_out) >= 2:
                stride = _stride(leaves[name], grown_in / grown_out)
                found.append(TimeStride(name, type(leaves[name]).__name__, stride, _axis_name(len(short_in), axis),
                                        _unit_stride(leaves[name], len(short_in) - 2, axis - 2)))
                break
    return tuple(found)


def _frames_axis(short: torch.Size, long: torch.Size) -> int | None:
    grown = [axis for axis, (a, b) in enumerate(zip(short, long)) if b > a]
    return grown[0] if len(short) == len(long) and grown else None


def _find_resampler(model: torch.nn.Module, inputs: Any, short: Shapes, long: Shapes,
                    output: torch.Size) -> tuple[str, int, int] | None:
    """(module, axis of its output, output axis of time): the module with a fixed-size output whose size the frames
    follow. Among nested ones the innermost (the adaptive pool, not the Sequential around it); else the last to end."""
    modules = dict(model.named_modules())
    candidates = [name for name in reversed(_collapsers(short, long)) if len(short[name][0]) == len(short[name][1])]
    found: list[tuple[str, int, int]] = []
    for name in candidates[:RESAMPLER_CANDIDATES]:
        size = short[name][1]
        for axis in reversed(range(1, len(size))):  # the last first: width of an image, time of (N, C, T)
            try:
                with _resizing(modules[name], axis, 2 * size[axis]):
                    resized = _run(model, inputs)[1]
            except Exception:  # noqa: BLE001 - a size the layers after it cannot take (channels, a flattened pool)
                continue
            time_axis = None if resized is None else _frames_axis(output, resized)
            if time_axis is not None:
                found.append((name, axis, time_axis))
                break
    innermost = [item for item in found if not any(other[0].startswith(f"{item[0]}.") for other in found)]
    return innermost[0] if innermost else None  # the latest to end among them


def _fixed(model: torch.nn.Module, inputs: Any, short: Shapes, long: Shapes, output: torch.Size) -> Downsampling:
    found = _find_resampler(model, inputs, short, long, output)
    if found is None:  # resized outside any module (a functional call in forward): no module to name, frames unknown
        return Downsampling((), FixedLength(0))
    name, axis, time_axis = found
    module = dict(model.named_modules())[name]
    size = short[name][1][axis]
    with _resizing(module, axis, 2 * size):
        resampled, _ = _run(model, inputs)

    def frames_at(length: int) -> int:
        with _resizing(module, axis, length):
            shape = _run(model, inputs)[1]
        return int(shape[time_axis]) if shape is not None else -1

    try:
        rule: LengthModel | None = fit_rule(frames_at, [size, 2 * size, 4 * size])
    except Exception:  # noqa: BLE001 - a size the layers cannot take: no rule
        rule = None
    fixed = FixedLength(int(output[time_axis]), name, type(module).__name__, _axis_name(len(short[name][1]), axis),
                        int(size), rule)
    return Downsampling(_strides(model, short, resampled), fixed)


def measure_downsampling(model: torch.nn.Module, batch: Batch) -> Downsampling:
    """The layers that downsample the time axis (in execution order), and a fixed resampling when the output's
    length does not follow the input's; empty when nothing can be identified."""
    resized = sample_resizer(batch)
    if resized is None:
        return Downsampling()
    length = max(int(batch.input_lengths.max()), 1)
    (short, short_output), (long, long_output) = _run(model, resized(length)), _run(model, resized(2 * length))
    if short_output is not None and long_output is not None and not _grows(short_output, long_output) \
            and _collapsers(short, long):
        return _fixed(model, resized(length), short, long, short_output)
    return Downsampling(_strides(model, short, long))


def time_downsampling(model: torch.nn.Module, batch: Batch) -> tuple[TimeStride, ...]:
    """The layers that downsample the time axis, in execution order; () when none can be identified."""
    return measure_downsampling(model, batch).layers


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
    """The time-downsampling layers (and a fixed resampling), measured on first use only (a few extra forward passes:
    CTC001 needs them only when a sample is infeasible); `rule()`, the model's measured length rule, likewise. A model
    that cannot be probed has none: CTC001's fix then stays generic."""

    def __init__(self, measure: Callable[[], Downsampling | tuple[TimeStride, ...]],
                 rule: Callable[[], LengthModel] | None = None) -> None:
        self._measure = measure
        self._rule = rule
        self._found: Downsampling | None = None
        self._length_model: LengthModel | None = None
        self._ruled = False

    def _measured(self) -> Downsampling:
        if self._found is None:
            try:
                found = self._measure()
                self._found = found if isinstance(found, Downsampling) else Downsampling(tuple(found))
            except Exception:
                self._found = Downsampling()
        return self._found

    def layers(self) -> tuple[TimeStride, ...]:
        return self._measured().layers

    def fixed(self) -> FixedLength | None:
        """The fixed resampling that sets the frames whatever the input length; None when the frames follow it."""
        return self._measured().fixed

    def rule(self) -> LengthModel | None:
        """The model's output frames as a `floor((L + k) / s)` rule of the input length, probed; None when unknown."""
        if not self._ruled:
            self._ruled = True
            try:
                self._length_model = self._rule() if self._rule is not None else None
            except Exception:
                self._length_model = None
        return self._length_model


@provides("time_strides")
def _time_strides(context: Context) -> TimeStrides:
    return TimeStrides(lambda: measure_downsampling(context.model, context.runs[0].batch),
                       lambda: context.length_model)
