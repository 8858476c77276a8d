"""What ctcdoctor tells a user of the transformers 5 CTC models names the setting the model actually uses: OmniASR's
blank is `config.blank_token_id` and its mask `padding_mask` (CTC105, CTC107, the vocabulary advice, overfit's
note); and CTC107 does not warn about a transformers 4 risk for a class whose transformers 4 loss never trained
pad-id labels (ParakeetForCTC drops them in 4.57 as in 5; LASR, OmniASR, Granite Speech 5 are transformers 5 only)."""
from __future__ import annotations

import pytest

transformers = pytest.importorskip("transformers")

from hfkit import codes, run, serious  # noqa: E402
from hfkit_v5 import KINDS, build_model, char_tokenizer, loader, model_class  # noqa: E402

from ctcdoctor import Setup  # noqa: E402
from ctcdoctor.load.spec import as_setup  # noqa: E402


def setup_for(name, change=None):
    """The healthy tiny set-up of `name`, each collated batch passed through `change`."""
    model_class(name)
    tokenizer = char_tokenizer(KINDS[name].blank_first)
    model = build_model(name, tokenizer)
    batches = loader(name, tokenizer)
    if change is not None:
        batches = [change(dict(batch)) for batch in batches]
    return as_setup(Setup(model=model, loader=batches, tokenizer=tokenizer))


def blank_of(name):
    tokenizer = char_tokenizer(KINDS[name].blank_first)
    return tokenizer.get_vocab()["<blank>"] if name == "OmniASRForCTC" else tokenizer.pad_token_id


@pytest.mark.parametrize("name", ["ParakeetForCTC", "OmniASRForCTC"])
def test_labels_padded_with_the_blank_are_not_a_transformers_4_risk_for_a_class_it_never_trained_so(name):
    """ParakeetProcessor(audio, text=...) pads its labels with the pad id (the blank): dropped by the loss, and
    no transformers 4 loss of this class ever trained them as blank targets."""
    blank = blank_of(name)

    def pad_with_blank(batch):
        labels = batch["labels"].clone()
        labels[labels == -100] = blank
        return {**batch, "labels": labels}

    findings, _ = run(setup_for(name, pad_with_blank), "CTC107", max_batches=1)
    assert "CTC107" not in codes(findings), serious(findings)


def test_omniasr_transcript_symbol_equal_to_the_blank_names_blank_token_id():
    def blank_inside(batch):
        labels = batch["labels"].clone()
        labels[:, 1] = 0  # config.blank_token_id, with labels after it: a transcript symbol
        return {**batch, "labels": labels}

    findings, _ = run(setup_for("OmniASRForCTC", blank_inside), "CTC107", max_batches=1)
    (item,) = [item for item in findings if item.code == "CTC107"]
    assert item.title == "a transcript symbol is the blank (config.blank_token_id)"
    assert "config.blank_token_id 0 ('<blank>') inside the transcript" in item.message, item.message
    assert "pad_token_id" not in item.message + item.hint, item.hint
    assert "blank_token_id=" in item.hint and "OmniASRCTCConfig(" in item.hint


def test_omniasr_without_padding_mask_names_padding_mask():
    setup = setup_for("OmniASRForCTC", lambda batch: {k: v for k, v in batch.items() if k != "padding_mask"})
    findings, _ = run(setup, "CTC105", max_batches=1)
    (item,) = [item for item in findings if item.code == "CTC105"]
    assert item.title == "padded audio without padding_mask"
    assert "their batches have no padding_mask" in item.message, item.message
    assert "attention_mask" not in item.message and "Return padding_mask from the collator" in item.hint


def test_omniasr_vocabulary_advice_and_overfit_note_name_blank_token_id():
    from ctcdoctor.overfit.result import OverfitOptions
    from ctcdoctor.overfit.train import own_criterion

    setup = setup_for("OmniASRForCTC")
    _, context = run(setup, "CTC107", max_batches=1)
    vocabulary = context.vocabulary
    assert vocabulary.blank_setting == "config.blank_token_id"
    assert vocabulary.set_blank(0) == "build the model with blank_token_id=0 (OmniASRForCTC(OmniASRCTCConfig(..., blank_token_id=0)))"
    _, note = own_criterion(setup, OverfitOptions())
    assert note.endswith("(blank = config.blank_token_id)"), note


def test_the_wav2vec2_family_keeps_its_wording_and_its_transformers_4_warning():
    from ctcdoctor.measure.vocabulary import hf_settings_of

    class MyWav2Vec2(transformers.Wav2Vec2ForCTC):  # a user's subclass: its base ran under labels >= 0
        pass

    config = transformers.Wav2Vec2Config(hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                                         intermediate_size=64, conv_dim=(32, 32), conv_kernel=(10, 3),
                                         conv_stride=(5, 2), num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2,
                                         vocab_size=8, pad_token_id=7)
    settings = hf_settings_of(MyWav2Vec2(config))
    assert (settings.blank_attribute, settings.mask_key, settings.transformers4_blank_targets) == \
        ("pad_token_id", "attention_mask", True)
    model_class("ParakeetForCTC")
    assert not hf_settings_of(build_model("ParakeetForCTC", char_tokenizer(False))).transformers4_blank_targets
