"""Which loss overfit trains: the user's own `Setup.criterion`, or ctcdoctor's `ctc_loss`.

A set-up is judged as written: when `Setup.criterion` is given, it trains (called as `check`'s
criterion audit calls it: `criterion(model_output, batch)`), so a softmax head whose loss takes
`log` is trained with that `log`, not with `log_softmax(softmax(x))`. ctcdoctor's own
`ctcdoctor.ctc.ctc_loss` on `log_softmax` of the `(T, N, C)` view trains instead when there is no
criterion, with `--loss ctc`, with `--alpha/--gamma` (its modified CTC), and when the criterion
cannot train (it raises, returns no scalar, or does not use the output it is given — a loss that
runs the model by itself); the report says which loss trained and why.
"""
from __future__ import annotations

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
           problem: Problem, returned: Any = None) -> tuple[TrainingLoss, torch.Tensor]:
    """The first step's loss, and the loss to train with from then on.

    Setup.criterion trains only if it returns a scalar (or one value per sample) that depends on the model
    output it is given; otherwise ctcdoctor's loss trains and `note` says why (with --loss criterion: exit 2).
    A criterion that returns NaN or inf still trains: the run then reports it (CTC072) as written.
    """
    import torch

    if loss.criterion is None:
        return loss, loss.value(output, log_probs, lengths, problem)
    try:
        value = loss.value(output, log_probs, lengths, problem, returned)
        reason = None
        if not value.requires_grad or torch.autograd.grad(value, output, retain_graph=True, allow_unused=True)[0] is None:
            reason = "does not use the model output it is given (a loss that runs the model by itself)"
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
