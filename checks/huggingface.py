"""Hugging Face checks (CTC100-CTC107): what only a tool that knows transformers' CTC conventions can see.

Each check takes the `hf` input (`ctcdoctor.frameworks.hf_facts.HFFacts`, or None when the set-up is
not a transformers `*ForCTC` model, in which case it reports nothing); CTC105 and CTC107 also take
`hf_settings` (`ctcdoctor.measure.vocabulary.HFSettings`: the names the model gives its blank and mask).
Raw int16-scale audio is CTC041's job (inputs not normalised).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from ctcdoctor.registry import SkipCheck, check, finding
from ctcdoctor.render.phrases import listing, numbered, of_total, plural

if TYPE_CHECKING:  # pragma: no cover
    from ctcdoctor.findings import Finding

#: A sample whose labels are at least this fraction unknown tokens counts for CTC102.
UNKNOWN_RATE = 0.10
#: How many samples a message names.
WORST = 5
MEAN = 'ctc_loss_reduction="mean"'
NOT_HF = "not a Hugging Face transformers CTC model"
NO_TOKENIZER = "no tokenizer or processor given"


def _applies(hf, needs_tokenizer: bool = False) -> None:
    """Skip, quietly ("not applicable"), a set-up these checks have nothing to examine in."""
    if hf is None:
        raise SkipCheck(NOT_HF, applicable=False)
    if needs_tokenizer and hf.tokenizer_size is None:
        raise SkipCheck(NO_TOKENIZER, applicable=False)


def _seconds(hf, frames: int) -> str:
    return f" ({frames / hf.frames_per_second:.2f} s)" if hf.frames_per_second else ""


def model_with(hf, setting: str, mismatched: bool = False) -> str:
    """The user's model made with `setting`: from_pretrained's argument for a model loaded from a checkpoint
    (`ignore_mismatched_sizes=True` too when the head's size changes), else its config's
    (`Wav2Vec2ForCTC(Wav2Vec2Config(..., vocab_size=...))`), where from_pretrained would not apply."""
    if hf.from_checkpoint:
        return f"{hf.model_class}.from_pretrained(..., {setting}{', ignore_mismatched_sizes=True' if mismatched else ''})"
    return f"{hf.model_class}({hf.config_class}(..., {setting}))"


def load_verb(hf) -> str:
    """"load" for a model loaded from a checkpoint, "build" for one built from its config."""
    return "load" if hf.from_checkpoint else "build"


@check("CTC100", "error", "config.vocab_size differs from the tokenizer's size", variants=(("warning", None),))
def vocab_size_mismatch(hf):
    """
    **What it checks.** With a tokenizer (or processor): `config.vocab_size`, the number of
    output classes of the CTC head (`lm_head`), against `len(tokenizer)`. Tokens whose id is
    at or above `vocab_size` are an error, unless they are sentence markers (`<s>`, `</s>`),
    which a CTC tokenizer never puts in labels. More classes than tokens is a warning.

    **Why it matters.** A label without a row in the head cannot be predicted: `Wav2Vec2ForCTC`
    raises `Label values must be <= vocab_size` on the first batch that holds one (or, in your
    own loss, the target is out of range, CTC010). Extra rows are classes no label uses: the
    model only learns to avoid them, and it usually means the config or head came from a
    checkpoint fine-tuned on another vocabulary.

    **Example.** A vocabulary of 40 characters, a model loaded from a checkpoint with 32:
    ```
    error CTC100 config.vocab_size is 32 but the tokenizer has 40 tokens: the CTC head has no
      row for 'x' (id 32), 'y' (id 33), ...
    ```

    **Fix.** Build the head for the tokenizer: `Wav2Vec2ForCTC.from_pretrained(checkpoint,
    vocab_size=len(processor.tokenizer), pad_token_id=processor.tokenizer.pad_token_id,
    ignore_mismatched_sizes=True)`; for a model built from its config (no checkpoint),
    `Wav2Vec2ForCTC(Wav2Vec2Config(..., vocab_size=len(processor.tokenizer)))`.
    """
    _applies(hf, needs_tokenizer=True)
    size, classes = hf.tokenizer_size, hf.vocab_size
    hint = f"Build the head for this tokenizer: {model_with(hf, 'vocab_size=len(processor.tokenizer)')} (= {size})."
    evidence = {"vocab_size": classes, "tokenizer_size": size,
                "beyond_head": [list(item) for item in hf.beyond_head[:20]]}
    if hf.beyond_head:
        shown = ", ".join(f"{token!r} (id {index})" for index, token in hf.beyond_head[:WORST])
        more = f" and {len(hf.beyond_head) - WORST} more" if len(hf.beyond_head) > WORST else ""
        return [finding(
            "CTC100",
            f"config.vocab_size is {classes} but the tokenizer has {size} tokens: the CTC head has no row for "
            f"{shown}{more}. A batch whose labels hold one of them fails ({hf.model_class} raises 'Label values must "
            "be <= vocab_size').",
            hint,
            evidence,
        )]
    if classes > size:
        return [finding(
            "CTC100",
            f"config.vocab_size is {classes} but the tokenizer has {size} tokens: output classes {size} to "
            f"{classes - 1} have no token, so no label ever uses them (a config or head made for another vocabulary?).",
            f"Make the head match the tokenizer: {_size_setting(hf, size)}.",
            evidence,
            severity="warning",
        )]
    return []


def _size_setting(hf, size: int) -> str:
    """CTC100's warning fix: the tokenizer's size (as a number for from_pretrained, whose head must be replaced)."""
    if hf.from_checkpoint:
        return model_with(hf, f"vocab_size={size}", mismatched=True)
    return f"{model_with(hf, 'vocab_size=len(processor.tokenizer)')} (= {size})"


@check("CTC101", "error", "config.pad_token_id is not the tokenizer's pad id")
def blank_not_tokenizer_pad(hf):
    """
    **What it checks.** A transformers CTC loss uses `config.pad_token_id` as its blank. With
    a tokenizer (or processor), it must be the tokenizer's `pad_token_id`. (A `pad_token_id`
    outside `[0, vocab_size)` is CTC015's finding; when it is the tokenizer's pad id, the head
    is too small for the tokenizer: CTC100.)

    **Why it matters.** The tokenizer decodes by collapsing repeats and dropping *its* pad
    token: with another blank, every prediction decodes to a string full of whatever symbol
    the loss's blank really is. Worse, that class is usually a real character: transformers 5
    silently drops it from every transcript (its loss masks labels equal to the blank),
    transformers 4 trains it as a blank target (CTC011). A `pad_token_id` outside the classes
    makes the loss fail.

    **Example.** `Wav2Vec2Config()` defaults to `pad_token_id=0`, the guides' vocabulary puts
    `[PAD]` last:
    ```
    error CTC101 config.pad_token_id is 0 ('a' in the tokenizer) but the tokenizer pads with
      '[PAD]' (id 30): the CTC loss uses 'a' as its blank.
    ```

    **Fix.** `Wav2Vec2ForCTC.from_pretrained(checkpoint, pad_token_id=processor.tokenizer.pad_token_id,
    vocab_size=len(processor.tokenizer))`.
    """
    _applies(hf, needs_tokenizer=True)
    if hf.pad_token_id is None:
        return []
    blank = hf.pad_token_id
    if hf.tokenizer_pad_id is None or hf.tokenizer_pad_id == blank:
        return []
    name = f"{hf.blank_token!r} in the tokenizer" if hf.blank_token is not None else "no token in the tokenizer"
    if hf.labels_drop_blank:
        effect = (f"transformers drops every label {blank} from the targets (its loss masks labels equal to the "
                  f"blank), so {hf.blank_token!r} is never learned") if hf.blank_token is not None else ""
    else:
        effect = f"labels {blank} are trained as blank targets (CTC011)"
    message = (
        f"config.pad_token_id is {blank} ({name}) but the tokenizer pads with {hf.tokenizer_pad_token!r} "
        f"(id {hf.tokenizer_pad_id}): the CTC loss uses class {blank} as its blank, and tokenizer.batch_decode drops "
        f"{hf.tokenizer_pad_token!r} instead, so decoded predictions are wrong"
        + (f"; {effect}." if effect else ".")
    )
    return [finding(
        "CTC101",
        message,
        f"Use the tokenizer's pad id as the blank: {model_with(hf, 'pad_token_id=processor.tokenizer.pad_token_id')} "
        f"(= {hf.tokenizer_pad_id}).",
        {"pad_token_id": blank, "tokenizer_pad_id": hf.tokenizer_pad_id, "blank_token": hf.blank_token,
         "tokenizer_pad_token": hf.tokenizer_pad_token},
    )]


@check("CTC102", "warning", "many labels are the unknown token")
def unknown_labels(hf):
    """
    **What it checks.** With a tokenizer that has an unknown token (`[UNK]`, `<unk>`): the
    fraction of each sample's labels that are that token. Samples with 10% or more are
    reported, with the vocabulary's letter case when it explains them.

    **Why it matters.** The tokenizer maps every character it does not know to `[UNK]`
    without a word. Transcripts in upper case against a lower-case vocabulary (or the
    reverse), accents, digits or punctuation left in the text all become `[UNK]`: the model
    is trained to output one class for most of the speech and can never learn the words.

    **Example.** LibriSpeech transcripts are upper case; the vocabulary was built from
    lower-cased text:
    ```
    warning CTC102 64 of 64 samples have at least 10% '[UNK]' labels (1480 of 1702 labels, 87%):
      sample 0: 23 of 26 labels are '[UNK]'; ... The vocabulary's letters are all lower case.
    ```

    **Fix.** Normalise transcripts the way the vocabulary was built (`text.lower()`, remove
    punctuation) before tokenizing, or add the missing characters to `vocab.json`.
    `Wav2Vec2CTCTokenizer(do_lower_case=True)` upper-cases text, for upper-case vocabularies.
    """
    _applies(hf)
    if hf.unk_id is None:
        raise SkipCheck(NO_TOKENIZER if hf.tokenizer_size is None else "the tokenizer has no unknown token",
                        applicable=False)
    if not hf.samples:
        return []
    flagged = [s for s in hf.samples if s.labels and s.unknown / s.labels >= UNKNOWN_RATE]
    if not flagged:
        return []
    total_unknown = sum(s.unknown for s in hf.samples)
    total_labels = sum(s.labels for s in hf.samples) or 1
    worst = sorted(flagged, key=lambda s: (-s.unknown / s.labels, s.index))[:WORST]
    unk = repr(hf.unk_token)
    message = (
        f"{of_total(len(flagged), len(hf.samples), 'sample', 'has', 'have')} at least {UNKNOWN_RATE:.0%} {unk} labels "
        f"({total_unknown} of {total_labels} labels overall, {total_unknown / total_labels:.0%}): "
        + "; ".join(f"sample {s.index}: {of_total(s.unknown, s.labels, 'label', 'is', 'are')} {unk}" for s in worst)
        + "."
    )
    if hf.vocab_case == "upper" and hf.do_lower_case is False:
        message += " The vocabulary's letters are all upper case."
        hint = ("Upper-case the transcripts before tokenizing, or create the tokenizer with do_lower_case=True "
                "(Wav2Vec2CTCTokenizer then upper-cases the text).")
    elif hf.vocab_case == "lower" and hf.do_lower_case:
        message += (" The vocabulary's letters are all lower case, but the tokenizer has do_lower_case=True, "
                    "which upper-cases the text (Wav2Vec2CTCTokenizer).")
        hint = "Create the tokenizer with do_lower_case=False and lower-case the transcripts yourself."
    elif hf.vocab_case == "lower":
        message += " The vocabulary's letters are all lower case."
        hint = "Lower-case the transcripts before tokenizing (text.lower()), as the vocabulary was built."
    else:
        hint = ("Normalise the transcripts as the vocabulary was built (case, punctuation, accents), "
                "or add the missing characters to vocab.json.")
    return [finding(
        "CTC102",
        message,
        hint,
        {"count": len(flagged), "total": len(hf.samples), "unknown_labels": total_unknown, "labels": total_labels,
         "unk_token": hf.unk_token, "vocab_case": hf.vocab_case,
         "worst": [{"sample": s.index, "unknown": s.unknown, "labels": s.labels} for s in worst]},
    )]


@check("CTC103", "info", "the model's CTC loss is summed, not averaged")
def summed_loss(hf):
    """
    **What it checks.** `config.ctc_loss_reduction`. `"sum"` is the default of
    `Wav2Vec2Config`, `HubertConfig`, `Data2VecAudioConfig`, `Wav2Vec2ConformerConfig` and
    `Wav2Vec2BertConfig` (WavLM, SEW and UniSpeech default to `"mean"`).

    **Why it matters.** With `"sum"` the loss, and the gradient, is the sum of every
    sample's negative log-likelihood: it grows with the batch size and the transcript
    lengths. The fine-tuning guides and their learning rates (1e-4, 3e-4) assume `"mean"`,
    which divides each sample's loss by its transcript length and averages over the batch;
    with `"sum"` the same learning rate is hundreds of times larger. Fine when deliberate.

    **Example.** `info CTC103 Wav2Vec2ForCTC sums its CTC loss (config.ctc_loss_reduction='sum'):
    with 8 samples a batch and 41 labels a sample, the loss and gradients are about 330 times
    those of 'mean'.`

    **Fix.** `Wav2Vec2ForCTC.from_pretrained(checkpoint, ctc_loss_reduction="mean")`, as the
    guides do; or keep `"sum"` and divide the learning rate by the factor in the message.
    """
    _applies(hf)
    if hf.ctc_loss_reduction != "sum":
        return []
    per_batch: dict[int, int] = {}
    for sample in hf.samples:
        per_batch[sample.batch] = per_batch.get(sample.batch, 0) + 1
    batch_size = max(per_batch.values(), default=0)
    labels = [s.labels for s in hf.samples if s.labels]
    mean_labels = sum(labels) / len(labels) if labels else 0.0
    factor = batch_size * mean_labels
    scale = (f": with {plural(batch_size, 'sample')} a batch and {mean_labels:.3g} labels a sample, the loss and "
             f"gradients are about {factor:.3g} times those of 'mean'") if factor > 1 else ""
    return [finding(
        "CTC103",
        f"{hf.model_class} sums its CTC loss (config.ctc_loss_reduction='sum'){scale}. A learning rate tuned for "
        "'mean' (the fine-tuning guides') is that much too large.",
        f"{load_verb(hf).capitalize()} the model with {model_with(hf, MEAN)}, or keep 'sum' on purpose and "
        + (f"divide the learning rate by about {factor:.3g}." if factor > 1 else "scale the learning rate to match."),
        {"ctc_loss_reduction": "sum", "batch_size": batch_size, "mean_labels": mean_labels, "factor": factor},
    )]


@check("CTC104", "error", "ctc_zero_infinity does not suit samples that cannot be aligned",
       variants=(("warning", "ctc_zero_infinity=True hides samples that cannot be aligned"),))
def zero_infinity_setting(hf):
    """
    **What it checks.** Samples whose transcript needs more frames (labels + adjacent
    repeats) than the model gives their audio (the model's own length formula), against
    `config.ctc_zero_infinity`: an error with `False`, a warning ("ctc_zero_infinity=True
    hides samples that cannot be aligned") with `True`.

    **Why it matters.** With `ctc_zero_infinity=False` (the default) such a sample's loss is
    `inf` and its gradients are NaN: the first training step on a batch holding one turns
    every weight into NaN, and the `Trainer` logs `loss: nan` from then on. With `True` their
    loss and gradient are silently 0: training looks healthy, but those samples teach
    nothing and nothing says how many there are (CTC031 reports it for any criterion).

    **Example.**
    ```
    error CTC104 3 of 64 samples cannot be aligned (sample 7: 12 frames, 0.24 s, for 15 labels)
      and config.ctc_zero_infinity is False: the model's loss is inf on every batch that holds
      one, and its gradients NaN.
    ```

    **Fix.** Drop (or cut) the utterances whose transcripts are too long for their audio
    (CTC001 lists them). Until then `ctc_zero_infinity=True` keeps training finite; once the
    data is clean, set it back to `False`, so that a new impossible sample shows up as `inf`.
    """
    _applies(hf)
    bad = hf.infeasible
    if not bad:
        return []
    worst = sorted(bad, key=lambda s: (s.frames - s.required, s.index))[:WORST]
    described = "; ".join(
        f"sample {s.index}: {s.frames} frames{_seconds(hf, s.frames)} for {plural(s.labels, 'label')}"
        + (f" + {plural(s.repeats, 'repeat')}" if s.repeats else "") for s in worst)
    head = f"{of_total(len(bad), len(hf.samples), 'sample', 'cannot', 'cannot')} be aligned ({described})"
    evidence = {"count": len(bad), "total": len(hf.samples), "ctc_zero_infinity": hf.ctc_zero_infinity,
                "samples": [s.index for s in bad[:50]]}
    if not hf.ctc_zero_infinity:
        return [finding(
            "CTC104",
            f"{head} and config.ctc_zero_infinity is False: the model's loss is inf on every batch that holds one, and "
            "its gradients NaN, so one such training step turns every weight into NaN.",
            "Drop the utterances whose transcripts need more frames than their audio gives (CTC001); until then "
            f"{load_verb(hf)} the model with {model_with(hf, 'ctc_zero_infinity=True')} so that they cost nothing instead of NaN.",
            evidence,
        )]
    return [finding(
        "CTC104",
        f"{head} and config.ctc_zero_infinity is True: their loss and gradient are silently 0, so they train nothing "
        "and the logs do not show it.",
        "Filter those utterances out of the data on purpose (and count them), then set ctc_zero_infinity=False so that "
        "a new impossible sample shows up as inf.",
        evidence,
        severity="warning",
        title="ctc_zero_infinity=True hides samples that cannot be aligned",
    )]


#: CTC105's title for a model whose forward takes its mask as `padding_mask` (OmniASR).
WITHOUT_PADDING_MASK = "padded audio without padding_mask"


@check("CTC105", "warning", "padded audio without attention_mask", variants=(("warning", WITHOUT_PADDING_MASK),))
def padding_without_attention_mask(hf, hf_settings=None):
    """
    **What it checks.** Batches without an `attention_mask` whose samples end in padding
    (a constant run of at least two frames' worth of input), for a model that is meant to
    get one: a layer-norm feature encoder (`feat_extract_norm="layer"`: wav2vec2-large-lv60,
    XLS-R, MMS, HuBERT-large, Data2VecAudio), feature inputs, or a feature extractor with
    `return_attention_mask=True`. Group-norm models (wav2vec2-base) are documented to take
    zero-padded audio without a mask, and are not reported. For a model whose `forward` takes
    its mask as `padding_mask` (OmniASR) the finding names that key, titled "padded audio
    without padding_mask".

    **Why it matters.** Without the mask the model attends to the padding as if it were
    audio, and its loss counts every sample as the full padded length: CTC aligns each
    transcript over the padded frames too, so short utterances in a batch with a long one
    learn to stretch over silence that is not there at test time. When the padding is not 0
    the feature extractor normalised the padded batch (`do_normalize=True` without a mask),
    and the padding shifted every short sample's mean and variance as well.

    **Example.**
    ```
    warning CTC105 12 of 16 samples end in padding but their batches have no attention_mask:
      sample 3: 9600 of 16000 values are padding (30 of 49 frames).
    ```

    **Fix.** Return the mask from the collator and pass it with the batch:
    `processor.pad(features, padding=True, return_attention_mask=True, return_tensors="pt")`,
    or create the feature extractor with `return_attention_mask=True`.
    """
    _applies(hf)
    if not hf.expects_attention_mask:
        return []
    padded = [s for s in hf.samples if not s.masked and s.padding and s.padding_frames > 0]
    if not padded:
        return []
    worst = sorted(padded, key=lambda s: (-s.padding_frames, s.index))[:WORST]
    key = hf_settings.mask_key if hf_settings is not None else "attention_mask"
    unit = "values" if hf.input_name == "input_values" else "feature frames"
    why = (f"{hf.model_class} has feat_extract_norm='layer' and is meant to get one" if hf.feat_extract_norm == "layer"
           else "the feature extractor returns one (return_attention_mask=True)" if hf.return_attention_mask
           else f"{hf.model_class} is meant to get one")
    message = (
        f"{of_total(len(padded), len(hf.samples), 'sample', 'ends', 'end')} in padding but their batches have no "
        f"{key}, and {why}: the model attends to the padding as if it were audio, and its loss aligns each "
        "transcript over the padded frames too ("
        + "; ".join(f"sample {s.index}: {s.padding} of {s.input_length} {unit} are padding ({s.padding_frames} of "
                    f"{s.frames} frames)" for s in worst) + ")."
    )
    shifted = sorted({round(s.padding_value, 4) for s in padded if s.padding_value not in (None, 0.0)})
    if shifted:
        message += (f" The padding holds {listing(shifted, 3)}, not 0: the batch was normalised after padding "
                    f"(do_normalize=True without {key}), so the padding also shifted each sample's mean and "
                    "variance.")
    if key == "attention_mask":
        hint = ("Return the attention mask from the collator and pass it with the batch: processor.pad(features, "
                "padding=True, return_attention_mask=True, return_tensors='pt'); normalise each utterance before padding.")
    else:
        hint = (f"Return {key} from the collator and pass it with the batch, as {hf.model_class}'s forward takes it "
                f"(the feature extractor returns it with return_attention_mask=True; 1 on the audio, 0 on the "
                "padding); normalise each utterance before padding.")
    return [finding(
        "CTC105",
        message,
        hint,
        {"count": len(padded), "total": len(hf.samples), "feat_extract_norm": hf.feat_extract_norm, "mask_key": key,
         "samples": [{"sample": s.index, "padding": s.padding, "length": s.input_length,
                      "padding_frames": s.padding_frames, "frames": s.frames} for s in worst]},
        **({"title": WITHOUT_PADDING_MASK} if key == "padding_mask" else {}),
    )]


@check("CTC106", "error", "SpecAugment's masks do not fit the shortest utterances",
       variants=(("warning", "SpecAugment hides most of the shortest utterances"),))
def spec_augment_too_long(hf):
    """
    **What it checks.** In training, transformers' SpecAugment masks at least
    `mask_time_min_masks` spans of `mask_time_length` frames of every utterance (when
    `mask_time_prob > 0`), and `mask_feature_length` channels of `hidden_size` (when
    `mask_feature_prob > 0`). Frames here are the feature encoder's, measured on the scanned
    samples with the model's own length formula. Masks that would raise are an error;
    masks that only hide most of the shortest utterances are a warning ("SpecAugment hides
    most of the shortest utterances").

    **Why it matters.** `_compute_mask_indices` raises `ValueError: mask_length has to be
    smaller than sequence_length` when a batch's longest utterance has fewer frames than
    `mask_time_length`: training crashes at the first such batch (batch size 1,
    `group_by_length=True`, or a short last batch), hours into a run. Utterances shorter
    than `mask_time_min_masks × mask_time_length` frames do not crash, but most of each is
    hidden at every step, so their transcripts are barely learnable. A
    `mask_feature_length` above `hidden_size` raises on every training step.

    **Example.**
    ```
    error CTC106 SpecAugment masks spans of 10 frames (config.mask_time_length) but 4 of 64
      samples have fewer (sample 12: 7 frames, 0.14 s): a training batch of such samples raises ValueError.
    ```

    **Fix.** Drop utterances shorter than the span (the message gives the duration) from the
    training set, or lower `mask_time_length` (and `mask_time_min_masks`) when loading the
    model: `from_pretrained(checkpoint, mask_time_length=5, mask_time_min_masks=1)`.
    """
    _applies(hf)
    if not hf.apply_spec_augment:
        return []
    found = []
    if hf.mask_feature_prob > 0 and hf.mask_feature_length > hf.hidden_size:
        found.append(finding(
            "CTC106",
            f"SpecAugment masks spans of {hf.mask_feature_length} channels (config.mask_feature_length) but the hidden "
            f"size is {hf.hidden_size}: every training step raises ValueError.",
            f"Lower mask_feature_length below {hf.hidden_size} (or set mask_feature_prob=0).",
            {"mask_feature_length": hf.mask_feature_length, "hidden_size": hf.hidden_size},
        ))
    known = [s for s in hf.samples if s.encoder_frames >= 0]
    if hf.mask_time_prob <= 0 or not known:
        return found
    span, least = hf.mask_time_length, hf.mask_time_min_masks
    too_short = [s for s in known if s.encoder_frames < span]
    crowded = [s for s in known if span <= s.encoder_frames < span * least]
    evidence = {"mask_time_length": span, "mask_time_min_masks": least, "mask_time_prob": hf.mask_time_prob,
                "shortest": min(s.encoder_frames for s in known)}
    if too_short:
        worst = sorted(too_short, key=lambda s: (s.encoder_frames, s.index))[:WORST]
        failing = [index for index, frames in enumerate(hf.batch_frames) if frames < span]
        seconds = f" ({span / hf.frames_per_second:.2f} s of audio)" if hf.frames_per_second else ""
        found.append(finding(
            "CTC106",
            f"SpecAugment masks spans of {span} frames (config.mask_time_length) but "
            f"{of_total(len(too_short), len(known), 'sample', 'has', 'have')} fewer ("
            + "; ".join(f"sample {s.index}: {s.encoder_frames} frames{_seconds(hf, s.encoder_frames)}" for s in worst)
            + "): in training, a batch of such samples raises ValueError ('mask_length has to be smaller than "
            "sequence_length'), e.g. with batch size 1, group_by_length=True or a short last batch"
            + (f"; scanned {numbered(failing, 'batch', 'batches', 3)} already would." if failing else "."),
            f"Drop utterances shorter than {span} frames{seconds} from the training set, or {load_verb(hf)} the model with "
            f"mask_time_length={max(1, min(s.encoder_frames for s in known))} or less.",
            {**evidence, "count": len(too_short), "samples": [s.index for s in too_short[:50]],
             "failing_batches": failing},
        ))
    if crowded:
        worst = sorted(crowded, key=lambda s: (s.encoder_frames, s.index))[:WORST]
        shortest = worst[0].encoder_frames
        found.append(finding(
            "CTC106",
            f"SpecAugment masks at least {least} spans of {span} frames (mask_time_min_masks × mask_time_length = "
            f"{least * span}) in every training utterance, but "
            f"{of_total(len(crowded), len(known), 'sample', 'has', 'have')} fewer frames ("
            + "; ".join(f"sample {s.index}: {s.encoder_frames} frames" for s in worst)
            + f"): up to {min(100, round(100 * least * span / shortest))}% of such an utterance is hidden at "
            "every step.",
            f"Lower mask_time_min_masks (e.g. to 1) or mask_time_length when {load_verb(hf)}ing the model, or drop utterances "
            f"shorter than {least * span} frames.",
            {**evidence, "count": len(crowded), "samples": [s.index for s in crowded[:50]]},
            severity="warning",
            title="SpecAugment hides most of the shortest utterances",
        ))
    return found


#: CTC107's title for a pad id inside a transcript (a real symbol that is the blank).
INSIDE = "a transcript symbol is the blank (config.pad_token_id)"
#: The same for a model whose blank has an attribute of its own (OmniASR: config.blank_token_id).
INSIDE_OWN = "a transcript symbol is the blank (config.blank_token_id)"
#: CTC107's error title for labels padded with such a blank.
PADDED_OWN = "labels padded with blank_token_id instead of -100"


@check("CTC107", "warning", "labels padded with pad_token_id instead of -100",
       variants=(("error", None), ("error", INSIDE), ("error", INSIDE_OWN), ("error", PADDED_OWN)))
def labels_hold_pad_id(hf, hf_settings=None):
    """
    **What it checks.** Label values equal to `config.pad_token_id` (the CTC blank): after the
    last real label (the collator padded with the pad id, not -100), and before it (a
    transcript symbol that is the blank). Padding is an error where the installed
    transformers' loss trains it as blank targets (4); where it drops it (5), a warning only
    for a model class whose transformers 4 loss trained it (`labels >= 0`: the wav2vec2 family,
    Wav2Vec2-BERT, MCTCT, and classes derived from them). `ParakeetForCTC` drops pad-id labels
    in transformers 4.57 too (`ParakeetProcessor` pads them so), and LASR, OmniASR and Granite
    Speech 5 exist only in transformers 5: their padding is not reported. A symbol that is the
    blank is an error, titled "a transcript symbol is the blank (config.pad_token_id)". For a
    model whose blank has an attribute of its own (OmniASR) the findings name it: "a
    transcript symbol is the blank (config.blank_token_id)", "labels padded with
    blank_token_id instead of -100".

    **Why it matters.** Hugging Face CTC losses ignore labels of -100. What they do with the
    pad id depends on the version: transformers 4 (`labels >= 0`) trains it as a blank
    *target* — the model learns to emit the blank as a character, CTC011 — while
    transformers 5 drops it. So padding with the pad id works today and breaks on another
    version, and a real symbol whose id is the blank silently vanishes from every
    transcript in transformers 5 (with a tokenizer, CTC101 names the mismatch).

    **Example.** A collator that returns `tokenizer.pad(labels)["input_ids"]` as is:
    ```
    warning CTC107 64 of 64 samples have labels padded with config.pad_token_id (30) instead of
      -100: transformers 5 drops them, transformers 4 trains them as blank targets.
    ```

    **Fix.** Pad labels with -100, as `DataCollatorCTCWithPadding` does:
    `labels = batch["input_ids"].masked_fill(batch.attention_mask.ne(1), -100)`; and keep
    the blank a class that no transcript uses (`pad_token_id=tokenizer.pad_token_id`).
    """
    _applies(hf)
    if hf.pad_token_id is None:
        return []
    attribute = hf_settings.blank_attribute if hf_settings is not None else "pad_token_id"
    inside = [s for s in hf.samples if s.pad_labels_inside]
    trailing = [s for s in hf.samples if s.pad_labels_trailing]
    if hf.labels_drop_blank and hf_settings is not None and not hf_settings.transformers4_blank_targets:
        # Dropped by the installed loss, and this class never had the transformers 4 loss that trained them (ParakeetForCTC
        # drops them in 4.57 too; LASR, OmniASR, Granite Speech 5 are transformers 5 models): nothing breaks.
        trailing = []
    return ([_blank_symbol(hf, inside, attribute)] if inside and hf.labels_drop_blank else []) + (
        [_padded_with_blank(hf, trailing, attribute)] if trailing else [])


def _blank_symbol(hf, inside: list, attribute: str) -> Finding:
    """CTC107's error for transcript symbols whose id is the blank (dropped by the model's loss)."""
    blank = hf.pad_token_id
    count = sum(s.pad_labels_inside for s in inside)
    token = f" ({hf.blank_token!r})" if hf.blank_token is not None else ""
    if attribute != "pad_token_id":  # the blank is not the tokenizer's pad (OmniASR): a token of its own
        setting = f"{attribute}=tokenizer.convert_tokens_to_ids('<blank>')"
        hint = ("Make the blank a class no transcript uses: give the blank a token of its own that no transcript "
                f"uses ('<blank>' in {hf.model_class}'s tokenizers) and {load_verb(hf)} the model with "
                f"{model_with(hf, setting)}.")
    else:
        hint = ("Make the blank a class no transcript uses: give the tokenizer a pad token of its own and "
                f"{load_verb(hf)} the model with {model_with(hf, 'pad_token_id=processor.tokenizer.pad_token_id')}.")
    return finding(
        "CTC107",
        f"{of_total(len(inside), len(hf.samples), 'sample', 'holds', 'hold')} config.{attribute} "
        f"{blank}{token} inside the transcript ({plural(count, 'label')}, "
        f"{numbered([s.index for s in inside], 'sample')}): the model's loss drops labels equal to the blank, so that symbol "
        "silently vanishes from every transcript and is never learned.",
        hint,
        {attribute: blank, "count": count, "samples": [s.index for s in inside[:50]]},
        severity="error",
        title=INSIDE_OWN if attribute == "blank_token_id" else INSIDE,
    )


def _padded_with_blank(hf, trailing: list, attribute: str) -> Finding:
    """CTC107 for labels padded with the blank id instead of -100: an error where the installed loss trains them."""
    blank = hf.pad_token_id
    if hf.labels_drop_blank:
        effect = ("the installed transformers drops them (its loss ignores labels equal to the blank), but "
                  "transformers 4 (labels >= 0) trains them as blank targets, and the model learns to emit the "
                  "blank as a character")
        severity = None
    else:
        effect = ("the model's loss (labels >= 0) trains them as blank targets (CTC011): the model learns to emit "
                  "the blank as a character")
        severity = "error"
    return finding(
        "CTC107",
        f"{of_total(len(trailing), len(hf.samples), 'sample', 'has', 'have')} labels padded with "
        f"config.{attribute} ({blank}) instead of -100 ({numbered([s.index for s in trailing], 'sample')}): "
        f"{effect}.",
        "Pad labels with -100 in the collator: labels = labels_batch['input_ids'].masked_fill("
        "labels_batch.attention_mask.ne(1), -100).",
        {attribute: blank, "count": len(trailing), "samples": [s.index for s in trailing[:50]],
         "labels_drop_blank": hf.labels_drop_blank},
        **({"severity": severity} if severity else {}),
        **({"title": PADDED_OWN} if severity and attribute == "blank_token_id" else {}),
    )

