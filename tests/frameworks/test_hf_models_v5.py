"""The CTC models transformers 5 added with conventions of their own, tiny and random, as a user returns them:
ParakeetForCTC, LasrForCTC, GraniteSpeech5ForCTC (`input_features`, `_get_subsampling_output_length`) and
OmniASRForCTC ((N, 1, L) `input_values` with a `padding_mask`, its blank in `config.blank_token_id`)."""
from __future__ import annotations

import pytest

transformers = pytest.importorskip("transformers")

import torch  # noqa: E402
from hfkit import codes, run, serious  # noqa: E402
from hfkit_v5 import KINDS, build_model, char_tokenizer, loader, model_class  # noqa: E402

from ctcdoctor import Setup  # noqa: E402
from ctcdoctor.errors import BatchError, UserInputError  # noqa: E402
from ctcdoctor.load.batches import iterate_batches  # noqa: E402
from ctcdoctor.load.spec import as_setup  # noqa: E402


@pytest.fixture(scope="module")
def checked():
    """name -> (model, context of the full check on its healthy set-up), built once per class."""
    results = {}

    def get(name):
        if name not in results:
            model_class(name)
            tokenizer = char_tokenizer(KINDS[name].blank_first)
            model = build_model(name, tokenizer)
            setup = as_setup(Setup(model=model, loader=loader(name, tokenizer), tokenizer=tokenizer))  # no adapter code
            results[name] = (model, run(setup, max_batches=1))
        return results[name]

    return get


def setup_for(name, change=None, **config):
    tokenizer = char_tokenizer(KINDS[name].blank_first)
    model = build_model(name, tokenizer, **{key: value(tokenizer) for key, value in config.items()})
    batches = loader(name, tokenizer)
    if change is not None:
        batches = [change(dict(batch)) for batch in batches]
    return as_setup(Setup(model=model, loader=batches, tokenizer=tokenizer))


@pytest.mark.parametrize("name", sorted(KINDS))
def test_healthy_set_up_checks_clean_and_the_models_loss_is_reference_ctc(checked, name):
    _, (findings, context) = checked(name)
    assert not serious(findings), serious(findings)
    audits = context.criterion_audit.audits
    assert audits and all(audit.agrees for audit in audits)  # the model's own loss == reference CTC
    assert context.output_lengths.source == "setup"


@pytest.mark.parametrize("name", sorted(KINDS))
def test_output_lengths_are_the_frames_of_each_unpadded_sample(checked, name):
    model, (_, context) = checked(name)
    batch = context.batches[0]
    inputs = batch.inputs
    mask_name = "padding_mask" if "padding_mask" in inputs else "attention_mask"
    values, mask = inputs[model.main_input_name], inputs[mask_name]
    model.eval()
    with torch.no_grad():
        for row in (0, batch.size - 1):
            length = int(mask[row].sum())
            alone = values[row : row + 1, ..., :length] if values.dim() == 3 and values.shape[1] == 1 else \
                values[row : row + 1, :length]
            frames = model(**{model.main_input_name: alone, mask_name: mask[row : row + 1, :length]}).logits.shape[1]
            assert frames == int(context.output_lengths.scanned[batch.first_sample + row])


def test_omniasr_blank_is_its_blank_token_id_and_its_mask_is_padding_mask():
    model_class("OmniASRForCTC")
    setup = setup_for("OmniASRForCTC")
    assert setup.blank == 0  # config.blank_token_id; config.pad_token_id is 1
    batch = next(iter(iterate_batches(setup.loader, 1)))
    assert set(batch.inputs) == {"input_values", "padding_mask"}
    assert batch.input_lengths.tolist() == batch.inputs["padding_mask"].sum(-1).tolist()


def test_parakeet_blank_on_a_letter_is_found():
    """pad_token_id=0 (as many configs default it) makes 'a' the blank: the loss drops every 'a'."""
    model_class("ParakeetForCTC")
    findings, _ = run(setup_for("ParakeetForCTC", pad_token_id=lambda tokenizer: 0), "CTC10")
    assert {"CTC101", "CTC107"} <= codes(findings), serious(findings)


def test_omniasr_blank_token_id_on_a_letter_is_found():
    model_class("OmniASRForCTC")
    setup = setup_for("OmniASRForCTC", blank_token_id=lambda tokenizer: tokenizer.get_vocab()["a"])
    findings, _ = run(setup, "CTC107")
    assert "CTC107" in codes(findings), serious(findings)


def test_omniasr_fairseq_style_padding_mask_is_found():
    """fairseq marks the padding with True; OmniASR's padding_mask is 1 on the audio: inverted, the longest
    utterances get no frames at all."""
    model_class("OmniASRForCTC")
    setup = setup_for("OmniASRForCTC", change=lambda batch: {**batch, "padding_mask": 1 - batch["padding_mask"]})
    findings, _ = run(setup, "CTC001")
    assert "CTC001" in codes(findings), serious(findings)


def test_omniasr_mask_named_attention_mask_is_a_clear_batch_error():
    model_class("OmniASRForCTC")

    def renamed(batch):
        batch["attention_mask"] = batch.pop("padding_mask")
        return batch

    setup = setup_for("OmniASRForCTC", change=renamed)
    with pytest.raises(BatchError, match="'attention_mask', but the model's forward takes 'padding_mask'"):
        next(iter(iterate_batches(setup.loader, 1)))


def test_omniasr_without_padding_mask_counts_the_full_width_and_finds_the_padding():
    """OmniASR's audio is (N, 1, L): without a mask every sample is L long (not 1), and the padding is found."""
    model_class("OmniASRForCTC")
    setup = setup_for("OmniASRForCTC", change=lambda batch: {k: v for k, v in batch.items() if k != "padding_mask"})
    batch = next(iter(iterate_batches(setup.loader, 1)))
    assert batch.input_lengths.tolist() == [batch.inputs.shape[-1]] * batch.size
    findings, _ = run(setup, "CTC105")
    assert "CTC105" in codes(findings), serious(findings)


def test_parakeet_without_attention_mask_names_the_missing_mask():
    """Parakeet's loss counts frames from the mask alone: without one it fails on None, which ctcdoctor explains."""
    model_class("ParakeetForCTC")
    setup = setup_for("ParakeetForCTC", change=lambda batch: {k: v for k, v in batch.items() if k != "attention_mask"})
    findings, _ = run(setup, "CTC030")
    messages = [item.message for item in findings if item.code == "CTC030"]
    assert messages and "needs 'attention_mask'" in messages[0], messages


def test_a_ctc_model_without_a_length_formula_is_a_usage_error():
    cls = model_class("ParakeetForCTC")
    tokenizer = char_tokenizer(False)
    model = build_model("ParakeetForCTC", tokenizer)
    model.__class__ = type("NoLengthsForCTC", (cls,), {"_get_subsampling_output_length": None})
    with pytest.raises(UserInputError, match="no output-length formula") as error:
        as_setup(Setup(model=model, loader=loader("ParakeetForCTC", tokenizer), tokenizer=tokenizer))
    assert "output_lengths=" in error.value.hint
    # ... and the way out it names works: the user's formula is used.
    formula = cls._get_subsampling_output_length.__get__(model)
    setup = as_setup(Setup(model=model, loader=loader("ParakeetForCTC", tokenizer), tokenizer=tokenizer,
                           output_lengths=formula))
    assert setup.output_lengths is formula and setup.blank == tokenizer.pad_token_id


def trainer_for(name, tmp_path, change=None):
    """A 2-step Trainer on the set-up's data set and collator, with the callback (its check alone: every=None)."""
    from ctcdoctor.integrations.transformers import CTCDoctorCallback

    tokenizer = char_tokenizer(KINDS[name].blank_first)
    model = build_model(name, tokenizer)
    batches = loader(name, tokenizer)
    collate = batches.collate_fn if change is None else (lambda rows: change(dict(batches.collate_fn(rows))))
    args = transformers.TrainingArguments(
        output_dir=str(tmp_path), max_steps=2, per_device_train_batch_size=4, report_to=[], save_strategy="no",
        use_cpu=True, disable_tqdm=True, remove_unused_columns=False)
    return transformers.Trainer(model=model, args=args, train_dataset=list(batches.dataset), data_collator=collate,
                                processing_class=tokenizer, callbacks=[CTCDoctorCallback(every=None, print_report=False)])


def test_trainer_callback_checks_omniasr_and_trains(tmp_path):
    import json

    model_class("OmniASRForCTC")
    trainer = trainer_for("OmniASRForCTC", tmp_path)
    trainer.train()
    report = json.loads((tmp_path / "ctcdoctor_check.json").read_text())
    assert report["checks"] and report["summary"] == {"error": 0, "warning": 0, "info": 0}, report
    assert trainer.state.global_step == 2


def test_trainer_callback_stops_omniasr_with_a_fairseq_style_padding_mask(tmp_path):
    from ctcdoctor.errors import TrainingStopped

    model_class("OmniASRForCTC")
    trainer = trainer_for("OmniASRForCTC", tmp_path,
                          change=lambda batch: {**batch, "padding_mask": 1 - batch["padding_mask"]})
    with pytest.raises(TrainingStopped, match="CTC001"):
        trainer.train()
    assert trainer.state.global_step == 0
