"""CTC028: does a sample's output depend on the other samples of its batch?

In eval mode it must not: every layer of a CTC model works per sample along the batch axis. The
usual way it fails is a recurrent or attention layer that reads another axis as the batch (an
`nn.LSTM` with its default `batch_first=False` fed `(N, T, F)` recurs over the samples, one
sample's state flowing into the next). The measure: run a few samples of the first model batch
alone, padded as they are in the batch, and compare with their slice of the batch output.

Some models cannot run a sample alone at the batch's padded length: torchaudio's Conformer builds its attention mask
from max(lengths), so a sample of 49 frames padded to 58 fails its shape assertion. Then the sample stays in the
batch and the other samples change instead (each takes another one's values, flipped), lengths and padding as they
were, and the sample's output on its own frames is compared with the first run. Cutting it to its own length and
running it alone would not do: such a model's convolutions read the padding after the last frame (its depthwise
conv, kernel 31), so the last frames of a sample alone and in a batch differ without any sample being mixed.
"""
from __future__ import annotations

import contextlib
import copy
import dataclasses
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from ctcdoctor.engine import Context, provides
from ctcdoctor.load.batches import index_inputs, is_packed, main_tensor, map_tensors
from ctcdoctor.measure.model import ModelRun, call_model, evaluating, split_output, time_dim

#: The largest difference allowed, relative to max(1, largest |value|) of the sample's output, by output dtype.
TOLERANCE = {torch.float16: 2e-2, torch.bfloat16: 5e-2}
DEFAULT_TOLERANCE = 1e-3
#: How many samples (besides the first) are run alone.
SAMPLES = 2
#: Output axis of the samples, by layout.
OUTPUT_BATCH_AXIS = {"TNC": 1, "NTC": 0, "NCT": 0}


@dataclass(frozen=True)
class SequenceLayer:
    """A recurrent or attention layer and the input it got in the batch forward."""

    name: str
    kind: str
    batch_first: bool
    input_shape: tuple[int, ...]

    def reads_samples_as_time(self, size: int) -> bool:
        """Time-major (batch_first=False) but given the samples on axis 0: it mixes them."""
        shape = self.input_shape
        return not self.batch_first and len(shape) >= 2 and shape[0] == size and shape[1] != size


@dataclass(frozen=True)
class BatchIndependence:
    batch: int = 0
    batch_axis: int = 0
    """The input axis that holds the samples."""
    input_shape: tuple[int, ...] = ()
    compared: tuple[int, ...] = ()
    """Global indices of the samples run alone."""
    differences: tuple[float, ...] = ()
    """Largest |alone - inside the batch| per compared sample."""
    scales: tuple[float, ...] = ()
    tolerance: float = DEFAULT_TOLERANCE
    layers: tuple[SequenceLayer, ...] = field(default=())
    skipped: str | None = None
    float64_differences: tuple[float, ...] | None = None
    """The same differences from a float64 copy of the model, measured when the first ones exceed the tolerance:
    round-off that saturated gates amplify differs between a batch and a sample alone (different kernels), and
    vanishes in float64; samples really mixed differ there too. None when not measured or the copy cannot run."""
    others_replaced: bool = False
    """The samples could not run alone (see the module's docstring): each compared sample stayed in its batch while
    the other samples changed, and `differences` are how far its output moved."""

    def mixed(self) -> list[int]:
        """Positions (in `compared`) whose outputs disagree (in float64 too, when that was measured)."""
        differences = self.differences if self.float64_differences is None else self.float64_differences
        return [i for i, (d, s) in enumerate(zip(differences, self.scales)) if not d <= self.tolerance * max(1.0, s)]


@contextlib.contextmanager
def sequence_layers(model: torch.nn.Module) -> Iterator[list[SequenceLayer]]:
    """Record every RNN/LSTM/GRU and MultiheadAttention call (its batch_first and input shape) while the block runs."""
    seen: list[SequenceLayer] = []
    hooks = []

    def hook(name: str):
        def record(module: torch.nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any] | None = None) -> None:
            first = args[0] if args else next(iter((kwargs or {}).values()), None)
            if isinstance(first, torch.Tensor) and not is_packed(first):
                seen.append(SequenceLayer(name, type(module).__name__, bool(getattr(module, "batch_first", False)),
                                          tuple(first.shape)))
        return record

    for name, module in model.named_modules():
        if isinstance(module, (torch.nn.RNNBase, torch.nn.MultiheadAttention)):
            hooks.append(module.register_forward_pre_hook(hook(name), with_kwargs=True))
    try:
        yield seen
    finally:
        for handle in hooks:
            handle.remove()


def _chosen(size: int) -> list[int]:
    """Samples other than the first (an RNN recurring over the batch gives sample 0 its own state): the last and
    the middle one."""
    return sorted({size - 1, size // 2} - {0})[:SAMPLES]


def _common_frames(alone: torch.Tensor, inside: torch.Tensor, time: int) -> tuple[torch.Tensor, torch.Tensor] | None:
    """The two outputs over the frames they share: a model that pads its output to the longest sample of the batch
    (pack_padded_sequence with the lengths it is given) gives a sample alone fewer frames; the ones past them are
    padding. None when they differ on another axis."""
    if alone.shape == inside.shape:
        return alone, inside
    if alone.dim() != inside.dim() or any(a != b for axis, (a, b) in enumerate(zip(alone.shape, inside.shape)) if axis != time):
        return None
    frames = min(alone.shape[time], inside.shape[time])
    return alone.narrow(time, 0, frames), inside.narrow(time, 0, frames)


def _others_replaced(inputs: Any, position: int, size: int, batch_axis: int) -> Any | None:
    """`inputs` with every sample but `position` changed: the main input tensor's other samples each take the
    values of the next other one, flipped along every axis but the batch (with one other sample, its own values
    flipped); lengths, masks and the padded shape as they were. None when the others cannot be changed (no main
    tensor with the samples on `batch_axis`, or flipping leaves them as they were, e.g. all zeros)."""
    main = main_tensor(inputs)
    if main is None or main.dim() < 2 or main.dim() <= batch_axis or main.shape[batch_axis] != size:
        return None
    others = [index for index in range(size) if index != position]
    moved = main.movedim(batch_axis, 0)
    values = moved[others[1:] + others[:1]].flip(dims=tuple(range(1, moved.dim())))
    if torch.equal(values, moved[others]):
        return None
    changed = moved.clone()
    changed[others] = values
    changed = changed.movedim(0, batch_axis)
    return map_tensors(inputs, lambda tensor: changed if tensor is main else tensor)


def _sample_output(model: torch.nn.Module, inputs: Any, position: int, size: int, batch_axis: int, out_axis: int,
                   replaced: bool) -> torch.Tensor | None:
    """The sample's output run alone (padded as in the batch), or, `replaced`, its slice of the batch output with
    the other samples changed; None when the other samples cannot be changed."""
    if not replaced:
        single = index_inputs(inputs, torch.tensor([position]), size, batch_axis)
        with evaluating(model):
            return split_output(call_model(model, single))[0]
    changed = _others_replaced(inputs, position, size, batch_axis)
    if changed is None:
        return None
    with evaluating(model):
        output = split_output(call_model(model, changed))[0]
    return output.narrow(out_axis, position, 1)


def _compare(model: torch.nn.Module, inputs: Any, output: torch.Tensor, axes: tuple[int, int], batch_axis: int,
             size: int, replaced: bool = False,
             frames: torch.Tensor | None = None) -> tuple[list[float], list[float], list[int]]:
    """Run each chosen sample alone (or, `replaced`, in its batch with the others changed); per sample compared:
    largest |alone - inside|, largest |inside|, its position. `axes` are the output's batch and time axes; `frames`,
    the output lengths the model returned, limit the comparison to each sample's own frames."""
    out_axis, time = axes
    differences, scales, compared = [], [], []
    for position in _chosen(size):
        alone = _sample_output(model, inputs, position, size, batch_axis, out_axis, replaced)
        if alone is None:
            continue
        common = _common_frames(alone, output.narrow(out_axis, position, 1), time)
        if common is None:
            continue  # a model whose output shape depends on the batch: nothing to compare frame by frame
        alone, inside = common
        if frames is not None and 0 < int(frames[position]) < alone.shape[time]:
            alone, inside = alone.narrow(time, 0, int(frames[position])), inside.narrow(time, 0, int(frames[position]))
        alone64, inside64 = alone.detach().to("cpu", torch.float64), inside.detach().to("cpu", torch.float64)
        finite = torch.isfinite(alone64) & torch.isfinite(inside64)
        if not bool(finite.any()):
            continue
        differences.append(float((alone64 - inside64)[finite].abs().max()))
        scales.append(float(inside64[finite].abs().max()))
        compared.append(position)
    return differences, scales, compared


def _as_float64(inputs: Any) -> Any:
    """`inputs` with every floating tensor inside in float64 (integer ids and masks unchanged)."""
    if is_packed(inputs):
        return inputs.double() if inputs.data.is_floating_point() else inputs
    if isinstance(inputs, torch.Tensor):
        return inputs.to(torch.float64) if inputs.is_floating_point() else inputs
    if isinstance(inputs, tuple) and hasattr(inputs, "_fields"):
        return type(inputs)(*(_as_float64(item) for item in inputs))
    if isinstance(inputs, (tuple, list)):
        return type(inputs)(_as_float64(item) for item in inputs)
    if isinstance(inputs, Mapping):
        return {key: _as_float64(item) for key, item in inputs.items()}
    return inputs


def _float64_differences(model: torch.nn.Module, inputs: Any, axes: tuple[int, int], batch_axis: int, size: int,
                         positions: list[int], replaced: bool = False,
                         frames: torch.Tensor | None = None) -> tuple[float, ...] | None:
    """The differences again on a float64 copy of the model (the user's model untouched); None when the copy cannot
    be made or run (a device without float64, a model that casts its inputs, an output shape that changes)."""
    try:
        double = copy.deepcopy(model).double()
        inputs = _as_float64(inputs)
        with evaluating(double):
            output, _ = split_output(call_model(double, inputs))
        if output.dtype != torch.float64:
            return None  # the model casts back to a lower precision: no better than the first measure
        differences, _, compared = _compare(double, inputs, output, axes, batch_axis, size, replaced, frames)
    except Exception:
        return None
    return tuple(differences) if compared == positions else None


def measure_independence(model: torch.nn.Module, run: ModelRun, layout: str | None) -> BatchIndependence:
    batch = run.batch
    size = batch.size
    main = main_tensor(batch.inputs)  # structured inputs, `(x, lengths)`: the tensor that holds the samples
    shape = tuple(main.shape) if main is not None else ()
    if size < 2 or run.output.numel() == 0:  # one sample, or no output frames at all: nothing can be mixed
        return BatchIndependence(batch.index, batch.batch_axis, shape)
    if layout not in OUTPUT_BATCH_AXIS:
        return BatchIndependence(batch.index, batch.batch_axis, shape, skipped="the output layout is unknown (CTC022)")
    axes = (OUTPUT_BATCH_AXIS[layout], time_dim(layout))
    frames = _own_frames(run)
    replaced = False
    try:
        differences, scales, compared = _compare(model, batch.inputs, run.output, axes, batch.batch_axis, size)
        alone = None if compared else ("a sample alone gives an output of another shape than its slice of the batch "
                                       "output, or no finite values to compare")
    except Exception as error:
        differences, scales, compared = [], [], []
        alone = f"the model cannot run one sample alone ({type(error).__name__}: {error})"
    if alone is not None:  # keep the sample in its batch and change the others instead
        replaced = True
        try:
            differences, scales, compared = _compare(model, batch.inputs, run.output, axes, batch.batch_axis, size,
                                                     True, frames)
        except Exception as error:
            return BatchIndependence(batch.index, batch.batch_axis, shape, skipped=f"{alone}, nor with the other "
                                     f"samples of its batch changed ({type(error).__name__}: {error})")
        if not compared:
            return BatchIndependence(batch.index, batch.batch_axis, shape, skipped=f"{alone}, and the other samples "
                                     "of its batch cannot be changed to compare instead")
    positions, compared = compared, [batch.sample_id(position) for position in compared]
    tolerance = TOLERANCE.get(run.output.dtype, DEFAULT_TOLERANCE)
    result = BatchIndependence(batch.index, batch.batch_axis, shape, tuple(compared), tuple(differences), tuple(scales),
                               tolerance, others_replaced=replaced)
    if not result.mixed():
        return result
    result = dataclasses.replace(result, float64_differences=_float64_differences(
        model, batch.inputs, axes, batch.batch_axis, size, positions, replaced, frames if replaced else None))
    if not result.mixed():
        return result
    # Only now pay for another forward pass of the batch: to name the layers that read the batch as time.
    with evaluating(model), sequence_layers(model) as layers:
        call_model(model, batch.inputs)
    return dataclasses.replace(result, layers=tuple(layers))


def _own_frames(run: ModelRun) -> torch.Tensor | None:
    """The output lengths the model returned with this batch (one per sample), or None."""
    lengths = run.returned_lengths
    if isinstance(lengths, torch.Tensor) and lengths.dim() == 1 and lengths.shape[0] == run.batch.size:
        return lengths.detach().to("cpu", torch.long)
    return None


@provides("batch_independence")
def _batch_independence(context: Context) -> BatchIndependence:
    return measure_independence(context.model, context.runs[0], context.layout.layout)
