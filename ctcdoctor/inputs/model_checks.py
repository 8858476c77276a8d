"""Inputs for the checks that run the model: the criterion audit, the loss at
initialisation, one backward pass, and spikiness.

Each is computed once and shared. Every provider here degrades to a "skipped" result
(with the reason) instead of raising when the set-up cannot support it (unknown output
lengths, targets outside the class range): those problems have their own codes, and the
checks here must not turn them into a second, louder CTC999.
"""
from __future__ import annotations

import copy
import math
import re
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
import torch.nn.functional as F

from ctcdoctor.context import Context, provides
from ctcdoctor.probe import model_device, move_inputs, to_tnc

#: Relative tolerance when comparing the user's loss with a reference value.
RTOL = 1e-3
#: Absolute slack added to RTOL (for losses near 0).
ATOL = 1e-5

REDUCTIONS = ("mean", "sum", "batch_mean")


# ---------------------------------------------------------------- shared helpers

def normalised_log_probs(output: torch.Tensor, kind: str | None) -> torch.Tensor:
    """float32 log-probabilities of a (T, N, C) output, whatever the model emitted.

    Probabilities are logged (clamped at the smallest normal float); logits and
    log-probabilities go through log_softmax (the identity for log-probabilities).
    Differentiable, so the gradient pass uses it too.
    """
    values = output.float()
    if kind == "probs":
        values = values.clamp_min(torch.finfo(torch.float32).tiny).log()
    return values.log_softmax(-1)


def per_sample_ctc(log_probs, targets, input_lengths, target_lengths, blank: int) -> torch.Tensor:
    """Unreduced CTC (N,), no zero_infinity: infeasible samples are +inf."""
    return F.ctc_loss(
        log_probs, targets, input_lengths, target_lengths, blank=blank, reduction="none", zero_infinity=False
    )


def reduce_losses(per_sample: torch.Tensor, target_lengths: torch.Tensor, how: str, zero_infinity: bool = False) -> float:
    """Reduce per-sample losses as F.ctc_loss would (`mean` divides by target length first)."""
    values = per_sample.double()
    if zero_infinity:
        values = torch.where(torch.isinf(values), torch.zeros_like(values), values)
    if how == "mean":
        return float((values / target_lengths.clamp_min(1).double()).mean())
    if how == "sum":
        return float(values.sum())
    if how == "batch_mean":
        return float(values.mean())
    raise ValueError(how)


def close(user: float, candidate: float) -> bool:
    if math.isnan(user) or math.isnan(candidate):
        return math.isnan(user) and math.isnan(candidate)
    if math.isinf(user) or math.isinf(candidate):
        return user == candidate
    return abs(user - candidate) <= RTOL * abs(candidate) + ATOL


def _kinds(context: Context) -> list[str | None]:
    """"log_probs", "probs", "logits", or "wrong_axis" (normalised over time or batch, CTC024), per run."""
    try:
        return [kind.kind if kind.axis == 2 or kind.kind not in ("log_probs", "probs") else "wrong_axis"
                for kind in context.output_kinds]
    except Exception:
        return [None] * len(context.runs)


def _targets_usable(batch, num_classes: int, blank: int) -> str | None:
    """Why F.ctc_loss cannot be trusted on this batch's targets (CTC010-012 report it), or None."""
    from ctcdoctor.batches import split_targets

    sequences, problems = split_targets(batch)
    if problems:
        return "target_lengths are inconsistent with the targets (CTC012)"
    for sequence in sequences:
        if sequence.numel() and (int(sequence.min()) < 0 or int(sequence.max()) >= num_classes):
            return "targets hold indices outside [0, C) (CTC010)"
    return None


@dataclass(frozen=True)
class Prepared:
    """One model batch ready for reference CTC."""

    batch: Any
    output: torch.Tensor
    """As returned by the model (detached), in its own layout."""
    log_probs: torch.Tensor
    """(T, N, C) float32 log-probabilities."""
    lengths: torch.Tensor
    """(N,) output lengths."""
    kind: str | None
    layout: str | None


@dataclass(frozen=True)
class PreparedBatches:
    items: tuple[Prepared, ...]
    skipped: str | None = None


@provides("ctc_batches")
def _ctc_batches(context: Context) -> PreparedBatches:
    """The model batches with normalised log-probs and output lengths, or why reference CTC cannot run."""
    lengths = context.output_lengths
    if not lengths.known:
        return PreparedBatches((), "output lengths are unknown (CTC003)")
    layout = context.layout.layout
    num_classes = context.num_classes
    blank = context.setup.blank
    if not 0 <= blank < num_classes:
        return PreparedBatches((), f"blank {blank} is outside the {num_classes} classes")
    items = []
    kinds = _kinds(context)
    for run, out_lengths, kind in zip(context.runs, lengths.per_run, kinds):
        reason = _targets_usable(run.batch, num_classes, blank)
        if reason:
            return PreparedBatches((), reason)
        tnc = to_tnc(run.output, layout)
        frames = tnc.shape[0]
        if out_lengths.shape[0] != run.batch.size or bool((out_lengths < 0).any()) or bool((out_lengths > frames).any()):
            return PreparedBatches((), "output lengths do not fit the output tensor (CTC003)")
        log_probs = normalised_log_probs(tnc.detach().cpu(), kind)
        items.append(Prepared(run.batch, run.output, log_probs, out_lengths.cpu(), kind, layout))
    return PreparedBatches(tuple(items))


# ---------------------------------------------------------------- CTC030 / CTC031: the criterion audit

@dataclass(frozen=True)
class Candidate:
    mistake: str
    """Machine-readable name: swapped_lengths, layout, wrong_blank, probabilities, raw_logits, raw_input_lengths."""
    variant: str
    """What exactly the call did, in words."""
    per_sample: torch.Tensor
    corrected: str
    """The corrected call."""
    details: dict = field(default_factory=dict)
    """Numbers the finding names (for wrong_blank: both blank indices and whether the targets use them)."""


@dataclass(frozen=True)
class CriterionAudit:
    """The user's criterion against reference CTC on one batch."""

    batch: int
    first_sample: int
    size: int
    user: float | None
    """The criterion's value (None when it raised)."""
    user_error: str | None
    reference: float
    """F.ctc_loss(log_probs, targets, output_lengths, target_lengths, blank, reduction="mean")."""
    reference_zero_infinity: float
    agrees: bool
    """The user's value equals the reference with the same reduction and zero_infinity=False."""
    mistake: str | None
    """None when agreeing or unexplained; else the mistake's name (see Candidate.mistake), or "reduction"."""
    variant: str = ""
    reduction: str = "mean"
    zero_infinity: bool = False
    """The user's value is reproduced only when infeasible samples count as 0."""
    explained_value: float | None = None
    corrected: str = ""
    infeasible: tuple[int, ...] = ()
    """Global indices of samples whose reference loss is +inf."""
    per_sample_reference: tuple[float, ...] = ()
    details: dict = field(default_factory=dict)
    """The explaining candidate's details (see Candidate.details)."""


@dataclass(frozen=True)
class CriterionAudits:
    audits: tuple[CriterionAudit, ...] = ()
    skipped: str | None = None


def _call_ctc(function: Callable[[], torch.Tensor]) -> torch.Tensor | None:
    try:
        with torch.no_grad():
            value = function()
    except Exception:
        return None
    return value.detach().double().cpu()


def _user_value(criterion, item: Prepared, output) -> tuple[torch.Tensor | None, str | None]:
    try:
        with torch.no_grad():
            value = criterion(output, item.batch.raw)
    except Exception as error:
        return None, f"{type(error).__name__}: {error}"
    try:
        tensor = torch.as_tensor(value.detach() if isinstance(value, torch.Tensor) else value).double().cpu().reshape(-1)
    except Exception as error:
        return None, f"the criterion returned a {type(value).__name__}, not a tensor or number ({error})"
    return tensor, None


def _corrected_call(blank: int, layout: str | None, kind: str | None, reduction: str = "mean") -> str:
    output = "output.transpose(0, 1)" if layout == "NTC" else "output"
    if kind == "logits":
        output += ".log_softmax(-1)"
    elif kind == "probs":
        output = f"{output}.log()"
    tail = f', reduction="{reduction}"' if reduction != "mean" else ""
    call = f"F.ctc_loss({output}, targets, output_lengths, target_lengths, blank={blank}{tail})"
    if kind == "probs":
        # log() of a softmax underflows to -inf for confident outputs: the real fix is at the head.
        call += " — better, end the model with log_softmax(dim=-1) and pass its output as is"
    return call


def _candidates(item: Prepared, blank: int, num_classes: int, corrected: str) -> list[Candidate]:
    log_probs, targets, batch = item.log_probs, item.batch.targets, item.batch
    lengths, target_lengths = item.lengths, batch.target_lengths
    found: list[Candidate] = []

    def add(mistake: str, variant: str, function: Callable[[], torch.Tensor], fix: str, details: dict | None = None) -> None:
        value = _call_ctc(function)
        if value is not None and value.shape[0] == batch.size:
            found.append(Candidate(mistake, variant, value, fix, details or {}))

    add("swapped_lengths", "input (frame) lengths and target lengths swapped",
        lambda: per_sample_ctc(log_probs, targets, target_lengths, lengths, blank),
        corrected + "  # frame lengths third, target lengths fourth")
    if item.layout == "NTC":
        native = log_probs.transpose(0, 1)  # (N, T, C) as the model returned it
        add("layout", "the batch-first (N, T, C) output passed as (T, N, C) without a transpose",
            lambda: per_sample_ctc(native, targets, lengths, target_lengths, blank),
            corrected.replace("output", "output.transpose(0, 1)", 1) if "transpose" not in corrected else corrected)
        T, N, C = log_probs.shape
        add("layout", "the batch-first (N, T, C) output reshaped/viewed to (T, N, C) instead of transposed",
            lambda: per_sample_ctc(native.reshape(T, N, C), targets, lengths, target_lengths, blank),
            corrected + "  # use .transpose(0, 1), never .view/.reshape, to swap axes")
    else:
        add("layout", "the time-first (T, N, C) output transposed to (N, T, C) before the loss",
            lambda: per_sample_ctc(log_probs.transpose(0, 1), targets, lengths, target_lengths, blank),
            corrected + "  # the output is already (T, N, C): drop the transpose")
    other = num_classes - 1 if blank == 0 else 0
    used = _target_classes(batch)
    add("wrong_blank", f"the loss uses blank={other} while Setup.blank is {blank}",
        lambda: per_sample_ctc(log_probs, targets, lengths, target_lengths, other), corrected,
        {"criterion_blank": other, "setup_blank": blank, "targets_use_criterion_blank": other in used,
         "targets_use_setup_blank": blank in used})
    add("probabilities", "probabilities (softmax) passed where log-probabilities are needed",
        lambda: per_sample_ctc(log_probs.exp(), targets, lengths, target_lengths, blank), corrected)
    if item.kind in ("logits", "wrong_axis"):
        raw = to_tnc(item.output, item.layout).float().cpu()
        if item.kind == "logits":
            add("raw_logits", "raw logits passed where log-probabilities are needed",
                lambda: per_sample_ctc(raw, targets, lengths, target_lengths, blank), corrected)
        else:
            add("wrong_axis", "an output normalised over the time or batch axis, not the classes (CTC024), passed as it is",
                lambda: per_sample_ctc(raw, targets, lengths, target_lengths, blank),
                corrected.replace("output", "output.log_softmax(-1)", 1))
    raw_lengths = batch.input_lengths.to(lengths.device, torch.long)
    frames = log_probs.shape[0]
    if not torch.equal(raw_lengths, lengths):
        if int(raw_lengths.max()) <= frames:
            add("raw_input_lengths", "the raw input lengths passed instead of the output (frame) lengths",
                lambda: per_sample_ctc(log_probs, targets, raw_lengths, target_lengths, blank), corrected)
        else:
            # F.ctc_loss raises on lengths above T, so a criterion that runs must have cut them to T:
            # input_lengths.clamp(max=T) is the usual way to silence that error.
            clamped = raw_lengths.clamp(max=frames)
            if not torch.equal(clamped, lengths):
                add("raw_input_lengths",
                    f"the raw input lengths, cut to the {frames} output frames, passed instead of the output (frame) lengths",
                    lambda: per_sample_ctc(log_probs, targets, clamped, target_lengths, blank), corrected)
    return found


def _target_classes(batch) -> set[int]:
    """The class indices the batch's targets use (within their lengths)."""
    from ctcdoctor.batches import split_targets

    sequences, _ = split_targets(batch)
    return {int(value) for sequence in sequences for value in sequence.unique().tolist()}


_SIZE_PATTERN = re.compile(r"size (?:at least )?(\d+)")


def _explain_error(error: str, item: Prepared) -> tuple[str, str] | None:
    """Name the mistake behind an exception of F.ctc_loss, from the numbers in its message."""
    numbers = {int(value) for value in _SIZE_PATTERN.findall(error)}
    lengths = item.lengths
    if "'targets'" in error and lengths.numel() and (int(lengths.max()) in numbers or int(lengths.sum()) in numbers):
        return "swapped_lengths", "input (frame) lengths and target lengths swapped: F.ctc_loss raised " + error
    if "input_lengths must be of size batch_size" in error or "batch_size" in error:
        return "layout", "the output's batch axis is not where F.ctc_loss expects it (axis 1): it raised " + error
    if "input_lengths to have value at most" in error:
        return "raw_input_lengths", (
            "the input lengths passed are longer than the output: the raw input lengths instead of the output (frame) "
            "lengths? F.ctc_loss raised " + error
        )
    return None


def audit_criterion(criterion, item: Prepared, blank: int, num_classes: int) -> CriterionAudit:
    batch = item.batch
    target_lengths = batch.target_lengths
    reference = _call_ctc(lambda: per_sample_ctc(item.log_probs, batch.targets, item.lengths, target_lengths, blank))
    if reference is None:
        raise RuntimeError("reference F.ctc_loss failed on this batch")
    infeasible = tuple(int(batch.first_sample + i) for i in torch.isposinf(reference).nonzero().flatten().tolist())
    ref_mean = reduce_losses(reference, target_lengths, "mean")
    ref_zi = reduce_losses(reference, target_lengths, "mean", zero_infinity=True)
    corrected = _corrected_call(blank, item.layout, item.kind)
    common = dict(
        batch=batch.index, first_sample=batch.first_sample, size=batch.size, reference=ref_mean,
        reference_zero_infinity=ref_zi, infeasible=infeasible, per_sample_reference=tuple(float(v) for v in reference),
    )
    user, error = _user_value(criterion, item, item.output)
    if error is not None:
        # F.ctc_loss raising on the batch axis: does the criterion work once the output is transposed?
        if item.layout is not None:
            transposed, transposed_error = _user_value(criterion, item, item.output.transpose(0, 1))
            if transposed is not None and transposed.numel() == 1 and close(float(transposed), ref_mean):
                return CriterionAudit(
                    user=None, user_error=error, agrees=False, mistake="layout",
                    variant="the output's batch axis is not where F.ctc_loss expects it: the criterion raised, "
                    "and works once the output is transposed", explained_value=float(transposed),
                    corrected=_corrected_call(blank, item.layout, item.kind), **common)
        explained = _explain_error(error, item)
        if explained is not None:
            return CriterionAudit(user=None, user_error=error, agrees=False, mistake=explained[0], variant=explained[1],
                                  corrected=corrected, **common)
        return CriterionAudit(user=None, user_error=error, agrees=False, mistake="raises", variant=error,
                              corrected=corrected, **common)
    assert user is not None
    if user.numel() == batch.size and batch.size != 1:
        # reduction="none": compare sample by sample.
        matches = all(close(float(u), float(r)) for u, r in zip(user, reference))
        if matches:
            return CriterionAudit(user=float(user.mean()), user_error=None, agrees=True, mistake=None, reduction="none", **common)
        for candidate in _candidates(item, blank, num_classes, corrected):
            if all(close(float(u), float(c)) for u, c in zip(user, candidate.per_sample)):
                return CriterionAudit(user=float(user.mean()), user_error=None, agrees=False, mistake=candidate.mistake,
                                      variant=candidate.variant, reduction="none", corrected=candidate.corrected,
                                      details=candidate.details, **common)
        return CriterionAudit(user=float(user.mean()), user_error=None, agrees=False, mistake=None, reduction="none", **common)
    if user.numel() != 1:
        return CriterionAudit(user=None, user_error=f"the criterion returned {user.numel()} values for a batch of {batch.size}; "
                              "return one scalar", agrees=False, mistake="raises",
                              variant="returned a tensor that is neither a scalar nor one value per sample", corrected=corrected, **common)
    value = float(user)
    for zero_infinity in (False, True):
        for how in REDUCTIONS:
            if close(value, reduce_losses(reference, target_lengths, how, zero_infinity)):
                agrees = how == "mean" and not zero_infinity
                return CriterionAudit(
                    user=value, user_error=None, agrees=agrees, mistake=None if how == "mean" else "reduction",
                    variant="" if how == "mean" else _reduction_words(how), reduction=how, zero_infinity=zero_infinity,
                    explained_value=reduce_losses(reference, target_lengths, how, zero_infinity),
                    corrected=_corrected_call(blank, item.layout, item.kind), **common)
    for candidate in _candidates(item, blank, num_classes, corrected):
        for zero_infinity in (False, True):
            for how in REDUCTIONS:
                explained = reduce_losses(candidate.per_sample, target_lengths, how, zero_infinity)
                if close(value, explained):
                    return CriterionAudit(
                        user=value, user_error=None, agrees=False, mistake=candidate.mistake, variant=candidate.variant,
                        reduction=how, zero_infinity=zero_infinity, explained_value=explained,
                        corrected=candidate.corrected, details=candidate.details, **common)
    return CriterionAudit(user=value, user_error=None, agrees=False, mistake=None, corrected=corrected, **common)


def _reduction_words(how: str) -> str:
    return {
        "sum": 'reduction="sum": per-sample losses summed over the batch',
        "batch_mean": "per-sample losses averaged over the batch without dividing by target lengths "
        '(reduction="none" then .mean())',
        "mean": 'reduction="mean"',
        "none": 'reduction="none"',
    }[how]


@provides("criterion_audit")
def _criterion_audit(context: Context) -> CriterionAudits:
    criterion = context.setup.criterion
    if criterion is None:
        return CriterionAudits((), "no Setup.criterion")
    prepared = context.ctc_batches
    if prepared.skipped:
        return CriterionAudits((), prepared.skipped)
    audits = tuple(audit_criterion(criterion, item, context.setup.blank, context.num_classes) for item in prepared.items)
    return CriterionAudits(audits)


# ---------------------------------------------------------------- CTC050 / CTC051: loss at initialisation

@dataclass(frozen=True)
class InitLoss:
    """Reference CTC per sample at initialisation, and what uniform outputs would give."""

    samples: tuple[int, ...] = ()
    """Global sample indices."""
    loss: tuple[float, ...] = ()
    """Per-sample reference CTC (sum over the sequence, nats); +inf / nan kept."""
    uniform: tuple[float, ...] = ()
    """Per-sample CTC of uniform outputs (log 1/C everywhere) with the same lengths: +inf when infeasible."""
    target_lengths: tuple[int, ...] = ()
    num_classes: int = 0
    skipped: str | None = None


@provides("init_loss")
def _init_loss(context: Context) -> InitLoss:
    prepared = context.ctc_batches
    if prepared.skipped:
        return InitLoss(skipped=prepared.skipped)
    blank = context.setup.blank
    samples, losses, uniform, target_lengths = [], [], [], []
    for item in prepared.items:
        batch = item.batch
        with torch.no_grad():
            loss = per_sample_ctc(item.log_probs, batch.targets, item.lengths, batch.target_lengths, blank)
            flat = torch.full_like(item.log_probs, -math.log(item.log_probs.shape[-1]))
            expected = per_sample_ctc(flat, batch.targets, item.lengths, batch.target_lengths, blank)
        samples.extend(range(batch.first_sample, batch.first_sample + batch.size))
        losses.extend(float(v) for v in loss)
        uniform.extend(float(v) for v in expected)
        target_lengths.extend(int(v) for v in batch.target_lengths)
    return InitLoss(tuple(samples), tuple(losses), tuple(uniform), tuple(target_lengths), context.num_classes)


# ---------------------------------------------------------------- CTC060-CTC063: one backward pass

@dataclass(frozen=True)
class LayerGradient:
    name: str
    kind: str
    parameters: int
    trainable: int
    grad_norm: float | None
    """L2 norm of the gradients of the layer's own parameters; None when none received one."""
    weight_norm: float
    nonfinite: tuple[str, ...] = ()
    """Parameters (full names) whose gradient holds NaN or Inf."""
    no_grad: tuple[str, ...] = ()
    """Trainable parameters whose gradient is None."""
    zero_grad: tuple[str, ...] = ()
    """Trainable parameters whose gradient is exactly zero everywhere."""


@dataclass(frozen=True)
class Gradients:
    layers: tuple[LayerGradient, ...] = ()
    global_norm: float | None = None
    loss: float | None = None
    batch: int | None = None
    samples_used: int = 0
    samples_left_out: tuple[int, ...] = ()
    mode: str = ""
    skipped: str | None = None

    @property
    def with_grad(self) -> list[LayerGradient]:
        return [layer for layer in self.layers if layer.grad_norm is not None and math.isfinite(layer.grad_norm) and layer.grad_norm > 0]

    def first_last_ratio(self) -> float | None:
        """Gradient norm of the first layer over that of the last (in execution order)."""
        layers = self.with_grad
        if len(layers) < 2:
            return None
        return layers[0].grad_norm / layers[-1].grad_norm

    def table(self) -> dict[str, Any]:
        rows = []
        for layer in self.layers:
            if layer.trainable == 0:
                continue
            if layer.nonfinite:
                grad = "nan/inf"
            elif layer.grad_norm is None:
                grad = "none"
            else:
                grad = f"{layer.grad_norm:.3g}"
            ratio = (
                f"{layer.grad_norm / layer.weight_norm:.3g}"
                if layer.grad_norm is not None and math.isfinite(layer.grad_norm) and layer.weight_norm > 0 else "-"
            )
            rows.append([layer.name, layer.kind, f"{layer.trainable:,}", grad, f"{layer.weight_norm:.3g}", ratio])
        return {"columns": ["layer", "type", "params", "grad norm", "weight norm", "grad/weight"], "rows": rows}

    def evidence_layers(self) -> list[dict[str, Any]]:
        return [
            {"layer": layer.name, "type": layer.kind, "params": layer.trainable, "grad_norm": layer.grad_norm,
             "weight_norm": layer.weight_norm}
            for layer in self.layers if layer.trainable
        ]


def _dropout_off(model: torch.nn.Module) -> None:
    """Train mode (BatchNorm uses batch statistics, as in training) with dropout off, for a deterministic pass."""
    model.train()
    for module in model.modules():
        if isinstance(module, (torch.nn.modules.dropout._DropoutNd, torch.nn.RNNBase)):
            module.eval()


def backward_pass(model: torch.nn.Module, item: Prepared, keep: torch.Tensor, blank: int):
    """Reference CTC and one backward on a deep copy of `model`.

    Returns (copy, loss, mode, names of the modules with parameters in the order they ran).
    """
    clone = copy.deepcopy(model)
    clone.zero_grad(set_to_none=True)
    batch = item.batch
    mode = "train mode (batch statistics), dropout off"
    _dropout_off(clone)
    # Record the order in which modules with parameters run: "first" and "last" layer mean execution order.
    order: list[str] = []
    names = {id(module): name for name, module in clone.named_modules()}

    def record(module, _inputs) -> None:
        name = names.get(id(module), "")
        if name not in order:
            order.append(name)

    hooks = [module.register_forward_pre_hook(record) for module in clone.modules()
             if any(True for _ in module.parameters(recurse=False))]
    try:
        try:
            raw = clone(move_inputs(batch.inputs, model_device(clone)))
        except Exception:
            # BatchNorm refuses batch statistics on one value per channel: fall back to eval mode.
            clone.eval()
            mode = "eval mode"
            order.clear()
            raw = clone(move_inputs(batch.inputs, model_device(clone)))
    finally:
        for hook in hooks:
            hook.remove()
    output = raw[0] if isinstance(raw, (tuple, list)) else raw
    tnc = to_tnc(output, item.layout)
    log_probs = normalised_log_probs(tnc, item.kind)
    device = log_probs.device
    losses = F.ctc_loss(log_probs, batch.targets.to(device), item.lengths.to(device), batch.target_lengths.to(device),
                        blank=blank, reduction="none", zero_infinity=True)
    weights = keep.to(device).double() / batch.target_lengths.to(device).clamp_min(1).double()
    loss = (losses.double() * weights).sum() / keep.sum().clamp_min(1)
    loss.backward()
    return clone, float(loss.detach()), mode, tuple(order)


def layer_gradients(model: torch.nn.Module, call_order: tuple[str, ...] = ()) -> tuple[tuple[LayerGradient, ...], float]:
    """Per-layer gradient norms, layers in execution order (modules that never ran last)."""
    layers = []
    total = 0.0
    order = {name: position for position, name in enumerate(call_order)}
    modules = sorted(model.named_modules(), key=lambda item: order.get(item[0], len(order)))  # stable: uncalled keep their place
    for name, module in modules:
        parameters = list(module.named_parameters(recurse=False))
        if not parameters:
            continue
        prefix = f"{name}." if name else ""
        squared, weight_squared, seen = 0.0, 0.0, False
        nonfinite, no_grad, zero_grad = [], [], []
        trainable = 0
        for pname, parameter in parameters:
            weight_squared += float(parameter.detach().double().pow(2).sum())
            if not parameter.requires_grad:
                continue
            trainable += parameter.numel()
            grad = parameter.grad
            if grad is None:
                no_grad.append(prefix + pname)
                continue
            seen = True
            grad = grad.detach().double()
            if not bool(torch.isfinite(grad).all()):
                nonfinite.append(prefix + pname)
                squared = float("nan")
                continue
            if not bool(grad.any()):
                zero_grad.append(prefix + pname)
            squared += float(grad.pow(2).sum())
        norm = math.sqrt(squared) if seen and not math.isnan(squared) else (float("nan") if nonfinite else None)
        if norm is not None and math.isfinite(norm):
            total += norm * norm
        layers.append(LayerGradient(
            name or "(model)", type(module).__name__, sum(p.numel() for _, p in parameters), trainable, norm,
            math.sqrt(weight_squared), tuple(nonfinite), tuple(no_grad), tuple(zero_grad)))
    return tuple(layers), math.sqrt(total)


#: The backward pass uses at most this many samples of the first model batch (cost grows with it).
GRAD_SAMPLES = 8


def _select(item: Prepared, indices: list[int]) -> Prepared:
    """A sub-batch of the given samples (inputs must be a tensor with the batch first)."""
    import dataclasses

    batch = item.batch
    index = torch.tensor(indices, dtype=torch.long)
    if batch.concatenated:
        ends = torch.cumsum(batch.target_lengths.clamp_min(0), 0)
        starts = ends - batch.target_lengths.clamp_min(0)
        targets = torch.cat([batch.targets[int(starts[i]):int(ends[i])] for i in indices])
    else:
        targets = batch.targets[index]
    small = dataclasses.replace(
        batch, inputs=batch.inputs[index.to(batch.inputs.device)], targets=targets, input_lengths=batch.input_lengths[index],
        target_lengths=batch.target_lengths[index], raw=None,
    )
    return dataclasses.replace(item, batch=small, lengths=item.lengths[index])


@provides("gradients")
def _gradients(context: Context) -> Gradients:
    prepared = context.ctc_batches
    if prepared.skipped:
        return Gradients(skipped=prepared.skipped)
    if not any(parameter.requires_grad for parameter in context.model.parameters()):
        return Gradients(skipped="the model has no trainable parameters")
    item = prepared.items[0]
    init = context.init_loss
    first = item.batch.first_sample
    per_sample = torch.tensor(init.loss[: item.batch.size]) if init.samples and init.samples[0] == first else None
    if per_sample is None:
        return Gradients(skipped="no loss at initialisation")
    keep = torch.isfinite(per_sample)
    left_out = tuple(first + i for i in (~keep).nonzero().flatten().tolist())
    if not bool(keep.any()):
        return Gradients(skipped="every sample of the batch has a non-finite loss (CTC001/CTC050)", samples_left_out=left_out)
    chosen = keep.nonzero().flatten().tolist()[:GRAD_SAMPLES]
    result = None
    if isinstance(item.batch.inputs, torch.Tensor) and len(chosen) < item.batch.size:
        # Only finite samples, and few of them: a NaN sample would spread through BatchNorm's batch statistics.
        small = _select(item, chosen)
        try:
            result = backward_pass(context.model, small, torch.ones(len(chosen), dtype=torch.bool), context.setup.blank)
            item, keep = small, torch.ones(len(chosen), dtype=torch.bool)
        except Exception:
            result = None  # a model that only runs at its own batch size: use the whole batch
    if result is None:
        result = backward_pass(context.model, item, keep, context.setup.blank)
    clone, loss, mode, call_order = result
    if not math.isfinite(loss):
        return Gradients(skipped=f"the loss of the backward pass is {loss} (see CTC050)", samples_left_out=left_out)
    layers, norm = layer_gradients(clone, call_order)
    del clone
    return Gradients(layers, norm, loss, item.batch.index, int(keep.sum()), left_out, mode)


# ---------------------------------------------------------------- CTC080: spikiness

@dataclass(frozen=True)
class OutputSpikiness:
    metrics: dict[str, Any] = field(default_factory=dict)
    frames: int = 0
    skipped: str | None = None


@provides("output_spikiness")
def _output_spikiness(context: Context) -> OutputSpikiness:
    from ctcdoctor.ctc import spikiness

    prepared = context.ctc_batches
    if prepared.skipped:
        return OutputSpikiness(skipped=prepared.skipped)
    frames = max(item.log_probs.shape[0] for item in prepared.items)
    # Pad every batch to the longest in time; frames past each sample's length are masked by the metric.
    log_probs = torch.cat([F.pad(item.log_probs, (0, 0, 0, 0, 0, frames - item.log_probs.shape[0])) for item in prepared.items], dim=1)
    lengths = torch.cat([item.lengths for item in prepared.items])
    if not bool(torch.isfinite(log_probs).all()):
        log_probs = log_probs.nan_to_num(nan=-1e4, neginf=-1e4, posinf=0.0)
    result = spikiness(log_probs, lengths, blank=context.setup.blank)
    return OutputSpikiness(result.as_dict(), int(lengths.sum()))
