"""After training: the eval-mode decode, its edit distance and spikiness, the plot's per-frame data,
and whether the train-mode and eval-mode decodes agree (and what in the model explains it when not)."""
from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any, cast

from ctcdoctor.overfit.result import FrameProbabilities, OverfitResult
from ctcdoctor.overfit.stochastic import explain_disagreement, stochastic_parts

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from ctcdoctor.overfit.loop import Log
    from ctcdoctor.overfit.prepare import Problem, Run


RANDOM_KINDS = ("dropout", "layer drop", "masking")
"""Stochastic parts (`ctcdoctor.overfit.stochastic`) whose train-mode output is random; BatchNorm's is not."""


def _quote(text: str) -> str:
    return f'"{text}"'


def normalised(output: torch.Tensor, kind: str | None, axis: int | None) -> torch.Tensor:
    """The model's own distribution as log-probabilities: probabilities are logged, anything else log_softmax'ed."""
    import torch

    values = output.float()
    if kind == "probs" and axis == 2:
        values = values.clamp_min(torch.finfo(torch.float32).tiny).log()
    return values.log_softmax(-1)


def final_state(result: OverfitResult, run: Run, problem: Problem, log: Log, kind: str | None, axis: int | None,
                alpha: float | None) -> None:
    """Eval-mode decode, edit distance, CER, spikiness and the per-frame plot data of the first sample."""
    import torch

    from ctcdoctor.ctc import edit_distance, greedy_decode
    from ctcdoctor.measure.model import evaluating, to_tnc
    from ctcdoctor.overfit.loop import forward

    lengths = log.lengths
    try:
        with evaluating(run.model):
            output, returned, _ = forward(run.model, problem.inputs)
        if returned is not None:
            lengths = torch.as_tensor(returned).reshape(-1).to(problem.device, torch.long)
        log_probs = normalised(to_tnc(output, problem.layout), kind, axis)
    except Exception as error:  # a model that only runs in train mode: keep the training numbers
        result.notes.append(f"eval-mode forward failed ({type(error).__name__}: {error}); final numbers are from training mode")
        return
    result.output_frames, result.decoded_frames = int(log_probs.shape[0]), tuple(int(v) for v in lengths.tolist())
    decodes = cast("list[list[int]]", greedy_decode(log_probs, lengths, blank=problem.blank))
    result.final_decode = tuple(problem.symbols.text(d) for d in decodes)
    result.edit_distance = tuple(edit_distance(d, t) for d, t in zip(decodes, problem.target_lists))
    result.cer = sum(result.edit_distance) / max(sum(len(t) for t in problem.target_lists), 1)
    result.clipped_labels = clipped_labels(log_probs, lengths, problem, decodes)
    if torch.isfinite(log_probs).all():
        _shape(result, log_probs, lengths, problem, alpha)


def clipped_labels(log_probs: torch.Tensor, lengths: torch.Tensor, problem: Problem, decodes: list[list[int]]) -> tuple[str, ...]:
    """Target labels missing from their decode that sit, on every valid frame, at the frame's minimum tied with
    another class: a clipped floor (ReLU, clamp) they cannot leave, since a clipped score gets no gradient."""
    found: dict[int, None] = {}
    for index, (target, decode) in enumerate(zip(problem.target_lists, decodes)):
        frames = log_probs[: int(lengths[index]), index]
        if frames.shape[0] == 0:
            continue
        low = frames.min(-1, keepdim=True).values
        at_floor = frames <= low + 1e-6 * low.abs().clamp_min(1.0)
        tied = at_floor.sum(-1) >= 2
        for label in set(target) - set(decode):
            if bool((at_floor[:, label] & tied).all()):
                found[label] = None
    return tuple(problem.symbols.name(label) for label in found)


def _shape(result: OverfitResult, log_probs: torch.Tensor, lengths: torch.Tensor, problem: Problem, alpha: float | None) -> None:
    """Spikiness metrics and the first sample's per-frame probabilities against the pseudo ground truth."""
    import torch

    from ctcdoctor.ctc import pseudo_ground_truth, spikiness

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            result.spikiness = spikiness(log_probs, lengths, problem.blank, problem.targets, problem.target_lengths).as_dict()
        except Exception as error:
            result.notes.append(f"spikiness metrics unavailable: {type(error).__name__}: {error}")
        try:
            pseudo = pseudo_ground_truth(log_probs, problem.targets, lengths, problem.target_lengths, problem.blank, alpha)
        except Exception:
            pseudo = None
    frames = int(lengths[0])
    classes = [problem.blank] + [c for c in dict.fromkeys(problem.target_lists[0]) if c != problem.blank]
    probs = log_probs[:frames, 0, classes].exp().double().cpu()
    shown = pseudo[:frames, 0, classes].double().cpu() if pseudo is not None else None
    result.frames = FrameProbabilities(
        classes=tuple(classes),
        names=tuple(["blank"] + [problem.symbols.name(c) for c in classes[1:]]),
        probs=tuple(tuple(row) for row in probs.tolist()),
        pseudo=None if shown is None or not torch.isfinite(shown).all() else tuple(tuple(row) for row in shown.tolist()),
        target=result.targets[0] if result.targets else "",
    )


def same_weights_train_decode(result: OverfitResult, run: Run, problem: Problem, log: Log) -> None:
    """When the last training step's own decode differs from the eval-mode decode, decode the final weights in train mode.

    A training step decodes the output it trains on, computed before its optimizer update; the eval-mode decode runs
    after that update. While the decode still moves (early on, at a high learning rate) the two differ by one weight
    update, not by the mode. One more train-mode forward of the same weights (no autograd, the random state and the
    buffers, such as BatchNorm's running statistics, restored afterwards) settles it: `result.train_decode` becomes
    its decode, so `compare_modes` only reports what the mode changes. Nothing is run when the decodes already agree,
    or when the model has dropout, layer drop or masking: their train-mode output is random, so one more forward
    proves nothing and the training step's decode stands (the note names them). A forward that fails keeps it too."""
    train, final = list(result.train_decode), list(result.final_decode)
    if not train or not final or train == final:
        return
    if any(part.kind in RANDOM_KINDS for part in stochastic_parts(run.model)):
        return
    try:
        decodes = _train_mode_decodes(run, problem, log)
    except Exception:  # noqa: BLE001 - the training step's own decode stands
        return
    result.train_decode = tuple(problem.symbols.text(d) for d in decodes)


def _train_mode_decodes(run: Run, problem: Problem, log: Log) -> list[list[int]]:
    import torch

    from ctcdoctor.ctc import greedy_decode
    from ctcdoctor.measure.model import to_tnc
    from ctcdoctor.overfit.loop import forward

    saved = [(buffer, buffer.detach().clone()) for buffer in run.model.buffers()]
    devices = [problem.device] if problem.device.type == "cuda" else []
    try:
        with torch.random.fork_rng(devices=devices), torch.no_grad():  # the model keeps its training modes
            output, returned, _ = forward(run.model, problem.inputs)
    finally:
        with torch.no_grad():
            for buffer, value in saved:
                buffer.copy_(value)
    lengths = log.lengths if returned is None else torch.as_tensor(returned).reshape(-1).to(problem.device, torch.long)
    log_probs = to_tnc(output, problem.layout).float().log_softmax(-1)
    return cast("list[list[int]]", greedy_decode(log_probs, lengths, blank=problem.blank))


def compare_modes(result: OverfitResult, model: Any) -> None:
    """Say when the last train-mode decode and the eval-mode decode disagree, and what in the model explains it."""
    parts = stochastic_parts(model)
    result.stochastic = [part.as_dict() for part in parts]
    train, final, targets = list(result.train_decode), list(result.final_decode), list(result.targets)
    if not train or not final:
        return
    result.modes_agree = train == final
    if result.modes_agree:
        return
    why = explain_disagreement(parts)
    shown = ", ".join(map(_quote, train))
    if final == targets:
        result.notes.append(
            f"the eval-mode decode fits but the training steps' own (train-mode) decode is {shown}: {why} "
            "changes the output in training only; the fit is judged in eval mode, as inference runs"
        )
    elif train == targets:
        result.notes.append(
            f"the training steps' own (train-mode) decode fits but the eval-mode decode is "
            f"{', '.join(map(_quote, final))}: {why} behaves differently in eval mode"
        )
    else:
        result.notes.append(f"the train-mode decode ({shown}) and the eval-mode decode differ: {why}")
