"""Which layers downsample the time axis, and by how much (named in CTC001's fix).

The model runs on one sample at two input lengths with a hook on every module; a leaf module
whose input grows along an axis by `d` steps while its output grows by `d / s` downsamples that
axis by `s`. Measured, not read from `stride` attributes, so it follows the real time axis
(the width of an image, the frames of audio) whatever the layer type. A module that returns a tuple (torchaudio's
`_TimeReduction` gives `(output, lengths)`) is measured on its first tensor of the input's rank, and one with a plain
`stride` attribute is named with it. The axis is called "width" (or "height") only when the input is an image; the
frames of audio or features are "time".

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
from ctcdoctor.load.batches import Batch, main_tensor, sample_resizer, time_width
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
    strides: tuple[int, ...] = ()
    """The module's own `stride`, one value per spatial axis (empty when it has none that fits): `setting_for`
    writes it with another value on this axis."""
    position: int = -1
    """Which entry of `strides` is this axis."""
    attribute: bool = False
    """The stride is a plain `stride` attribute of a module that is not a conv or pool layer (torchaudio's
    `_TimeReduction(stride)`): the fix names the attribute."""

    def describe(self) -> str:
        return f"{self.kind} at {self.module} (stride {self.stride} along {self.axis})"

    def setting_for(self, value: int) -> str:
        """What to write for a stride of `value` along this axis: "stride=(2, 2)" for Conv2d(stride=(2, 4)) along
        width at 2, "its stride attribute: stride=4" for `_TimeReduction(16)` at 4; `setting` when the module's
        strides are not known (read from a scan's state written before they were kept)."""
        if not self.strides or not 0 <= self.position < len(self.strides):
            return self.setting if value == 1 else ""
        values = list(self.strides)
        values[self.position] = value
        written = stride_setting(values)
        return f"its stride attribute: {written}" if self.attribute else written


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


def _axis_name(dims: int, axis: int, image: bool = True) -> str:
    """The name of the axis that grows with the input length, in a layer input of `dims` axes: "width" (or "height")
    in the (N, C, H, W) maps of an image model; "time" in a sequence (N, C, T) or (N, T, F), and in the 2-D maps of
    a model on audio or features (`image` False), whose growing axis is the frames."""
    if dims == 4:
        return {2: "height", 3: "width"}.get(axis, f"dim {axis}") if image else "time" if axis in (2, 3) else f"dim {axis}"
    if dims in (2, 3) and axis >= 1:
        return "time"
    return f"dim {axis}"


#: Up to this many distinct values, an input is 8-bit data (an image read from a file, scaled and standardised or not).
IMAGE_LEVELS = 256
#: At least this share of an image's values sit exactly at its lowest or highest value (paper and ink clipped to
#: [0, 1] after noise or contrast augmentation); continuous features do not pile up at their extremes.
SATURATED_SHARE = 0.05


def is_image(batch: Batch) -> bool:
    """Whether the model's input is an image (N, C, H, W) rather than audio or features, by what images are (in the
    first sample's valid region): three or four colour channels; or 8-bit values (at most 256 distinct ones, however
    scaled); or values in [0, 1] (scaled by 1/255); or many values clipped at the extremes (background and ink after
    noise augmentation and clipping, then standardised). Spectrograms and other features hold continuous values
    around zero with no pile-up at the ends; features stored as (N, 1, T, F), time along the height, are never an
    image. A 4-D input that is none of these is read as features: its growing axis is then named "time", which is
    right for an image too (the width of a text line is its time axis), while "width" on a spectrogram reads wrong."""
    main = main_tensor(batch.inputs)
    if main is None or main.dim() != 4 or batch.batch_axis != 0:
        return False  # a sequence (N, T, F), (N, C, T) or a waveform: its layers' 2-D maps, if any, are features
    found = time_width(batch)
    if found is not None and found[0] == 2:
        return False  # (N, 1, T, F): time along the height
    if main.shape[1] in (3, 4) or not main.is_floating_point():
        return True
    sample = main[0].detach()
    if found is not None and batch.input_lengths.numel() and 0 < int(batch.input_lengths[0]) < sample.shape[found[0] - 1]:
        sample = sample.narrow(found[0] - 1, 0, int(batch.input_lengths[0]))  # its own columns, not the padding
    values = sample.flatten()[:65536].to("cpu")
    finite = values[torch.isfinite(values)]
    if finite.numel() == 0:
        return True
    low, high = finite.min(), finite.max()
    saturated = float(((finite == low) | (finite == high)).double().mean())
    return (bool(low >= 0 and high <= 1) or saturated >= SATURATED_SHARE
            or torch.unique(finite).numel() <= IMAGE_LEVELS)


@contextlib.contextmanager
def _module_shapes(model: torch.nn.Module) -> Iterator[Shapes]:
    """(input shape, output shape) of each module's first call while the block runs the model, in the order the
    calls ended (a leaf's order is the order modules ran); the root model is left out."""
    shapes: Shapes = {}

    def hook(name: str):  # noqa: ANN202 - a forward hook
        def record(_module: torch.nn.Module, args: tuple[Any, ...], output: Any) -> None:
            if name in shapes or not args or not isinstance(args[0], torch.Tensor):
                return
            first = _first_tensor(output, args[0].dim())
            if first is not None:
                shapes[name] = (args[0].shape, first.shape)
        return record

    handles = [module.register_forward_hook(hook(name)) for name, module in model.named_modules() if name]
    try:
        yield shapes
    finally:
        for handle in handles:
            handle.remove()


def _first_tensor(output: Any, dims: int) -> torch.Tensor | None:
    """The output itself, or, in a tuple or list (`(output, lengths)`, an LSTM's `(output, (h, c))`), its first
    tensor of `dims` axes: the one that carries the input's frames on."""
    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, (tuple, list)):
        return next((item for item in output if isinstance(item, torch.Tensor) and item.dim() == dims), None)
    return None


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


def _strides(model: torch.nn.Module, short: Shapes, long: Shapes, image: bool = True) -> tuple[TimeStride, ...]:
    """The leaf layers that downsample an axis that grows from `short` to `long`, off-path branches left out; `image`:
    the model's input is an image (the axes of its 2-D maps are "height" and "width", else "time")."""
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
                strides, position, attribute = _declared(leaves[name], len(short_in) - 2, axis - 2, stride)
                found.append(TimeStride(name, type(leaves[name]).__name__, stride,
                                        _axis_name(len(short_in), axis, image),
                                        _unit_stride(leaves[name], len(short_in) - 2, axis - 2), strides, position,
                                        attribute))
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


def _fixed(model: torch.nn.Module, inputs: Any, short: Shapes, long: Shapes, output: torch.Size,
           image: bool = True) -> Downsampling:
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
    fixed = FixedLength(int(output[time_axis]), name, type(module).__name__,
                        _axis_name(len(short[name][1]), axis, image), int(size), rule)
    return Downsampling(_strides(model, short, resampled, image), fixed)


def measure_downsampling(model: torch.nn.Module, batch: Batch) -> Downsampling:
    """The layers that downsample the time axis (in execution order), and a fixed resampling when the output's
    length does not follow the input's; empty when nothing can be identified."""
    resized = sample_resizer(batch)
    if resized is None:
        return Downsampling()
    length = max(int(batch.input_lengths.max()), 1)
    (short, short_output), (long, long_output) = _run(model, resized(length)), _run(model, resized(2 * length))
    image = is_image(batch)
    if short_output is not None and long_output is not None and not _grows(short_output, long_output) \
            and _collapsers(short, long):
        return _fixed(model, resized(length), short, long, short_output, image)
    return Downsampling(_strides(model, short, long, image))


def time_downsampling(model: torch.nn.Module, batch: Batch) -> tuple[TimeStride, ...]:
    """The layers that downsample the time axis, in execution order; () when none can be identified."""
    return measure_downsampling(model, batch).layers


def stride_setting(values: list[int] | tuple[int, ...]) -> str:
    """"stride=2" for one spatial axis, "stride=(2, 1)" for several: what to write in the layer's arguments."""
    return f"stride={values[0]}" if len(values) == 1 else f"stride=({', '.join(str(value) for value in values)})"


def _per_axis(declared: Any, spatial: int) -> tuple[int, ...] | None:
    """A layer's `stride` as one int per spatial axis (an int means the same on every axis); None when it is not that."""
    values = tuple(declared) if isinstance(declared, (tuple, list)) else (declared,) * spatial
    return values if len(values) == spatial and all(isinstance(value, int) for value in values) else None


def _unit_stride(module: torch.nn.Module, spatial: int, index: int) -> str:
    """"stride=(2, 1)": the module's `stride` with spatial axis `index` set to 1 ("" when it has none, or the axis is
    not one of its spatial axes)."""
    declared = getattr(module, "stride", None)
    values = _per_axis(declared, spatial) if declared is not None and 0 <= index < spatial else None
    if values is None:
        return ""
    unit = list(values)
    unit[index] = 1
    return stride_setting(unit)


def _declared(module: torch.nn.Module, spatial: int, index: int, stride: int) -> tuple[tuple[int, ...], int, bool]:
    """(the module's stride per spatial axis, this axis's position in it, whether it is a plain attribute) for
    `TimeStride.setting_for`; ((), -1, False) when the module's `stride` does not describe this axis. A conv or pool
    layer's `stride` has one entry per spatial axis; any other module's integer `stride` attribute equal to the
    measured stride (torchaudio's `_TimeReduction`, which folds `stride` frames into one) is that stride."""
    declared = getattr(module, "stride", None)
    if isinstance(module, (torch.nn.modules.conv._ConvNd, torch.nn.modules.pooling._MaxPoolNd,
                           torch.nn.modules.pooling._AvgPoolNd)):
        values = _per_axis(declared, spatial)
        return (values, index, False) if values is not None and 0 <= index < spatial else ((), -1, False)
    if isinstance(declared, int) and not isinstance(declared, bool) and declared == stride:
        return (declared,), 0, True
    return (), -1, False


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
