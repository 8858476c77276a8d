"""Label checks: are the targets valid class indices for this model and this blank?"""
from __future__ import annotations

from typing import TYPE_CHECKING

from ctcdoctor.registry import SkipCheck, check, finding
from ctcdoctor.render.phrases import numbered, of_total, plural

if TYPE_CHECKING:  # pragma: no cover
    from collections.abc import Callable

    from ctcdoctor.findings import Finding
    from ctcdoctor.frameworks.hf_facts import HFFacts
    from ctcdoctor.load.batches import TargetTable
    from ctcdoctor.measure.labels import PaddingCounted
    from ctcdoctor.measure.vocabulary import ClassCount, Vocabulary
    from ctcdoctor.protocol import Alphabet


NO_ALPHABET = "no Setup.alphabet given"


def _samples_with(targets: TargetTable, mask) -> list[int]:
    """The numbers of the samples (rows of `targets`) with a True in `mask`, in order."""
    return _numbers(targets, mask.any(dim=1).nonzero().flatten().tolist())


def _numbers(targets: TargetTable, rows: list[int]) -> list[int]:
    """Rows of `targets` as the sample numbers findings give (`TargetTable.sample_id`), in order."""
    return sorted(targets.sample_id(row) for row in rows)


@check("CTC010", "error", "a target index lies outside [0, C)")
def label_out_of_range(
    targets: TargetTable, num_classes: int, class_count: ClassCount | None = None, vocabulary: Vocabulary | None = None
) -> list[Finding]:
    """
    **What it checks.** Every label (within its `target_length`) is a class index the model
    can output: `0 <= label < C`, where `C` is the size of the model's class axis.

    **Why it matters.** An index past the last class has no output column: PyTorch's CPU
    CTC may read out of bounds or raise, cuDNN gives garbage, and the loss never falls.
    Negative labels are usually padding (`-1`) counted inside `target_lengths`.

    **Example.** The alphabet has 26 letters, labels are encoded 1..26, but the final layer
    has 26 outputs: `error CTC010 12 labels in 12 samples lie outside [0, 26): largest 26.`

    **Fix.** Make the final layer output `len(alphabet) + 1` classes (one for the blank), or
    fix the encoder; exclude padding from `target_lengths`. The class count the hint gives is
    the one CTC014 gives: the largest of `len(alphabet) + 1`, `len(tokenizer)` and the
    largest label + 1.
    """
    values = targets.labels
    outside = targets.mask & ((values < 0) | (values >= num_classes))
    count = int(outside.sum())
    if count == 0:
        return []
    samples = _samples_with(targets, outside)
    bad = values[outside]
    largest, smallest = int(bad.max()), int(bad.min())
    parts = []
    if largest >= num_classes:
        parts.append(f"largest {largest}")
    if smallest < 0:
        parts.append(f"smallest {smallest}")
    set_classes = vocabulary.set_classes if vocabulary is not None else _final_layer
    if largest == num_classes:
        # Without the class count (scan's summaries call this with the table alone): the forgotten blank slot.
        fix = (f"{_capital(set_classes(class_count.needed))} ({', '.join(class_count.reasons)})." if class_count is not None
               else f"Make the final layer output {num_classes + 1} classes (alphabet + blank).")
        hint = f"The top label equals C = {num_classes}: the output layer has no slot for it, usually a forgotten blank slot. {fix}"
    elif smallest < 0:
        hint = "Negative labels are usually padding counted inside target_lengths: pass the true lengths, or pad with a valid index."
    elif class_count is not None:
        hint = f"Encode labels into 0..{num_classes - 1}, or {set_classes(class_count.needed)} ({', '.join(class_count.reasons)})."
    else:
        hint = f"Encode labels into 0..{num_classes - 1}, or give the final layer {largest + 1} or more classes."
    return [
        finding(
            "CTC010",
            f"{plural(count, 'label')} in {plural(len(samples), 'sample')} {'lies' if count == 1 else 'lie'} outside [0, {num_classes}) "
            f"({', '.join(parts)}); {numbered(samples, 'sample')}.",
            hint,
            {"count": count, "samples": samples[:20], "num_classes": num_classes, "largest": largest, "smallest": smallest},
        )
    ]


@check("CTC015", "error", "the blank lies outside the model's classes")
def blank_out_of_range(blank: int, num_classes: int, alphabet: Alphabet, hf: HFFacts | None = None) -> list[Finding]:
    """
    **What it checks.** `Setup.blank` (or, for a Hugging Face model, `config.pad_token_id`)
    is one of the model's output classes: `0 <= blank < C`, where `C` is the size of the
    class axis (`config.vocab_size`).

    **Why it matters.** `F.ctc_loss(..., blank=99)` on an output of 5 classes raises, or on
    some backends reads past the class axis; and every other check that needs the blank
    (the loss at initialisation, the criterion audit, the gradients, spikiness) cannot run.
    A blank past the end usually means the blank was meant to be the last class and the
    model was built one class short, or the blank index came from another configuration.

    **Example.** `Setup(model=model, loader=loader, blank=99)` with `nn.Linear(256, 5)`:
    `error CTC015 Setup.blank is 99 but the model outputs 5 classes (indices 0 to 4).`

    For a Hugging Face model: `error CTC015 config.pad_token_id is 13 but config.vocab_size
    is 12`; when 13 is the tokenizer's pad id the config was made before `[UNK]` and `[PAD]`
    were added to the vocabulary, and the finding is marked a consequence of CTC100.

    **Fix.** Set `Setup.blank` to the index your loss uses (`F.ctc_loss(..., blank=...)`,
    usually 0, or `C - 1` for a blank-last encoding); if the blank is meant to be a class of
    its own after the alphabet, give the final layer `len(alphabet) + 1` outputs. For a
    Hugging Face model, build the head for the tokenizer:
    `from_pretrained(..., vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id)`.
    """
    if 0 <= blank < num_classes:
        return []
    if hf is not None and hf.pad_token_id == blank:
        return [_hf_blank_out_of_range(hf, blank)]
    if alphabet is not None and blank == len(alphabet):
        hint = (f"The blank is the slot after the {len(alphabet)} symbols: give the final layer len(alphabet) + 1 = "
                f"{len(alphabet) + 1} outputs, or set Setup.blank = 0 if your loss uses blank=0.")
    elif blank == num_classes:
        hint = (f"Blank {blank} is one past the last class: give the final layer {num_classes + 1} outputs (a class for the "
                f"blank), or set Setup.blank = {num_classes - 1} if the last class is your blank.")
    else:
        hint = (f"Set Setup.blank to the blank index your loss uses, between 0 and {num_classes - 1} (usually 0, "
                f"or {num_classes - 1} for a blank-last encoding).")
    return [
        finding(
            "CTC015",
            f"Setup.blank is {blank} but the model outputs {num_classes} classes (indices 0 to {num_classes - 1}): "
            "CTC cannot use it, and the checks that need the blank (loss, criterion, gradients, spikiness) are skipped.",
            hint,
            {"blank": blank, "num_classes": num_classes},
        )
    ]


def _hf_blank_out_of_range(hf: HFFacts, blank: int) -> Finding:
    """CTC015 in the model's own terms: config.pad_token_id (the blank) against config.vocab_size (and len(tokenizer))."""
    from ctcdoctor.checks.huggingface import load_verb, model_with

    classes = hf.vocab_size
    cause = None
    if hf.tokenizer_size is None:
        hint = (f"{load_verb(hf).capitalize()} the model with the vocabulary's size and pad id: "
                f"{model_with(hf, 'vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id')} (vocab_size "
                f"{blank + 1} or more for pad id {blank}); pass the processor too (Setup(model, loader, "
                "processor=processor)) so that ctcdoctor can compare them.")
    elif hf.tokenizer_pad_id == blank and hf.tokenizer_size > classes:
        cause = "CTC100"
        hint = (f"{blank} is the tokenizer's pad id ({hf.tokenizer_pad_token!r}), but the head is smaller than the "
                f"tokenizer: {model_with(hf, 'vocab_size=len(processor.tokenizer)')} (= {hf.tokenizer_size}).")
    else:
        setting = "pad_token_id=processor.tokenizer.pad_token_id, vocab_size=len(processor.tokenizer)"
        hint = (f"Use the tokenizer's pad id and size: {model_with(hf, setting)} (= {hf.tokenizer_pad_id} and "
                f"{hf.tokenizer_size}).")
    return finding(
        "CTC015",
        f"config.pad_token_id is {blank} but config.vocab_size is {classes} (classes 0 to {classes - 1}): the CTC loss "
        f"of {hf.model_class} has no class for its blank, and the checks that need the blank (loss, criterion, "
        "gradients, spikiness) are skipped.",
        hint,
        {"blank": blank, "num_classes": classes, "pad_token_id": blank, "vocab_size": classes,
         "tokenizer_size": hf.tokenizer_size},
        consequence_of=cause,
    )


@check("CTC011", "error", "a target contains the blank index")
def blank_in_targets(targets: TargetTable, blank: int, alphabet: Alphabet, vocabulary: Vocabulary | None = None,
                     padding_counted: PaddingCounted | None = None) -> list[Finding]:
    """
    **What it checks.** No label (within its `target_length`) equals `Setup.blank`.

    **Why it matters.** CTC removes blanks when it collapses a path, so a label equal to the
    blank can never be produced: every sample containing it is unreachable or mislearned,
    and the character it stands for disappears from the output.

    **Example.** The encoder maps 'a' to 0, which is also the blank: `error CTC011 the blank
    index 0 appears 41 times in 30 of 64 samples.`

    **Fix.** Reserve the blank: encode characters as `alphabet.index(ch) + 1` with blank 0,
    or as `alphabet.index(ch)` with blank `len(alphabet)` (and `F.ctc_loss(..., blank=len(alphabet))`).
    When every blank in the targets is trailing padding that `target_lengths` count, the
    encoding is fine and CTC012 reports the lengths instead (this check is skipped).
    """
    if padding_counted is not None:
        raise SkipCheck(padding_skip_reason(blank))
    is_blank = targets.mask & (targets.labels == blank)
    count = int(is_blank.sum())
    if count == 0:
        return []
    samples = _samples_with(targets, is_blank)
    used = set(targets.labels[targets.mask].tolist())
    hint = _blank_hint_with_tokens(vocabulary, blank, used) if vocabulary is not None and vocabulary.tokens else \
        blank_hint(blank, alphabet, used, vocabulary.output_classes if vocabulary is not None else None,
                   vocabulary.set_classes if vocabulary is not None else None)
    blank_name = f" ({vocabulary.tokens[blank]!r})" if vocabulary is not None and blank in vocabulary.tokens else ""
    return [
        finding(
            "CTC011",
            f"the blank index {blank}{blank_name} appears {plural(count, 'time')} in {len(samples)} of {plural(targets.size, 'sample')} "
            f"({numbered(samples, 'sample')}).",
            hint,
            {"blank": blank, "count": count, "samples": samples[:20]},
        )
    ]


def blank_hint(blank: int, alphabet: Alphabet, used: set[int], classes: int | None = None,
               set_classes: Callable[[int], str] | None = None) -> str:
    """CTC011's fix from the labels the data uses (shared with `scan`): which exact change makes the blank free.
    `classes`, the model's output size when known, keeps the advice from naming a class the model lacks, and
    `set_classes` says how to widen it in the model's own terms."""
    last = len(alphabet) if alphabet is not None else None
    low, high = (min(used), max(used)) if used else (0, 0)
    if blank != 0 and blank == last and 0 not in used and low >= 1 and high == blank:
        # Labels alphabet.index(ch) + 1 (1..len(alphabet), 0 free) with the blank moved to the last class: the last symbol is read as blank.
        symbol = f" ({alphabet[-1]!r})" if alphabet is not None and len(alphabet) else ""
        return (
            f"The labels run 1..{high} (alphabet.index(ch) + 1; no label is 0), so the last symbol{symbol}, label {blank}, is read "
            f"as the blank. Pass blank=0 and keep the labels as given: Setup.blank = 0 and F.ctc_loss(..., blank=0) "
            f"(class 0 is free). Or keep blank={blank} and subtract 1 from every label (targets - 1: index = alphabet.index(ch))."
        )
    if blank == 0 and last is not None and last not in used and classes is not None and last >= classes:
        # Labels 0..len(alphabet)-1 and no class past them: the model has no class to spare for a blank at all.
        widen = set_classes(last + 1) if set_classes is not None else f"make the final layer output {last + 1} classes"
        return (
            f"The labels run {low}..{high} (alphabet.index(ch)) and the model outputs {classes} classes (0..{classes - 1}): "
            f"every class is a symbol and none is left for the blank. Add 1 to every label (index = alphabet.index(ch) + 1, "
            f"blank stays 0) and {widen} (CTC014); or keep the labels, widen it the same way and set Setup.blank = {last} "
            f"(and your loss's blank={last})."
        )
    if blank == 0 and last is not None and last not in used:
        # Labels 0..len(alphabet)-1 with the last class free: the loss most likely uses blank=len(alphabet).
        return (
            f"The labels run {low}..{high} (alphabet.index(ch)) and class {last} is never used: if your loss uses blank={last}, "
            f"set Setup.blank = {last}; otherwise add 1 to every label (index = alphabet.index(ch) + 1, blank stays 0)."
        )
    if blank == 0:
        return (
            "Shift the encoding so characters start at 1: index = alphabet.index(ch) + 1 (blank stays 0); "
            "if your loss uses another blank index, set Setup.blank to it."
        )
    return f"Encode characters so none maps to {blank}, or set Setup.blank (and your loss's blank=) to the index you reserved."


def _final_layer(count: int) -> str:
    return f"make the final layer output {count} classes"


def _needed(class_count: ClassCount | None, fallback: int) -> tuple[int, str]:
    """The one class count CTC010 and CTC014 advise, and why (see measure/vocabulary.py)."""
    if class_count is None:
        return fallback, f"{fallback} needed"
    return class_count.needed, ", ".join(class_count.reasons)


def _capital(text: str) -> str:
    return text[:1].upper() + text[1:]


def _blank_hint_with_tokens(vocabulary: Vocabulary, blank: int, used: set[int]) -> str:
    """CTC011's fix in the tokenizer's words: the blank is its pad token (never "the last class", which may be `</s>`)."""
    pad = vocabulary.pad_id
    if pad is not None and pad != blank:
        unused = "" if pad in used else ", which no label uses"
        return (f"The tokenizer pads with {vocabulary.pad_token!r} (id {pad}){unused}: make it the blank: "
                f"{vocabulary.set_blank(pad)}.")
    if pad == blank:
        return (f"The labels hold the pad token {vocabulary.pad_token!r} (id {pad}), which is the blank: pad labels with "
                "-100 (or count only real labels in target_lengths), never with the pad id.")
    return (f"Give the tokenizer a pad token that no transcript uses and make its id the blank "
            f"({vocabulary.set_blank(len(vocabulary.tokens))} after adding it).")


@check("CTC012", "error", "target_lengths inconsistent with targets")
def target_lengths_inconsistent(targets: TargetTable, padding_counted: PaddingCounted | None = None) -> list[Finding]:
    """
    **What it checks.** `target_lengths` agree with `targets`: none negative; for padded
    `(N, S)` targets none longer than `S`; for concatenated 1-D targets they sum to the
    number of labels; and they do not count the padding: targets padded with the blank
    whose lengths are all the padded width `S` (`torch.full((N,), S)`), so every blank in
    them is a trailing run.

    **Why it matters.** `F.ctc_loss` slices targets by these lengths: a wrong sum shifts
    every later sample onto its neighbour's labels, a length past the padding reads pad
    values as labels. Padding counted as labels asks the model to emit the blank as a
    character after every short transcript: those samples cannot be learned.

    **Example.** Concatenated targets hold 180 labels but `target_lengths.sum()` is 176:
    `error CTC012 batch 0: target_lengths sum to 176 but the concatenated targets hold 180 labels.`
    Padding counted: `error CTC012 target_lengths count the padding: 57 of 64 samples end in
    padding zeros (the blank) that their target_length includes; sample 3 has 5 labels then
    4 padding zeros, target_length 9.`

    **Fix.** Compute `target_lengths` from the same encoded labels you concatenate or pad,
    after any filtering of unknown symbols: the count before the padding
    (`torch.tensor([len(label) for label in labels])` in the collate function).
    """
    problems = list(targets.length_problems)
    if padding_counted is not None:
        problems.insert(0, _padding_message(targets, padding_counted))
    if not problems:
        return []
    hint = PADDING_HINT if padding_counted is not None else LENGTHS_HINT
    evidence: dict = {"problems": problems[:20]}
    if padding_counted is not None:
        evidence["padding_counted"] = {"samples": _numbers(targets, list(padding_counted.samples))[:20],
                                       "count": len(padding_counted.samples)}
    return [finding("CTC012", "; ".join(problems[:5]) + ("." if len(problems) <= 5 else f"; and {len(problems) - 5} more."),
                    hint, evidence)]


#: CTC012's fix for lengths that disagree with the targets.
LENGTHS_HINT = "Compute target_lengths from the encoded labels themselves (after filtering), one per sample."
#: CTC012's fix for lengths that count the padding (shared with `scan`).
PADDING_HINT = ("Pass the true lengths, the count before the padding: target_lengths = torch.tensor([len(label) for label "
                "in labels]) in the collate function, not the padded width; keep the targets as they are.")


def padding_skip_reason(blank: int) -> str:
    """Why CTC011 is skipped when the blanks in the targets are padding that target_lengths count (shared with `scan`)."""
    return f"the blank {blank} in the targets is padding that target_lengths count (CTC012)"


def _padding_message(targets: TargetTable, padding: PaddingCounted) -> str:
    """'target_lengths count the padding: …; sample 3 has 5 labels then 4 padding zeros, target_length 9'."""
    sample = max(padding.samples, key=lambda i: (int(padding.given[i] - padding.real_lengths[i]), -i))
    return padding_message(len(padding.samples), targets.size, targets.sample_id(sample), int(padding.real_lengths[sample]),
                           int(padding.given[sample]), padding.blank)


def padding_message(count: int, total: int, sample: int, real: int, given: int, blank: int) -> str:
    """CTC012's sentence for lengths that count the padding, word for word the same in `check` and `scan`: `count` of
    `total` samples end in padding; `sample`, the one with the most padding counted, has `real` labels and length `given`."""
    pads = given - real
    zeros = "zero" if pads == 1 else "zeros"
    run = f"padding {zeros} (the blank)" if blank == 0 else f"padding labels {blank} (the blank)"
    one = f"{pads} padding {zeros}" if blank == 0 else f"{pads} padding {'label' if pads == 1 else 'labels'} {blank}"
    return (f"target_lengths count the padding: {of_total(count, total, 'sample', 'ends', 'end')} in "
            f"{run} that their target_length includes; sample {sample} has {plural(real, 'label')} then {one}, "
            f"target_length {given}")


@check("CTC013", "warning", "empty target")
def empty_targets(targets: TargetTable) -> list[Finding]:
    """
    **What it checks.** Samples whose target length is 0.

    **Why it matters.** CTC accepts an empty target (the all-blank path), but in practice
    empty targets usually mean the label encoder dropped every symbol (unknown characters,
    wrong case, a byte-order mark), teaching the model to emit only blanks.

    **Example.** `warning CTC013 6 of 64 samples have an empty target: samples 3, 9, 17.`

    **Fix.** Check the label text and the encoder for those samples (`ctcdoctor labels FILE
    --alphabet ...`); drop truly empty samples, or keep them on purpose if they are silence.
    """
    empty = _numbers(targets, (targets.lengths == 0).nonzero().flatten().tolist())
    if not empty:
        return []
    return [
        finding(
            "CTC013",
            f"{of_total(len(empty), targets.size, 'sample', 'has', 'have')} an empty target: {numbered(empty, 'sample')}.",
            "Check the label text and encoder for these samples; drop them unless silence is intended.",
            {"count": len(empty), "samples": empty[:20]},
        )
    ]


#: Symbols people put in an alphabet for the blank itself ("-abc…" in many CRNN repositories).
BLANK_SYMBOLS = frozenset({"-", "_", "ε", "ϵ", "~", "<blank>", "<BLANK>", "<b>", "<eps>", "<pad>", "[PAD]", "<pad_token>", "blank"})


def _alphabet_holds_the_blank(num_classes: int, alphabet: Alphabet, blank: int, targets: TargetTable | None,
                              set_classes: Callable[[int], str] = _final_layer) -> str | None:
    """CTC014's fix when the model is right and the alphabet lists the blank too: as many symbols as classes, every
    label inside the head and none on the blank (so the labels index the alphabet directly). None otherwise."""
    if alphabet is None or num_classes != len(alphabet) or not 0 <= blank < len(alphabet) or targets is None:
        return None
    labels = targets.labels[targets.mask]
    if labels.numel() == 0 or int(labels.min()) < 0 or int(labels.max()) >= num_classes or bool((labels == blank).any()):
        return None
    symbol = alphabet[blank]
    drop = "alphabet[1:]" if blank == 0 else ("alphabet[:-1]" if blank == len(alphabet) - 1 else f"the alphabet without index {blank}")
    if symbol in BLANK_SYMBOLS:
        return (f"The model is right: the alphabet lists the blank itself ({symbol!r} at index {blank}, the blank's index), and "
                f"every label fits the {num_classes} classes. Pass the alphabet without it ({drop}, {len(alphabet) - 1} "
                "symbols); do not add a class.")
    return (f"Every label fits the {num_classes} classes and none is the blank {blank}: if {symbol!r} (alphabet[{blank}]) "
            f"stands for the blank, pass the alphabet without it ({drop}); otherwise the blank slot is missing: "
            f"{set_classes(num_classes + 1)}.")


@check("CTC014", "error", "class count differs from len(alphabet) + 1")
def class_count_mismatch(
    num_classes: int, alphabet: Alphabet, class_count: ClassCount | None = None, vocabulary: Vocabulary | None = None,
    hf: HFFacts | None = None, blank: int = 0, targets: TargetTable | None = None,
) -> list[Finding]:
    """
    **What it checks.** When `Setup.alphabet` is given, the model's class axis has
    `len(alphabet) + 1` entries: one per symbol plus the blank.

    **Why it matters.** One class short usually means the blank slot was forgotten, so the
    last symbol shares its index with nothing or with the blank; extra classes are wasted
    and often mean the alphabet and the model come from different configurations.

    **Example.** 26 letters and `nn.Linear(256, 26)`: `error CTC014 the model outputs 26
    classes but the alphabet has 26 symbols (+1 blank = 27).`

    **Fix.** `nn.Linear(hidden, len(alphabet) + 1)`, and make sure the alphabet passed to
    ctcdoctor is the one your encoder uses. When the alphabet lists the blank itself
    (`"-abc…"`, a common CRNN habit) and every label fits the model's classes, the model is
    right: the fix says to pass the alphabet without that symbol, not to add a class.

    For a Hugging Face model without an alphabet of your own, the alphabet is the tokenizer's
    vocabulary: CTC100 compares `config.vocab_size` with `len(tokenizer)` and CTC015/CTC101
    check `config.pad_token_id`, so this check does not apply.
    """
    if alphabet is None:
        raise SkipCheck(NO_ALPHABET, applicable=False)
    if hf is not None and hf.alphabet_from_tokenizer:
        raise SkipCheck("the alphabet is the tokenizer's vocabulary (CTC100 compares config.vocab_size with it)",
                        applicable=False)
    expected = len(alphabet) + 1
    if num_classes == expected:
        return []
    needed, reasons = _needed(class_count, expected)
    set_classes = vocabulary.set_classes if vocabulary is not None else _final_layer
    if needed != expected:
        # The labels (or the tokenizer) need more classes than the alphabet has: the alphabet is not the encoder's.
        hint = (f"{_capital(set_classes(needed))} ({reasons}), and pass the alphabet your encoder really uses "
                f"(len(alphabet) + 1 = {expected} is too few).")
    elif num_classes == len(alphabet):
        hint = (_alphabet_holds_the_blank(num_classes, alphabet, blank, targets, set_classes)
                or f"The blank slot is missing: {set_classes(expected)}: len(alphabet) + 1.")
    else:
        hint = f"{_capital(set_classes(expected))} (len(alphabet) + 1), or pass the alphabet your encoder really uses."
    return [
        finding(
            "CTC014",
            f"the model outputs {num_classes} classes but the alphabet has {len(alphabet)} symbols (+1 blank = {expected}).",
            hint,
            {"num_classes": num_classes, "alphabet_size": len(alphabet), "expected": expected,
             **({"needed": needed} if needed != expected else {})},
        )
    ]
