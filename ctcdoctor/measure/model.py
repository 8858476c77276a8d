"""Run the user's model and measure what it does: layout, class count, frame counts.

Everything here leaves the user's model as found: eval mode under `no_grad` for the
probe, the original train/eval mode restored in `finally`.
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

import torch

from ctcdoctor.engine import Context, provides
from ctcdoctor.errors import UserInputError
from ctcdoctor.load.batches import (
    Batch,
    iterate_batches,
    loader_batch_size,
    map_tensors,
    resize_batch,
    sample_resizer,
    time_width,
)
from ctcdoctor.load.limits import doing
from ctcdoctor.registry import SkipCheck


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


@dataclass(frozen=True)
class ReadOutput:
    """What the checks read in what `model(inputs)` returned (see `read_output`)."""

    output: torch.Tensor
    """The CTC output, not detached (overfit trains through it)."""
    lengths: Any
    """The output lengths as returned (a tensor, list, or None), read from the item after the output."""
    items: int
    """How many items the model returned: 1 for a tensor or an object with `.logits`."""
    unread: tuple[tuple[int, Any], ...] = ()
    """(position, item) of the returned items the checks do not read: more heads, a recurrent state."""


def describe_item(item: Any) -> str:
    """"a float tensor (128, 16, 80)", "an integer tensor (16,)", "a list of 2 items": what a returned item is."""
    if isinstance(item, torch.Tensor):
        kind = "a float" if item.is_floating_point() else "a bool" if item.dtype == torch.bool else "an integer"
        return f"{kind} tensor {tuple(item.shape)}"
    if item is None:
        return "None"
    if isinstance(item, (tuple, list)):
        return f"a {type(item).__name__} of {len(item)} item{'' if len(item) == 1 else 's'}"
    name = type(item).__name__
    return f"{'an' if name[:1].lower() in 'aeiou' else 'a'} {name}"


def _is_lengths(item: Any) -> bool:
    """Output lengths: None, or integer values with one entry per sample (a 1-D tensor, a list of ints; whole-valued
    floats in one dimension too). A float tensor of several axes is another output (a second CTC head), not lengths."""
    if item is None:
        return True
    if isinstance(item, (tuple, list)):
        return bool(item) and all(isinstance(value, int) or (isinstance(value, torch.Tensor) and value.dim() == 0)
                                  for value in item)
    if not isinstance(item, torch.Tensor) and type(item).__module__ == "numpy":
        try:
            item = torch.as_tensor(item)
        except (TypeError, ValueError, RuntimeError):  # an array of objects: not lengths
            return False
    if not isinstance(item, torch.Tensor) or item.is_complex() or item.dtype == torch.bool:
        return False
    if item.dim() > 1 and item.numel() != max(item.shape):  # (N, 1) still holds one length per sample
        return False
    return not item.is_floating_point() or bool(torch.equal(item, item.round()))


def _is_extra(item: Any) -> bool:
    """An item the checks may leave to the criterion: None, a tensor, or a structure of tensors (a hidden state)."""
    from ctcdoctor.load.batches import tensor_leaves

    return item is None or any(True for _ in tensor_leaves(item))


def _read_items(value: tuple[Any, ...] | list[Any]) -> ReadOutput:
    """A returned tuple/list: the output first, then its lengths (when item 1 is lengths), then anything else."""
    items = list(value)
    listed = "; ".join(f"[{position}] {describe_item(item)}" for position, item in enumerate(items))
    expected = ("return the output tensor, (output, output_lengths), or a tuple whose first item is the output "
                "(more heads or a recurrent state may follow; the checks read the first item)")
    if not items or not isinstance(items[0], torch.Tensor):
        raise TypeError(f"model(inputs) returned a {type(value).__name__} of {len(items)} items ({listed}); {expected}")
    read = 2 if len(items) > 1 and _is_lengths(items[1]) else 1
    unread = tuple((position, item) for position, item in enumerate(items) if position >= read)
    odd = [position for position, item in unread if not _is_extra(item)]
    if odd:
        raise TypeError(f"model(inputs) returned a {type(value).__name__} of {len(items)} items ({listed}): item "
                        f"{odd[0]} is neither output lengths (integers, one per sample) nor a tensor; {expected}")
    return ReadOutput(items[0], items[1] if read == 2 else None, len(items), unread)


def read_output(value: Any) -> ReadOutput:
    """`model(inputs)` returns the output tensor, `(output, output_lengths)`, a tuple whose first item is the output
    and whose others are more outputs (a second CTC head) or a state, or a framework's output object whose `.logits`
    is the output (a transformers `ModelOutput`). Raises TypeError naming what came back when none of these."""
    logits = getattr(value, "logits", None)
    if not isinstance(value, torch.Tensor) and isinstance(logits, torch.Tensor):
        read, where = ReadOutput(logits, None, 1), f"a {type(value).__name__} whose .logits is a tensor"
    elif isinstance(value, (tuple, list)):
        read, where = _read_items(value), f"a {type(value).__name__} whose first item is a tensor"
    else:
        read, where = ReadOutput(value, None, 1), "a tensor"
    if not isinstance(read.output, torch.Tensor):
        raise TypeError(f"model(inputs) returned {describe_item(value)}, not a tensor of shape (T, N, C), (N, T, C) or (N, C, T)")
    if read.output.dim() != 3:
        raise TypeError(f"model(inputs) returned {where} of shape {tuple(read.output.shape)}; CTC needs 3 axes, "
                        "(T, N, C), (N, T, C) or (N, C, T)")
    return read


def split_output(value: Any) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(the output, detached; the returned output lengths on the CPU, or None): see `read_output`."""
    read = read_output(value)
    lengths = read.lengths
    if lengths is not None:
        lengths = torch.as_tensor(lengths).detach().to("cpu", torch.long).reshape(-1)
    return read.output.detach(), lengths


def other_heads(value: Any) -> tuple[str, ...]:
    """"item 1, a float tensor (128, 16, 80)" for each returned item the checks do not read that is another output
    (a float tensor of two axes or more: a second CTC head); () when there is none or the value cannot be read."""
    try:
        read = read_output(value)
    except TypeError:
        return ()
    return tuple(f"item {position}, {describe_item(item)}" for position, item in read.unread
                 if isinstance(item, torch.Tensor) and item.is_floating_point() and item.dim() >= 2)


def returned_note(value: Any) -> str | None:
    """One sentence for the report when the model returned more than the checks read (a second head, a state): what
    each item was taken for. None when everything returned is read, or when it cannot be read at all."""
    try:
        read = read_output(value)
    except TypeError:
        return None
    if not read.unread:
        return None
    taken = f"item 0 {tuple(read.output.shape)} checked as the output"
    if read.items - len(read.unread) == 2:
        taken += ", item 1 as its output lengths"
    rest = ", ".join(f"item {position} ({describe_item(item)})" for position, item in read.unread)
    return (f"model returned {read.items} items: {taken}; {rest} only passed to your criterion"
            + (" (to check another head, return it first)" if other_heads(value) else ""))


def forward_arguments(model: torch.nn.Module, inputs: Any) -> tuple[Any, ...]:
    """The positional arguments for `model(...)`: `(inputs,)`, or the items of a tuple/list `inputs` when the model's
    forward needs more than one positional argument and takes that many (`forward(self, x, lengths)` with
    `inputs = (x, lengths)`). Raises BatchError (exit 2) naming forward's signature when it can take neither."""
    import inspect

    from ctcdoctor.load.batches import is_packed

    try:
        signature = inspect.signature(model.forward)
    except (TypeError, ValueError, AttributeError):  # a builtin or scripted forward: called as the protocol says
        return (inputs,)
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    positional = [parameter for parameter in signature.parameters.values() if parameter.kind in kinds]
    required = sum(1 for parameter in positional if parameter.default is inspect.Parameter.empty)
    spread = any(parameter.kind == inspect.Parameter.VAR_POSITIONAL for parameter in signature.parameters.values())
    most = None if spread else len(positional)
    if required <= 1:
        return (inputs,)
    if isinstance(inputs, (tuple, list)) and not is_packed(inputs) and required <= len(inputs) <= (most or len(inputs)):
        return tuple(inputs)
    raise _uncallable(model, signature, inputs, required, most)


def _uncallable(model: torch.nn.Module, signature: Any, inputs: Any, required: int, most: int | None) -> Exception:
    from ctcdoctor.errors import BatchError
    from ctcdoctor.load.batches import is_packed

    takes = f"{required}" if most == required else f"{required} to {most}" if most else f"at least {required}"
    given = (f"a {type(inputs).__name__} of {len(inputs)} items" if isinstance(inputs, (tuple, list)) and not is_packed(inputs)
             else describe_item(inputs))
    names = [name for name in signature.parameters][:required]
    arguments = ", ".join(names)
    return BatchError(
        f"{type(model).__name__}.forward{signature} takes {takes} positional arguments, but the batch's inputs are "
        f"{given}: ctcdoctor calls model(*inputs) when inputs is a tuple or list of that many items, else model(inputs)",
        f"Make the loader yield the forward's arguments as the inputs, a tuple: (({arguments}), targets, input_lengths, "
        f"target_lengths), and ctcdoctor calls model({arguments}) (your criterion gets the batch as yielded); or wrap "
        "the model in a module whose forward(inputs) calls it.",
    )


def call_model(model: torch.nn.Module, inputs: Any) -> Any:
    """Run the model on a batch's inputs, moved to its device: `model(inputs)`, or `model(*inputs)` for a forward
    that takes several positional arguments (see `forward_arguments`). Every place that runs the model calls this."""
    return model(*forward_arguments(model, move_inputs(inputs, model_device(model))))


def move_inputs(inputs: Any, device: torch.device | None) -> Any:
    """`inputs` with every tensor inside on `device` (tuples, named tuples, lists, mappings, PackedSequence)."""
    if device is None:
        return inputs
    return map_tensors(inputs, lambda tensor: tensor.to(device), packed=lambda sequence: sequence.to(device))


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
    returned: Any = None
    """Exactly what `model(inputs)` returned (a tensor, `(output, lengths)`, a framework's output object): what the
    user's criterion is given."""


def run_model(model: torch.nn.Module, batch: Batch) -> ModelRun:
    with evaluating(model):
        raw = call_model(model, batch.inputs)
    output, lengths = split_output(raw)
    return ModelRun(batch, output, lengths, raw)


#: Where time, batch and classes sit in each output layout.
LAYOUT_AXES = {"TNC": (0, 1, 2), "NTC": (1, 0, 2), "NCT": (2, 0, 1)}


def time_dim(layout: str | None) -> int:
    """The output axis of time; an undecided layout is read as TNC, F.ctc_loss's own."""
    return LAYOUT_AXES.get(layout or "TNC", LAYOUT_AXES["TNC"])[0]


def class_dim(layout: str | None) -> int:
    """The output axis of the classes (the middle one for NCT, the last one otherwise)."""
    return LAYOUT_AXES.get(layout or "TNC", LAYOUT_AXES["TNC"])[2]


@dataclass(frozen=True)
class LayoutDecision:
    layout: str | None
    """"TNC", "NTC", "NCT", or None when it could not be decided."""
    source: str
    """"setup", "shape", "probe", "alphabet", "assumed" or "undecided"."""
    detail: str
    contradicted: str | None = None
    """The `Setup.layout` the output's shape refutes (its batch axis does not have the batch size), when one was
    declared: the layout is then decided as if none had been (CTC029 reports it)."""


def _shorter_input(batch: Batch) -> Any | None:
    """The first sample's inputs cut to about half their length on the time axis (the input lengths they carry
    follow), or None when there is none."""
    found = time_width(batch)
    resized = sample_resizer(batch)
    if found is None or resized is None or found[1] < 2:
        return None
    return resized(max(1, found[1] // 2))


def _probe_time(model: torch.nn.Module, run: ModelRun) -> LayoutDecision | None:
    """Cut the first sample's input in half and see which output axis follows: that one is time."""
    shape = tuple(run.output.shape)
    shorter = _shorter_input(run.batch)
    if shorter is None:
        return None
    try:
        with evaluating(model):
            probed, _ = split_output(call_model(model, shorter))
    except Exception:
        return None
    if probed.shape[1] != shape[1] and probed.shape[2] == shape[2]:
        return LayoutDecision("NTC", "probe", f"output {shape}: a shorter input shortened axis 1 ({probed.shape[1]} frames)")
    if probed.shape[2] != shape[2] and probed.shape[1] == shape[1]:
        return LayoutDecision("NCT", "probe", f"output {shape}: a shorter input shortened axis 2 ({probed.shape[2]} frames), "
                              "so the classes are in the middle")
    return None


def _time_or_classes(model: torch.nn.Module, run: ModelRun, alphabet: Any) -> LayoutDecision:
    """A batch-first output `(N, A, B)`: which of A and B is time? The axis that follows a shorter input; else the
    one that is not `len(alphabet) + 1`; else NTC, the common case (a model whose time axis cannot be probed and
    that returns `(N, C, T)` needs `Setup.layout = "NCT"`)."""
    probed = _probe_time(model, run)
    if probed is not None:
        return probed
    shape = tuple(run.output.shape)
    classes = len(alphabet) + 1 if alphabet is not None else None
    if classes is not None and classes in shape[1:] and shape[1] != shape[2]:
        layout = "NTC" if shape[2] == classes else "NCT"
        return LayoutDecision(layout, "alphabet", f"output {shape}: len(alphabet) + 1 = {classes} classes")
    return LayoutDecision("NTC", "assumed", f"output {shape}: axis 0 has the batch size; classes assumed last")


def decide_layout(model: torch.nn.Module, run: ModelRun, declared: str | None, alphabet: Any = None) -> LayoutDecision:
    """Which output axis is time, batch, classes: declared, read off the shape, or probed with another batch size
    (and, for a batch-first output, with a shorter input: `(N, T, C)` or `(N, C, T)`)."""
    size = run.batch.size
    if declared is not None:
        batch_axis = LAYOUT_AXES[declared][1] if declared in LAYOUT_AXES else None
        if batch_axis is None or run.output.dim() != 3 or run.output.shape[batch_axis] == size:
            return LayoutDecision(declared, "setup", f"Setup.layout = {declared!r}")
        # The declaration is refuted by the shape: trusting it would misread every axis (lengths, classes).
        return replace(decide_layout(model, run, None, alphabet), contradicted=declared)
    first, second = run.output.shape[0], run.output.shape[1]
    if first == size and second != size:
        return _time_or_classes(model, run, alphabet)
    if second == size and first != size:
        return LayoutDecision("TNC", "shape", f"output {tuple(run.output.shape)}: axis 1 has the batch size {size}")
    if first != size and second != size:
        return LayoutDecision(
            None, "undecided", f"output {tuple(run.output.shape)} has no axis of the batch size {size}"
        )
    probe_size = size - 1 if size > 1 else 2
    try:
        with evaluating(model):
            resized = resize_batch(run.batch.inputs, probe_size, size, run.batch.batch_axis)
            probed, _ = split_output(call_model(model, resized))
    except Exception as error:  # a model that only runs at one batch size cannot be probed
        return LayoutDecision(
            None,
            "undecided",
            f"T == N == {size} and the model failed on a batch of {probe_size} ({type(error).__name__}: {error})",
        )
    if probed.shape[0] == probe_size and probed.shape[1] != probe_size:
        decision = _time_or_classes(model, run, alphabet)
        return LayoutDecision(decision.layout, "probe", f"T == N == {size}; a batch of {probe_size} moved axis 0; {decision.detail}")
    if probed.shape[1] == probe_size and probed.shape[0] != probe_size:
        return LayoutDecision("TNC", "probe", f"T == N == {size}; a batch of {probe_size} moved axis 1")
    return LayoutDecision(None, "undecided", f"T == N == {size} and a batch of {probe_size} gave {tuple(probed.shape)}")


@contextlib.contextmanager
def execution_order(model: torch.nn.Module, when: str = "pre") -> Iterator[list[str]]:
    """Record the names of the modules owning parameters, in the order they run (`pre`: as they
    start, `post`: as they finish) while the block calls the model. "First" and "last" layer in
    findings mean execution order, not definition order."""
    order: list[str] = []
    names = {id(module): name for name, module in model.named_modules()}

    def record(module: torch.nn.Module, *_: Any) -> None:
        name = names.get(id(module), "")
        if name not in order:
            order.append(name)

    owners = [module for module in model.modules() if next(module.parameters(recurse=False), None) is not None]
    register = "register_forward_pre_hook" if when == "pre" else "register_forward_hook"
    hooks = [getattr(module, register)(record) for module in owners]
    try:
        yield order
    finally:
        for hook in hooks:
            hook.remove()


def to_tnc(output: torch.Tensor, layout: str | None) -> torch.Tensor:
    """A (T, N, C) view; an undecided layout is read as TNC, F.ctc_loss's own."""
    if layout == "NTC":
        return output.transpose(0, 1)
    if layout == "NCT":
        return output.permute(2, 0, 1)
    return output


# ---------------------------------------------------------------- inputs the checks ask for

@provides("batches")
def _batches(context: Context) -> list[Batch]:
    """Read up to `scan_batches` batches; a loader that yields non-batches ends the command (exit 2)."""
    wanted = max(context.options.scan_batches, context.options.max_batches)
    batches = list(iterate_batches(context.setup.loader, wanted, getattr(context.setup, "batch_axis", None)))
    forward_arguments(context.setup.model, batches[0].inputs)  # a forward that cannot take these inputs: exit 2 now
    return batches


@provides("loader_batch_size")
def _loader_batch_size(context: Context) -> int | None:
    """The batch size of the user's loader (overfit, whose checks read its chosen samples, passes the original one);
    for a plain iterable of batches, the largest batch among those read."""
    size = loader_batch_size(context.setup.loader)
    return size if size is not None else max((batch.size for batch in context.batches), default=None)


@provides("model_batches")
def _model_batches(context: Context) -> list[Batch]:
    return context.batches[: context.options.max_batches]


@provides("runs")
def _runs(context: Context) -> list[ModelRun]:
    runs = []
    for batch in context.model_batches:
        try:
            with doing(f"running the model on batch {batch.index}"):
                runs.append(run_model(context.model, batch))
        except UserInputError:  # forward cannot take these inputs at all (exit 2, see forward_arguments)
            raise
        except Exception as error:
            shape = tuple(batch.inputs.shape) if isinstance(batch.inputs, torch.Tensor) else type(batch.inputs).__name__
            raise RuntimeError(f"model(inputs) failed on batch {batch.index} (inputs {shape}): {type(error).__name__}: {error}") from error
    return runs


@provides("layout")
def _layout(context: Context) -> LayoutDecision:
    return decide_layout(context.model, context.runs[0], context.setup.layout, context.setup.alphabet)


def output_problem(output: torch.Tensor) -> str | None:
    """Why an output cannot hold CTC scores (CTC026), or None: not floating point, or no classes."""
    if not output.is_floating_point():
        return f"the model output is {str(output.dtype).replace('torch.', '')}, not floating point"
    if output.shape[-1] == 0:
        return f"the model output {tuple(output.shape)} has no classes (its last axis is empty)"
    return None


@provides("num_classes")
def _num_classes(context: Context) -> int:
    classes = int(context.runs[0].output.shape[class_dim(context.layout.layout)])
    if classes == 0:
        raise SkipCheck(f"{output_problem(context.runs[0].output)} (CTC026)")
    return classes


@provides("outputs")
def _outputs(context: Context) -> list[torch.Tensor]:
    """Each run's output as a (T, N, C) view, in the dtype the model produced; a skip when it cannot hold scores (CTC026)."""
    for run in context.runs:
        problem = output_problem(run.output)
        if problem is not None:
            raise SkipCheck(f"{problem} (CTC026)")
    return [to_tnc(run.output, context.layout.layout) for run in context.runs]


