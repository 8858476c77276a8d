"""What the Hugging Face checks (CTC100-CTC107) judge: config values, tokenizer and feature
extractor facts, and per-sample facts of the collator's batches.

`describe_hf` is a pure function of the model's config, the tokenizer/processor and the
batches; `HFFacts` is plain data, so the checks can be tested on hand-built facts. Torch and
transformers are imported inside the functions: the checks import this module for its
types only, and `ctcdoctor explain` must start without them.
"""
from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

#: Labels that Hugging Face collators pad with and losses ignore.
IGNORE_INDEX = -100


@dataclass(frozen=True)
class SampleFacts:
    """One scanned sample, numbered as ctcdoctor numbers samples (running index over the batches)."""

    index: int
    batch: int
    input_length: int
    """Audio samples (or feature frames) the model's loss counts: attention_mask.sum(), or the full width."""
    frames: int
    """Output frames by the model's formula for input_length (adapter layers included): what the loss aligns."""
    labels: int
    """Labels the model's loss trains on."""
    encoder_frames: int = -1
    """Frames of the feature encoder alone (no adapter): the sequence SpecAugment masks; -1 when unknown."""
    repeats: int = 0
    """Adjacent equal labels among them (each needs a blank frame between)."""
    unknown: int = 0
    """Labels equal to the tokenizer's unknown-token id."""
    pad_labels_trailing: int = 0
    """config.pad_token_id values that end the label row: padding with the pad id instead of -100."""
    pad_labels_inside: int = 0
    """Other labels equal to config.pad_token_id: a transcript symbol that is the blank."""
    padding: int = 0
    """Trailing padding in a batch without attention_mask: the length of the constant run that ends the sample,
    when it spans at least two frames' worth of input (0 when the batch has a mask)."""
    padding_frames: int = 0
    """Output frames that the padding adds to the sample."""
    padding_value: float | None = None
    """The constant the padding holds (0.0 from a collator; another value when the padded batch was normalised)."""
    masked: bool = False
    """The batch has an attention_mask."""

    @property
    def required(self) -> int:
        """Frames a CTC alignment needs: labels + adjacent repeats."""
        return self.labels + self.repeats


@dataclass(frozen=True)
class HFFacts:
    """The Hugging Face facts about one set-up. Defaults describe a healthy Wav2Vec2ForCTC."""

    model_class: str = "Wav2Vec2ForCTC"
    config_class: str = "Wav2Vec2Config"
    from_checkpoint: bool = True
    """The model was loaded from a checkpoint (config.name_or_path set by from_pretrained): the fixes name
    from_pretrained's arguments; a model built from its config (Wav2Vec2ForCTC(Wav2Vec2Config(...))) gets the config's."""
    input_name: str = "input_values"
    vocab_size: int = 32
    pad_token_id: int | None = 0
    ctc_loss_reduction: str = "mean"
    ctc_zero_infinity: bool = False
    feat_extract_norm: str | None = "layer"
    """"group" (wav2vec2-base: trained without attention_mask), "layer", or None (no such setting)."""
    frames_per_second: float | None = 50.0
    """Output frames per second of audio (sampling rate / total conv stride); None when unknown."""
    apply_spec_augment: bool = True
    mask_time_prob: float = 0.05
    mask_time_length: int = 10
    mask_time_min_masks: int = 2
    mask_feature_prob: float = 0.0
    mask_feature_length: int = 10
    hidden_size: int = 768
    layerdrop: float = 0.0
    """Probability that a transformer layer is skipped at each training step (config.layerdrop): a train-mode
    backward pass then leaves the skipped layers without gradient."""
    labels_drop_blank: bool = True
    """The installed loss drops labels equal to pad_token_id (transformers 5); else it trains on them as blank
    targets (transformers 4)."""
    label_rule: str = ""
    # ------------------------------------------------------------------ tokenizer
    tokenizer_class: str | None = None
    tokenizer_size: int | None = None
    """len(tokenizer): vocabulary plus added tokens."""
    tokenizer_pad_id: int | None = None
    tokenizer_pad_token: str | None = None
    unk_id: int | None = None
    unk_token: str | None = None
    blank_token: str | None = None
    """The tokenizer's token at config.pad_token_id."""
    beyond_head: tuple[tuple[int, str], ...] = ()
    """Label tokens (not <s>/</s>-like) whose id is >= config.vocab_size: the head has no row for them."""
    vocab_case: str | None = None
    alphabet_from_tokenizer: bool = False
    """Setup.alphabet is the tokenizer's vocabulary (read by setup_from_hf), not one the user gave."""
    """"lower" or "upper" when every letter of the vocabulary has that case; else None."""
    do_lower_case: bool | None = None
    # ------------------------------------------------------------------ feature extractor
    feature_extractor_class: str | None = None
    do_normalize: bool | None = None
    return_attention_mask: bool | None = None
    sampling_rate: int | None = None
    # ------------------------------------------------------------------ batches
    samples: tuple[SampleFacts, ...] = ()
    batch_frames: tuple[int, ...] = ()
    """Feature-encoder frames of each scanned batch's padded width: SpecAugment raises in training when
    mask_time_length exceeds it."""
    input_peak: float | None = None
    """Largest |value| of the audio within the valid lengths (None for input_features)."""
    input_integral: bool = False
    """Every audio value is a whole number (int16 samples cast to float)."""
    notes: tuple[str, ...] = field(default=())

    @property
    def expects_attention_mask(self) -> bool:
        """The model is meant to get attention_mask: layer-norm feature encoders (wav2vec2-large-lv60, XLS-R, MMS),
        feature inputs, or a feature extractor that returns one. Group-norm models (wav2vec2-base) are documented
        to take zero-padded input_values without it."""
        return self.feat_extract_norm != "group" or bool(self.return_attention_mask)

    @property
    def infeasible(self) -> tuple[SampleFacts, ...]:
        return tuple(sample for sample in self.samples if sample.frames < sample.required)


def _letters_case(tokens: Iterable[str]) -> str | None:
    letters = [token for token in tokens if len(token) == 1 and token.isalpha() and token.lower() != token.upper()]
    if not letters:
        return None
    if all(letter.islower() for letter in letters):
        return "lower"
    if all(letter.isupper() for letter in letters):
        return "upper"
    return None


def _tokenizer_facts(tokenizer: Any, vocab_size: int, pad_token_id: int | None) -> dict[str, Any]:
    if tokenizer is None:
        return {}
    vocab: dict[str, int] = dict(tokenizer.get_vocab())
    by_id = {index: token for token, index in vocab.items()}
    # Sentence markers never appear in CTC labels: a head without rows for them is fine.
    names = ("bos_token", "eos_token", "cls_token", "sep_token", "mask_token")
    markers = {getattr(tokenizer, name, None) for name in names}
    beyond = tuple(sorted((index, token) for token, index in vocab.items()
                          if index >= vocab_size and token not in markers))
    return dict(
        tokenizer_class=type(tokenizer).__name__,
        tokenizer_size=len(tokenizer),
        tokenizer_pad_id=getattr(tokenizer, "pad_token_id", None),
        tokenizer_pad_token=getattr(tokenizer, "pad_token", None),
        unk_id=getattr(tokenizer, "unk_token_id", None),
        unk_token=getattr(tokenizer, "unk_token", None),
        blank_token=by_id.get(pad_token_id) if pad_token_id is not None else None,
        beyond_head=beyond,
        vocab_case=_letters_case(vocab),
        do_lower_case=getattr(tokenizer, "do_lower_case", None),
    )


def split_processor(tokenizer: Any, processor: Any) -> tuple[Any, Any]:
    """(tokenizer, feature extractor) from what the user passed: a processor holds both; a feature
    extractor may be passed as `processor` on its own."""
    feature_extractor = None
    if processor is not None:
        tokenizer = tokenizer if tokenizer is not None else getattr(processor, "tokenizer", None)
        feature_extractor = getattr(processor, "feature_extractor", None)
        if feature_extractor is None and hasattr(processor, "do_normalize"):
            feature_extractor = processor
    return tokenizer, feature_extractor


def _feature_extractor_facts(feature_extractor: Any) -> dict[str, Any]:
    if feature_extractor is None:
        return {}
    return dict(
        feature_extractor_class=type(feature_extractor).__name__,
        do_normalize=getattr(feature_extractor, "do_normalize", None),
        return_attention_mask=getattr(feature_extractor, "return_attention_mask", None),
        sampling_rate=getattr(feature_extractor, "sampling_rate", None),
    )


def _trailing_run(values: Any) -> tuple[Any, Any]:
    """(N,) length of the constant run that ends each row (audio samples, or feature frames equal to the last
    frame), and (N,) the run's value. Padding is such a run; real audio and features almost never are."""
    import torch

    last = values[:, -1:]
    same = values == last
    if same.dim() == 3:
        same = same.all(-1)
        last = last[..., 0]
    runs = same.flip(-1).to(torch.long).cumprod(-1).sum(-1)
    return runs, last.reshape(values.shape[0], -1)[:, 0]


def _label_facts(labels: Any, blank: int | None, unk_id: int | None, keep: Any) -> list[tuple[int, int, int, int, int]]:
    """Per row: (kept labels, adjacent repeats among them, unknown tokens, pad ids padding the row, other pad ids).

    Padding with the pad id fills the row up to the batch width, so it is the run of pad ids that ends the
    row; a pad id followed by anything (a label, or -100 padding) is a transcript symbol equal to the blank.
    """
    rows = []
    for row, kept_mask in zip(labels.tolist(), keep.tolist()):
        kept = [value for value, k in zip(row, kept_mask) if k]
        repeats = sum(1 for a, b in itertools.pairwise(kept) if a == b)
        unknown = sum(1 for value in kept if unk_id is not None and value == unk_id)
        total = sum(1 for value in row if blank is not None and value == blank)
        trailing = 0
        while trailing < len(row) and blank is not None and row[len(row) - 1 - trailing] == blank:
            trailing += 1
        trailing = min(trailing, len(row) - 1)  # a row of pad ids alone: count one of them as the transcript
        rows.append((len(kept), repeats, unknown, max(trailing, 0), total - max(trailing, 0)))
    return rows


@dataclass
class _Scan:
    """What the batch loop of `describe_hf` gathers."""

    samples: list[SampleFacts] = field(default_factory=list)
    batch_frames: list[int] = field(default_factory=list)
    peak: float = 0.0
    integral: bool = True
    audio_seen: bool = False

    def audio(self, valid: Any) -> None:
        """Peak and integrality of one sample's audio within its valid length."""
        import torch

        if not valid.numel():
            return
        self.audio_seen = True
        finite = valid[torch.isfinite(valid)]
        if finite.numel():
            self.peak = max(self.peak, float(finite.abs().max()))
            self.integral = self.integral and bool((finite == finite.round()).all())


def _time_major(values: Any, input_name: str) -> Any:
    """The input with time on axis 1: (N, L) audio, or (N, T, F) features; OmniASR's (N, 1, L) audio is squeezed."""
    if input_name == "input_values" and values.dim() == 3 and values.shape[1] == 1:
        return values[:, 0]
    return values


def _scan_batch(scan: _Scan, model: Any, batch: Mapping[str, Any], batch_index: int, input_name: str, rule: Any,
                blank: int | None, unk_id: int | None, stride: int) -> None:
    import torch

    from ctcdoctor.frameworks.hf_model import encoder_frames, forward_keys, mask_key, output_lengths

    values = _time_major(torch.as_tensor(batch[input_name]).detach().cpu(), input_name)
    labels = torch.as_tensor(batch["labels"]).detach().cpu().to(torch.long)
    if labels.dim() == 1:
        labels = labels[None]
    mask = batch.get(mask_key(forward_keys(model)))
    width = int(values.shape[1])
    if mask is not None:
        lengths = torch.as_tensor(mask).detach().cpu().to(torch.long).sum(-1)
        padding, constant = torch.zeros_like(lengths), torch.zeros(lengths.shape[0])
    else:
        lengths = torch.full((values.shape[0],), width, dtype=torch.long)
        padding, constant = _trailing_run(values)
        # A run shorter than two frames of input is a sample's own last values, not padding.
        padding = torch.where(padding >= 2 * (stride if input_name == "input_values" else 1), padding, 0)
    frames = output_lengths(model, lengths)
    padding_frames = frames - output_lengths(model, lengths - padding).clamp(min=0)
    encoder = encoder_frames(model, lengths)
    scan.batch_frames.append(int(encoder_frames(model, torch.tensor([width]))[0]))
    keep = rule.keep(labels, blank if blank is not None else -1)
    for row, (label_count, repeats, unknown, trailing, inside) in enumerate(_label_facts(labels, blank, unk_id, keep)):
        scan.samples.append(SampleFacts(
            index=len(scan.samples), batch=batch_index, input_length=int(lengths[row]), frames=int(frames[row]),
            encoder_frames=int(encoder[row]), labels=label_count, repeats=repeats, unknown=unknown,
            pad_labels_trailing=trailing, pad_labels_inside=inside, padding=int(padding[row]),
            padding_frames=int(padding_frames[row]),
            padding_value=float(constant[row]) if int(padding[row]) else None, masked=mask is not None,
        ))
        if input_name == "input_values" and values.dim() == 2:
            scan.audio(values[row, : int(lengths[row]) - int(padding[row])].to(torch.float64))


def _encoder_config(config: Any) -> Any:
    """The config that holds the encoder's settings: the model's own (wav2vec2 family), or the one nested in it
    (`encoder_config` of Parakeet, LASR and Granite; `audio_config` of OmniASR)."""
    if hasattr(config, "hidden_size"):
        return config
    for name in ("encoder_config", "audio_config"):
        nested = getattr(config, name, None)
        if nested is not None and hasattr(nested, "hidden_size"):
            return nested
    return config


def _config_facts(config: Any) -> dict[str, Any]:
    encoder = _encoder_config(config)
    return dict(
        ctc_loss_reduction=str(getattr(config, "ctc_loss_reduction", "mean")),
        ctc_zero_infinity=bool(getattr(config, "ctc_zero_infinity", False)),
        feat_extract_norm=getattr(config, "feat_extract_norm", None),
        apply_spec_augment=bool(getattr(config, "apply_spec_augment", True)),
        mask_time_prob=float(getattr(config, "mask_time_prob", 0.0) or 0.0),
        mask_time_length=int(getattr(config, "mask_time_length", 1) or 1),
        mask_time_min_masks=int(getattr(config, "mask_time_min_masks", 0) or 0),
        mask_feature_prob=float(getattr(config, "mask_feature_prob", 0.0) or 0.0),
        mask_feature_length=int(getattr(config, "mask_feature_length", 1) or 1),
        hidden_size=int(getattr(encoder, "hidden_size", 0) or 0),  # SpecAugment masks features before the encoder
        layerdrop=float(getattr(encoder, "layerdrop", 0.0) or 0.0),
    )


def _frames_per_second(config: Any, rate: int | None, input_name: str) -> tuple[int, float | None]:
    """(total conv stride, output frames a second of audio); every *ForCTC checkpoint on the Hub takes 16 kHz."""
    stride = 1
    for value in getattr(_encoder_config(config), "conv_stride", ()) or ():
        stride *= int(value)
    if input_name != "input_values":
        return stride, None
    return stride, (rate or 16000) / stride


def describe_hf(
    model: Any, batches: Iterable[Mapping[str, Any]], tokenizer: Any = None, processor: Any = None
) -> HFFacts | None:
    """Facts about a transformers CTC model and its collator batches; None when `model` is not one.

    `model` may be the `*ForCTC` model or `setup_from_hf`'s wrapper; `batches` are the collator's mappings
    (`input_values`/`input_features`, optional `attention_mask`, `labels` padded with -100).
    """
    from ctcdoctor.frameworks.hf_model import HFCTCModel, blank_attribute, blank_id, label_rule, main_input_name
    from ctcdoctor.frameworks.huggingface import is_hf_ctc_model

    alphabet_from_tokenizer = bool(getattr(model, "alphabet_from_tokenizer", False))
    if isinstance(model, HFCTCModel):
        tokenizer = tokenizer if tokenizer is not None else model.tokenizer
        processor = processor if processor is not None else model.processor
        model = model.model
    if not is_hf_ctc_model(model):
        return None
    config = model.config
    tokenizer, feature_extractor = split_processor(tokenizer, processor)
    vocab_size = int(config.vocab_size)
    blank = blank_id(model)
    rule = label_rule(model)
    input_name = main_input_name(model)
    token = _tokenizer_facts(tokenizer, vocab_size, blank)
    if blank_attribute(model) != "pad_token_id" and token:
        # The blank has an id of its own (OmniASR: config.blank_token_id), apart from the tokenizer's pad token:
        # the pad id is not the blank by design, so there is no pad id to compare the blank with (CTC101).
        token.update(tokenizer_pad_id=None, tokenizer_pad_token=None)
    extractor = _feature_extractor_facts(feature_extractor)
    stride, frames_per_second = _frames_per_second(config, extractor.get("sampling_rate"), input_name)
    scan = _Scan()
    for batch_index, batch in enumerate(batches):
        if isinstance(batch, Mapping) and input_name in batch and "labels" in batch:
            _scan_batch(scan, model, batch, batch_index, input_name, rule, blank, token.get("unk_id"), stride)
    return HFFacts(
        model_class=type(model).__name__,
        config_class=type(config).__name__,
        from_checkpoint=bool(getattr(config, "name_or_path", "") or getattr(model, "name_or_path", "")),
        input_name=input_name,
        vocab_size=vocab_size,
        pad_token_id=blank,
        frames_per_second=frames_per_second,
        labels_drop_blank=rule.drops_blank,
        label_rule=rule.source,
        alphabet_from_tokenizer=alphabet_from_tokenizer,
        samples=tuple(scan.samples),
        batch_frames=tuple(scan.batch_frames),
        input_peak=scan.peak if scan.audio_seen else None,
        input_integral=scan.integral and scan.audio_seen,
        **_config_facts(config),
        **token,
        **extractor,
    )
