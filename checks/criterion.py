"""Criterion checks: does the user's own loss compute CTC as PyTorch's reference does?"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING

from ctcdoctor.registry import SkipCheck, check, finding
from ctcdoctor.render.phrases import numbered, of_total

#: The tolerance an explanation must meet (ctcdoctor.measure.reference.RTOL; repeated so that this module stays torch-free).
RTOL = 1e-4
#: When nothing explains the value, the nearest mistake tried is named only if it is this close (relative) and
#: closes most of the gap to the reference (CLOSES_GAP): farther off, a wrong blank 1.5 % away on a value 3 % from
#: the reference says nothing about the real mistake, and a user would go looking for it.
CLOSE = 1e-2
CLOSES_GAP = 0.9

if TYPE_CHECKING:  # pragma: no cover
    from ctcdoctor.findings import Finding
    from ctcdoctor.frameworks.hf_facts import HFFacts
    from ctcdoctor.measure.criterion import CriterionAudits
    from ctcdoctor.measure.model import LayoutDecision
    from ctcdoctor.measure.outputs import OutputKind, TrainingView
    from ctcdoctor.measure.vocabulary import Vocabulary
    from ctcdoctor.protocol import Setup

MISTAKE_WORDS = {
    "swapped_lengths": "input (frame) lengths and target lengths are swapped",
    "layout": "the output reaches the loss in the wrong layout",
    "wrong_blank": "the loss uses a different blank index than Setup.blank",
    "probabilities": "the loss receives probabilities, not log-probabilities",
    "raw_logits": "the loss receives raw logits, not log-probabilities",
    "raw_input_lengths": "the loss receives the raw input lengths, not the output frame counts",
    "full_length": "every sample gets the full padded length T as its input length (padding frames are aligned too)",
    "wrong_axis": "the loss receives an output normalised over the wrong axis",
    "criterion_axis": "your criterion normalises over the wrong axis",
    "reduction": "the loss reduces the batch differently",
    "raises": "the criterion raises",
    "target_lengths": "target_lengths do not fit the targets",
    "batch_axis": "the output's batch axis is not where F.ctc_loss reads it",
    "float_lengths": "lengths are passed as floating-point tensors",
    "half_precision": "the output reaches the loss in half precision",
    "integer_output": "the output reaching the loss is an integer tensor",
    "not_tensors": "targets or lengths are passed as Python lists",
    "padded_target_lengths": "target lengths are the padded width (the padding is read as labels)",
}


CHANGES = {
    "swapped_lengths": "Pass the output frame lengths before the target lengths.",
    "probabilities": "Give the loss log-probabilities: log_softmax where the criterion has softmax.",
    "raw_logits": "Give the loss log-probabilities: apply log_softmax over the classes to the output first.",
    "raw_input_lengths": "Give the loss the frame counts after the model's downsampling, not the raw input lengths.",
    "full_length": "Give the loss each sample's own frame count as its input length.",
    "wrong_axis": "Give the loss log-probabilities over the classes, not over time or the batch.",
    "padded_target_lengths": ("Pass each sample's true label count as target_lengths (ESPnet's ys_lens, or "
                              "(ys_pad != ignore_id).sum(-1)), not targets.size(1) for every sample."),
}
"""The one change in the user's code, by mistake: said before the corrected call, which rewrites the whole call."""


def _change(audit) -> str:
    """The one change to make, before the corrected call ("Call the loss as" when there is no single change)."""
    if audit.mistake == "layout":
        if "permute(2, 0, 1)" in audit.corrected:
            return "Permute the (N, C, T) output to (T, N, C) with .permute(2, 0, 1) (.view and .reshape mix the frames up)."
        if "transpose(0, 1)" in audit.corrected:
            return "Transpose the batch-first (N, T, C) output to (T, N, C) (.transpose(0, 1) or .permute(1, 0, 2))."
    if audit.mistake == "criterion_axis" and audit.details:
        axis, classes = audit.details["axis"], audit.details["class_axis"]
        return (f"Normalise over the class axis: log_softmax({classes}) (or log_softmax(-1)) where the criterion has "
                f"log_softmax({axis}).")
    return CHANGES.get(audit.mistake or "", "")


def _skip_unless_audited(audits: CriterionAudits) -> None:
    """No criterion given is no problem (not applicable); a criterion that could not be audited is a skip worth reading."""
    from ctcdoctor.measure.criterion import NO_CRITERION

    if audits.skipped:
        raise SkipCheck(audits.skipped, applicable=audits.skipped != NO_CRITERION)


def _value(value) -> str:
    if value is None:
        return "—"
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return f"{value:.6g}"


@check("CTC030", "error", "the criterion disagrees with reference CTC",
       variants=(("info", "the criterion reduces the batch differently from reference CTC"),
                 ("warning", "the criterion aligns the padding frames too")))
def criterion_disagrees(
    criterion_audit: CriterionAudits, setup: Setup, vocabulary: Vocabulary | None = None, hf: HFFacts | None = None,
    label_classes: frozenset[int] = frozenset(), output_kinds: list[OutputKind] | None = None,
    training_view: TrainingView | None = None, layout: LayoutDecision | None = None,
) -> list[Finding]:
    """
    **What it checks.** When `Setup.criterion` is given, ctcdoctor calls
    `criterion(output, batch)` on the model's output for each model batch and compares it
    with the reference, `F.ctc_loss` on float32 log-probabilities of the `(T, N, C)` output
    with `Setup.blank`, the output frame counts, and `reduction="mean"` (relative tolerance
    1e-3). When they differ it recomputes CTC with each known mistake and names the one that
    reproduces your value within a relative tolerance of 1e-4 (the closest one when
    several do; in JSON, `evidence.mistake` and `evidence.relative_difference`):

    - `swapped_lengths` — `F.ctc_loss(lp, targets, target_lengths, input_lengths)`;
    - `layout` — a batch-first `(N, T, C)` output passed (or `.view`-ed) as `(T, N, C)`, or a
      `Conv1d` head's `(N, C, T)` output `.reshape`-d or `.view`-ed instead of `.permute(2, 0, 1)`;
    - `wrong_blank` — `blank=C-1` where the targets use 0, or the reverse;
    - `probabilities` / `raw_logits` — softmax output or raw logits instead of log-probabilities;
    - `full_length` — the padded length `T` for every sample (`torch.full((N,), T)`), so
      padding frames are aligned too; named rather than `raw_input_lengths` when raw lengths
      cut to `T` would give the same numbers, since `T` for every sample is what was passed.
      This one is a **warning**: it trains when inference decodes every frame too and the
      padding repeats the input's border (deep-text-recognition-benchmark's `--PAD`);
    - `raw_input_lengths` — input lengths before the model's downsampling;
    - `padded_target_lengths` — the padded width `targets.size(1)` as every sample's target
      length (`torch.full_like(ys_lens, ys_pad.size(1))`), so the padding is read as labels
      (ESPnet's `ignore_id` -1 is a class index to F.ctc_loss, read from the scores next to the
      last class): tried with the padding as given and wrapped to the last class;
    - `wrong_axis` — an output `log_softmax`-ed over time or batch (CTC024) passed as it is;
    - `criterion_axis` — the criterion's own `log_softmax` over the time or batch axis of a
      model output that is fine (`preds.log_softmax(1)` on `(N, T, C)` preds): the finding
      names the axis and the class axis to normalise over instead;
    - `reduction` — `reduction="sum"` or a plain batch mean instead of the default `mean`, or
      a division by a batch size on top: the mean divided again by the batch's `N`
      (`CTCLoss()(...) / batch_size`), or the sum or the mean divided by the loader's batch
      size, a fixed number in the training loop (`CTCLoss(reduction="sum")(...) / batch_size`,
      as georgeretsi/HTR-best-practices writes it), which differs from `N` on a last, partial
      batch and on the samples `overfit` trains (there it also says what the division means
      for the learning rate of the optimizer that trained); when that is the only difference
      the finding is an **info** note, as it may be deliberate; next to another mistake
      (raw logits and a `/ batch_size`) the finding names both;
    - `raises` — the criterion throws (the exception is reported; if F.ctc_loss's message
      points at swapped lengths or the batch axis, that mistake is named instead).

    Each mistake is also tried with infeasible samples counted as 0 (`zero_infinity=True`).
    When none reproduces the value within the tolerance, the finding says so, rather than
    claiming a match, and names the closest one tried with how far off it is if it is close:
    within 1 % of your value and nearer to it than the reference by 90 % of the distance
    (otherwise it says that none comes within 1 %: a far guess would send you after the wrong
    mistake; `evidence.closest` still records it). When the
    criterion raises, the error text is read for the mistake it points at: targets narrower
    than the lengths (swapped lengths, or lengths counted with padding), a batch axis in the
    wrong place, lengths longer than the output, float lengths, a blank outside the classes,
    half-precision or integer outputs, targets passed as a Python list.

    **Why it matters.** None of these crash in the usual case. Each produces a number that
    falls (or stays flat) while the model learns the wrong thing or nothing: swapped lengths
    with `zero_infinity=True` give a loss of exactly 0; a wrong blank teaches the model to
    use a letter as the blank; probabilities instead of log-probabilities make the loss
    meaningless.

    **Example.**
    ```
    error CTC030 batch 0: the criterion gives 0 but reference CTC gives 3.91:
      input (frame) lengths and target lengths swapped (with zero_infinity=True) reproduces 0.
      fix: F.ctc_loss(output, targets, output_lengths, target_lengths, blank=0)
    ```

    A Hugging Face model whose only difference is its own summed loss
    (`config.ctc_loss_reduction="sum"`) is reported by CTC103 alone, with the factor and the fix
    in the model's terms: CTC030 is then not applicable and says so.

    A model that returns more outputs than the one checked (a second CTC head, as
    `return y, y_aux`) gives them to the criterion too, which often adds their loss
    (`loss(y) + 0.1 * loss(y_aux)`). When no known mistake explains the value then and the
    criterion's value has a gradient path to one of those other outputs, CTC030 is skipped with
    the reason (the other outputs, and whether the criterion applies `log_softmax` to the first
    itself), rather than blaming a difference that reference CTC on the first output cannot
    have. A criterion that only passes them by (it uses the first output alone) is judged as
    any other.

    When the probabilities come from the model itself (its head applies softmax, CTC020) and
    the criterion passes them on as they are, the fix is at the head, not in the criterion:
    the finding says so and is marked as a consequence of CTC020.

    **Fix.** The hint names the one change first (e.g. "log_softmax where the criterion has
    softmax", "Transpose the batch-first (N, T, C) output"), then the corrected call:
    `F.ctc_loss(log_probs, targets, output_lengths, target_lengths, blank=BLANK)` with
    `log_probs` a `(T, N, C)` `log_softmax` output, lengths in frames after downsampling,
    and the blank your targets reserve.
    """
    _skip_unless_audited(criterion_audit)
    for audit in criterion_audit.audits:
        if audit.agrees:
            continue
        if audit.zero_infinity and audit.mistake is None:
            continue  # zero_infinity hiding infeasible samples: CTC031
        if audit.mistake == "reduction" and audit.reduction == "sum" and hf is not None and hf.ctc_loss_reduction == "sum":
            raise SkipCheck(f"the criterion differs from reference CTC only by {hf.model_class}'s summed loss "
                            "(config.ctc_loss_reduction='sum'): see CTC103", applicable=False)
        if audit.other_heads:
            raise SkipCheck(_other_heads_reason(audit))
        found = _finding(audit, setup, vocabulary, label_classes)
        if audit.mistake == "probabilities" and _model_gives_probabilities(output_kinds, training_view):
            found = _from_model_softmax(found, audit, layout)
        return [found]
    return []


def _model_gives_probabilities(output_kinds: list[OutputKind] | None, training_view: TrainingView | None) -> bool:
    """Whether the output the loss sees is probabilities over the classes already (CTC020's situation): then the
    softmax is in the model's head, not in the criterion."""
    if output_kinds is None:
        return False
    kinds = training_view.judged(output_kinds) if training_view is not None else output_kinds
    return any(kind.kind == "probs" and kind.axis == 2 for kind in kinds)


def _from_model_softmax(found: Finding, audit, layout: LayoutDecision | None) -> Finding:
    """CTC030 for probabilities that the model returns and the criterion passes on as they are: the change is at
    the model's head (CTC020 reports it), and this finding is its consequence."""
    from ctcdoctor.measure.outputs import log_softmax_call

    call = audit.corrected.partition(" — ")[0].partition("  # ")[0].rstrip()
    hint = ("The model's output is already probabilities (its head applies softmax: CTC020), and the criterion passes "
            f"them on as they are: replace that softmax with {log_softmax_call(layout.layout if layout else None)} at "
            "the head, and the loss gets log-probabilities with no change in the criterion (taking log() in it, "
            f"{call}, underflows to -inf once the model is confident).")
    return finding("CTC030", found.message.replace(MISTAKE_WORDS["probabilities"],
                                                   "the loss receives the model's probabilities, not log-probabilities"),
                   hint, {**found.evidence, "probabilities_from": "model"}, severity=found.severity.value,
                   title=found.title, consequence_of="CTC020")


def _other_heads_reason(audit) -> str:
    """Why an unexplained value is not judged: the criterion also gets the model's other outputs."""
    heads = "; ".join(audit.other_heads)
    normalises = " (it does apply log_softmax over the classes to item 0)" if audit.normalises else ""
    return (f"batch {audit.batch}: the model returns more outputs than the one checked ({heads}) and the criterion "
            f"gets them too: its value {_value(audit.user)} may add their loss terms{normalises}, which reference CTC on "
            f"item 0 ({_value(audit.reference)}) has not; to audit the loss of item 0, give Setup.criterion a loss on "
            "it alone")


def _scale(audit) -> str:
    """What a reduction other than the mean does to the gradient's scale (a sum divided by N is the batch mean; a
    division by a batch size makes every step that many times smaller, which Adam-like optimizers undo)."""
    how, by, size = audit.reduction, audit.divisor, audit.size
    if how == "sum" and size == 1:
        return ("the gradient scale then grows with the label lengths (longer transcripts weigh more), and with the batch "
                "size too if it is a sum over the batch")
    if how == "sum":
        return "the gradient scale then grows with the batch size and the label lengths"
    if how == "batch_mean":
        return "the gradient scale then grows with the label lengths (longer transcripts weigh more)"
    if how == "mean_by_batch":
        return (f"the loss and its gradient are then {by}x smaller than the mean's, and so is a plain SGD step "
                "(Adam-like optimizers normalise the step)")
    if how == "sum_by_loader_batch":
        return (f"on full batches of {by} it is the batch mean (the gradient scale grows with the label lengths), and on "
                f"this batch of {size} it is {size}/{by} of it, so a plain SGD step is {by / size:.3g}x smaller than on a "
                "full batch (Adam-like optimizers normalise the step)")
    if how == "mean_by_loader_batch":
        return (f"the loss and its gradient are then {by}x smaller than the mean's, and so is a plain SGD step "
                "(Adam-like optimizers normalise the step)")
    return "the gradient scale then grows with the batch"


def _reduction_fix(audit) -> str:
    """How to get the mean back, for the reduction the audit found (the corrected call follows)."""
    if audit.reduction in ("mean_by_batch", "mean_by_loader_batch"):
        return "drop the / batch_size (the default mean already averages over the batch)"
    if audit.reduction == "sum_by_loader_batch":
        return ("divide by the batch's own size (output.size(1)) so that a smaller batch keeps the scale, or use the "
                "default mean, which divides each sample's loss by its target length and averages over the batch")
    return "use the default mean, which divides each sample's loss by its target length and averages over the batch"


def _call(prefix: str, corrected: str) -> str:
    """`prefix` + the corrected call as a sentence: a trailing `# note` becomes a bracket, and it ends with a period."""
    call, _, note = corrected.partition("  # ")
    return f"{prefix} {call.rstrip()}" + (f" ({note.strip()})" if note else "") + "."


def _wrong_blank(audit, where: str, user: str, reference: str, evidence: dict, vocabulary: Vocabulary | None = None,
                 label_classes: frozenset[int] = frozenset()):
    """CTC030 for a criterion that uses another blank index: name both (with their tokens when a tokenizer is
    given), and say which side is likely wrong, from the labels of every batch read (`label_classes`), not only the
    audited one (one sample in `overfit`)."""
    details = audit.details
    other, blank = details.get("criterion_blank"), details.get("setup_blank")
    if vocabulary is not None and vocabulary.tokens:
        return _wrong_blank_tokens(audit, where, user, reference, evidence, vocabulary)
    how = f"recomputing CTC with blank={other}" + (f", {_reduction_short(audit.reduction, audit.divisor)}"
                                                  if audit.reduction != "mean" else "")
    how += " with zero_infinity=True" if audit.zero_infinity else ""
    message = (
        f"{where}: the criterion gives {user} but reference CTC with Setup.blank = {blank} gives {reference}: the loss "
        f"uses blank={other} while Setup.blank is {blank} ({how} {_reproduces(audit)})."
    )
    uses_other = details.get("targets_use_criterion_blank") or other in label_classes
    uses_blank = details.get("targets_use_setup_blank") or blank in label_classes
    if uses_blank and not uses_other:
        # CTC011 fires too: the data and the loss agree on blank=other; only Setup.blank is off.
        message += (
            f" The targets use class {blank} as a label and never use class {other}: your loss is probably right and "
            "ctcdoctor was told the wrong blank."
        )
        hint = (f"Set Setup.blank = {other} in build() (the blank your loss and labels use). "
                + _call(f"If {blank} really is the blank, re-encode the labels and call the loss with blank={blank}:", audit.corrected))
    elif uses_other:
        message += f" The targets use class {other} as a label, so it cannot be the blank."
        hint = _call(f"Call the loss with blank={blank}:", audit.corrected)
    else:
        message += f" The targets use neither class {blank} nor class {other} as a label, so either can be the blank."
        call = audit.corrected.partition("  # ")[0].rstrip()
        hint = (f"Use one blank everywhere: call the loss with blank={blank} ({call}), or, if class {other} is your "
                f"blank, set Setup.blank = {other} in build().")
    evidence.update({"criterion_blank": other, "setup_blank": blank})
    return finding("CTC030", message, hint, evidence)


def _wrong_blank_tokens(audit, where: str, user: str, reference: str, evidence: dict, vocabulary: Vocabulary):
    """The wrong-blank finding in the tokenizer's words: the blank must be its pad token."""
    other, blank = int(audit.details["criterion_blank"]), int(audit.details["setup_blank"])
    pad = vocabulary.pad_id
    message = (f"{where}: the criterion gives {user} but reference CTC with the blank {vocabulary.name(blank)} gives "
               f"{reference}: the loss uses {vocabulary.name(other)} as its blank (recomputing CTC that way reproduces "
               f"{_value(audit.explained_value)}).")
    if pad is not None:
        message += f" The tokenizer pads (and its decoder drops) {vocabulary.name(pad)}."
    right = pad if pad in (blank, other) else blank
    if right == other:
        hint = f"The loss is right, ctcdoctor was told the wrong blank: {vocabulary.set_blank(other)}."
    else:
        hint = _call(f"Call the loss with blank={right} ({vocabulary.name(right)}):", audit.corrected)
    evidence.update({"criterion_blank": other, "setup_blank": blank, "tokenizer_pad_id": pad})
    return finding("CTC030", message, hint, evidence)


def _finding(audit, setup, vocabulary=None, label_classes: frozenset[int] = frozenset()):
    where = f"batch {audit.batch}"
    reference = _value(audit.reference)
    evidence = {
        "batch": audit.batch,
        "mistake": audit.mistake or "unknown",
        "variant": audit.variant,
        "user_value": audit.user,
        "reference_value": audit.reference,
        "explained_value": audit.explained_value,
        "reduction": audit.reduction,
        "divisor": audit.divisor,
        "zero_infinity": audit.zero_infinity,
        "corrected_call": audit.corrected,
        "relative_difference": audit.relative_difference,
        "tolerance": RTOL,
    }
    if audit.closest:
        evidence["closest"] = audit.closest
    if audit.user_error is not None and audit.mistake in ("raises", None):
        evidence["error"] = audit.user_error
        return finding(
            "CTC030",
            f"{where}: criterion(output, batch) raised {audit.user_error}. Reference CTC on this batch is {reference}.",
            _call("Make the criterion run on the model's output and the batch as the loader yields it; the reference call is",
                  audit.corrected),
            evidence,
        )
    if audit.user_error is not None:
        evidence["error"] = audit.user_error
        fix = audit.details.get("fix") if audit.details else None
        return finding(
            "CTC030",
            f"{where}: criterion(output, batch) raised because {audit.variant}. Reference CTC on this batch is {reference}.",
            f"{fix} " + _call("The reference call is", audit.corrected) if fix else _call("Call the loss as", audit.corrected),
            evidence,
        )
    user = _value(audit.user)
    if audit.mistake is None:
        return finding(
            "CTC030",
            f"{where}: the criterion gives {user} but reference CTC gives {reference} "
            f"(reduction mean; with zero_infinity=True {_value(audit.reference_zero_infinity)}), and none of the known mistakes "
            f"(swapped lengths, layout, blank, probabilities, raw logits, log_softmax over the wrong axis, full or raw input "
            f"lengths, target lengths = the padded width, reduction, a division by the "
            f"batch size) reproduces it within "
            f"{RTOL:.0e} relative{_closest(audit)}.",
            _call("Compare your loss with the reference call on one batch:", audit.corrected),
            evidence,
        )
    zero_infinity = " with zero_infinity=True" if audit.zero_infinity else ""
    if audit.mistake == "reduction":
        return finding(
            "CTC030",
            f"{where}: the criterion gives {user}, reference CTC (reduction mean) gives {reference}; the difference is only the "
            f"reduction: {audit.variant}{zero_infinity} {_reproduces(audit)}. Fine when deliberate: {_scale(audit)}.",
            _call(f"Keep it if deliberate (scale the learning rate to match); otherwise {_reduction_fix(audit)}:",
                  audit.corrected),
            evidence,
            severity="info",
            title="the criterion reduces the batch differently from reference CTC",
        )
    if audit.mistake == "wrong_blank" and audit.details:
        return _wrong_blank(audit, where, user, reference, evidence, vocabulary, label_classes)
    if audit.reduction not in ("mean", "none"):
        return _two_differences(audit, where, user, reference, evidence)
    if audit.mistake == "full_length":
        return _full_length(audit, where, user, reference, evidence, zero_infinity)
    return finding(
        "CTC030",
        f"{where}: the criterion gives {user} but reference CTC gives {reference}: {_words(audit)} "
        f"(recomputing CTC that way{zero_infinity} {_reproduces(audit)}).",
        _call(f"{_change(audit)} The call:" if _change(audit) else "Call the loss as", audit.corrected),
        evidence,
    )


def _full_length(audit, where: str, user: str, reference: str, evidence: dict, zero_infinity: str) -> Finding:
    """The padded length T for every sample: a warning, not an error. Training works when the decoder also reads every
    frame and the padding looks like the input's own border (deep-text-recognition-benchmark's --PAD replicates the
    last column), but the model must learn blanks over the padding, and the padding hides samples too long for
    their own frames (CTC001 then reads the declared lengths)."""
    return finding(
        "CTC030",
        f"{where}: the criterion gives {user} but reference CTC with each sample's own frame count gives {reference}: "
        f"{_words(audit)} (recomputing CTC that way{zero_infinity} {_reproduces(audit)}). Training still works when "
        "inference decodes every frame too and the padding repeats the input's border (as replicate-padded images); "
        "the model then also learns to emit blanks over the padding, and a sample too long for its own frames borrows "
        "the padding's.",
        _call(f"{_change(audit)} If the padding is part of every input by design (images resized and padded to one "
              "width, decoded whole), declare that length in the loader instead, and this goes away. The call:",
              audit.corrected),
        evidence,
        severity="warning",
        title="the criterion aligns the padding frames too",
    )


def _two_differences(audit, where: str, user: str, reference: str, evidence: dict) -> Finding:
    """A mistake and another reduction at once (raw logits and a / batch_size): name both, and both fixes."""
    from ctcdoctor.measure.criterion import reduction_words

    zero_infinity = ", with zero_infinity=True" if audit.zero_infinity else ""
    variant = reduction_words(audit.reduction, audit.size, audit.divisor)
    call, _, note = audit.corrected.partition("  # ")
    note = f" ({note.strip()})" if note else ""
    return finding(
        "CTC030",
        f"{where}: the criterion gives {user} but reference CTC gives {reference}: two differences at once, (1) "
        f"{_words(audit)}, and (2) {variant}. Recomputing CTC with both{zero_infinity} {_reproduces(audit)}.",
        f"Call the loss as {call.rstrip()}{note}: that fixes (1), and (2) with it; keep (2) only if it is deliberate "
        f"(scale the learning rate to match), otherwise {_reduction_fix(audit)}.",
        evidence,
    )


def _words(audit) -> str:
    """The mistake in words, with the padded length T itself for the full-length mistake, and how the layout went
    wrong (a missing transpose and a `.view` have different fixes)."""
    words = MISTAKE_WORDS[audit.mistake]
    if audit.mistake == "layout" and audit.variant:
        return f"{words}: {audit.variant}"
    if audit.mistake == "criterion_axis" and audit.details:
        details = audit.details
        return (f"{words}: it takes log_softmax over axis {details['axis']} ({details['axis_name']}) of the "
                f"{'(' + ', '.join(details['layout']) + ')'} output; normalise over the class axis: "
                f"log_softmax({details['class_axis']})")
    if audit.mistake == "padded_target_lengths" and audit.details:
        return _padding_words(audit.details)
    frames = (audit.details or {}).get("frames")
    return words.replace("length T", f"length T = {frames}") if audit.mistake == "full_length" and frames else words


def _padding_words(details: dict) -> str:
    """The padded-width mistake with the width and the padding value, and what torch makes of a negative one."""
    width, pad = details.get("width"), details.get("pad")
    words = f"target lengths are the padded width {width} for every sample, so the padding is read as labels"
    if pad is None:
        return words
    words += f": each sample's padding value {pad} counts as a label up to column {width}"
    if details.get("wraps"):
        words += (f" (F.ctc_loss takes {pad} as a class index, and torch reads it as the last class, "
                  f"{details.get('last_class')})")
    return words


def _reproduces(audit) -> str:
    """"reproduces 10.69 to 3e-08 relative, within the 1e-04 tolerance": a match is stated with how close it is."""
    difference = audit.relative_difference
    how_close = "" if difference is None else f" to {difference:.1g} relative, within the {RTOL:.0e} tolerance"
    return f"reproduces {_value(audit.explained_value)}{how_close}"


def _is_close(audit) -> bool:
    """Whether the nearest mistake tried is near enough to name: within CLOSE (relative) of the user's value, and
    nearer to it than the reference by CLOSES_GAP of the distance."""
    closest, user = audit.closest, audit.user
    if closest is None or user is None or closest["relative_difference"] > CLOSE:
        return False
    gap = abs(user - audit.reference)
    return not math.isfinite(gap) or abs(user - closest["explained_value"]) <= (1 - CLOSES_GAP) * gap


def _closest(audit) -> str:
    """"; the closest, the loss uses a different blank ..., gives 129.447, 0.00099 relative off": what came nearest."""
    closest = audit.closest
    if not closest:
        return ""
    if not _is_close(audit):
        return f"; none comes within {CLOSE:.0%} of it"
    what = MISTAKE_WORDS.get(closest["mistake"] or "", "reference CTC")
    if closest["mistake"] == "reduction":
        what = closest["variant"].split(":")[0]
    elif closest["reduction"] != "mean":
        what += f", {_reduction_short(closest['reduction'], closest.get('divisor'))}"
    if closest["zero_infinity"]:
        what += ", zero_infinity=True"
    return f"; the closest, {what}, gives {_value(closest['explained_value'])}, {closest['relative_difference']:.2g} relative off"


def _reduction_short(how: str, by: int | None = None) -> str:
    return {"sum": 'reduction="sum"', "batch_mean": "averaged without dividing by target lengths", "none": 'reduction="none"',
            "mean_by_batch": f'reduction="mean" / {by}, the batch size',
            "sum_by_loader_batch": f'reduction="sum" / {by}, the loader\'s batch size',
            "mean_by_loader_batch": f'reduction="mean" / {by}, the loader\'s batch size'}.get(how, how)


@check("CTC031", "warning", "zero_infinity=True hides infeasible samples")
def zero_infinity_hides(criterion_audit: CriterionAudits) -> list[Finding]:
    """
    **What it checks.** Whether the user's criterion silently zeroes infeasible samples:
    on a batch where some samples have no CTC alignment (reference loss `inf`), the
    criterion's value equals the reference computed with `zero_infinity=True`.

    **Why it matters.** `zero_infinity=True` turns the `inf` loss of an impossible sample
    into 0 and its gradient into 0. Training runs smoothly, but those samples teach
    nothing, and nothing in the logs says how many there are: the data problem behind
    them (too much downsampling, labels too long, CTC001) stays hidden.

    **Example.** `warning CTC031 5 of 32 samples are infeasible in the 2 batches run through
    the model (reference loss inf) and the criterion counts them as 0 (zero_infinity=True):
    samples 0, 1, 4, 9, 12.` (CTC001 counts every sample read, the other batches too.)

    **Fix.** Fix the infeasible samples first (CTC001: more output frames or shorter
    labels), then set `zero_infinity=False` so a new impossible sample shows up as `inf`
    instead of vanishing; or filter such samples out of the data on purpose and log how
    many.
    """
    _skip_unless_audited(criterion_audit)
    hidden = [audit for audit in criterion_audit.audits if audit.zero_infinity and audit.infeasible]
    if not hidden:
        return []
    samples = sorted({sample for audit in hidden for sample in audit.infeasible})
    # Every batch the criterion was audited on that hides its infeasible samples or has none: the samples counted
    # (CTC001 counts every sample read, the batches the model did not run on too).
    counted = [audit for audit in criterion_audit.audits if audit.zero_infinity or not audit.infeasible]
    total = sum(audit.size for audit in counted)
    batches = f"the {len(counted)} batches" if len(counted) > 1 else "the batch"
    audit = hidden[0]
    return [
        finding(
            "CTC031",
            f"{of_total(len(samples), total, 'sample', 'is', 'are')} infeasible in {batches} run through the model "
            "(reference loss inf) and the "
            f"criterion counts {'it' if len(samples) == 1 else 'them'} as 0 (zero_infinity=True): {numbered(samples, 'sample')}. "
            f"On batch {audit.batch} it gives "
            f"{_value(audit.user)}; with zero_infinity=False the loss would be {_value(audit.reference)}.",
            "Fix the infeasible samples (see CTC001: more output frames or shorter labels), then set zero_infinity=False "
            "so impossible samples show up as inf instead of silently training on nothing.",
            {"count": len(samples), "total": total, "samples": samples[:50], "batch": audit.batch,
             "user_value": audit.user, "reference_value": audit.reference,
             "reference_zero_infinity": audit.reference_zero_infinity, "batches": len(counted)},
        )
    ]
