"""Which loss overfit trains: the user's own `Setup.criterion`, or ctcdoctor's `ctc_loss`.

A set-up is judged as written: when `Setup.criterion` is given, it trains (called as `check`'s
criterion audit calls it: `criterion(model_output, batch)`), so a softmax head whose loss takes
`log` is trained with that `log`, not with `log_softmax(softmax(x))`. ctcdoctor's own
`ctcdoctor.ctc.ctc_loss` on `log_softmax` of the `(T, N, C)` view trains instead when there is no
criterion, with `--loss ctc`, with `--alpha/--gamma` (its modified CTC), and when the criterion
cannot train (it raises, returns no scalar, or uses nothing the model returned — neither the output nor
another item of a returned tuple, e.g. a loss that runs the model by itself); the report says which loss trained
and why.
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from ctcdoctor.errors import UserInputError

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from ctcdoctor.findings import Finding
    from ctcdoctor.overfit.prepare import Problem
    from ctcdoctor.overfit.result import OverfitResult


@dataclass(frozen=True)
class TrainingLoss:
    """The loss a run trains; `value(...)` computes it for one step."""

    criterion: Any
    """Setup.criterion when it trains, else None (ctcdoctor's ctc_loss)."""
    alpha: float | None = None
    gamma: float = 0.0
    forced: bool = False
    """--loss criterion: a criterion that cannot train is a usage error, not a fallback."""
    note: str = ""
    """Why ctcdoctor's loss trains although a criterion exists (empty otherwise)."""

    @property
    def source(self) -> str:
        return "criterion" if self.criterion is not None else "ctcdoctor"

    def describe(self) -> str:
        if self.criterion is not None:
            name = getattr(self.criterion, "__qualname__", None) or type(self.criterion).__name__
            return "Setup.criterion, your own loss" + (f" ({name})" if name != "criterion" else "")
        modified = [f"alpha={self.alpha:g}"] if self.alpha is not None else []
        modified += [f"gamma={self.gamma:g}"] if self.gamma else []
        return "ctcdoctor.ctc.ctc_loss" + (f" ({', '.join(modified)})" if modified else " (plain CTC)")

    def value(self, output: torch.Tensor, log_probs: torch.Tensor, lengths: torch.Tensor, problem: Problem,
              returned: Any = None) -> torch.Tensor:
        """The step's loss; Setup.criterion gets `returned`, what model(inputs) returned (`output` when None)."""
        if self.criterion is not None:
            return _scalar(self.criterion(output if returned is None else returned, problem.raw), problem.size)
        from ctcdoctor.ctc import ctc_loss

        try:
            return ctc_loss(log_probs, problem.targets, lengths, problem.target_lengths, blank=problem.blank,
                            alpha=self.alpha, gamma=self.gamma)
        except ValueError as error:  # the arguments themselves are wrong: the set-up's fault, never an internal error
            raise UserInputError(
                f"CTC cannot train on this sample: {error} (log_probs {tuple(log_probs.shape)}, blank {problem.blank}, "
                f"output lengths {lengths.tolist()}, target lengths {problem.target_lengths.tolist()})",
                "Run ctcdoctor check on the spec: it names the setting to change (Setup.blank, the class count, the lengths).",
            ) from error


def choose_loss(criterion: Any, loss: str, alpha: float | None, gamma: float) -> TrainingLoss:
    """The loss for --loss `loss` (see ctcdoctor.overfit.result.LOSS_CHOICES); validated by validate_options."""
    if criterion is None or loss == "ctc":
        return TrainingLoss(None, alpha, gamma)
    if loss == "auto" and (alpha is not None or gamma):
        return TrainingLoss(None, alpha, gamma, note="--alpha/--gamma train ctcdoctor's modified CTC, not Setup.criterion")
    return TrainingLoss(criterion, forced=loss == "criterion")


def _scalar(value: Any, size: int) -> torch.Tensor:
    import torch

    if not isinstance(value, torch.Tensor):
        raise TypeError(f"returned a {type(value).__name__}, not a tensor")
    if value.numel() == size and size > 1:
        return value.mean()  # reduction="none": one loss per sample
    if value.numel() != 1:
        raise TypeError(f"returned {value.numel()} values for {size} sample(s); return one scalar")
    return value.reshape(())


def settle(loss: TrainingLoss, output: torch.Tensor, log_probs: torch.Tensor, lengths: torch.Tensor,
           problem: Problem, returned: Any = None, params: Sequence[tuple[str, torch.Tensor]] = ()) -> tuple[TrainingLoss, torch.Tensor]:
    """The first step's loss, and the loss to train with from then on.

    Setup.criterion trains only if it returns a scalar (or one value per sample) that depends on what the model
    returned: the output, or any other item of a returned tuple or mapping (an encoder state the criterion projects
    itself, as ESPnet's `model.ctc(hs, hlens, ...)` does); otherwise ctcdoctor's loss trains and `note` says what was
    found (with --loss criterion: exit 2). `params` (the model's named parameters) tell a loss that runs the model by itself
    from one that depends on no parameter at all. A criterion that returns NaN or inf still trains: the run then
    reports it (CTC072) as written.
    """
    if loss.criterion is None:
        return loss, loss.value(output, log_probs, lengths, problem)
    try:
        value = loss.value(output, log_probs, lengths, problem, returned)
        reason = _unused(value, output, returned, params)
    except Exception as error:
        reason = f"raised {type(error).__name__}: {error}"
    if reason is None:
        return loss, value
    if loss.forced:
        raise UserInputError(f"--loss criterion: Setup.criterion {reason}",
                             "Fix the criterion (ctcdoctor check audits it: CTC030), or use --loss auto.")
    fallback = replace(loss, criterion=None, note=f"Setup.criterion {reason}: trained ctcdoctor's ctc_loss instead "
                                                  "(ctcdoctor check audits the criterion: CTC030)")
    return fallback, fallback.value(output, log_probs, lengths, problem)


def _unused(value: torch.Tensor, output: torch.Tensor, returned: Any, params: Sequence[tuple[str, torch.Tensor]]) -> str | None:
    """None when the criterion's loss has a gradient path to some tensor the model returned, or reaches the trained
    parameters while the model returned a float tensor without a gradient (the state of a frozen encoder, or a detached
    one, which the loss may use: autograd cannot tell); else what was found."""
    import torch

    from ctcdoctor.load.batches import tensor_leaves

    if not value.requires_grad:
        return "returns a loss without a gradient (it depends on nothing the model computed, or is detached)"
    items = {id(output): ("output", output)}
    if returned is not None and returned is not output:
        items = {id(tensor): (path, tensor) for path, tensor in tensor_leaves(returned, "output")} | items
    graded = [(path, tensor) for path, tensor in items.values() if tensor.requires_grad]
    if graded and any(grad is not None for grad in torch.autograd.grad(
            value, [tensor for _, tensor in graded], retain_graph=True, allow_unused=True)):
        return None
    others = sorted({path for path, _ in items.values()} - {"output"})
    given = ("the model output it is given" if not others
             else f"the model's output or any other item it returned ({', '.join(others)}; a detached item counts as unused)")
    named = [(name, param) for name, param in params if param.requires_grad]
    reached = [name for (name, _), grad in zip(named, torch.autograd.grad(
        value, [param for _, param in named], retain_graph=True, allow_unused=True) if named else ()) if grad is not None]
    if reached and any(not tensor.requires_grad and tensor.is_floating_point() for _, tensor in items.values()):
        return None  # it may use a returned item without a gradient (a frozen encoder's state) and trains what it reaches
    if reached:
        owners = list(dict.fromkeys(name.rsplit(".", 1)[0] if "." in name else name for name in reached))
        shown = ", ".join(owners[:3]) + (f" and {len(owners) - 3} more" if len(owners) > 3 else "")
        return (f"does not use {given}, though its loss reaches the model's parameters ({shown}) by another path "
                "(a loss that runs the model, or part of it, by itself)")
    return f"does not use {given}, and its loss reaches none of the model's parameters"


@contextlib.contextmanager
def weights_shared(original: torch.nn.Module, trained: torch.nn.Module, criterion: Any) -> Iterator[None]:
    """While overfit trains its copy, the user's model holds the copy's parameters and buffers.

    A criterion often reaches the model object it was built around, not only the output it is given: ESPnet's
    `model.ctc(hs, hlens, ys_pad, ys_lens)` projects the returned encoder state `hs` with the model's own CTC head.
    Without this, that head would be the user's untrained original while the copy trains (the loss falls slowly
    through the encoder alone). Every module of the original takes the copy's tensors, matched by name, and gets its
    own back afterwards, so the user's model is left as it was. Nothing happens without a criterion, or when the two
    do not pair module for module."""
    pairs = dict(trained.named_modules()) if criterion is not None and original is not trained else {}
    owned = [(module, pairs[name]) for name, module in original.named_modules() if name in pairs]
    if not pairs or len(owned) != len(pairs) or any(
            set(module._parameters) != set(copy._parameters) or set(module._buffers) != set(copy._buffers)
            for module, copy in owned):
        yield
        return
    saved = [(module, dict(module._parameters), dict(module._buffers)) for module, _ in owned]
    try:
        for module, copy in owned:
            module._parameters.update(copy._parameters)
            module._buffers.update(copy._buffers)
            _refresh(module)
        yield
    finally:
        for module, parameters, buffers in saved:
            module._parameters.update(parameters)
            module._buffers.update(buffers)
            _refresh(module)


def _refresh(module: torch.nn.Module) -> None:
    """An RNN keeps its own list of its weights (`_flat_weights`), which the parameter dictionary does not update."""
    refresh = getattr(module, "_init_flat_weights", None)
    if callable(refresh):
        refresh()


DIVIDED_BY_LOADER = ("sum_by_loader_batch", "mean_by_loader_batch")
"""CTC030 reductions that divide by the loader's batch size (ctcdoctor.measure.reference.DIVIDED), not the samples'."""


def divided_loss_note(findings: list[Finding], result: OverfitResult) -> list[Finding]:
    """CTC030's note on a criterion divided by the loader's batch size B, trained on N < B samples: what it means for
    the learning rate of the optimizer that trained it. Each step's gradient is N/B of a full batch's per-sample
    average: nothing to change for an Adam-like optimizer (it normalises the step), a B/N larger rate for SGD."""
    import dataclasses

    from ctcdoctor.overfit.explain import ADAPTIVE

    size, name = len(result.samples), result.optimizer.split("(")[0]
    changed = []
    for item in findings:
        by = item.evidence.get("divisor") if item.code == "CTC030" else None
        if (item.evidence.get("reduction") not in DIVIDED_BY_LOADER or not isinstance(by, int) or by <= size
                or result.loss_source != "criterion" or not name):
            changed.append(item)
            continue
        samples = f"{size} sample" + ("s" if size != 1 else "")
        if result.optimizer.startswith(ADAPTIVE):
            note = f" This overfit run trained it with {result.optimizer}: {name} normalises its step, so the learning rate needs no change."
        else:
            faster = f"; if it fits slowly, try --lr {result.lr * by / size:g}" if result.lr else ""
            note = (f" This overfit run trained it with {result.optimizer}: {name}'s steps on this {samples} are {by / size:g}x smaller "
                    f"than on a full batch of {by} (the loss is divided by {by}, not by {size}){faster}.")
        changed.append(dataclasses.replace(item, message=item.message + note,
                                           evidence={**item.evidence, "step_scale": size / by}))
    return changed
