"""The user's vocabulary, so that advice names their tokens and their settings: the tokenizer's token per class
id and pad id, where the blank is set (`Setup.blank`, or for a Hugging Face model the config attribute its loss takes:
`config.pad_token_id`, OmniASR's `config.blank_token_id`), the names a Hugging Face model gives its blank and mask
(`hf_settings`), and the one class count that CTC010 and CTC014 both advise."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ctcdoctor.engine import Context, provides


@dataclass(frozen=True)
class Vocabulary:
    tokens: dict[int, str]
    """Token of each class id, from the tokenizer (empty without one)."""
    pad_id: int | None = None
    """The tokenizer's pad id: the blank a Hugging Face CTC set-up should use."""
    pad_token: str | None = None
    blank_setting: str = "Setup.blank"
    """Where the user sets the blank."""
    classes_setting: str = "the final layer"
    """What decides the class count."""
    head: tuple[str, str, str] | None = None
    """(module name, type, size argument) of the last Linear/Conv layer that outputs the classes, when found:
    the advice then names it ("Conv1d at acoustic_model.20: out_channels=29")."""
    made_with: str = "from_pretrained(..., {})"
    """How a Hugging Face model is made, `{}` for the setting: `Wav2Vec2ForCTC.from_pretrained(..., {})` for one
    loaded from a checkpoint, `Wav2Vec2ForCTC(Wav2Vec2Config(..., {}))` for one built from its config."""
    verb: str = "load"
    """"load" (from a checkpoint) or "build" (from a config)."""
    output_classes: int | None = None
    """How many classes the model outputs, when it ran: the advice never names a class it does not have."""

    def name(self, index: int) -> str:
        """`class 14 ('[PAD]')`, or `class 14` without a tokenizer."""
        token = self.tokens.get(index)
        return f"class {index} ({token!r})" if token is not None else f"class {index}"

    def set_blank(self, index: int) -> str:
        """The imperative that makes `index` the blank, in the user's own setting."""
        if self.blank_setting == "config.pad_token_id":
            return f"{self.verb} the model with pad_token_id={index} ({self.made_with.format('pad_token_id=tokenizer.pad_token_id')})"
        if self.blank_setting.startswith("config."):  # a blank of its own, apart from the tokenizer's pad (OmniASR)
            setting = f"{self.blank_setting[len('config.'):]}={index}"
            return f"{self.verb} the model with {setting} ({self.made_with.format(setting)})"
        return f"set Setup.blank = {index}"

    def set_classes(self, count: int) -> str:
        """The imperative that gives the model `count` output classes."""
        if self.classes_setting == "config.vocab_size":
            return f"{self.verb} the model with vocab_size={count} ({self.made_with.format('vocab_size=len(tokenizer)')})"
        if self.head is not None:
            name, kind, argument = self.head
            return f"make the final layer ({kind} at {name}) output {count} classes ({argument}={count})"
        return f"make the final layer output {count} classes"


def class_head(model: Any, classes: int) -> tuple[str, str, str] | None:
    """The last Linear or Conv layer (registration order) whose output size is `classes`, as (name, type, argument)."""
    import torch

    found = None
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Linear) and module.out_features == classes:
            found = (name, type(module).__name__, "out_features")
        elif isinstance(module, torch.nn.modules.conv._ConvNd) and module.out_channels == classes:
            found = (name, type(module).__name__, "out_channels")
    return found


def _tokenizer(setup: Any) -> Any:
    from ctcdoctor.frameworks.hf_facts import split_processor

    tokenizer, _ = split_processor(getattr(setup, "tokenizer", None), getattr(setup, "processor", None))
    return tokenizer if tokenizer is not None and hasattr(tokenizer, "get_vocab") else None


@provides("vocabulary")
def _vocabulary(context: Context) -> Vocabulary:
    from ctcdoctor.frameworks.hf_model import HFCTCModel

    setup = context.setup
    tokenizer = _tokenizer(setup)
    hugging_face = isinstance(setup.model, HFCTCModel)
    blank_setting = f"config.{hf_settings_of(setup.model.model).blank_attribute}" if hugging_face else "Setup.blank"
    classes_setting = "config.vocab_size" if hugging_face else "the final layer"
    head, classes = None, None
    if not hugging_face:
        try:
            classes = int(context.num_classes)
            head = class_head(context.model, classes)
        except Exception:  # noqa: BLE001 - no output (CTC026, a model that does not run): generic advice
            head = None
    made_with, verb = _made_with(context.get("hf") if hugging_face else None)
    if tokenizer is None:
        return Vocabulary({}, blank_setting=blank_setting, classes_setting=classes_setting, head=head,
                          made_with=made_with, verb=verb, output_classes=classes)
    tokens = {int(index): str(token) for token, index in tokenizer.get_vocab().items()}
    pad_id = getattr(tokenizer, "pad_token_id", None)
    return Vocabulary(tokens, int(pad_id) if pad_id is not None else None, getattr(tokenizer, "pad_token", None),
                      blank_setting, classes_setting, head, made_with, verb, classes)


def _made_with(hf: Any) -> tuple[str, str]:
    """`Vocabulary.made_with` and `.verb` for a Hugging Face model: from_pretrained's arguments for one loaded from a
    checkpoint, its config's for one built from it (where from_pretrained would not apply)."""
    if hf is None:
        return Vocabulary.made_with, Vocabulary.verb
    if hf.from_checkpoint:
        return f"{hf.model_class}.from_pretrained(..., {{}})", "load"
    return f"{hf.model_class}({hf.config_class}(..., {{}}))", "build"


#: The transformers 4 CTC classes whose loss kept every label `>= 0` (`labels_mask = labels >= 0`): labels padded
#: with the pad id were trained there as blank targets. Read from transformers 4.57, the last 4.x line, which is
#: closed: a class it lacks (LasrForCTC, OmniASRForCTC, GraniteSpeech5ForCTC) never ran under that rule.
#: ParakeetForCTC is in 4.57 but masks `labels != config.pad_token_id`: it drops pad-id labels there too.
TRANSFORMERS4_BLANK_TARGETS = frozenset({
    "Wav2Vec2ForCTC", "HubertForCTC", "WavLMForCTC", "Data2VecAudioForCTC", "SEWForCTC", "SEWDForCTC",
    "UniSpeechForCTC", "UniSpeechSatForCTC", "Wav2Vec2ConformerForCTC", "Wav2Vec2BertForCTC", "MCTCTForCTC",
})


@dataclass(frozen=True)
class HFSettings:
    """The names a Hugging Face CTC model gives what the advice is about."""

    blank_attribute: str = "pad_token_id"
    """The config attribute its loss takes as the blank (OmniASR: `blank_token_id`)."""
    mask_key: str = "attention_mask"
    """The batch key of the valid-length mask its `forward` takes (OmniASR: `padding_mask`)."""
    transformers4_blank_targets: bool = True
    """Its class, or a class it derives from, is one whose transformers 4 loss trained labels equal to the pad id
    as blank targets (`TRANSFORMERS4_BLANK_TARGETS`): padding labels with the pad id breaks under transformers 4."""


def hf_settings_of(model: Any) -> HFSettings:
    """`HFSettings` of a transformers `*ForCTC` model (the model itself, not setup_from_hf's wrapper)."""
    from ctcdoctor.frameworks.hf_model import blank_attribute, forward_keys, mask_key

    try:
        key = mask_key(forward_keys(model))
    except (TypeError, ValueError):  # a forward without a readable signature: the collators' key
        key = HFSettings.mask_key
    known = any(cls.__name__ in TRANSFORMERS4_BLANK_TARGETS for cls in type(model).__mro__)
    return HFSettings(blank_attribute(model), key, known)


@provides("hf_settings")
def _hf_settings(context: Context) -> HFSettings | None:
    """`HFSettings` when the set-up's model is a transformers CTC model (or setup_from_hf's wrapper around one)."""
    from ctcdoctor.frameworks.huggingface import is_hf_ctc_model

    model = getattr(context.setup, "model", None)
    model = getattr(model, "model", None) if model is not None and not is_hf_ctc_model(model) else model
    return hf_settings_of(model) if model is not None and is_hf_ctc_model(model) else None


@dataclass(frozen=True)
class ClassCount:
    """How many output classes the set-up needs: the largest of what each source asks for."""

    needed: int
    reasons: tuple[str, ...]
    """Each source, in words: "len(alphabet) + 1 = 27", "labels up to 28 need 29"."""


@provides("class_count")
def _class_count(context: Context) -> ClassCount:
    """The one number CTC010 and CTC014 advise: max(len(alphabet) + 1, len(tokenizer), largest label + 1, blank + 1)."""
    setup, targets = context.setup, context.targets
    asks: list[tuple[int, str]] = [(setup.blank + 1, f"the blank {setup.blank} needs {setup.blank + 1}")]
    if setup.alphabet is not None:
        asks.append((len(setup.alphabet) + 1, f"len(alphabet) + 1 = {len(setup.alphabet) + 1}"))
    tokenizer = _tokenizer(setup)
    if tokenizer is not None:
        asks.append((len(tokenizer), f"len(tokenizer) = {len(tokenizer)}"))
    labels = targets.labels[targets.mask]
    if labels.numel():
        top = int(labels.max())
        asks.append((top + 1, f"labels up to {top} need {top + 1}"))
    needed = max(count for count, _ in asks)
    return ClassCount(needed, tuple(words for count, words in asks if count == needed))
