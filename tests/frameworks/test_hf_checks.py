"""CTC100-CTC107 on hand-built facts (the thresholds) and on facts measured from tiny real models."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

transformers = pytest.importorskip("transformers")

import torch  # noqa: E402
from hfkit import audio_model, example, loader, processor  # noqa: E402

from ctcdoctor.checks import huggingface as hfchecks  # noqa: E402
from ctcdoctor.frameworks.huggingface import HFFacts, SampleFacts, describe_hf  # noqa: E402
from ctcdoctor.load.batches import Collated, in_dataset_order  # noqa: E402
from ctcdoctor.registry import SkipCheck  # noqa: E402

CHECKS = (hfchecks.vocab_size_mismatch, hfchecks.blank_not_tokenizer_pad, hfchecks.unknown_labels, hfchecks.summed_loss,
          hfchecks.zero_infinity_setting, hfchecks.padding_without_attention_mask, hfchecks.spec_augment_too_long,
          hfchecks.labels_hold_pad_id)


def sample(index: int = 0, **fields) -> SampleFacts:
    values = {"batch": 0, "input_length": 16000, "frames": 49, "labels": 10, "encoder_frames": 49, "masked": True}
    values.update(fields)
    return SampleFacts(index=index, **values)


def facts(**fields) -> HFFacts:
    values = {"samples": tuple(sample(i) for i in range(4)), "batch_frames": (49,)}
    values.update(fields)
    return HFFacts(**values)


def measured(model=None, proc=None, data_loader=None, **kwargs) -> HFFacts:
    proc = proc or processor()
    model = model or audio_model("Wav2Vec2ForCTC", proc)
    # In data set order, as ctcdoctor reads the loader (the example's loader shuffles).
    batches = [raw.raw if isinstance(raw, Collated) else raw for raw in in_dataset_order(data_loader or loader(proc))]
    result = describe_hf(model, batches, processor=proc, **kwargs)
    assert result is not None
    return result


def found(check, hf) -> list:
    return list(check(hf) or [])


def test_every_check_is_not_applicable_without_hf_facts_and_silent_on_healthy_facts():
    for check in CHECKS:
        with pytest.raises(SkipCheck) as skipped:
            found(check, None)
        assert skipped.value.reason == "not a Hugging Face transformers CTC model" and not skipped.value.applicable
        assert found(check, facts(tokenizer_size=32, tokenizer_pad_id=0, unk_id=30)) == [], check.__name__


def test_describe_hf_is_none_for_a_model_that_is_not_a_hf_ctc_model():
    assert describe_hf(torch.nn.Linear(2, 2), []) is None


def test_a_healthy_tiny_model_gives_no_finding():
    hf = measured()
    assert hf.tokenizer_size == hf.vocab_size == 17 and hf.pad_token_id == hf.tokenizer_pad_id == 14
    assert len(hf.samples) == 16 and all(s.masked and s.labels > 0 for s in hf.samples)
    for check in CHECKS:
        assert found(check, hf) == [], check.__name__


def test_sample_facts_are_measured_with_the_models_length_formula():
    proc = processor()
    model = audio_model("Wav2Vec2ForCTC", proc)
    hf = measured(model, proc)
    data = example.SpeechDataset(proc)
    for item, facts_of in zip(data.items, sorted(hf.samples, key=lambda s: s.index)):
        assert facts_of.input_length == len(item["input_values"])
        assert facts_of.frames == int(model._get_feat_extract_output_lengths(torch.tensor(len(item["input_values"]))))
        assert facts_of.labels == len(item["labels"])


# ---------------------------------------------------------------- CTC100


def test_ctc100_head_without_rows_for_tokens_is_an_error():
    hf = facts(vocab_size=15, tokenizer_size=17, beyond_head=((15, "x"), (16, "y")))
    (item,) = found(hfchecks.vocab_size_mismatch, hf)
    assert item.severity.value == "error" and "'x' (id 15)" in item.message
    assert "vocab_size=len(processor.tokenizer)" in item.hint


def test_ctc100_sentence_markers_beyond_the_head_are_fine():
    # tokenizer.vocab_size (15) instead of len(tokenizer) (17): only <s> and </s> lack a row; labels never hold them.
    proc = processor()
    hf = measured(audio_model("Wav2Vec2ForCTC", proc, vocab_size=proc.tokenizer.vocab_size), proc)
    assert hf.beyond_head == () and found(hfchecks.vocab_size_mismatch, hf) == []


def test_ctc100_more_classes_than_tokens_is_a_warning_on_a_real_model():
    proc = processor()
    hf = measured(audio_model("Wav2Vec2ForCTC", proc, vocab_size=32), proc)
    (item,) = found(hfchecks.vocab_size_mismatch, hf)
    assert item.severity.value == "warning"
    assert "config.vocab_size is 32 but the tokenizer has 17 tokens" in item.message
    # Built from its config, not loaded: the config's argument, not from_pretrained's (trial2).
    assert item.hint == ("Make the head match the tokenizer: Wav2Vec2ForCTC(Wav2Vec2Config(..., "
                         "vocab_size=len(processor.tokenizer))) (= 17).")


def test_ctc100_a_regular_token_beyond_the_head_on_a_real_model():
    proc = processor()
    # A head for the 12 letters only (blank 0 so that it stays inside): "|" and the special tokens fall outside it.
    model = audio_model("Wav2Vec2ForCTC", proc, vocab_size=12, pad_token_id=0)
    hf = measured(model, proc)
    (item,) = found(hfchecks.vocab_size_mismatch, hf)
    assert item.severity.value == "error" and "'|' (id 12), '[UNK]' (id 13), '[PAD]' (id 14)" in item.message


# ---------------------------------------------------------------- CTC101


def test_ctc101_default_pad_token_id_is_a_letter_on_a_real_model():
    proc = processor()
    hf = measured(audio_model("Wav2Vec2ForCTC", proc, pad_token_id=0), proc)
    (item,) = found(hfchecks.blank_not_tokenizer_pad, hf)
    assert item.severity.value == "error"
    assert "config.pad_token_id is 0 ('a' in the tokenizer) but the tokenizer pads with '[PAD]' (id 14)" in item.message
    assert "never learned" in item.message and "(= 14)" in item.hint


def test_ctc101_is_silent_when_the_pad_id_is_the_tokenizers_even_outside_the_head():
    # The ids agree: the head is too small (CTC100, CTC015), the pad id needs no change.
    assert found(hfchecks.blank_not_tokenizer_pad, facts(pad_token_id=40, vocab_size=32, tokenizer_size=42,
                                                         tokenizer_pad_id=40)) == []


def test_ctc101_does_not_apply_without_a_tokenizer():
    with pytest.raises(SkipCheck) as skipped:
        found(hfchecks.blank_not_tokenizer_pad, facts(pad_token_id=40, vocab_size=32, tokenizer_pad_id=None))
    assert skipped.value.reason == "no tokenizer or processor given" and not skipped.value.applicable


def _config_before_unk_and_pad(proc):
    """The guides' mistake: config.vocab_size taken from the characters before [UNK] and [PAD] were added."""
    return audio_model("Wav2Vec2ForCTC", proc, vocab_size=proc.tokenizer.convert_tokens_to_ids("[UNK]"))


def test_a_config_made_before_unk_and_pad_is_one_root_cause_in_the_models_terms():
    import ctcdoctor

    proc = processor()
    pad, unk = proc.tokenizer.pad_token_id, proc.tokenizer.convert_tokens_to_ids("[UNK]")
    report = ctcdoctor.check(ctcdoctor.Setup(model=_config_before_unk_and_pad(proc), loader=loader(proc), processor=proc),
                             select=["CTC01", "CTC10"])
    by_code = {item.code: item for item in report.findings}
    assert set(by_code) == {"CTC100", "CTC015"}, [f"{f.code}: {f.message}" for f in report.findings]
    blank = by_code["CTC015"]
    assert blank.evidence["consequence_of"] == "CTC100"
    assert blank.message.startswith(f"config.pad_token_id is {pad} but config.vocab_size is {unk}")
    assert "Setup.blank" not in blank.message + blank.hint and "vocab_size=len(processor.tokenizer)" in blank.hint
    status = {item.code: (item.status, item.applicable) for item in report.checks}
    assert status["CTC014"] == ("skipped", False) and status["CTC101"] == ("passed", True)


def test_without_a_tokenizer_the_blank_finding_speaks_of_the_config_and_ctc101_does_not_apply():
    import ctcdoctor

    proc = processor()
    report = ctcdoctor.check(ctcdoctor.Setup(model=_config_before_unk_and_pad(proc), loader=loader(proc)),
                             select=["CTC01", "CTC10"])
    (blank,) = report.findings
    assert blank.code == "CTC015" and "config.pad_token_id" in blank.message and "processor=processor" in blank.hint
    assert "tokenizer's pad id" not in blank.message + blank.hint
    assert not {item.code: item.applicable for item in report.checks}["CTC101"]


# ---------------------------------------------------------------- CTC102


def test_ctc102_upper_case_transcripts_on_a_lower_case_vocabulary():
    proc = processor()
    data = example.SpeechDataset(proc, transcripts=[text.upper() for text in example.TEXTS])
    hf = measured(proc=proc, data_loader=loader(proc, data))
    (item,) = found(hfchecks.unknown_labels, hf)
    assert item.message.startswith("16 of 16 samples have at least 10% '[UNK]' labels")
    assert "all lower case" in item.message and "text.lower()" in item.hint


def test_ctc102_threshold_per_sample():
    rare = facts(unk_id=15, unk_token="[UNK]", samples=(sample(0, unknown=1, labels=11), sample(1)))
    assert found(hfchecks.unknown_labels, rare) == []  # 9%: one rare character
    common = dataclasses.replace(rare, samples=(sample(0, unknown=1, labels=10), sample(1)))
    (item,) = found(hfchecks.unknown_labels, common)
    assert "1 of 2 samples has at least 10%" in item.message


def test_ctc102_do_lower_case_upper_cases_text_for_a_lower_case_vocabulary():
    hf = facts(unk_id=15, unk_token="[UNK]", vocab_case="lower", do_lower_case=True,
               samples=(sample(0, unknown=9, labels=10),))
    (item,) = found(hfchecks.unknown_labels, hf)
    assert "do_lower_case=True" in item.message and "do_lower_case=False" in item.hint


# ---------------------------------------------------------------- CTC103


def test_ctc103_summed_loss_is_a_note_with_the_scale():
    proc = processor()
    hf = measured(audio_model("Wav2Vec2ForCTC", proc, ctc_loss_reduction="sum"), proc)
    (item,) = found(hfchecks.summed_loss, hf)
    mean_labels = sum(s.labels for s in hf.samples) / len(hf.samples)
    assert item.severity.value == "info"
    assert f"with 8 samples a batch and {mean_labels:.3g} labels a sample" in item.message
    assert item.evidence["factor"] == pytest.approx(8 * mean_labels)


def test_ctc103_wav2vec2_config_defaults_to_sum():
    assert transformers.Wav2Vec2Config().ctc_loss_reduction == "sum"  # why CTC103 exists
    assert transformers.WavLMConfig().ctc_loss_reduction == "mean"


# ---------------------------------------------------------------- CTC104


def cut_clips(proc, seconds=0.2):
    data = example.SpeechDataset(proc)
    for item in data.items[::4]:
        item["input_values"] = item["input_values"][: int(seconds * example.RATE)]
    return loader(proc, data)


def test_ctc104_infeasible_samples_without_zero_infinity_is_an_error():
    proc = processor()
    hf = measured(proc=proc, data_loader=cut_clips(proc))
    assert [s.index for s in hf.infeasible] == [0, 8]
    (item,) = found(hfchecks.zero_infinity_setting, hf)
    assert item.severity.value == "error"
    assert "2 of 16 samples cannot be aligned (sample 8: 10 frames (0.20 s) for 12 labels" in item.message
    assert "ctc_zero_infinity=True" in item.hint


def test_ctc104_zero_infinity_true_hides_them():
    proc = processor()
    hf = measured(audio_model("Wav2Vec2ForCTC", proc, ctc_zero_infinity=True), proc, cut_clips(proc))
    (item,) = found(hfchecks.zero_infinity_setting, hf)
    assert item.severity.value == "warning" and "silently 0" in item.message


def test_ctc104_counts_repeats():
    hf = facts(samples=(sample(0, frames=10, labels=9, repeats=2),))
    (item,) = found(hfchecks.zero_infinity_setting, hf)
    assert "10 frames (0.20 s) for 9 labels + 2 repeats" in item.message


# ---------------------------------------------------------------- CTC105


def test_ctc105_layer_norm_model_without_attention_mask():
    proc = processor(return_attention_mask=False)
    hf = measured(proc=proc)
    (item,) = found(hfchecks.padding_without_attention_mask, hf)
    assert item.message.startswith("14 of 16 samples end in padding but their batches have no attention_mask")
    worst = item.evidence["samples"][0]
    assert worst["padding_frames"] > 0 and worst["padding"] < worst["length"]


def test_ctc105_group_norm_model_follows_the_documented_convention():
    proc = processor(return_attention_mask=False)
    model = audio_model("Wav2Vec2ForCTC", proc, feat_extract_norm="group", do_stable_layer_norm=False)
    assert found(hfchecks.padding_without_attention_mask, measured(model, proc)) == []


def test_ctc105_padding_normalised_with_the_batch_is_named():
    proc = processor(return_attention_mask=False)
    rng = np.random.default_rng(0)
    clips = [example.synthesize(text, rng) for text in example.TEXTS[:4]]
    # The feature extractor pads and normalises the whole batch without a mask: the padding becomes -mean/std.
    values = proc.feature_extractor(clips, sampling_rate=example.RATE, padding=True, return_tensors="pt").input_values
    labels = proc.tokenizer(list(example.TEXTS[:4]), padding=True, return_tensors="pt")
    batch = {"input_values": values, "labels": labels["input_ids"].masked_fill(labels.attention_mask.ne(1), -100)}
    hf = describe_hf(audio_model("Wav2Vec2ForCTC", proc), [batch], processor=proc)
    (item,) = found(hfchecks.padding_without_attention_mask, hf)
    assert "not 0: the batch was normalised after padding" in item.message


def test_ctc105_needs_at_least_one_frame_of_padding():
    hf = facts(samples=(sample(0, masked=False, padding=100, padding_frames=0), sample(1, masked=False)))
    assert found(hfchecks.padding_without_attention_mask, hf) == []


# ---------------------------------------------------------------- CTC106


def test_ctc106_mask_longer_than_short_clips_on_a_real_model():
    proc = processor()
    texts = example.TEXTS[:12] + ("no", "sent", "a rose", "hot")
    data = example.SpeechDataset(proc, texts=texts)
    hf = measured(audio_model("Wav2Vec2ForCTC", proc, mask_time_length=30), proc, loader(proc, data))
    error, warning = found(hfchecks.spec_augment_too_long, hf)
    assert error.severity.value == "error" and "sample 12: 24 frames (0.48 s)" in error.message
    assert "Drop utterances shorter than 30 frames (0.60 s of audio)" in error.hint
    assert warning.severity.value == "warning" and "(mask_time_min_masks × mask_time_length = 60)" in warning.message


def test_ctc106_the_shortest_batch_already_fails_and_it_really_raises():
    proc = processor()
    model = audio_model("Wav2Vec2ForCTC", proc, mask_time_length=30)
    short = example.SpeechDataset(proc, texts=("no", "a"))  # 24 and 17 frames
    batches = list(loader(proc, short, batch_size=1))
    hf = describe_hf(model, batches, processor=proc)
    error = found(hfchecks.spec_augment_too_long, hf)[0]
    assert "scanned batches 0, 1 already would" in error.message
    model.train()
    with pytest.raises(ValueError, match="mask_length"):
        model(batches[0]["input_values"], attention_mask=batches[0]["attention_mask"])


def test_ctc106_silent_when_spec_augment_is_off_and_feature_masks_too_wide():
    off = facts(mask_time_prob=0.0, samples=(sample(0, encoder_frames=5),))
    assert found(hfchecks.spec_augment_too_long, off) == []
    wide = facts(mask_feature_prob=0.1, mask_feature_length=64, hidden_size=32)
    (item,) = found(hfchecks.spec_augment_too_long, wide)
    assert "hidden size is 32" in item.message


def test_ctc106_uses_the_encoder_frames_not_the_adapter_frames():
    proc = processor()
    model = audio_model("Wav2Vec2ForCTC", proc, add_adapter=True, num_adapter_layers=2, adapter_stride=2,
                        output_hidden_size=32)
    hf = measured(model, proc)
    assert all(s.encoder_frames > 3 * s.frames for s in hf.samples)  # the adapter quarters the loss's frames
    assert found(hfchecks.spec_augment_too_long, hf) == []  # SpecAugment masks before the adapter


# ---------------------------------------------------------------- CTC107


def test_ctc107_labels_padded_with_the_pad_id():
    proc = processor()

    def collate(features):
        batch = proc.feature_extractor.pad([{"input_values": f["input_values"]} for f in features], padding=True,
                                           return_tensors="pt")
        batch["labels"] = proc.tokenizer.pad([{"input_ids": f["labels"]} for f in features], padding=True,
                                             return_tensors="pt")["input_ids"]
        return batch

    hf = measured(proc=proc, data_loader=loader(proc, collator=collate))
    (item,) = found(hfchecks.labels_hold_pad_id, hf)
    assert item.severity.value == "warning" and "instead of -100" in item.message and "masked_fill" in item.hint
    legacy = dataclasses.replace(hf, labels_drop_blank=False)
    (old,) = found(hfchecks.labels_hold_pad_id, legacy)
    assert old.severity.value == "error" and "CTC011" in old.message


def test_ctc107_a_transcript_symbol_that_is_the_blank():
    proc = processor()
    hf = measured(audio_model("Wav2Vec2ForCTC", proc, pad_token_id=0), proc)
    inside = [item for item in found(hfchecks.labels_hold_pad_id, hf) if item.severity.value == "error"]
    assert len(inside) == 1 and "('a') inside the transcript" in inside[0].message
    # A sample ending in 'a' before its -100 padding is a symbol, not padding.
    assert not [item for item in found(hfchecks.labels_hold_pad_id, hf) if "instead of -100" in item.message]


# ---------------------------------------------------------------- CTC041, in Hugging Face terms


def test_int16_audio_is_ctc041_with_the_feature_extractors_do_normalize():
    from hfkit import run

    from ctcdoctor.frameworks.huggingface import setup_from_hf

    proc = processor(do_normalize=False, return_attention_mask=False)
    data = example.SpeechDataset(proc)
    for item in data.items:
        item["input_values"] = np.round(item["input_values"] * 32767).astype(np.float32)
    model = audio_model("Wav2Vec2ForCTC", proc, feat_extract_norm="group", do_stable_layer_norm=False)
    findings, _ = run(setup_from_hf(model, loader(proc, data), processor=proc), "CTC041")
    (found,) = findings
    assert "do_normalize=True) (it is False now)" in found.hint and "divide them by 32768" in found.hint


def test_ctc030_leaves_the_models_summed_loss_to_ctc103():
    # The trial's report said the same thing twice: CTC030 (reduction "sum") and CTC103 (config.ctc_loss_reduction).
    import ctcdoctor
    from ctchelpers import ROOT

    report = ctcdoctor.check(str(ROOT / "examples" / "broken" / "hf_sum_reduction.py"), select=["CTC030", "CTC103"])
    assert [finding.code for finding in report.findings] == ["CTC103"]
    (ctc030,) = [result for result in report.checks if result.code == "CTC030"]
    assert ctc030.status == "skipped" and not ctc030.applicable
    assert ctc030.reason == ("the criterion differs from reference CTC only by Wav2Vec2ForCTC's summed loss "
                             "(config.ctc_loss_reduction='sum'): see CTC103")


# ---------------------------------------------------------------- advice for a model built from its config (trial2)


def _hints(model, proc) -> dict:
    import ctcdoctor

    report = ctcdoctor.check(ctcdoctor.Setup(model=model, loader=loader(proc), processor=proc),
                             select=["CTC01", "CTC10"])
    return {item.code: item.hint for item in report.findings}


@pytest.mark.parametrize(("delta", "codes"), [(2, {"CTC100"}), (-3, {"CTC100", "CTC015"}),
                                              (-6, {"CTC100", "CTC015", "CTC010"})])
def test_a_model_built_from_its_config_is_told_the_configs_argument_not_from_pretrained(delta, codes):
    proc = processor()
    hints = _hints(audio_model("Wav2Vec2ForCTC", proc, vocab_size=len(proc.tokenizer) + delta), proc)
    assert set(hints) == codes, hints
    for code, hint in hints.items():
        assert "from_pretrained" not in hint and "ignore_mismatched_sizes" not in hint, (code, hint)
        assert "Wav2Vec2ForCTC(Wav2Vec2Config(..., vocab_size=len(" in hint, (code, hint)
    if "CTC010" in hints:
        assert "build the model with vocab_size=17 (Wav2Vec2ForCTC(Wav2Vec2Config(..., vocab_size=len(tokenizer))))" \
            in hints["CTC010"]


def test_a_model_loaded_from_a_checkpoint_keeps_the_from_pretrained_advice():
    proc = processor()
    model = audio_model("Wav2Vec2ForCTC", proc, vocab_size=len(proc.tokenizer) + 2)
    model.config._name_or_path = "facebook/wav2vec2-base"  # as from_pretrained sets it
    assert _hints(model, proc)["CTC100"] == ("Make the head match the tokenizer: Wav2Vec2ForCTC.from_pretrained(..., "
                                             "vocab_size=17, ignore_mismatched_sizes=True).")
    smaller = audio_model("Wav2Vec2ForCTC", proc, vocab_size=len(proc.tokenizer) - 6)
    smaller.config._name_or_path = "facebook/wav2vec2-base"
    hints = _hints(smaller, proc)
    assert "Wav2Vec2ForCTC.from_pretrained(..., vocab_size=len(processor.tokenizer)) (= 17)" in hints["CTC100"]
    assert "load the model with vocab_size=17 (Wav2Vec2ForCTC.from_pretrained(..., vocab_size=len(tokenizer)))" in hints["CTC010"]


def test_the_advice_names_the_models_own_config_class_and_verb():
    proc = processor()
    hf = measured(audio_model("HubertForCTC", proc, ctc_loss_reduction="sum"), proc)
    assert not hf.from_checkpoint and hf.config_class == "HubertConfig"
    (item,) = found(hfchecks.summed_loss, hf)
    assert item.hint.startswith('Build the model with HubertForCTC(HubertConfig(..., ctc_loss_reduction="mean"))')
    loaded = dataclasses.replace(hf, from_checkpoint=True)
    (item,) = found(hfchecks.summed_loss, loaded)
    assert item.hint.startswith('Load the model with HubertForCTC.from_pretrained(..., ctc_loss_reduction="mean")')
