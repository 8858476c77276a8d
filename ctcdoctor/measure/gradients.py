"""CTC060-CTC063: one backward pass of reference CTC on a deep copy of the model, per-layer norms."""
from __future__ import annotations

import copy
import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from ctcdoctor.engine import Context, provides
from ctcdoctor.load.batches import select_samples, tensor_leaves
from ctcdoctor.measure.model import call_model, execution_order, read_output, to_tnc
from ctcdoctor.measure.outputs import classify_output
from ctcdoctor.measure.reference import Prepared, normalised_log_probs, prepared_kind

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
    ran: bool = True
    """The module's forward ran in the backward pass's forward. One that did not (skipped by layerdrop, built and
    never called, or whose weight another module reads) is left out of CTC061-CTC063: no gradient is expected."""


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
    nonfinite_in_pass: tuple[int, ...] = ()
    """Samples left out of the loss (non-finite at initialisation) that still ran through the forward pass,
    because the model only runs on its whole batch: their NaN can reach the gradients through a zero weight."""
    saturating: tuple[str, ...] = ()
    """Names of the model's saturating activation modules (Sigmoid, Tanh, ...): CTC061's usual cause, when present."""
    behind_zero_weights: tuple[str, ...] = ()
    """Parameters whose all-zero gradient comes from trainable weights initialised to exactly zero downstream (a TPS
    localisation head, ResNet's zero_init_residual): nudging those weights gives them a gradient, so they train
    from the second step on. Left out of `zero_grad` (CTC063)."""
    zero_weights: tuple[str, ...] = ()
    """The all-zero trainable weights that explain `behind_zero_weights`."""

    @property
    def with_grad(self) -> list[LayerGradient]:
        """Layers that ran and received a finite, non-zero gradient, in execution order."""
        return [layer for layer in self.layers
                if layer.ran and layer.grad_norm is not None and math.isfinite(layer.grad_norm) and layer.grad_norm > 0]

    def first_last_ratio(self) -> float | None:
        """Gradient norm of the first layer over that of the last (in execution order)."""
        layers = self.with_grad
        if len(layers) < 2:
            return None
        first, last = layers[0].grad_norm, layers[-1].grad_norm
        assert first is not None and last is not None  # with_grad keeps only layers with a finite norm
        return first / last

    def table(self) -> dict[str, Any]:
        rows = []
        for layer in self.layers:
            if layer.trainable == 0:
                continue
            if layer.nonfinite:
                grad = "nan/inf"
            elif layer.grad_norm is None:
                grad = "none" if layer.ran else "not run"
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
             "weight_norm": layer.weight_norm, **({} if layer.ran else {"ran": False})}
            for layer in self.layers if layer.trainable
        ]


def _dropout_off(model: torch.nn.Module) -> None:
    """Train mode (BatchNorm uses batch statistics, as in training) with dropout off, for a deterministic pass."""
    model.train()
    for module in model.modules():
        if isinstance(module, (torch.nn.modules.dropout._DropoutNd, torch.nn.RNNBase)):
            module.eval()


@torch.enable_grad()  # ctcdoctor.check() may be called under torch.no_grad() (a notebook, an eval loop)
def backward_pass(model: torch.nn.Module, item: Prepared, keep: torch.Tensor, blank: int):
    """Reference CTC and one backward on a deep copy of `model`.

    Returns (copy, loss, mode, names of the modules with parameters in the order they ran).
    """
    clone = copy.deepcopy(model)
    clone.zero_grad(set_to_none=True)
    batch = item.batch
    mode = "train mode (batch statistics), dropout off"
    _dropout_off(clone)
    with execution_order(clone) as order:
        try:
            raw = call_model(clone, batch.inputs)
        except Exception:
            # BatchNorm refuses batch statistics on one value per channel: fall back to eval mode.
            clone.eval()
            mode = "eval mode"
            order.clear()
            raw = call_model(clone, batch.inputs)
    read = read_output(raw)
    tnc = to_tnc(read.output, item.layout)
    # Normalised as this pass's own output needs: a softmax that runs in eval mode only (item.kind was measured in
    # eval mode) leaves logits here, and logging them as if they were probabilities would train on nonsense.
    log_probs = normalised_log_probs(tnc, prepared_kind(classify_output(tnc.detach())) if mode != "eval mode" else item.kind)
    device = log_probs.device
    losses = F.ctc_loss(log_probs, batch.targets.to(device), item.lengths.to(device), batch.target_lengths.to(device),
                        blank=blank, reduction="none", zero_infinity=True)
    weights = keep.to(device).double() / batch.target_lengths.to(device).clamp_min(1).double()
    loss = (losses.double() * weights).sum() / keep.sum().clamp_min(1)
    others = [tensor for _, value in read.unread for _, tensor in tensor_leaves(value) if tensor.requires_grad]
    loss.backward(retain_graph=bool(others))
    elsewhere = _only_other_outputs(clone, others)
    return clone, float(loss.detach()), mode, tuple(name for name in order if name not in elsewhere)


def _only_other_outputs(model: torch.nn.Module, others: list[torch.Tensor]) -> set[str]:
    """Modules whose parameters got no gradient from the checked output's loss but feed the model's other outputs (a
    second CTC head beside the one checked): their missing gradient is expected, not CTC063's case."""
    missing = [(name, parameter) for name, parameter in model.named_parameters()
               if parameter.requires_grad and parameter.grad is None]
    if not others or not missing:
        return set()
    try:
        total = torch.stack([tensor.float().sum() for tensor in others]).sum()
        grads = torch.autograd.grad(total, [parameter for _, parameter in missing], allow_unused=True)
    except RuntimeError:
        return set()
    return {name.rpartition(".")[0] for (name, _), grad in zip(missing, grads) if grad is not None}


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
        ran = not order or name in order  # no record at all (hooks bypassed): judge every module
        if not ran:
            no_grad, zero_grad = [], []  # nothing ran through it: no gradient is what it should get
        layers.append(LayerGradient(
            name or "(model)", type(module).__name__, sum(p.numel() for _, p in parameters), trainable, norm,
            math.sqrt(weight_squared), tuple(nonfinite), tuple(no_grad), tuple(zero_grad), ran))
    return tuple(layers), math.sqrt(total)


#: The backward pass uses at most this many samples of the first model batch (cost grows with it).
GRAD_SAMPLES = 8


def _select(item: Prepared, indices: list[int]) -> Prepared:
    """The prepared batch cut down to the given samples."""
    index = torch.tensor(indices, dtype=torch.long)
    return dataclasses.replace(item, batch=select_samples(item.batch, indices), lengths=item.lengths[index])


@provides("gradients")
def _gradients(context: Context) -> Gradients:
    prepared = context.ctc_batches
    if prepared.skipped:
        return Gradients(skipped=prepared.skipped)
    if not any(parameter.requires_grad for parameter in context.model.parameters()):
        return Gradients(skipped="the model has no trainable parameters")
    item = prepared.items[0]
    init = context.init_loss
    ids = [item.batch.sample_id(position) for position in range(item.batch.size)]
    per_sample = torch.tensor(init.loss[: item.batch.size]) if list(init.samples[: item.batch.size]) == ids else None
    if per_sample is None:
        return Gradients(skipped="no loss at initialisation")
    keep = torch.isfinite(per_sample)
    left_out = tuple(ids[i] for i in (~keep).nonzero().flatten().tolist())
    if not bool(keep.any()):
        return Gradients(skipped="every sample of the batch has a non-finite loss (CTC001/CTC050)", samples_left_out=left_out)
    chosen = keep.nonzero().flatten().tolist()[:GRAD_SAMPLES]
    result = None
    if len(chosen) < item.batch.size:
        # Only finite samples, and few of them: a NaN sample would spread through BatchNorm's batch statistics.
        small = _select(item, chosen)
        try:
            result = backward_pass(context.model, small, torch.ones(len(chosen), dtype=torch.bool), context.setup.blank)
            item, keep = small, torch.ones(len(chosen), dtype=torch.bool)
        except Exception:
            result = None  # a model that only runs at its own batch size: use the whole batch
    in_pass: tuple[int, ...] = ()
    if result is None:
        result = backward_pass(context.model, item, keep, context.setup.blank)
        in_pass = left_out
    clone, loss, mode, call_order = result
    if not math.isfinite(loss):
        return Gradients(skipped=f"the loss of the backward pass is {loss} (see CTC050)", samples_left_out=left_out)
    layers, norm = layer_gradients(clone, call_order)
    del clone
    blockers = zero_weights(context.model)
    behind = _behind_zero_weights(context.model, item, keep, context.setup.blank, layers, blockers)
    if behind:
        layers = tuple(dataclasses.replace(layer, zero_grad=tuple(name for name in layer.zero_grad if name not in behind))
                       for layer in layers)
    return Gradients(layers, norm, loss, item.batch.index, int(keep.sum()), left_out, mode, nonfinite_in_pass=in_pass,
                     saturating=saturating_modules(context.model), behind_zero_weights=tuple(sorted(behind)),
                     zero_weights=tuple(blockers) if behind else ())


def zero_weights(model: torch.nn.Module) -> list[str]:
    """Trainable multiplicative weights (named `weight`) that are exactly zero everywhere: an initialisation on purpose
    (a spatial transformer's last layer starts at the identity, ResNet's zero_init_residual), which blocks the gradient
    to everything before it on the first step only."""
    return [name for name, parameter in model.named_parameters()
            if parameter.requires_grad and name.rpartition(".")[2] == "weight" and parameter.numel()
            and not bool(parameter.detach().any())]


def _behind_zero_weights(model: torch.nn.Module, item: Prepared, keep: torch.Tensor, blank: int,
                         layers: tuple[LayerGradient, ...], blockers: list[str]) -> set[str]:
    """Of the parameters with an all-zero gradient, those that get one once the zero weights are nudged off zero (one
    more backward pass on a copy, only when both exist)."""
    zero = {name for layer in layers for name in layer.zero_grad}
    if not zero or not blockers:
        return set()
    nudged = copy.deepcopy(model)
    generator = torch.Generator().manual_seed(0)
    parameters = dict(nudged.named_parameters())
    with torch.no_grad():
        for name in blockers:
            weight = parameters[name]
            weight.copy_(1e-2 * torch.randn(weight.shape, generator=generator, dtype=torch.float64))
    try:
        clone = backward_pass(nudged, item, keep, blank)[0]
    except Exception:  # the model ran once already: a failure here only means no explanation
        return set()
    grads = {name: parameter.grad for name, parameter in clone.named_parameters()}
    return {name for name in zero if grads.get(name) is not None and bool(grads[name].detach().any())}


SATURATING = (torch.nn.Sigmoid, torch.nn.Tanh, torch.nn.Softsign, torch.nn.Hardtanh, torch.nn.Hardsigmoid,
              torch.nn.Tanhshrink)


def saturating_modules(model: torch.nn.Module) -> tuple[str, ...]:
    """Modules whose activation saturates (sigmoid-like), by name; LSTM/GRU gates are not counted (they are
    built to saturate and carry gradient through the cell)."""
    return tuple(name for name, module in model.named_modules() if isinstance(module, SATURATING))


