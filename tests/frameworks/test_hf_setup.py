"""setup_from_hf: a transformers *ForCTC model and collator batches become a Setup today's pipeline handles."""
from __future__ import annotations

import textwrap

import pytest

transformers = pytest.importorskip("transformers")

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from hfkit import ROOT, audio_model, codes, loader, processor, run, serious  # noqa: E402
from torch import nn  # noqa: E402
from transformers.modeling_outputs import CausalLMOutput  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

import ctcdoctor  # noqa: E402
from ctcdoctor.cli import app  # noqa: E402
from ctcdoctor.errors import UserInputError  # noqa: E402
from ctcdoctor.frameworks.hf_model import RULE_V4, RULE_V5, HFCTCModel, label_rule  # noqa: E402
from ctcdoctor.frameworks.huggingface import is_hf_ctc_model, setup_from_hf  # noqa: E402
from ctcdoctor.load.batches import iterate_batches  # noqa: E402
from ctcdoctor.load.spec import as_setup  # noqa: E402


@pytest.fixture(scope="module")
def proc():
    return processor()


@pytest.fixture
def model(proc):
    return audio_model("Wav2Vec2ForCTC", proc)


def first_batch(setup):
    return next(iter(iterate_batches(setup.loader, 1)))


# ---------------------------------------------------------------- recognising a CTC model


def test_is_hf_ctc_model_needs_a_ctc_head(proc, model):
    config = model.config
    assert is_hf_ctc_model(model)
    assert not is_hf_ctc_model(transformers.Wav2Vec2ForSequenceClassification(config))  # same config, no CTC head
    assert not is_hf_ctc_model(transformers.Wav2Vec2Model(config))
    assert not is_hf_ctc_model(nn.Linear(2, 2))


def test_sequence_classification_is_a_usage_error_with_a_one_line_reason(model):
    classifier = transformers.Wav2Vec2ForSequenceClassification(model.config)
    with pytest.raises(UserInputError) as caught:
        setup_from_hf(classifier, [])
    assert caught.value.message == (
        "Wav2Vec2ForSequenceClassification has no CTC head: it does not output class scores per frame for a CTC loss"
    )
    assert "Wav2Vec2ForCTC.from_pretrained" in caught.value.hint
    with pytest.raises(UserInputError, match="not a transformers PreTrainedModel"):
        setup_from_hf(nn.Linear(2, 2), [])


def test_sequence_classification_exits_2_from_the_cli(write_module):
    path = write_module("classify.py", textwrap.dedent(f'''
        import sys
        sys.path.insert(0, {str(ROOT / "tests" / "frameworks")!r})
        import transformers
        from hfkit import audio_model, loader, processor

        def build():
            proc = processor()
            model = transformers.Wav2Vec2ForSequenceClassification(audio_model(proc=proc).config)
            return model, loader(proc)
    '''))
    result = CliRunner().invoke(app, ["check", str(path)])
    assert result.exit_code == 2, result.output
    assert "Wav2Vec2ForSequenceClassification has no CTC head" in result.output
    assert "Wav2Vec2ForCTC.from_pretrained" in result.output


# ---------------------------------------------------------------- recognised automatically


def test_a_plain_model_and_loader_become_the_hf_setup(proc, model):
    setup = as_setup((model, loader(proc)))
    assert isinstance(setup.model, HFCTCModel) and setup.model.model is model
    assert setup.blank == proc.tokenizer.pad_token_id and setup.layout == "NTC"
    assert setup.alphabet is None and setup.tokenizer is None  # nothing to read it from
    batch = first_batch(setup)
    assert torch.equal(batch.input_lengths, batch.raw["hf"]["attention_mask"].sum(-1))


def test_a_setup_with_a_processor_keeps_the_fields_the_user_set(proc, model):
    def optimizer(params):
        return torch.optim.SGD(params, lr=0.1)

    setup = as_setup(ctcdoctor.Setup(model=model, loader=loader(proc), processor=proc, optimizer=optimizer,
                                     alphabet="custom"))
    assert setup.optimizer is optimizer and setup.alphabet == "custom"  # set explicitly: they win
    assert setup.blank == 14 and setup.tokenizer is proc.tokenizer and setup.processor is proc
    assert setup.output_lengths is not None and setup.criterion is not None  # read from the model
    read = as_setup(ctcdoctor.Setup(model=model, loader=loader(proc), tokenizer=proc.tokenizer))
    assert read.alphabet is not None and len(read.alphabet) + 1 == model.config.vocab_size


def test_the_python_facade_checks_a_plain_pair(proc, model):
    report = ctcdoctor.check((model, loader(proc)), select=["CTC00", "CTC01", "CTC03", "CTC10"])
    assert not [item for item in report.findings if item.severity.value != "info"], report.findings
    statuses = {item.code: item.status for item in report.checks}
    assert statuses["CTC030"] == "passed" and statuses["CTC015"] == "passed"


def test_a_users_criterion_sees_the_model_output_and_the_collator_batch(proc, model):
    seen = []

    def criterion(output, batch):
        seen.append((type(output).__name__, sorted(batch)))
        log_probs = output.logits.float().log_softmax(-1).transpose(0, 1)
        labels = batch["labels"]
        keep = labels != -100
        lengths = model._get_feat_extract_output_lengths(batch["attention_mask"].sum(-1))
        return F.ctc_loss(log_probs, labels[keep], lengths, keep.sum(-1), blank=model.config.pad_token_id)

    report = ctcdoctor.check(ctcdoctor.Setup(model=model, loader=loader(proc), criterion=criterion), select=["CTC03"])
    assert seen and seen[0] == ("CausalLMOutput", ["attention_mask", "input_values", "labels"])
    assert not report.findings, report.findings
    assert {item.code: item.status for item in report.checks}["CTC030"] == "passed"


def test_import_ctcdoctor_and_the_hf_modules_without_transformers(without_optional_dependencies):
    # ctchelpers.SNIPPETS["hf"], run first in a fresh interpreter in which no optional dependency imports
    marks, output = without_optional_dependencies
    assert "hf" in marks and marks["hf"]["code"] == 0, marks.get("hf", {}).get("error") or output
    assert "pip install 'ctcdoctor[hf]'" in marks["hf"]["stdout"]


# ---------------------------------------------------------------- what the Setup says


def test_setup_reads_blank_classes_alphabet_and_layout_from_the_model(proc, model):
    setup = setup_from_hf(model, loader(proc), processor=proc)
    tokenizer = proc.tokenizer
    assert setup.blank == tokenizer.pad_token_id == 14
    assert setup.layout == "NTC"
    vocab = {index: token for token, index in tokenizer.get_vocab().items()}
    assert list(setup.alphabet) == [vocab[i] for i in range(model.config.vocab_size) if i != setup.blank]
    assert len(setup.alphabet) + 1 == model.config.vocab_size
    without = setup_from_hf(model, loader(proc))
    assert without.alphabet is None  # no tokenizer, no alphabet


def test_batches_become_targets_and_lengths_as_the_loss_reads_them(proc, model):
    setup = setup_from_hf(model, loader(proc), processor=proc)
    batch = first_batch(setup)
    raw = batch.raw["hf"]
    assert set(batch.inputs) == {"input_values", "attention_mask"}
    assert torch.equal(batch.input_lengths, raw["attention_mask"].sum(-1))
    for row, length in zip(range(batch.size), batch.target_lengths.tolist()):
        expected = [value for value in raw["labels"][row].tolist() if value != -100]
        assert batch.targets[row, :length].tolist() == expected
    # dataset order (the loader shuffles): sample 0 is dataset[0]
    assert proc.tokenizer.decode(batch.targets[0, : batch.target_lengths[0]]) == "the cat sat"


def test_without_attention_mask_inputs_are_the_audio_tensor_and_lengths_the_full_width(model):
    proc = processor(return_attention_mask=False)
    setup = setup_from_hf(model, loader(proc), processor=proc)
    batch = first_batch(setup)
    assert isinstance(batch.inputs, torch.Tensor)
    assert batch.input_lengths.tolist() == [batch.inputs.shape[1]] * batch.size


def test_output_is_float32_log_softmax_of_the_logits(proc, model):
    setup = setup_from_hf(model, loader(proc), processor=proc)
    batch = first_batch(setup)
    model.eval()
    with torch.no_grad():
        expected = model(**batch.inputs).logits.double().log_softmax(-1)
        output = setup.model(batch.inputs)
    assert output.dtype == torch.float32
    torch.testing.assert_close(output.double(), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("adapter", [False, True], ids=["plain", "adapter"])
def test_output_lengths_are_the_frames_each_sample_gets_alone(proc, adapter):
    settings = {"add_adapter": True, "num_adapter_layers": 2, "adapter_stride": 2, "output_hidden_size": 32}
    model = audio_model("Wav2Vec2ForCTC", proc, **(settings if adapter else {})).eval()
    setup = setup_from_hf(model, loader(proc), processor=proc)
    batch = first_batch(setup)
    values, mask = batch.inputs["input_values"], batch.inputs["attention_mask"]
    declared = setup.output_lengths(batch.input_lengths)
    with torch.no_grad():
        for row in range(3):
            alone = values[row : row + 1, : int(mask[row].sum())]
            assert model(alone).logits.shape[1] == int(declared[row])
    if adapter:  # two stride-2 adapter layers: about a quarter of the conv frames
        conv = model._get_feat_extract_output_lengths(batch.input_lengths, add_adapter=False)
        assert bool((declared < conv / 3).all())


def test_reference_ctc_on_the_converted_batch_equals_the_models_own_loss(proc, model):
    """The converted targets, lengths and blank are exactly what the model's loss uses (float64 reference)."""
    setup = setup_from_hf(model, loader(proc), processor=proc)
    batch = first_batch(setup)
    model.eval()
    with torch.no_grad():
        own = model(**batch.inputs, labels=batch.raw["hf"]["labels"]).loss
        log_probs = model(**batch.inputs).logits.double().log_softmax(-1).transpose(0, 1)
    reference = F.ctc_loss(log_probs, batch.targets, setup.output_lengths(batch.input_lengths), batch.target_lengths,
                           blank=setup.blank, reduction="mean")
    assert abs(float(own) - float(reference)) < 1e-4 * float(reference)


def test_criterion_is_the_eval_mode_loss_and_restores_the_models_mode(proc):
    # Dropout and SpecAugment on: in train mode two calls would differ.
    model = audio_model("Wav2Vec2ForCTC", proc, hidden_dropout=0.2, mask_time_prob=0.5).train()
    model.wav2vec2.encoder.eval()  # a mixed state, which must come back as it was
    modes = {name: module.training for name, module in model.named_modules()}
    setup = setup_from_hf(model, loader(proc), processor=proc)
    batch = first_batch(setup)
    with torch.no_grad():  # as ctcdoctor calls it
        first = setup.criterion(None, batch.raw)
        second = setup.criterion(None, batch.raw)
    assert float(first) == float(second)
    assert {name: module.training for name, module in model.named_modules()} == modes
    with torch.no_grad():
        model.eval()
        expected = model(**batch.inputs, labels=batch.raw["hf"]["labels"]).loss
    assert float(first) == pytest.approx(float(expected), rel=1e-6)


def test_a_full_check_leaves_the_users_model_config_and_mode_as_found(proc):
    model = audio_model("Wav2Vec2ForCTC", proc).train()
    config = model.config.to_dict()
    state = {key: value.clone() for key, value in model.state_dict().items()}
    findings, _ = run(setup_from_hf(model, loader(proc), processor=proc))
    assert not serious(findings), serious(findings)
    assert model.config.to_dict() == config
    assert model.training and all(module.training for module in model.modules())
    assert all(torch.equal(state[key], value) for key, value in model.state_dict().items())


def test_a_loader_of_plain_mappings_is_converted_too(proc, model):
    batches = list(loader(proc))
    setup = setup_from_hf(model, batches, processor=proc)
    findings, context = run(setup, "CTC00", "CTC01", "CTC03", "CTC1")
    assert not serious(findings), serious(findings)
    assert context.criterion_audit.audits[0].agrees


def test_a_batch_that_is_not_a_mapping_is_exit_2_naming_the_keys(proc, model, write_module):
    with pytest.raises(UserInputError, match="not a mapping"):
        list(iterate_batches(setup_from_hf(model, [(1, 2, 3, 4)]).loader))
    with pytest.raises(UserInputError, match=r"lacks \['labels'\]"):
        list(iterate_batches(setup_from_hf(model, [{"input_values": torch.zeros(1, 8000)}]).loader))


def test_overrides_replace_setup_fields_and_unknown_ones_are_refused(proc, model):
    setup = setup_from_hf(model, loader(proc), processor=proc, alphabet=None, blank=14)
    assert setup.alphabet is None
    with pytest.raises(UserInputError, match="unknown Setup fields"):
        setup_from_hf(model, loader(proc), blanc=3)


def test_pad_token_id_none_is_a_usage_error(proc):
    model = audio_model("Wav2Vec2ForCTC", proc, pad_token_id=None)
    with pytest.raises(UserInputError, match="pad_token_id is None"):
        setup_from_hf(model, loader(proc))


# ---------------------------------------------------------------- labels padded with the pad id: versions differ


class V4Wav2Vec2ForCTC(transformers.Wav2Vec2ForCTC):
    """Wav2Vec2ForCTC with transformers 4.x's loss: labels_mask = labels >= 0 (pad ids are kept as targets)."""

    def forward(self, input_values, attention_mask=None, labels=None):
        outputs = self.wav2vec2(input_values, attention_mask=attention_mask)
        logits = self.lm_head(self.dropout(outputs.last_hidden_state))
        loss = None
        if labels is not None:
            if attention_mask is None:
                attention_mask = torch.ones_like(input_values, dtype=torch.long)
            input_lengths = self._get_feat_extract_output_lengths(attention_mask.sum(-1)).to(torch.long)
            labels_mask = labels >= 0
            log_probs = F.log_softmax(logits, dim=-1, dtype=torch.float32).transpose(0, 1)
            loss = F.ctc_loss(log_probs, labels.masked_select(labels_mask), input_lengths, labels_mask.sum(-1),
                              blank=self.config.pad_token_id, reduction=self.config.ctc_loss_reduction,
                              zero_infinity=self.config.ctc_zero_infinity)
        return CausalLMOutput(loss=loss, logits=logits)


def pad_id_collator(proc):
    def collate(features):
        batch = proc.feature_extractor.pad([{"input_values": f["input_values"]} for f in features], padding=True,
                                           return_tensors="pt")
        labels = proc.tokenizer.pad([{"input_ids": f["labels"]} for f in features], padding=True, return_tensors="pt")
        batch["labels"] = labels["input_ids"]  # padded with the pad id (the blank), not -100
        return batch

    return collate


def test_label_rule_is_read_from_the_installed_loss(proc, model):
    assert label_rule(model) == RULE_V5  # transformers 5's ForCTCLoss
    legacy = V4Wav2Vec2ForCTC(model.config)
    assert label_rule(legacy) == RULE_V4


def test_labels_padded_with_the_pad_id_are_blank_targets_only_where_the_loss_keeps_them(proc, model):
    legacy = V4Wav2Vec2ForCTC(model.config)
    legacy.load_state_dict(model.state_dict())
    data_loader = loader(proc, collator=pad_id_collator(proc))
    modern, _ = run(setup_from_hf(model, data_loader, processor=proc), "CTC01", "CTC03", "CTC10")
    old, old_context = run(setup_from_hf(legacy, data_loader, processor=proc), "CTC01", "CTC03", "CTC10")
    assert "CTC011" not in codes(modern) and "CTC107" in codes(modern)
    assert {"CTC011", "CTC107"} <= codes(old)
    # scan agrees: with the old rule the pad ids are blank targets (CTC011), never lengths that count the padding
    # (CTC012), although every label length is the padded width.
    from ctcdoctor.config import Settings
    from ctcdoctor.scan.run import ScanOptions, scan_setup
    from ctcdoctor.scan.state import judge

    scanned = {item.code for item in judge(scan_setup(setup_from_hf(legacy, data_loader, processor=proc), "spec",
                                                      ScanOptions()), Settings())[0]}
    assert "CTC011" in scanned and "CTC012" not in scanned
    # Each Setup mirrors its model's loss: the criterion audit agrees with reference CTC in both.
    assert "CTC030" not in codes(modern)
    assert "CTC030" not in codes(old) and all(audit.agrees for audit in old_context.criterion_audit.audits)
