"""The training loop: plain steps in train mode; every `eval_every` steps an eval-mode decode judges the fit.

Training runs in train mode, as real training does (dropout, masking, BatchNorm batch statistics).
The decode that decides "fitted" runs in eval mode, as inference does: a model whose SpecAugment
masks a few frames of every training step never decodes its sample exactly in train mode, yet it
has learnt it. The training step's own decode is kept beside it (free: no extra forward), so the
report can say when the two modes disagree. The loss and gradient norm of every step stay on the
device and are read back at the evaluations only (and once at step NEGATIVE_STEPS, to stop a loss that
was below 0 from the start), so the hot loop is a plain training loop.
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

from ctcdoctor.errors import UserInputError
from ctcdoctor.load.limits import doing, stop_now
from ctcdoctor.overfit.loss import TrainingLoss, settle
from ctcdoctor.overfit.result import Evaluation, OverfitOptions, Progress

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from ctcdoctor.overfit.prepare import Problem, Run

DEAD_NORM = 1e-6
"""Gradient norms below this (CTC061's threshold) are "vanishing"."""
DEAD_STEPS = 100
"""Stop early when the gradient norm stayed below DEAD_NORM for this many steps and the loss did not move."""
STILL = 1e-4
"""... "did not move": its range over those steps is below this share of its value."""
NEGATIVE_STEPS = 20
"""Stop early when the loss was below 0 (as CTC074 counts it) at every one of the first this many steps: the loss is
not given log-probabilities (softmax probabilities into F.ctc_loss), CTC074 is the verdict whatever follows, and more
steps only cost time. A loss that starts positive and dips below 0 later trains its budget. 0 turns the stop off."""


RESERVE_STEPS = 3.0
"""Under --timeout, training stops when fewer seconds are left than this many of its steps take (the next step, the
evaluation at the cut and the final decode), so the report is made before the deadline (ctcdoctor.load.limits)."""


@dataclass(frozen=True)
class Hooks:
    on_progress: Callable[[Progress], None] | None = None
    stoppable: bool = False
    """The command's own run: a --timeout that lands in its training (or final decode) cuts the training there and the
    run is reported (`train.train_once` runs it in `limits.stoppable()`); the LR probe's and the batch analysis's extra
    runs are not stoppable: a timeout there ends the command (exit 2)."""


@dataclass
class Log:
    """What one run measured."""

    loss: TrainingLoss
    size: int
    losses: list[float] = field(default_factory=list)
    norms: list[float] = field(default_factory=list)
    evaluations: list[Evaluation] = field(default_factory=list)
    steps: int = 0
    budget: int = 0
    """The step budget now: options.steps, more when the run was extended while still learning."""
    seconds: float = 0.0
    streak: int = 0
    fit_step: int | None = None
    fit_seconds: float | None = None
    nonfinite_step: int | None = None
    stopped_early: str | None = None
    eval_failed: str | None = None
    lengths_note: str | None = None
    lengths: Any = None
    """The output lengths of the last step."""
    classes: int = 0
    """C, the output's class count."""
    train_decodes: list[list[int]] = field(default_factory=list)
    timed_out: bool = False
    """--timeout cut the training at `steps` (ctcdoctor.load.limits.stoppable): judged on the steps run."""
    extensions: list[tuple[int, float]] = field(default_factory=list)
    """(step, CER) where the budget ran out while the run was still learning, and it trained on."""
    first_exact: list[int | None] = field(default_factory=list)
    pending: list[Any] = field(default_factory=list)
    """(loss, gradient norm) tensors of the steps since the last evaluation."""


def forward(model: torch.nn.Module, inputs: Any) -> tuple[torch.Tensor, torch.Tensor | None, Any]:
    """model(inputs) -> (output, returned lengths or None, the value as returned), keeping autograd.

    The model is called and its value read as `check` does (`measure.model.call_model` and `read_output`: the
    tensor, `(output, output_lengths)`, a tuple whose first item is the output and whose others are more heads or
    a state, or any object with a `.logits` tensor), without detaching. The value as returned is what
    `Setup.criterion` receives, as `check`'s criterion audit passes it.
    """
    from ctcdoctor.measure.model import call_model, read_output

    returned = call_model(model, inputs)
    read = read_output(returned)
    return read.output, read.lengths, returned


def _lengths(problem: Problem, output: torch.Tensor, returned: Any, log: Log) -> torch.Tensor:
    """The model's own returned lengths, else the static checks' lengths, else every frame (with a note)."""
    import torch

    if returned is not None:
        return torch.as_tensor(returned).reshape(-1).to(problem.device, torch.long)
    if problem.lengths is not None:
        return problem.lengths
    from ctcdoctor.measure.model import time_dim

    frames = output.shape[time_dim(problem.layout)]
    log.lengths_note = f"output lengths unknown: every sample uses all {frames} frames"
    return torch.full((problem.size,), frames, dtype=torch.long, device=problem.device)


def _first_forward(run: Run, problem: Problem) -> tuple[torch.Tensor, Any, Any]:
    try:
        return forward(run.model, problem.inputs)
    except UserInputError:  # forward cannot take the inputs at all: its own message
        raise
    except Exception as error:
        raise UserInputError(
            f"model(inputs) raised {type(error).__name__} in training mode on the chosen sample(s): {error}",
            "A BatchNorm over a single value per channel fails in training mode: pick more samples (--samples 0,1) "
            "or fix the model; use --debug for the traceback.",
        ) from error


def _step(run: Run, problem: Problem, log: Log, clip: float, first: bool) -> torch.Tensor:
    """One training step; returns the step's own (T, N, C) log-probabilities, detached."""
    import torch

    from ctcdoctor.measure.model import to_tnc

    output, returned, as_returned = _first_forward(run, problem) if first else forward(run.model, problem.inputs)
    if first or returned is not None:
        log.lengths = _lengths(problem, output, returned, log)
    log_probs = to_tnc(output, problem.layout).float().log_softmax(-1)
    if first:
        log.classes = int(log_probs.shape[-1])
        log.loss, value = settle(log.loss, output, log_probs, log.lengths, problem, as_returned,
                                   list(run.model.named_parameters()))
    else:
        value = log.loss.value(output, log_probs, log.lengths, problem, as_returned)
    run.optimizer.zero_grad(set_to_none=True)
    value.backward()
    if clip > 0:
        norm = torch.nn.utils.clip_grad_norm_(run.params, clip)
    else:
        norm = torch.nn.utils.get_total_norm([p.grad for p in run.params if p.grad is not None])
    run.optimizer.step()
    log.pending.append((value.detach().float(), norm.detach().float()))
    return log_probs.detach()


def eval_log_probs(run: Run, problem: Problem, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The model's (T, N, C) log-probabilities in eval mode (its modes restored afterwards), and their lengths."""
    import torch

    from ctcdoctor.measure.model import evaluating, to_tnc

    with evaluating(run.model):
        output, returned, _ = forward(run.model, problem.inputs)
    if returned is not None:
        lengths = torch.as_tensor(returned).reshape(-1).to(problem.device, torch.long)
    return to_tnc(output, problem.layout).float().log_softmax(-1), lengths


def train(run: Run, problem: Problem, loss: TrainingLoss, options: OverfitOptions, hooks: Hooks) -> Log:
    """Train until the eval-mode decode equals every target at `patience` evaluations in a row, or the budget ends
    (or, inside `limits.stoppable()`, --timeout cuts it: then the last step run is evaluated and the run ends there)."""
    import torch

    from ctcdoctor.overfit.extend import next_budget

    log = Log(loss=loss, size=problem.size, first_exact=[None] * problem.size, budget=options.steps)
    clip = float(options.clip or 0.0)
    run.model.train()
    started = time.perf_counter()  # the clock includes the first forward, which step 1 uses
    step = 0
    on = ("sample " if len(options.samples) == 1 else "samples ") + ", ".join(map(str, options.samples))
    while step < log.budget:
        step += 1
        with doing(f"training step {step} of {log.budget} on {on}"):  # what a --timeout names
            log_probs = _step(run, problem, log, clip, first=step == 1)
            negative = step == NEGATIVE_STEPS and _negative_throughout(log)
        cut = stop_now(RESERVE_STEPS * (time.perf_counter() - started) / step, f"training step {step} of {log.budget} on {on}")
        if step % options.eval_every and step != log.budget and not negative and not cut:
            continue
        with doing(f"the eval-mode decode after training step {step} of {log.budget} on {on}"):
            if _evaluate(log, run, problem, log_probs, step, time.perf_counter() - started, options, hooks):
                break
        if negative:
            log.stopped_early = (f"stopped at step {step}: the loss was below 0 at every step since step 1, so it is not a "
                                 "CTC loss (CTC074); more steps cannot change that")
            break
        if cut:  # --timeout: the run ends here, judged on the steps run (train._record says so)
            log.timed_out = True
            break
        if step == log.budget:  # out of budget without a fit: more steps while it is still learning (extend.py)
            log.budget = next_budget(step, options.steps, options.extend_to, log.losses, log.evaluations)
            if log.budget > step:
                log.extensions.append((step, log.evaluations[-1].cer))
    if problem.device.type == "cuda":
        torch.cuda.synchronize()
    log.steps, log.seconds = step, time.perf_counter() - started
    if log.pending:
        _flush(log)
    return log


def _flush(log: Log) -> list[float]:
    """Read the pending losses and norms back (one sync); returns the losses."""
    import torch

    values = torch.stack([item for pair in log.pending for item in pair]).tolist()
    log.pending.clear()
    losses, norms = values[0::2], values[1::2]
    start = len(log.losses)
    log.losses.extend(losses)
    log.norms.extend(norms)
    bad = next((i for i, v in enumerate(losses) if not math.isfinite(v)), None)
    if bad is not None and log.nonfinite_step is None:
        log.nonfinite_step = start + bad + 1
    return losses


def _judged(log: Log, run: Run, problem: Problem, train_lp: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Eval-mode log-probabilities and lengths; the training step's own when the model fails in eval mode."""
    if log.eval_failed is None:
        try:
            return eval_log_probs(run, problem, log.lengths)
        except Exception as error:  # a model that only runs in train mode: judge the training output
            log.eval_failed = f"the eval-mode forward failed ({type(error).__name__}: {error}): the fit is judged in train mode"
    return train_lp, log.lengths


def _evaluate(log: Log, run: Run, problem: Problem, train_lp: torch.Tensor, step: int, elapsed: float,
              options: OverfitOptions, hooks: Hooks) -> bool:
    """Decode in both modes, update the fit streak; True when the run should stop."""
    import torch

    from ctcdoctor.ctc import edit_distance, greedy_decode

    losses = _flush(log)
    text, targets = problem.symbols.text, problem.target_lists
    log.train_decodes = cast("list[list[int]]", greedy_decode(train_lp, log.lengths, blank=problem.blank))
    eval_lp, eval_lengths = _judged(log, run, problem, train_lp)
    decodes = cast("list[list[int]]", greedy_decode(eval_lp, eval_lengths, blank=problem.blank))
    exact = tuple(list(d) == list(t) for d, t in zip(decodes, targets))
    total = sum(len(t) for t in targets) or 1
    cer = sum(edit_distance(d, t) for d, t in zip(decodes, targets)) / total
    train_cer = sum(edit_distance(d, t) for d, t in zip(log.train_decodes, targets)) / total
    best = eval_lp.argmax(-1)
    valid = torch.arange(best.shape[0], device=best.device)[:, None] < eval_lengths[None, :]
    blank_ratio = float(((best == problem.blank) & valid).sum()) / max(int(valid.sum()), 1)
    for index, hit in enumerate(exact):
        if hit and log.first_exact[index] is None:
            log.first_exact[index] = step
    shown = tuple(text(d) for d in decodes)
    log.evaluations.append(Evaluation(step, losses[-1], cer, shown, blank_ratio, elapsed,
                                      tuple(text(d) for d in log.train_decodes), train_cer, exact))
    log.streak = log.streak + 1 if all(exact) else 0
    if log.streak == 1:
        log.fit_step, log.fit_seconds = step, elapsed
    if hooks.on_progress is not None:
        hooks.on_progress(Progress(step, log.budget, losses[-1], cer, " | ".join(shown), log.streak))
    return log.nonfinite_step is not None or log.streak >= options.patience or _nothing_moves(log)


def _negative_throughout(log: Log) -> bool:
    """Every loss so far (read back: one sync) is below 0 as CTC074 counts it (`ctcdoctor.overfit.negative`)."""
    import torch

    from ctcdoctor.overfit.negative import negative_loss

    pending = torch.stack([value for value, _ in log.pending]).tolist() if log.pending else []
    losses = log.losses + pending
    found = negative_loss(losses)
    return found is not None and found.count == len(losses)


def _nothing_moves(log: Log) -> bool:
    """A dead network: gradients below DEAD_NORM for DEAD_STEPS steps and a loss that did not move. More steps cannot help."""
    window = log.losses[-DEAD_STEPS:]
    if len(log.losses) < DEAD_STEPS or not max(log.norms) < DEAD_NORM:
        return False
    spread = max(window) - min(window)
    if not math.isfinite(spread) or spread > STILL * max(abs(window[-1]), 1e-12):
        return False
    ceiling = max(log.norms)
    log.stopped_early = (
        f"stopped at step {len(log.losses)}: the gradient norm stayed {'at 0' if ceiling == 0 else f'below {ceiling:.2g}'} since step 1 and the "
        f"loss did not move ({window[0]:.4g} → {window[-1]:.4g}); more steps cannot change that"
    )
    return True
