"""What the model emits: log-probabilities, probabilities, or raw logits, and over which axis."""
from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch

from ctcdoctor.engine import Context, provides
from ctcdoctor.load.batches import Batch, select_samples
from ctcdoctor.measure.model import ModelRun

#: A frame counts as normalised when its class sum (or log-sum-exp) is within this of 1 (0).
SUM_TOLERANCE = 1e-3
#: Share of frames that must be normalised for an axis to count as the softmax axis.
FRAME_SHARE = 0.99
AXIS_NAMES = {0: "time", 1: "batch", 2: "class"}


def log_softmax_call(layout: str | None) -> str:
    """The log_softmax a fix should name for the model's own output: the class axis is last in (T, N, C) and
    (N, T, C), the middle one of an (N, C, T) output (a Conv1d head, torchaudio's Wav2Letter)."""
    return "log_softmax(dim=1)" if layout == "NCT" else "log_softmax(dim=-1)"


@dataclass(frozen=True)
class OutputKind:
    kind: str
    """"log_probs", "probs", "logits" or "empty"."""
    axis: int
    """The (T, N, C) axis the softmax was taken over (2 = classes, the right one)."""
    nan: int
    posinf: int
    neginf: int
    min: float
    max: float

    @property
    def wrong_axis(self) -> bool:
        return self.kind in ("log_probs", "probs") and self.axis != 2


def _normalised_over(values: torch.Tensor, axis: int, as_log: bool) -> bool:
    if values.shape[axis] < 2:
        return False
    totals = torch.logsumexp(values, dim=axis) if as_log else values.sum(dim=axis) - 1
    judged = ~torch.isnan(totals)  # slices touching a NaN/+inf frame are left out
    if not bool(judged.any()):
        return False
    close = totals[judged].abs() < SUM_TOLERANCE
    return float(close.double().mean()) >= FRAME_SHARE


def classify_output(tnc: torch.Tensor) -> OutputKind:
    """Classify a (T, N, C) output. Frames with NaN or +inf are left out of the classification."""
    values = tnc.detach().to("cpu", torch.float64)
    nan = int(torch.isnan(values).sum())
    posinf = int(torch.isposinf(values).sum())
    neginf = int(torch.isneginf(values).sum())
    bad_frames = (torch.isnan(values) | torch.isposinf(values)).any(dim=2)
    finite = values[~torch.isinf(values) & ~torch.isnan(values)]
    low = float(finite.min()) if finite.numel() else float("nan")
    high = float(finite.max()) if finite.numel() else float("nan")
    if bool(bad_frames.all()) or values.numel() == 0:
        return OutputKind("empty", 2, nan, posinf, neginf, low, high)
    # Judge on whole frames without NaN/+inf; -inf is a legal log-probability of zero.
    clean = values.masked_fill(bad_frames.unsqueeze(-1), float("nan"))
    in_unit = low >= -1e-6 and high <= 1 + 1e-4 and neginf == 0
    for axis in (2, 0, 1):
        if in_unit and _normalised_over(clean, axis, as_log=False):
            return OutputKind("probs", axis, nan, posinf, neginf, low, high)
        if high <= 1e-4 and _normalised_over(clean, axis, as_log=True):
            return OutputKind("log_probs", axis, nan, posinf, neginf, low, high)
    return OutputKind("logits", 2, nan, posinf, neginf, low, high)


def nonfinite_output_samples(runs: list, outputs: list[torch.Tensor]) -> list[int]:
    """Global indices of the samples whose (T, N, C) output holds NaN or ±Inf."""
    samples: list[int] = []
    for run, tnc in zip(runs, outputs):
        bad = (~torch.isfinite(tnc.detach())).any(dim=2).any(dim=0)
        samples.extend(run.batch.sample_id(int(i)) for i in bad.nonzero().flatten().tolist())
    return samples


def nonfinite_input_samples(input_stats: list | None) -> set[int]:
    """Samples with NaN or Inf in any measured input tensor (CTC040)."""
    return {sample for stats in input_stats or [] for sample in stats.nonfinite_samples}


@provides("output_kinds")
def _output_kinds(context: Context):
    """How each run's output is normalised (log-probs, probs, logits; which axis)."""
    return [classify_output(output) for output in context.outputs]


# ---------------------------------------------------------------- what training sees (CTC020, CTC021, CTC024)
#
# The checks run the model in eval mode, as inference does. Some models change what they emit with
# `self.training`: deepspeech.pytorch ends with `InferenceBatchSoftmax` (softmax in eval mode only), and its
# training step applies log_softmax itself. Judged on the eval output alone, such a model "outputs probabilities";
# training never sees them. So when the eval output is not log-probabilities over the classes, the model batches
# are run once more in train mode (on a copy, no gradients), and when training sees another kind of output, the
# checks of what reaches the loss judge that one.

@dataclass(frozen=True)
class ModeSwitch:
    """The module whose output changes kind with `self.training`."""

    name: str
    """Its path in the model (`inference_softmax`); "" for the model itself (an `if self.training` in its forward)."""
    type: str
    """Its class name (`InferenceBatchSoftmax`)."""
    eval_kind: str
    """Its own output in eval mode: "probs", "log_probs" (with the axis after a colon, `probs:2`) or "other"."""
    train_kind: str
    """The same in train mode."""


@dataclass(frozen=True)
class TrainingView:
    """The model's output in train mode, when it differs in kind from the eval-mode output the checks read."""

    runs: tuple[ModelRun, ...] = ()
    """Train-mode runs of the model batches (the same batches as `runs`), when the kind differs; else empty."""
    kinds: tuple[OutputKind, ...] = ()
    """The kind of each train-mode output, judged as `output_kinds` judges the eval ones."""
    switch: ModeSwitch | None = None
    """The module that switches, when it could be found."""
    how: str = ""
    """How the train-mode forward ran without changing the user's model (a copy, or the model with its state restored)."""
    skipped: str | None = None
    """Why no train-mode output is known (the eval output is log-probabilities; the train-mode forward failed)."""

    @property
    def differs(self) -> bool:
        return bool(self.runs)

    def judged(self, output_kinds: list[OutputKind]) -> list[OutputKind]:
        """The output kinds the loss sees: the train-mode ones when they differ, else the eval-mode ones."""
        return list(self.kinds) if self.differs else list(output_kinds)


def _same_kind(first: OutputKind, second: OutputKind) -> bool:
    if "empty" in (first.kind, second.kind):
        return True  # nothing to compare (every frame NaN): no claim either way
    return (first.kind, first.axis) == (second.kind, second.axis)


def _suspect(kind: OutputKind) -> bool:
    """An eval output that CTC020, CTC021 or CTC024 would report: worth a look at what training sees."""
    return kind.kind in ("probs", "logits") or kind.wrong_axis


@contextlib.contextmanager
def training_mode(model: torch.nn.Module) -> Iterator[tuple[torch.nn.Module, str]]:
    """The model in train mode under no_grad, for forwards whose side effects must not reach the user's model.

    The model itself, not a copy: a copy would double its memory (a 300M-parameter wav2vec2 on a GPU) on every check
    of a model that outputs logits, the common case. A no-grad forward leaves the parameters alone; its buffers
    (BatchNorm's running statistics and batch counter) and train/eval modes are put back afterwards. The random
    state is forked, so dropout in these forwards does not move the generators the rest of the run (and the user)
    draws from.
    """
    trainee, how = model, "the model in train mode, its buffers and modes restored afterwards"
    modes = [(module, module.training) for module in trainee.modules()]
    saved = [
        (module, name, buffer, buffer.detach().clone())
        for module in model.modules() for name, buffer in module._buffers.items() if buffer is not None
    ]
    tensors = [*model.parameters(), *model.buffers()]
    devices = sorted({tensor.device.index or 0 for tensor in tensors if tensor.device.type == "cuda"})
    try:
        with torch.random.fork_rng(devices=devices), torch.no_grad():
            trainee.train()
            yield trainee, how
    finally:
        with torch.no_grad():
            for module, name, buffer, value in saved:
                module._buffers[name] = buffer  # a forward may rebind a buffer rather than update it in place
                buffer.copy_(value)
        for module, training in modes:
            module.training = training


def _first_tensor(value: Any) -> torch.Tensor | None:
    if isinstance(value, torch.Tensor):
        return value
    logits = getattr(value, "logits", None)
    if isinstance(logits, torch.Tensor):
        return logits
    if isinstance(value, (tuple, list)) and value:
        return _first_tensor(value[0])
    return None


def tensor_kind(value: Any) -> str | None:
    """What a module's input or output holds: "probs:AXIS" or "log_probs:AXIS" when it is normalised over that axis,
    "other" otherwise; None when it is not a floating-point tensor."""
    tensor = _first_tensor(value)
    if tensor is None or not tensor.is_floating_point() or tensor.dim() == 0 or tensor.numel() == 0:
        return None
    values = tensor.detach().float()
    low, high = float(values.amin()), float(values.amax())
    if math.isnan(low) or math.isnan(high):
        return "other"
    as_probs, as_log = low >= -1e-6 and high <= 1 + 1e-4, high <= 1e-4
    for axis in reversed(range(values.dim())):  # the class axis is usually the last one
        if as_probs and _normalised_over(values, axis, as_log=False):
            return f"probs:{axis}"
        if as_log and _normalised_over(values, axis, as_log=True):
            return f"log_probs:{axis}"
    return "other"


def _module_kinds(model: torch.nn.Module, inputs: Any) -> dict[str, tuple[str | None, str | None]]:
    """Run the model once with a hook on every module: {name: (kind of its first input, kind of its output)}, in the
    order the modules finished."""
    names = {id(module): name for name, module in model.named_modules()}
    seen: dict[str, tuple[str | None, str | None]] = {}

    def record(module: torch.nn.Module, args: Any, output: Any) -> None:
        name = names.get(id(module))
        if name is not None:
            seen.pop(name, None)
            seen[name] = (tensor_kind(args), tensor_kind(output))

    from ctcdoctor.measure.model import call_model

    hooks = [module.register_forward_hook(record) for module in model.modules()]
    try:
        call_model(model, inputs)
    finally:
        for hook in hooks:
            hook.remove()
    return seen


def find_switch(model: torch.nn.Module, inputs: Any) -> ModeSwitch | None:
    """The innermost module whose output changes kind between eval and train mode while its input does not (the one
    that reads `self.training`); the last to run when several do. `model` is put in eval, then in train mode."""
    model.eval()
    evaluated = _module_kinds(model, inputs)
    model.train()
    trained = _module_kinds(model, inputs)
    switching = [name for name, (kind_in, kind_out) in trained.items()
                 if name in evaluated and evaluated[name][0] == kind_in and evaluated[name][1] != kind_out]
    innermost = [name for name in switching
                 if not any(other != name and (name == "" or other.startswith(name + ".")) for other in switching)]
    if not innermost:
        return None
    name = innermost[-1]
    module = dict(model.named_modules())[name]
    return ModeSwitch(name, type(module).__name__, str(evaluated[name][1]), str(trained[name][1]))


#: The train-mode forward that decides whether training sees another kind of output runs on at most this many
#: samples of the first model batch (the whole batches run only when it does).
PROBE_SAMPLES = 8


def _forward(model: torch.nn.Module, batch: Batch) -> ModelRun:
    from ctcdoctor.measure.model import call_model, split_output

    raw = call_model(model, batch.inputs)
    output, lengths = split_output(raw)
    return ModelRun(batch, output, lengths, raw)


def _probe(model: torch.nn.Module, batch: Batch) -> ModelRun:
    """A train-mode run on the first PROBE_SAMPLES samples of `batch`; the whole batch for a model that runs only on
    its own batch size."""
    if batch.size > PROBE_SAMPLES:
        try:
            return _forward(model, select_samples(batch, list(range(PROBE_SAMPLES))))
        except Exception:
            pass
    return _forward(model, batch)


def training_view(model: torch.nn.Module, runs: list[ModelRun], layout: str | None,
                  output_kinds: list[OutputKind]) -> TrainingView:
    """The first model batch in train mode when the eval output is not log-probabilities over the classes; when
    training sees another kind of output, every model batch in train mode (see `TrainingView`)."""
    from ctcdoctor.measure.model import output_problem, to_tnc

    if not any(_suspect(kind) for kind in output_kinds):
        return TrainingView(skipped="the eval-mode output is log-probabilities over the classes")
    trained: list[ModelRun] = []
    kinds: list[OutputKind] = []
    try:
        with training_mode(model) as (trainee, how):
            probe = _probe(trainee, runs[0].batch)
            problem = output_problem(probe.output)
            if problem is not None:
                return TrainingView(skipped=f"the train-mode output cannot hold scores: {problem}", how=how)
            if _same_kind(classify_output(to_tnc(probe.output, layout)), output_kinds[0]):
                return TrainingView(skipped="training sees the same kind of output", how=how)
            for run in runs:
                train = probe if probe.batch is run.batch else _forward(trainee, run.batch)
                if output_problem(train.output) is not None or train.output.shape != run.output.shape:
                    return TrainingView(skipped=f"the train-mode output {tuple(train.output.shape)} cannot be compared "
                                        f"with the eval-mode one {tuple(run.output.shape)}", how=how)
                trained.append(train)
                kinds.append(classify_output(to_tnc(train.output, layout)))
            try:
                switch = find_switch(trainee, probe.batch.inputs)
            except Exception:  # the hooks or a second pass failed: the view stands without a name
                switch = None
    except Exception as error:  # BatchNorm on one value per channel, a model that only runs in eval mode
        return TrainingView(skipped=f"the train-mode forward failed ({type(error).__name__}: {error})")
    return TrainingView(tuple(trained), tuple(kinds), switch, how)


@provides("training_view")
def _training_view(context: Context) -> TrainingView:
    """What training sees, when the eval-mode output the checks read is not what reaches the loss (see TrainingView)."""
    return training_view(context.model, context.runs, context.layout.layout, context.output_kinds)
