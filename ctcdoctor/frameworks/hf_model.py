"""A transformers `*ForCTC` model seen through ctcdoctor's protocol.

`HFCTCModel` wraps the user's model (the same object, never a copy): `wrapper(inputs)` calls
`model(**inputs)` and returns `log_softmax(logits)` in float32, `(N, T, C)`, as the Hugging
Face CTC loss computes it. `HFModelLoss` is the model's own loss, evaluated in eval mode.
`LabelRule` says which label values that loss ignores: it changed between transformers 4
(`labels >= 0`) and 5 (`labels != -100` and `labels != pad_token_id`).
"""
from __future__ import annotations

import contextlib
import functools
import inspect
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

#: The label value Hugging Face collators pad with, and its losses ignore.
IGNORE_INDEX = -100
#: The key of a converted batch that keeps the collator's batch (model inputs and labels).
HF_KEY = "hf"


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Eval mode (no SpecAugment, dropout or layerdrop) with every module's own mode restored afterwards."""
    modes = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for module, training in modes:
            module.training = training


def model_device(model: nn.Module) -> torch.device | None:
    for parameter in model.parameters():
        return parameter.device
    return None


def to_device(value: Any, device: torch.device | None) -> Any:
    if device is None:
        return value
    if isinstance(value, torch.Tensor):
        return value.to(device)
    if isinstance(value, Mapping):
        return {key: to_device(item, device) for key, item in value.items()}
    return value


def main_input_name(model: nn.Module) -> str:
    """`input_values` (raw audio) for most CTC models, `input_features` for Wav2Vec2-BERT, Parakeet, LASR, Granite."""
    return str(getattr(model, "main_input_name", None) or "input_values")


def forward_keys(model: nn.Module) -> tuple[str, ...]:
    """Named inputs of `model.forward` besides `labels`: the batch keys passed to the model, as `Trainer` keeps them."""
    parameters = inspect.signature(model.forward).parameters.values()
    named = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    return tuple(p.name for p in parameters if p.kind in named and p.name != "labels")


#: Batch keys that hold the valid-length mask, in the order looked for: most models name it `attention_mask`,
#: OmniASR (from fairseq2) `padding_mask`; both are 1 on the valid input.
MASK_KEYS = ("attention_mask", "padding_mask")


def mask_key(keys: tuple[str, ...]) -> str:
    """The mask the model's `forward` takes (`attention_mask` when it names none: the collators' key)."""
    return next((key for key in MASK_KEYS if key in keys), MASK_KEYS[0])


def time_axis(values: torch.Tensor, input_name: str) -> int:
    """The time axis of a padded input: the last for raw audio ((N, L), or (N, 1, L) as OmniASR takes it), 1 for
    feature frames ((N, T, F))."""
    return values.dim() - 1 if input_name == "input_values" else min(1, values.dim() - 1)


#: The methods transformers CTC models compute their output lengths with: the wav2vec2 family's conv encoder
#: formula (adapter layers included), and the conformer-style subsampling of Parakeet, LASR, OmniASR, Granite.
LENGTH_METHODS = ("_get_feat_extract_output_lengths", "_get_subsampling_output_length")


def length_method(model: Any) -> str | None:
    """The name of the model's own output-length formula, or None when it has none that ctcdoctor knows."""
    return next((name for name in LENGTH_METHODS if callable(getattr(model, name, None))), None)


def _forward_sources(model_class: type) -> Iterator[str]:
    """The source of each `forward` the model's classes define, most derived first (unreadable ones skipped): where
    the loss's conventions are read from."""
    for cls in model_class.__mro__:
        forward = cls.__dict__.get("forward")
        if forward is None:
            continue
        try:
            yield inspect.getsource(forward)
        except (OSError, TypeError):
            continue


def blank_attribute(model: Any) -> str:
    """The config attribute the model's loss takes as its blank: `pad_token_id` (wav2vec2 family, Parakeet, ...) or one
    of its own (OmniASR: `blank_token_id`), read from the forward that computes the loss."""
    return _blank_attribute(model.__class__)


@functools.cache
def _blank_attribute(model_class: type) -> str:
    """`blank_attribute` per class: its source is read once (the blank is asked for by the checks, the monitor and
    the loss probe)."""
    for source in _forward_sources(model_class):
        found = re.search(r"\bblank(?:_token_id)?\s*=\s*self\.config\.(\w+)", source)
        if found:
            return found.group(1)
    return "pad_token_id"


def blank_id(model: Any) -> int | None:
    """The CTC blank of the model's loss (`config.pad_token_id`, or the attribute its forward names)."""
    value = getattr(model.config, blank_attribute(model), None)
    return None if value is None else int(value)


def _frames(model: Any, lengths: torch.Tensor, **kwargs: Any) -> torch.Tensor:
    method = length_method(model)
    if method is None:
        raise TypeError(f"{type(model).__name__} has none of {', '.join(LENGTH_METHODS)}")
    return torch.as_tensor(getattr(model, method)(lengths, **kwargs)).to("cpu", torch.long)


def output_lengths(model: Any, input_lengths: torch.Tensor) -> torch.Tensor:
    """Frames per sample by the model's own formula (conv feature encoder, adapter layers included).

    This is the call the model's forward makes for its loss: `_get_feat_extract_output_lengths(
    attention_mask.sum(-1))`, with `config.add_adapter` deciding whether the adapter counts, or
    `_get_subsampling_output_length(attention_mask.sum(-1))` for the conformer-style models.
    """
    return _frames(model, torch.as_tensor(input_lengths).to("cpu", torch.long))


def encoder_frames(model: Any, input_lengths: torch.Tensor) -> torch.Tensor:
    """Frames of the feature encoder without the adapter layers: the sequence SpecAugment masks (the adapter
    runs after the transformer)."""
    lengths = torch.as_tensor(input_lengths).to("cpu", torch.long)
    try:
        return _frames(model, lengths, add_adapter=False)
    except TypeError:  # models without adapters take no add_adapter argument
        return _frames(model, lengths)


class HFCTCModel(nn.Module):
    """`model(inputs)` for ctcdoctor: inputs are the main tensor alone or a mapping of the model's keyword
    arguments; the result is `(N, T, C)` float32 log-probabilities."""

    def __init__(
        self, model: nn.Module, input_name: str | None = None, tokenizer: Any = None, processor: Any = None
    ) -> None:
        super().__init__()
        self.model = model
        self.input_name = input_name or main_input_name(model)
        # Kept for the Hugging Face checks (the `hf` input), which read the vocabulary and feature extractor.
        self.tokenizer = tokenizer
        self.processor = processor
        #: True when Setup.alphabet was read from the tokenizer (not given by the user): CTC014 then has nothing
        #: of its own to compare (CTC100 compares config.vocab_size with len(tokenizer)).
        self.alphabet_from_tokenizer = False

    def forward(self, inputs: Any) -> torch.Tensor:
        kwargs = dict(inputs) if isinstance(inputs, Mapping) else {self.input_name: inputs}
        output = self.model(**kwargs)
        logits = getattr(output, "logits", None)
        if logits is None:  # return_dict=False: a tuple whose first item is the logits when no labels are given
            logits = output[0]
        # The Hugging Face CTC loss takes log_softmax over classes in float32 (ctc_loss has no half kernel).
        return logits.float().log_softmax(-1)

    def output_lengths(self, input_lengths: torch.Tensor) -> torch.Tensor:
        return output_lengths(self.model, input_lengths)


class HFModelLoss:
    """The model's own CTC loss on a converted batch: `model(**inputs, labels=labels).loss` in eval mode.

    Called by ctcdoctor as `criterion(output, batch)`; the output is not used, the model runs again
    on the collator's batch so that its own length and label handling is what gets compared with
    reference CTC. Eval mode because train mode adds SpecAugment, dropout and layerdrop noise, and
    the comparison would fail for that reason alone.
    """

    def __init__(self, model: nn.Module, keys: tuple[str, ...]) -> None:
        self.model = model
        self.keys = keys

    def __call__(self, output: Any, batch: Any) -> torch.Tensor:
        if not isinstance(batch, Mapping) or HF_KEY not in batch:
            raise TypeError("the Hugging Face loss needs the batch as setup_from_hf's loader yields it")
        original = batch[HF_KEY]
        device = model_device(self.model)
        kwargs = {key: to_device(original[key], device) for key in self.keys if original.get(key) is not None}
        with eval_mode(self.model):
            try:
                result = self.model(**kwargs, labels=to_device(original["labels"], device))
            except AttributeError as error:
                raise self._unmasked(kwargs) or error from error
        loss = getattr(result, "loss", None)
        return loss if loss is not None else result[0]

    def _unmasked(self, kwargs: Mapping[str, Any]) -> ValueError | None:
        """Parakeet, LASR, OmniASR and Granite count their loss's frames from the mask alone (`encoder_outputs.
        attention_mask.sum(-1)`): without one their loss fails on None. Say so, instead of that AttributeError."""
        key = mask_key(self.keys)
        if key not in self.keys or key in kwargs:
            return None
        return ValueError(
            f"{type(self.model).__name__}'s own loss needs {key!r}: it counts each sample's frames from that mask, "
            f"and this batch has none. Return {key} from the collator (its feature extractor does, with "
            f"return_attention_mask=True)"
        )


@dataclass(frozen=True)
class LabelRule:
    """Which label values the model's loss drops before F.ctc_loss."""

    drops_blank: bool
    """Labels equal to `config.pad_token_id` are dropped (transformers 5's ForCTCLoss); else they stay, as blank
    targets."""
    drops_negative: bool
    """Every negative label is dropped (transformers 4: `labels >= 0`); else only -100."""
    source: str
    """How the rule was found, for messages."""

    def keep(self, labels: torch.Tensor, blank: int) -> torch.Tensor:
        """Boolean mask of the labels the loss trains on."""
        mask = labels >= 0 if self.drops_negative else labels != IGNORE_INDEX
        if self.drops_blank:
            mask &= labels != blank
        return mask


#: transformers 4.x: `labels_mask = labels >= 0` inside each *ForCTC.forward.
RULE_V4 = LabelRule(drops_blank=False, drops_negative=True, source="labels >= 0 (transformers 4)")
#: transformers 5.x: `ForCTCLoss` masks `(labels != -100) & (labels != blank)`.
RULE_V5 = LabelRule(drops_blank=True, drops_negative=False,
                    source="labels != -100 and != pad_token_id (transformers 5 ForCTCLoss)")


def label_rule(model: nn.Module) -> LabelRule:
    """The label masking of this model's loss, read from the forward that computes it.

    A forward that calls `self.loss_function` (transformers 5) is tested on two tiny inputs: does a
    trailing blank label change the loss? A forward that masks `labels >= 0` is transformers 4.
    Unrecognised code gets the transformers 4 rule; if that is wrong, CTC030 reports the model's
    loss disagreeing with reference CTC.
    """
    for source in _forward_sources(type(model)):
        if "loss_function" in source:
            return _probe_loss_function(model)
        if "labels >= 0" in source:
            return RULE_V4
    return RULE_V4


def _probe_loss_function(model: Any) -> LabelRule:
    blank, classes = blank_id(model), int(model.config.vocab_size)
    if blank is None or classes < 2 or not 0 <= blank < classes:
        return RULE_V5
    other = 1 if blank != 1 else 0
    function = model.loss_function
    logits = torch.zeros(1, 4, classes)
    lengths = torch.tensor([4])

    def loss(labels: list[int]) -> float:
        return float(function(logits=logits, labels=torch.tensor([labels]), logit_lengths=lengths,
                              blank_token_id=blank, reduction="sum", zero_infinity=False))

    try:
        drops_blank = loss([other, blank]) == loss([other])
        drops_negative = loss([other, -1]) == loss([other])
    except Exception:
        drops_negative = False  # a negative label that is kept makes F.ctc_loss raise
        try:
            drops_blank = loss([other, blank]) == loss([other])
        except Exception:
            return RULE_V5
    if drops_blank and not drops_negative:
        return RULE_V5
    if not drops_blank and drops_negative:
        return RULE_V4
    return LabelRule(drops_blank, drops_negative, "measured on model.loss_function")
