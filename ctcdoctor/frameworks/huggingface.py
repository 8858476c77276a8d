"""Hugging Face transformers CTC models (`Wav2Vec2ForCTC`, `HubertForCTC`, `WavLMForCTC`, ...) as a `Setup`.

    from ctcdoctor.frameworks.huggingface import setup_from_hf

    def build():
        model = Wav2Vec2ForCTC.from_pretrained(...)
        return setup_from_hf(model, train_loader, processor=processor)

What is read from the model, so that `(model, loader)` is enough:

- batches are the collator's mappings (`input_values` or `input_features`, optional `attention_mask` or the
  `padding_mask` its forward names, `labels` padded with -100); the model gets the keys its `forward` names, as
  `Trainer` passes them;
- the output is `log_softmax(logits)` in float32, `(N, T, C)`, as the model's loss computes it;
- blank = `config.pad_token_id` (or the config attribute the forward passes to its loss as the blank, as
  OmniASR's `blank_token_id`), C = `config.vocab_size`;
- input lengths = `attention_mask.sum(-1)` (the full width without a mask), output lengths by the
  model's own `_get_feat_extract_output_lengths` (adapter layers included) or `_get_subsampling_output_length`;
- targets = the labels the model's loss keeps (-100 dropped; in transformers 5 also the pad id);
- the criterion is the model's own loss, in eval mode (train mode adds SpecAugment and dropout noise);
- the alphabet is the tokenizer's vocabulary in id order, the blank skipped.

Nothing here imports transformers or torch at import time; the user's model, config and loader are
not modified (the model's train/eval mode is restored after every use).
"""
from __future__ import annotations

import dataclasses
import sys
from collections.abc import Iterable
from typing import Any

from ctcdoctor.errors import UserInputError
from ctcdoctor.frameworks.hf_facts import HFFacts, SampleFacts, describe_hf, split_processor
from ctcdoctor.protocol import Setup

__all__ = ["HFFacts", "SampleFacts", "describe_hf", "is_hf_ctc_model", "not_ctc_reason", "setup_from_hf"]

INSTALL_HINT = "Install the Hugging Face extra: pip install 'ctcdoctor[hf]' (or pip install transformers)."


def _transformers() -> Any:
    try:
        import transformers
    except ImportError as error:
        raise UserInputError(
            f"a Hugging Face set-up needs transformers, which is not installed ({error})", INSTALL_HINT
        ) from None
    return transformers


def not_ctc_reason(model: Any) -> str | None:
    """Why `model` is not a transformers CTC model, in one sentence; None when it is one."""
    if sys.modules.get("transformers") is None:
        # An instance of a transformers class implies the module is loaded: no need to import it here.
        return f"{type(model).__name__} is not a transformers model (transformers is not loaded)"
    from transformers import PreTrainedModel

    name = type(model).__name__
    if not isinstance(model, PreTrainedModel):
        return f"{name} is not a transformers PreTrainedModel"
    config = model.config
    missing = [key for key in ("pad_token_id", "ctc_loss_reduction", "vocab_size") if not hasattr(config, key)]
    if missing:
        return f"{name}'s config ({type(config).__name__}) has no {', '.join(missing)}: it is not a CTC model's config"
    # Wav2Vec2Config also serves Wav2Vec2ForSequenceClassification, so the config alone does not make a CTC model.
    has_head = any(cls.__name__.endswith("ForCTC") for cls in type(model).__mro__)
    if not has_head:
        return f"{name} has no CTC head: it does not output class scores per frame for a CTC loss"
    from ctcdoctor.frameworks.hf_model import LENGTH_METHODS, length_method

    if length_method(model) is None:
        return (f"{name} has a CTC head but {NO_LENGTHS} (none of {', '.join(LENGTH_METHODS)}), so the frames its "
                "loss aligns are unknown")
    return None


#: The reason that `Setup.output_lengths` answers: the model's forward is fine, only its length formula is unknown.
NO_LENGTHS = "no output-length formula ctcdoctor can call"


def _no_lengths_hint(model: Any) -> str:
    return (f"Return a Setup(model=..., loader=..., output_lengths=...) whose output_lengths maps input lengths to "
            f"{type(model).__name__}'s output frames, and report the class to ctcdoctor so that it learns the formula.")


def is_hf_ctc_model(model: Any) -> bool:
    """A transformers `PreTrainedModel` with a CTC head whose config has `pad_token_id` and `ctc_loss_reduction`.

    Never imports transformers: a model that is an instance of its classes has loaded it already.
    """
    return not_ctc_reason(model) is None


def _ctc_class_hint(model: Any) -> str:
    name = type(model).__name__
    family = name.split("For", 1)[0] if "For" in name else name.removesuffix("Model")
    candidate = f"{family}ForCTC"
    if family and hasattr(sys.modules.get("transformers"), candidate):
        return f"Load the model with {candidate}.from_pretrained(...) (a CTC head on the same encoder)."
    return "Pass a transformers *ForCTC model (Wav2Vec2ForCTC, HubertForCTC, WavLMForCTC, ...)."


def alphabet_from_tokenizer(tokenizer: Any, num_classes: int, blank: int) -> list[str] | None:
    """The tokenizer's token for every class id except the blank, in id order (ids without a token get a
    visible placeholder, so that class numbers stay aligned and CTC100 reports the size mismatch)."""
    if tokenizer is None:
        return None
    by_id = {index: token for token, index in tokenizer.get_vocab().items()}
    return [str(by_id.get(index, f"<unused {index}>")) for index in range(num_classes) if index != blank]


def setup_from_hf(
    model: Any,
    loader: Iterable[Any],
    *,
    tokenizer: Any = None,
    processor: Any = None,
    **setup_overrides: Any,
) -> Setup:
    """A `Setup` for a transformers `*ForCTC` model and a loader of collator batches.

    `processor` may be a `Wav2Vec2Processor` (tokenizer + feature extractor) or a feature extractor;
    `tokenizer` gives the alphabet and the vocabulary checks. `setup_overrides` replace fields of the
    result (`alphabet=...`, `optimizer=...`). Raises `UserInputError` (exit 2) for a model that is not a
    transformers CTC model, with the reason in one line.
    """
    _transformers()
    from ctcdoctor.frameworks.hf_batches import BatchConverter, convert_loader
    from ctcdoctor.frameworks.hf_model import (
        HFCTCModel,
        HFModelLoss,
        blank_attribute,
        blank_id,
        forward_keys,
        label_rule,
        main_input_name,
    )

    reason = not_ctc_reason(model)
    lengths_given = setup_overrides.get("output_lengths") is not None
    if reason is not None and not (NO_LENGTHS in reason and lengths_given):
        raise UserInputError(reason, _no_lengths_hint(model) if NO_LENGTHS in reason else _ctc_class_hint(model))
    config = model.config
    blank_name = blank_attribute(model)
    blank = blank_id(model)
    if blank is None:
        raise UserInputError(
            f"{type(model).__name__}: config.{blank_name} is None, so its CTC loss has no blank",
            f"Pass {blank_name}=processor.tokenizer.pad_token_id to from_pretrained (or to the config)."
            if blank_name == "pad_token_id" else f"Pass {blank_name}= (the blank's id) to from_pretrained (or to the config).",
        )
    unknown = sorted(set(setup_overrides) - {item.name for item in dataclasses.fields(Setup)})
    if unknown:
        raise UserInputError(f"setup_from_hf got unknown Setup fields {unknown}",
                             f"Use fields of ctcdoctor.Setup: {[item.name for item in dataclasses.fields(Setup)]}.")
    tokenizer, _ = split_processor(tokenizer, processor)
    input_name = main_input_name(model)
    keys = forward_keys(model)
    wrapper = HFCTCModel(model, input_name, tokenizer=tokenizer, processor=processor)
    convert = BatchConverter(input_name, keys, blank, label_rule(model))
    setup = Setup(
        model=wrapper,
        loader=convert_loader(loader, convert),
        blank=blank,
        alphabet=alphabet_from_tokenizer(tokenizer, int(config.vocab_size), blank),
        criterion=HFModelLoss(model, keys),
        output_lengths=wrapper.output_lengths,
        layout="NTC",
        tokenizer=tokenizer,
        processor=processor,
    )
    wrapper.alphabet_from_tokenizer = tokenizer is not None and setup_overrides.get("alphabet") is None
    if setup_overrides.get("criterion") is not None:
        setup_overrides["criterion"] = HFUserCriterion(setup_overrides["criterion"], model, keys)
    return dataclasses.replace(setup, **setup_overrides)


#: Setup fields that `adopt_setup` never takes as overrides: the model and loader are what get converted,
#: the tokenizer and processor are passed as such.
_CONVERTED = ("model", "loader", "tokenizer", "processor")


def explicit_fields(setup: Setup) -> dict[str, Any]:
    """The Setup fields the user set: those that differ from the dataclass defaults (model and loader aside)."""
    explicit = {}
    for item in dataclasses.fields(Setup):
        value = getattr(setup, item.name)
        if item.name in _CONVERTED or value is item.default:
            continue
        try:
            same = bool(value == item.default)
        except Exception:  # an array-valued field: not the default
            same = False
        if not same:
            explicit[item.name] = value
    return explicit


def is_transformers_model(model: Any) -> bool:
    """A transformers `PreTrainedModel` (any head); never imports transformers."""
    module = sys.modules.get("transformers")
    if module is None:
        return False
    from transformers import PreTrainedModel

    return isinstance(model, PreTrainedModel)


def adopt_setup(setup: Setup) -> Setup | None:
    """The Hugging Face Setup when `setup.model` is a transformers model (None for any other model).

    This is what makes `return model, loader` enough: `load.spec.as_setup` calls it for every set-up. The fields
    the user set on `setup` (those that differ from their defaults: `alphabet`, `criterion`, `optimizer`, ...)
    replace what is read from the model. A transformers model without a CTC head raises `UserInputError`.
    `batch_axis` does not apply (the batches are the collator's mappings) and is dropped.
    """
    if not is_transformers_model(setup.model):
        return None
    overrides = explicit_fields(setup)
    overrides.pop("batch_axis", None)
    return setup_from_hf(setup.model, setup.loader, tokenizer=setup.tokenizer, processor=setup.processor, **overrides)


class HFUserCriterion:
    """The user's own criterion for a Hugging Face model, called as their training step would call it:
    `criterion(model(**inputs), collator_batch)`, with the model's `ModelOutput` (no labels passed, so no
    `.loss`) and the collator's batch as the loader yielded it (`labels` padded with -100). The model runs
    in eval mode, as every criterion audit does."""

    def __init__(self, criterion: Any, model: Any, keys: tuple[str, ...]) -> None:
        self.criterion = criterion
        self.model = model
        self.keys = keys

    def __call__(self, output: Any, batch: Any) -> Any:
        from ctcdoctor.frameworks.hf_model import HF_KEY, eval_mode, model_device, to_device

        original = batch[HF_KEY] if isinstance(batch, dict) and HF_KEY in batch else batch
        device = model_device(self.model)
        kwargs = {key: to_device(original[key], device) for key in self.keys if original.get(key) is not None}
        with eval_mode(self.model):
            returned = self.model(**kwargs)
        return self.criterion(returned, original)

