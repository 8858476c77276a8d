"""CTC030/CTC031: the user's criterion against reference CTC on the same batch, and which known
mistake (swapped lengths, layout, wrong blank, probabilities, raw logits, reduction) reproduces it."""
from __future__ import annotations

import dataclasses
import functools
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import torch

from ctcdoctor.engine import Context, provides
from ctcdoctor.measure.model import LAYOUT_AXES, ModelRun, class_dim, evaluating, other_heads, to_tnc
from ctcdoctor.measure.outputs import TrainingView, log_softmax_call
from ctcdoctor.measure.reference import (
    Prepared,
    close,
    deviation,
    divisor,
    normalised_log_probs,
    per_sample_ctc,
    prepared_kind,
    reduce_losses,
    reductions,
)

# ---------------------------------------------------------------- CTC030 / CTC031: the criterion audit

@dataclass(frozen=True)
class Candidate:
    mistake: str
    """Machine-readable name: swapped_lengths, layout, wrong_blank, probabilities, raw_logits, full_length,
    raw_input_lengths, wrong_axis, criterion_axis (the criterion's own log_softmax over time or the batch),
    padded_target_lengths (targets.size(1) as every target length: the padding read as labels)."""
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
    """One of ctcdoctor.measure.reference.REDUCTIONS or DIVIDED, or "none" (one value per sample)."""
    divisor: int | None = None
    """The batch size a DIVIDED reduction divides by: this batch's N (mean_by_batch) or the loader's (the others)."""
    zero_infinity: bool = False
    """The user's value is reproduced only when infeasible samples count as 0."""
    explained_value: float | None = None
    corrected: str = ""
    infeasible: tuple[int, ...] = ()
    """Global indices of samples whose reference loss is +inf."""
    per_sample_reference: tuple[float, ...] = ()
    details: dict = field(default_factory=dict)
    """The explaining candidate's details (see Candidate.details)."""
    relative_difference: float | None = None
    """|user - explained_value| / |explained_value| of the explanation given (within RTOL when it explains)."""
    closest: dict | None = None
    """When nothing explains the value within RTOL: the nearest explanation tried (mistake, variant, reduction,
    zero_infinity, explained_value, relative_difference), so the finding can say how far off it is."""
    other_heads: tuple[str, ...] = ()
    """When nothing explains the value and the model returned more outputs than the one checked (a second CTC head),
    which the criterion gets too: those items ("item 1, a float tensor (128, 16, 80)"). Its value may then add their
    loss terms, which reference CTC on the first output does not have."""
    normalises: bool | None = None
    """With `other_heads`: whether the criterion's value stays when every frame's scores move by one constant (it
    applies log_softmax over the classes itself); None when not measured."""


NO_CRITERION = "no Setup.criterion given"


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


def as_returned(item: Prepared | ModelRun, output: torch.Tensor) -> Any:
    """`output` in the form `model(inputs)` returned it: the tensor, `(output, lengths)` or `(output, *more)` (a
    tuple or list of the same type, its other items as returned: lengths, more heads, a state), or the framework's
    output object as it is (its own `.logits` stays; `output` is then unused)."""
    returned = item.returned
    if returned is None or isinstance(returned, torch.Tensor):
        return output
    if isinstance(returned, (tuple, list)) and len(returned) >= 2 and not hasattr(returned, "logits"):
        if hasattr(returned, "_fields"):  # a named tuple takes its fields as arguments
            return type(returned)(output, *returned[1:])
        return [output, *returned[1:]] if isinstance(returned, list) else (output, *returned[1:])
    return returned


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
    output = {"NTC": "output.transpose(0, 1)", "NCT": "output.permute(2, 0, 1)"}.get(layout or "TNC", "output")
    if kind == "logits":
        output += ".log_softmax(-1)"
    elif kind == "probs":
        output = f"{output}.log()"
    tail = f', reduction="{reduction}"' if reduction != "mean" else ""
    call = f"F.ctc_loss({output}, targets, output_lengths, target_lengths, blank={blank}{tail})"
    if kind == "probs":
        # log() of a softmax underflows to -inf for confident outputs: the real fix is at the head.
        call += f" — better, end the model with {log_softmax_call(layout)} and pass its output as is"
    return call


def _layout_candidates(item: Prepared, blank: int, corrected: str, add: Callable[..., None]) -> None:
    """The output reaching the loss in another layout than its own (see `_candidates`)."""
    log_probs, targets, lengths, target_lengths = item.log_probs, item.batch.targets, item.lengths, item.batch.target_lengths
    if item.layout == "NTC":
        native = log_probs.transpose(0, 1)  # (N, T, C) as the model returned it
        add("layout", "the batch-first (N, T, C) output passed as (T, N, C) without a transpose",
            lambda: per_sample_ctc(native, targets, lengths, target_lengths, blank),
            corrected.replace("output", "output.transpose(0, 1)", 1) if "transpose" not in corrected else corrected)
        T, N, C = log_probs.shape
        add("layout", "the batch-first (N, T, C) output reshaped/viewed to (T, N, C) instead of transposed",
            lambda: per_sample_ctc(native.reshape(T, N, C), targets, lengths, target_lengths, blank),
            corrected + "  # use .transpose(0, 1), never .view/.reshape, to swap axes")
    elif item.layout == "NCT":
        add("layout", "the (N, C, T) output turned into (N, T, C) (transpose(1, 2)) and passed as (T, N, C)",
            lambda: per_sample_ctc(log_probs.transpose(0, 1), targets, lengths, target_lengths, blank),
            corrected + "  # (N, C, T) -> (T, N, C) is permute(2, 0, 1)")
        # Wav2Letter-style code: the Conv1d output `.view`-ed or `.reshape`-d to the shape F.ctc_loss wants, which
        # keeps the memory order and so scatters classes, samples and frames instead of moving an axis.
        T, N, C = log_probs.shape
        native_nct = log_probs.permute(1, 2, 0)  # (N, C, T) as the model returned it
        add("layout", "the (N, C, T) output reshaped/viewed to (T, N, C) instead of permuted",
            lambda: per_sample_ctc(native_nct.reshape(T, N, C), targets, lengths, target_lengths, blank),
            corrected + "  # use .permute(2, 0, 1), never .view/.reshape, to move the axes")
        add("layout", "the (N, C, T) output reshaped/viewed to (N, T, C), then transposed to (T, N, C)",
            lambda: per_sample_ctc(native_nct.reshape(N, T, C).transpose(0, 1), targets, lengths, target_lengths, blank),
            corrected + "  # use .permute(2, 0, 1), never .view/.reshape, to move the axes")
    else:
        add("layout", "the time-first (T, N, C) output transposed to (N, T, C) before the loss",
            lambda: per_sample_ctc(log_probs.transpose(0, 1), targets, lengths, target_lengths, blank),
            corrected + "  # the output is already (T, N, C): drop the transpose")


def _candidates(item: Prepared, blank: int, num_classes: int, corrected: str, extra_blanks: tuple[int, ...] = ()) -> list[Candidate]:
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
    _layout_candidates(item, blank, corrected, add)
    used = _target_classes(batch)
    # The other end of the classes, and the tokenizer's pad id when there is one (the blank its decoder drops).
    others = dict.fromkeys([num_classes - 1 if blank == 0 else 0, *extra_blanks])
    for other in [value for value in others if value != blank and 0 <= value < num_classes]:
        add("wrong_blank", f"the loss uses blank={other} while Setup.blank is {blank}",
            functools.partial(per_sample_ctc, log_probs, targets, lengths, target_lengths, other), corrected,
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
                _corrected_call(blank, item.layout, "logits")
                + f" — better, fix the model's head as CTC024 says ({log_softmax_call(item.layout)} over the classes) "
                "and pass its output as is")
    if item.kind in ("logits", "log_probs"):
        _axis_candidates(item, blank, corrected, add)
    _length_candidates(item, blank, corrected, add)
    _padded_width_candidates(item, blank, num_classes, corrected, add)
    return found


def _padded_width_candidates(item: Prepared, blank: int, num_classes: int, corrected: str,
                             add: Callable[..., None]) -> None:
    """target_lengths = targets.size(1) for every sample (`torch.full_like(ys_lens, ys_pad.size(1))`): F.ctc_loss then
    reads the padding as labels. A negative pad (ESPnet's ignore_id -1) is an index below 0: torch's CPU kernel reads
    it from memory just before the frame's scores (the frame before's last class, in the output's own memory order),
    so it is tried as given on log-probabilities laid out as the model returns them, and wrapped to the last class.
    The "mean" reduction then divides each sample's loss by the padded width: a copy scaled by length / width gives
    that when reduced with the real target lengths (see `_audit_scalar`)."""
    targets, target_lengths = item.batch.targets, item.batch.target_lengths
    if targets.dim() != 2 or targets.is_floating_point() or not target_lengths.numel():
        return
    width = int(targets.shape[1])
    full = torch.full_like(target_lengths, width)
    if torch.equal(full, target_lengths):
        return
    beyond = torch.arange(width)[None, :] >= target_lengths[:, None].to("cpu")
    padding = targets.detach().cpu()[beyond]
    pad = int(padding.mode().values) if padding.numel() else None
    layout, log_probs, lengths = item.layout or "TNC", item.log_probs, item.lengths
    native = {"NTC": lambda: log_probs.transpose(0, 1).contiguous().transpose(0, 1),
              "NCT": lambda: log_probs.permute(1, 2, 0).contiguous().permute(2, 0, 1)}.get(layout, log_probs.contiguous)()
    wrapped = torch.where(targets < 0, targets + num_classes, targets)
    scale = target_lengths.double().clamp_min(1) / width
    details = {"width": width, "pad": pad, "wraps": pad is not None and pad < 0,
               "last_class": num_classes - 1}
    variant = f"target lengths are the padded width {width} for every sample: the padding" + (
        f" ({pad})" if pad is not None else "") + " is read as labels"
    # As given only when no sample is empty: an empty sample's first label, read at frame 0, would be the pad, and
    # torch would read it from before the first sample's scores (outside the tensor).
    negative = bool((targets < 0).any())
    given = (targets,) if not negative or bool((target_lengths > 0).all()) else ()
    for labels in (*given, wrapped) if negative else given:
        for scaled in (False, True):
            def compute(labels: torch.Tensor = labels, scaled: bool = scaled) -> torch.Tensor:
                losses = per_sample_ctc(native, labels, lengths, full, blank)
                return losses.double().cpu() * scale if scaled else losses
            add("padded_target_lengths", variant, compute, corrected, details)


def _axis_candidates(item: Prepared, blank: int, corrected: str, add: Callable[..., None]) -> None:
    """log_softmax taken inside the criterion over the time or the batch axis of the output as the model returns it
    (`preds.log_softmax(1)` on (N, T, C) preds): the model's own output is fine, the criterion's normalisation is not
    (see `_candidates`; CTC024 is the model's own output normalised so)."""
    layout = item.layout or "TNC"
    time, batch_axis, classes = LAYOUT_AXES.get(layout, LAYOUT_AXES["TNC"])
    native = item.output.detach().float().cpu()
    if native.dim() != 3:
        return
    targets, lengths, target_lengths = item.batch.targets, item.lengths, item.batch.target_lengths
    for axis, name in ((time, "time"), (batch_axis, "batch")):
        if native.shape[axis] < 2:
            continue  # log_softmax over a size-1 axis gives zeros: the probabilities mistake already covers it
        add("criterion_axis", f"log_softmax over axis {axis} ({name}) of the {shape_words(layout)} output, not over the "
            f"class axis {classes}",
            functools.partial(lambda axis: per_sample_ctc(to_tnc(native.log_softmax(axis), layout), targets, lengths,
                                                          target_lengths, blank), axis),
            corrected, {"axis": axis, "axis_name": name, "class_axis": classes, "layout": layout})


def shape_words(layout: str) -> str:
    """"(N, T, C)" for "NTC"."""
    return "(" + ", ".join(layout) + ")"


def _length_candidates(item: Prepared, blank: int, corrected: str, add: Callable[..., None]) -> None:
    """Other input lengths than the output frame counts: the padded length T for every sample, or the raw
    input lengths (see `_candidates`)."""
    log_probs, targets, target_lengths, lengths = item.log_probs, item.batch.targets, item.batch.target_lengths, item.lengths
    frames = log_probs.shape[0]
    full = torch.full_like(lengths, frames)
    if not torch.equal(full, lengths):
        # torch.full((N,), T) or output.shape[0] for every sample: padding frames are aligned as if they were speech.
        add("full_length", f"every sample gets the full padded length {frames} as its input length (padding frames are "
            "aligned too)", lambda: per_sample_ctc(log_probs, targets, full, target_lengths, blank),
            corrected + f"  # each sample's own frame count, not torch.full((N,), {frames})", {"frames": frames})
    raw_lengths = item.batch.input_lengths.to(lengths.device, torch.long)
    if torch.equal(raw_lengths, lengths):
        return
    if int(raw_lengths.max()) <= frames:
        if not torch.equal(raw_lengths, full):
            add("raw_input_lengths", "the raw input lengths passed instead of the output (frame) lengths",
                lambda: per_sample_ctc(log_probs, targets, raw_lengths, target_lengths, blank),
                corrected + f"  # output_lengths: {frame_counts(item)}")
        return
    # F.ctc_loss raises on lengths above T, so a criterion that runs must have cut them to T:
    # input_lengths.clamp(max=T) is the usual way to silence that error.
    clamped = raw_lengths.clamp(max=frames)
    # Raw lengths that all reach T, cut, are T for every sample: the same numbers as the full-length mistake,
    # which says what was passed without guessing how (so that one is named, not this one).
    if not torch.equal(clamped, lengths) and not torch.equal(clamped, full):
        add("raw_input_lengths",
            f"the raw input lengths, cut to the {frames} output frames, passed instead of the output (frame) lengths",
            lambda: per_sample_ctc(log_probs, targets, clamped, target_lengths, blank),
            corrected + f"  # output_lengths: {frame_counts(item)}")


def _target_classes(batch) -> set[int]:
    """The class indices the batch's targets use (within their lengths)."""
    from ctcdoctor.load.batches import split_targets

    sequences, _ = split_targets(batch)
    return {int(value) for sequence in sequences for value in sequence.unique().tolist()}


@provides("label_classes")
def _label_classes(context: Context) -> frozenset[int]:
    """Every class the targets of the batches read use as a label: what tells the blank apart when the audited batch
    alone cannot (`overfit` audits one sample, and puts the loader's first batch's classes in too)."""
    return frozenset(label for batch in context.batches for label in _target_classes(batch))


_TARGETS_SIZE = re.compile(r"size (at least )?(\d+) at dimension (\d+), but got size (\d+) for argument #2 'targets'")
_AT_MOST = re.compile(r"input_lengths to have value at most (\d+), but got value (\d+)")


def _explain_targets_error(error: str, item: Prepared) -> tuple[str, str, str] | None:
    """F.ctc_loss's "Expected tensor to have size ... for argument #2 'targets'": which lengths it was given."""
    match = _TARGETS_SIZE.search(error)
    if match is None:
        return None
    needed, dimension, got = int(match.group(2)), int(match.group(3)), int(match.group(4))
    lengths, batch = item.lengths, item.batch
    if lengths.numel() and needed in (int(lengths.max()), int(lengths.sum())):
        return "swapped_lengths", (f"input (frame) lengths and target lengths swapped: F.ctc_loss read the frame counts "
                                   f"(up to {int(lengths.max())}) as target lengths and raised: {error}"), ""
    if dimension == 1:
        return "target_lengths", (f"target_lengths reach {needed}, longer than the padded targets ({got} wide): they count "
                                  f"padding, or belong to other targets. F.ctc_loss raised: {error}"), (
            "Pass the number of real labels per sample as target_lengths (at most the padded width); CTC012 checks the batch.")
    if batch.concatenated:
        return "target_lengths", (f"target_lengths sum to {needed} but the concatenated targets hold {got} labels. "
                                  f"F.ctc_loss raised: {error}"), (
            "Compute target_lengths from the same encoded labels you concatenate (after any filtering).")
    if lengths.numel() and needed == int(batch.target_lengths.sum()) and needed != batch.size:
        # F.ctc_loss checks 1-D (concatenated) targets against the lengths' sum, padded ones against the batch size.
        flattened = got == batch.targets.numel() and not batch.concatenated
        return "target_lengths", (
            f"the targets passed are 1-D with {got} entries while the target lengths sum to {needed}"
            + (f": the padded ({batch.targets.shape[0]}, {batch.targets.shape[1]}) targets flattened, and the padding "
               "was left in when flattening" if flattened else "") + f". F.ctc_loss raised: {error}"), (
            "Drop the padding when flattening: ys_pad[ys_pad != ignore_id], or concatenate each sample's first U_n "
            "labels (torch.cat([y[:n] for y, n in zip(ys_pad, ys_lens)])); or pass the padded (N, S) targets as they are.")
    return "target_lengths", f"the padded targets have {got} rows for {needed} samples. F.ctc_loss raised: {error}", (
        "Pass targets as (N, S), one row per sample, in the same order as the output's batch axis.")


def frame_counts(item: Prepared) -> str:
    """The output frame counts in the user's terms: "24 for every sample (output.size(1), the time axis of the
    (N, T, C) output)", or the per-sample counts (the first 8) when they differ."""
    lengths = [int(value) for value in item.lengths.tolist()]
    layout = item.layout or "TNC"
    axis = LAYOUT_AXES.get(layout, LAYOUT_AXES["TNC"])[0]
    if lengths and len(set(lengths)) == 1 and lengths[0] == item.log_probs.shape[0]:
        return (f"{lengths[0]} for every sample (output.size({axis}), the time axis of the {shape_words(layout)} "
                "output as the model returns it)")
    shown = ", ".join(map(str, lengths[:8])) + (", ..." if len(lengths) > 8 else "")
    return f"each sample's frames after the model's downsampling ({shown})"


def _explain_error(error: str, item: Prepared) -> tuple[str, str, str] | None:
    """(mistake, what happened, how to fix it or "" for the corrected call) behind an exception of
    F.ctc_loss, read from its message (PyTorch's own texts, kept in the tests); None when it says nothing CTC-specific."""
    explained = _explain_targets_error(error, item)
    if explained is not None:
        return explained
    if "input_lengths must be of size batch_size" in error:
        if item.layout == "NTC":
            return "layout", ("the batch-first (N, T, C) output reached F.ctc_loss without .transpose(0, 1): it reads the "
                              f"batch size from axis 1 and raised: {error}"), ""
        return "batch_axis", (f"F.ctc_loss reads the batch size from axis 1 of log_probs, and it differs from the number of "
                              f"input_lengths: {error}"), "Pass log_probs as (T, N, C) and one input length per sample."
    if "target_lengths must be of size batch_size" in error:
        return "target_lengths", f"the criterion passes a different number of target_lengths than samples: {error}", (
            "Pass one target length per sample, in the batch's order.")
    match = _AT_MOST.search(error)
    if match is not None:
        frames, value = int(match.group(1)), int(match.group(2))
        raw = item.batch.input_lengths
        fix = f"Pass the output frame counts as input lengths: {frame_counts(item)}, not the lengths passed (up to {value})."
        if raw.numel() and value <= int(raw.max()) and value > frames:
            return "raw_input_lengths", (f"the input lengths passed (up to {value}) are longer than the output's {frames} frames: "
                                         f"the raw input lengths instead of the output (frame) lengths. F.ctc_loss raised: {error}"), fix
        return "raw_input_lengths", f"the input lengths passed are longer than the output's {frames} frames: {error}", fix
    if "must be integral" in error:
        return "float_lengths", f"lengths are passed as floating-point tensors: {error}", (
            "Pass integer lengths: input_lengths.long() and target_lengths.long() (or floor a computed length first).")
    if "blank must be in label range" in error:
        return "wrong_blank", f"the loss's blank index is not one of the output's classes: {error}", (
            "Call the loss with blank=Setup.blank, an index below the number of classes (see CTC015).")
    if re.search(r"not implemented for '(Half|BFloat16)'", error):
        return "half_precision", f"the output reaches the loss in half precision (CTC025): {error}", (
            "Cast before the loss: F.ctc_loss(log_probs.float(), ...).")
    if re.search(r"not implemented for '(Long|Int|Short|Char|Byte|Bool)'", error):
        return "integer_output", f"the output reaching the loss is an integer tensor (CTC026): {error}", (
            "Pass the float log-probabilities (log_softmax of the last layer), not class indices.")
    if "invalid combination of arguments" in error and "list" in error:
        return "not_tensors", f"targets or lengths are passed as Python lists: {error}", (
            "Pass tensors: torch.tensor(targets, dtype=torch.long) and the lengths as integer tensors.")
    return None


def audit_criterion(criterion: Callable[..., Any], item: Prepared, blank: int, num_classes: int,
                    extra_blanks: tuple[int, ...] = (), loader_batch: int | None = None) -> CriterionAudit:
    """The user's criterion on one prepared batch against reference CTC, and the mistake that explains a difference.
    `extra_blanks`: blank indices the criterion may use besides the other end of the classes (a tokenizer's pad id);
    `loader_batch`: the loader's batch size, which the criterion may divide by (None: unknown)."""
    batch = item.batch
    target_lengths = batch.target_lengths
    reference = _call_ctc(lambda: per_sample_ctc(item.log_probs, batch.targets, item.lengths, target_lengths, blank))
    if reference is None:
        raise RuntimeError("reference F.ctc_loss failed on this batch")
    infeasible = tuple(batch.sample_id(i) for i in torch.isposinf(reference).nonzero().flatten().tolist())
    common = dict(
        batch=batch.index, first_sample=batch.first_sample, size=batch.size,
        reference=reduce_losses(reference, target_lengths, "mean"),
        reference_zero_infinity=reduce_losses(reference, target_lengths, "mean", zero_infinity=True),
        infeasible=infeasible, per_sample_reference=tuple(float(v) for v in reference),
    )
    corrected = _corrected_call(blank, item.layout, item.kind)
    user, error = _user_value(criterion, item, as_returned(item, item.output))
    if error is not None and as_returned(item, item.output) is not item.output:
        # The protocol before 0.3 gave the criterion the output tensor alone, also for (output, lengths) models.
        alone, alone_error = _user_value(criterion, item, item.output)
        if alone_error is None:
            user, error = alone, None
    if error is not None:
        return _audit_raised(criterion, item, error, blank, corrected, common)
    assert user is not None
    if user.numel() == batch.size and batch.size != 1:
        return _audit_per_sample(user, reference, item, blank, num_classes, corrected, common, extra_blanks)
    if user.numel() != 1:
        return CriterionAudit(user=None, user_error=f"the criterion returned {user.numel()} values for a batch of {batch.size}; "
                              "return one scalar", agrees=False, mistake="raises",
                              variant="returned a tensor that is neither a scalar nor one value per sample", corrected=corrected, **common)
    return _audit_scalar(float(user), reference, item, blank, num_classes, corrected, common, extra_blanks, loader_batch)


def _audit_raised(criterion: Callable[..., Any], item: Prepared, error: str, blank: int, corrected: str,
                  common: dict[str, Any]) -> CriterionAudit:
    """The criterion raised: a batch axis F.ctc_loss did not expect, or an error a known mistake explains."""
    if item.layout is not None:
        # F.ctc_loss raising on the batch axis: does the criterion work once the output is transposed?
        transposed, _ = _user_value(criterion, item, as_returned(item, item.output.transpose(0, 1)))
        if transposed is not None and transposed.numel() == 1 and close(float(transposed), common["reference"]):
            return CriterionAudit(
                user=None, user_error=error, agrees=False, mistake="layout",
                variant="the output's batch axis is not where F.ctc_loss expects it: the criterion raised, "
                "and works once the output is transposed", explained_value=float(transposed),
                corrected=corrected, **common)
    explained = _explain_error(error, item)
    if explained is not None:
        mistake, variant, fix = explained
        return CriterionAudit(user=None, user_error=error, agrees=False, mistake=mistake, variant=variant,
                              corrected=corrected, details={"fix": fix} if fix else {}, **common)
    return CriterionAudit(user=None, user_error=error, agrees=False, mistake="raises", variant=error, corrected=corrected, **common)


def _relative(user: float, explained: float) -> float:
    return abs(user - explained) / abs(explained) if explained not in (0.0,) and math.isfinite(explained) else abs(user - explained)


def _choose(options: list[tuple[float, dict[str, Any]]], user: float, corrected: str, common: dict[str, Any],
            reduction: str = "mean") -> CriterionAudit:
    """The explanation that reproduces the user's value most closely, if one does within the tolerance;
    otherwise an unexplained audit that names the closest one (so no finding claims a match it does not have)."""
    best_deviation, best = min(options, key=lambda option: option[0]) if options else (math.inf, {})
    if best_deviation <= 1.0:
        return CriterionAudit(user=user, user_error=None, agrees=False, relative_difference=_relative(user, best["explained_value"]),
                              **{"corrected": corrected, **best}, **common)
    closest = None
    if best and math.isfinite(best_deviation):
        closest = {key: best.get(key) for key in ("mistake", "variant", "reduction", "divisor", "zero_infinity",
                                                  "explained_value")}
        closest["relative_difference"] = _relative(user, best["explained_value"])
    return CriterionAudit(user=user, user_error=None, agrees=False, mistake=None, reduction=reduction, corrected=corrected,
                          closest=closest, **common)


def _audit_per_sample(user: torch.Tensor, reference: torch.Tensor, item: Prepared, blank: int, num_classes: int,
                      corrected: str, common: dict[str, Any], extra_blanks: tuple[int, ...] = ()) -> CriterionAudit:
    """reduction="none": compare sample by sample; an explanation must reproduce every sample."""
    mean = float(user.mean())

    def worst(values: torch.Tensor) -> float:
        return max((deviation(float(u), float(v)) for u, v in zip(user, values)), default=math.inf)

    if worst(reference) <= 1.0:
        return CriterionAudit(user=mean, user_error=None, agrees=True, mistake=None, reduction="none", **common)
    options = [
        (worst(candidate.per_sample),
         {"mistake": candidate.mistake, "variant": candidate.variant, "reduction": "none", "zero_infinity": False,
          "explained_value": float(candidate.per_sample.mean()), "corrected": candidate.corrected, "details": candidate.details})
        for candidate in _candidates(item, blank, num_classes, corrected, extra_blanks)
    ]
    return _choose(options, mean, corrected, common, reduction="none")


def _audit_scalar(value: float, reference: torch.Tensor, item: Prepared, blank: int, num_classes: int,
                  corrected: str, common: dict[str, Any], extra_blanks: tuple[int, ...] = (),
                  loader_batch: int | None = None) -> CriterionAudit:
    """One value: agreeing with the reference wins; otherwise the closest of the reference under another
    reduction and of each known mistake under each reduction, if it is within the tolerance. `loader_batch`: the
    loader's batch size, which a loss may divide by (see ctcdoctor.measure.reference.DIVIDED)."""
    target_lengths, size = item.batch.target_lengths, item.batch.size
    agreed = reduce_losses(reference, target_lengths, "mean")
    if close(value, agreed):
        return CriterionAudit(user=value, user_error=None, agrees=True, mistake=None, explained_value=agreed,
                              relative_difference=_relative(value, agreed), corrected=corrected, **common)
    tried = reductions(size, loader_batch)

    def reduced(per_sample: torch.Tensor, how: str, zero_infinity: bool) -> tuple[float, dict[str, Any]]:
        explained = reduce_losses(per_sample, target_lengths, how, zero_infinity, loader_batch)
        return deviation(value, explained), {"reduction": how, "divisor": divisor(how, size, loader_batch),
                                             "zero_infinity": zero_infinity, "explained_value": explained}

    options: list[tuple[float, dict[str, Any]]] = []
    for zero_infinity in (False, True):
        for how in tried:
            if how == "mean" and not zero_infinity:
                continue
            # mean with zero_infinity and no other difference: CTC031's case, not a CTC030 mistake.
            off, numbers = reduced(reference, how, zero_infinity)
            options.append((off, {"mistake": None if how == "mean" else "reduction",
                                  "variant": "" if how == "mean" else reduction_words(how, size, numbers["divisor"]),
                                  **numbers}))
    for candidate in _candidates(item, blank, num_classes, corrected, extra_blanks):
        for zero_infinity in (False, True):
            for how in tried:
                off, numbers = reduced(candidate.per_sample, how, zero_infinity)
                options.append((off, {"mistake": candidate.mistake, "variant": candidate.variant, **numbers,
                                      "corrected": candidate.corrected, "details": candidate.details}))
    return _choose(options, value, corrected, common)


def reduction_words(how: str, size: int = 0, by: int | None = None) -> str:
    """A reduction in words, with the batch size a DIVIDED one divides by (`by`) and this batch's `size`."""
    samples = f"{size} sample" + ("s" if size != 1 else "")
    if how == "sum" and size == 1:  # on one sample the sum is the batch mean: name both, as `check` may name either
        return ('reduction="sum" or, the same number on one sample, per-sample losses averaged over the batch without '
                'dividing by target lengths (reduction="none" then .mean(), or .sum() / batch_size)')
    return {
        "sum": 'reduction="sum": per-sample losses summed over the batch',
        "batch_mean": "per-sample losses averaged over the batch without dividing by target lengths "
        '(reduction="none" then .mean())',
        "mean_by_batch": f'reduction="mean" divided again by the batch size {by} (CTCLoss()(...) / batch_size: the '
        "mean already averages over the batch)",
        "sum_by_loader_batch": f'reduction="sum" divided by {by}, the loader\'s batch size, not this batch\'s {samples} '
        "(a fixed / batch_size after a summed loss)",
        "mean_by_loader_batch": f'reduction="mean" divided again by {by}, the loader\'s batch size (a fixed / batch_size '
        "after the mean, which already averages over the batch)",
        "mean": 'reduction="mean"',
        "none": 'reduction="none"',
    }[how]


@provides("criterion_audit")
def _criterion_audit(context: Context) -> CriterionAudits:
    criterion = context.setup.criterion
    if criterion is None:
        return CriterionAudits((), NO_CRITERION)
    prepared = context.ctc_batches
    if prepared.skipped:
        return CriterionAudits((), prepared.skipped)
    # Eval mode: a criterion that runs the model itself (a Hugging Face model's own loss) must not see dropout or
    # SpecAugment noise, which would read as a mismatch with reference CTC.
    pad = context.vocabulary.pad_id
    extra = () if pad is None else (pad,)
    items = as_trained(prepared.items, _training_view(context))
    loader_batch = context.loader_batch_size
    with evaluating(context.setup.model):
        audits = tuple(with_other_heads(criterion, item, audit_criterion(criterion, item, context.setup.blank,
                                                                         context.num_classes, extra, loader_batch))
                       for item in items)
    return CriterionAudits(audits)


def with_other_heads(criterion: Callable[..., Any], item: Prepared, audit: CriterionAudit) -> CriterionAudit:
    """An unexplained value from a model that returned more outputs than the one checked: name them, and measure
    whether the criterion normalises the checked one itself (its value does not move when each frame's scores move
    by one constant, whatever it adds for the other outputs)."""
    heads = other_heads(item.returned)
    if not heads or audit.agrees or audit.mistake is not None or audit.user_error is not None:
        return audit
    if uses_other_items(criterion, item) is False:
        return audit  # the value depends on item 0 alone: reference CTC on it is the whole comparison
    output = item.output
    shape = list(output.shape)
    shape[class_dim(item.layout)] = 1
    shift = 3 * torch.randn(shape, generator=torch.Generator().manual_seed(0), dtype=torch.float32)
    base, _ = _user_value(criterion, item, as_returned(item, output))
    moved, _ = _user_value(criterion, item, as_returned(item, output + shift.to(output.device, output.dtype)))
    same = (base is not None and moved is not None and base.shape == moved.shape
            and bool(torch.allclose(base, moved, rtol=1e-4, atol=1e-6)))
    return replace(audit, other_heads=heads, normalises=same)




def uses_other_items(criterion: Callable[..., Any], item: Prepared) -> bool | None:
    """Whether the criterion's value has a gradient path to a returned item other than the output (the float tensors
    `other_heads` names), as ctcdoctor.overfit.loss.settle asks of the loss it trains: each such item is given as a
    leaf that requires a gradient, and autograd says which the value reaches. None when this cannot be measured (the
    model did not return a tuple or list, the criterion raised or returned no tensor): then nothing is concluded."""
    returned = item.returned
    if not isinstance(returned, (tuple, list)) or hasattr(returned, "logits") or len(returned) < 2:
        return None
    items = list(as_returned(item, item.output))
    leaves = []
    for position in range(1, len(items)):
        value = items[position]
        if isinstance(value, torch.Tensor) and value.is_floating_point() and value.dim() >= 2:
            items[position] = value.detach().clone().requires_grad_(True)
            leaves.append(items[position])
    if not leaves:
        return None
    given: Any = (type(returned)(*items) if hasattr(returned, "_fields")
                  else items if isinstance(returned, list) else tuple(items))
    try:
        with torch.enable_grad():
            value = criterion(given, item.batch.raw)
            if not isinstance(value, torch.Tensor) or not value.is_floating_point():
                return None
            if not value.requires_grad:
                return False
            grads = torch.autograd.grad(value.sum(), leaves, allow_unused=True)
    except Exception:
        return None
    return any(grad is not None for grad in grads)


def _training_view(context: Context) -> TrainingView:
    """What training sees (see ctcdoctor.measure.outputs.TrainingView); the eval view when it cannot be measured."""
    try:
        return context.training_view
    except Exception:
        return TrainingView(skipped="the train-mode output could not be measured")


def as_trained(items: tuple[Prepared, ...], view: TrainingView) -> tuple[Prepared, ...]:
    """The prepared batches with the output training sees, when it differs in kind from the eval-mode one (an
    eval-only softmax): the criterion is given that output, and reference CTC is computed on it too."""
    if not view.differs:
        return items
    trained = {run.batch.index: (run, kind) for run, kind in zip(view.runs, view.kinds)}
    changed = []
    for item in items:
        run, kind = trained.get(item.batch.index, (None, None))
        if run is None or kind is None:
            changed.append(item)
            continue
        how = prepared_kind(kind)
        log_probs = normalised_log_probs(to_tnc(run.output, item.layout).detach().cpu(), how)
        changed.append(dataclasses.replace(item, output=run.output, log_probs=log_probs, kind=how, returned=run.returned))
    return tuple(changed)




# ---------------------------------------------------------------- CTC021: does the criterion normalise the output?

@dataclass(frozen=True)
class ShiftProbe:
    """The criterion called on the output and on the output plus a constant per frame (the same for every class of
    a frame, different from frame to frame and sample to sample).

    log_softmax over the classes cancels such a constant, so a criterion that applies it (or any normalisation over
    the classes) gives the same value; CTC on the raw scores moves by the sum of the constants over each sample's
    frames. This tells whether the criterion normalises even when its value differs from reference CTC for another
    reason (a scale, a wrong blank, targets outside the classes), where the criterion audit cannot say."""

    invariant: bool | None = None
    """True: the value did not move; False: it moved; None: not measured (see `detail`)."""
    values: tuple[float, float] | None = None
    """The criterion's value (summed when it returns one per sample) on the output and on the shifted output."""
    detail: str = ""


#: Per-frame constants of the probe lie in [SHIFT_LOW, SHIFT_LOW + 1).
SHIFT_LOW = 0.5


def _probe_batch(batch: Any, num_classes: int, blank: int) -> Any | None:
    """The batch as the criterion reads it, with labels outside [0, C) replaced by a valid one: F.ctc_loss reads
    past the output for such labels (CTC010), and the probe only needs the loss to be defined. None when the batch
    cannot be rebuilt or its targets do not split."""
    from collections.abc import Mapping

    from ctcdoctor.load.batches import split_targets

    sequences, problems = split_targets(batch)
    if problems:
        return None
    if all(not sequence.numel() or (int(sequence.min()) >= 0 and int(sequence.max()) < num_classes)
           for sequence in sequences):
        return batch.raw
    raw = batch.raw
    targets = raw.get("targets") if isinstance(raw, Mapping) else raw[1] if isinstance(raw, (tuple, list)) and len(raw) == 4 else None
    if not isinstance(targets, torch.Tensor):
        return None
    label = (blank + 1) % num_classes
    inside = (targets >= 0) & (targets < num_classes)
    fixed = torch.where(inside, targets, torch.full_like(targets, label))
    if isinstance(raw, Mapping):
        return {**raw, "targets": fixed}
    items = [raw[0], fixed, raw[2], raw[3]]
    if isinstance(raw, tuple) and hasattr(raw, "_fields"):
        return type(raw)(*items)
    return type(raw)(items)


def _value(criterion: Callable[..., Any], output: Any, raw: Any) -> torch.Tensor | None:
    try:
        with torch.no_grad():
            value = criterion(output, raw)
        return torch.as_tensor(value.detach() if isinstance(value, torch.Tensor) else value).double().cpu().reshape(-1)
    except Exception:
        return None


def shift_probe(criterion: Callable[..., Any], run: ModelRun, layout: str | None, num_classes: int, blank: int) -> ShiftProbe:
    """See `ShiftProbe`: the criterion on one model batch's output, and on it plus a constant per frame."""
    output = run.output
    if not output.is_floating_point() or output.dim() != 3:
        return ShiftProbe(detail="the output is not a floating-point (T, N, C) tensor")
    raw = _probe_batch(run.batch, num_classes, blank)
    if raw is None:
        return ShiftProbe(detail="the batch's targets could not be made valid for the probe")
    tnc = to_tnc(output, layout)
    generator = torch.Generator().manual_seed(0)
    constants = torch.rand(tnc.shape[0], tnc.shape[1], 1, generator=generator) + SHIFT_LOW  # (T, N, 1)
    # The same constant for every class of a frame, moved from (T, N, 1) to the output's own layout.
    shift = {"NTC": constants.transpose(0, 1), "NCT": constants.permute(1, 2, 0)}.get(layout or "TNC", constants)
    shifted = output + shift.to(output.device, output.dtype)
    values = []
    for candidate in (output, shifted):
        value = _value(criterion, as_returned(run, candidate), raw)
        if value is None and as_returned(run, candidate) is not candidate:  # the protocol before 0.3: the tensor alone
            value = _value(criterion, candidate, raw)
        if value is None or value.numel() == 0 or not bool(torch.isfinite(value).all()):
            return ShiftProbe(detail="the criterion raised or gave a non-finite value")
        values.append(value)
    first, second = values
    totals = (float(first.sum()), float(second.sum()))
    if first.shape != second.shape or not bool(first.abs().sum() > 0):
        return ShiftProbe(values=totals, detail="the criterion gives 0 (every sample infeasible?)")
    invariant = all(close(float(b), float(a)) for a, b in zip(first, second))
    return ShiftProbe(invariant, totals)


class CriterionShift:
    """The shift probe, measured on first use only (two more calls of the criterion, which may run the model): CTC021
    needs it only when the criterion audit cannot tell whether the criterion applies log_softmax."""

    def __init__(self, measure: Callable[[], ShiftProbe]) -> None:
        self._measure = measure
        self._probe: ShiftProbe | None = None

    def probe(self) -> ShiftProbe:
        if self._probe is None:
            try:
                self._probe = self._measure()
            except Exception as error:
                self._probe = ShiftProbe(detail=f"{type(error).__name__}: {error}")
        return self._probe


def _shift_on_first_batch(context: Context) -> ShiftProbe:
    criterion = context.setup.criterion
    if criterion is None:
        return ShiftProbe(detail=NO_CRITERION)
    view = _training_view(context)
    run = view.runs[0] if view.differs else context.runs[0]
    with evaluating(context.setup.model):
        return shift_probe(criterion, run, context.layout.layout, context.num_classes, context.setup.blank)


@provides("criterion_shift")
def _criterion_shift(context: Context) -> CriterionShift:
    """The shift probe on the first model batch, on the output training sees (CTC021 asks: does the criterion apply
    log_softmax?)."""
    return CriterionShift(lambda: _shift_on_first_batch(context))
