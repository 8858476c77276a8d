"""Every transformers CTC model class, tiny and random, through setup_from_hf and today's full check."""
from __future__ import annotations

import numpy as np
import pytest

transformers = pytest.importorskip("transformers")

import torch  # noqa: E402
from hfkit import AUDIO_MODELS, audio_model, example, loader, processor, run, serious  # noqa: E402
from torch.utils.data import DataLoader  # noqa: E402

from ctcdoctor import Setup  # noqa: E402
from ctcdoctor.frameworks.huggingface import setup_from_hf  # noqa: E402
from ctcdoctor.load.batches import iterate_batches  # noqa: E402
from ctcdoctor.load.spec import as_setup  # noqa: E402


@pytest.fixture(scope="module")
def proc():
    return processor()


def check_clean(name, setup):
    findings, context = run(setup)
    assert not serious(findings), serious(findings)
    assert all(audit.agrees for audit in context.criterion_audit.audits)  # the model's own loss == reference CTC
    return context


@pytest.mark.parametrize("name", sorted(AUDIO_MODELS))
def test_audio_ctc_model_checks_clean_and_lengths_match_the_model(proc, name):
    model = audio_model(name, proc)
    setup = as_setup(Setup(model=model, loader=loader(proc), processor=proc))  # recognised: no adapter code
    context = check_clean(name, setup)
    assert context.output_lengths.source == "setup"
    batch = context.batches[0]
    values, mask = batch.inputs["input_values"], batch.inputs["attention_mask"]
    model.eval()
    with torch.no_grad():
        for row in (0, batch.size - 1):
            alone = values[row : row + 1, : int(mask[row].sum())]
            assert model(alone).logits.shape[1] == int(context.output_lengths.scanned[batch.first_sample + row])


def test_mms_style_adapter_lengths_and_check(proc):
    """MMS is Wav2Vec2ForCTC with adapters; add_adapter shortens the output, and the formula must count it."""
    model = audio_model("Wav2Vec2ForCTC", proc, add_adapter=True, num_adapter_layers=1, adapter_stride=2,
                        output_hidden_size=32)
    context = check_clean("Wav2Vec2ForCTC", setup_from_hf(model, loader(proc), processor=proc))
    frames = context.runs[0].output.shape[1]
    conv = int(model._get_feat_extract_output_lengths(torch.tensor(context.batches[0].inputs["input_values"].shape[1]),
                                                      add_adapter=False))
    assert frames == (conv - 1) // 2 + 1


def features_loader(proc, batch_size=8):
    """input_features as Wav2Vec2-BERT's feature extractor makes them (80 mel bins, stride 2 -> 160 features)."""
    extractor = transformers.SeamlessM4TFeatureExtractor()
    rng = np.random.default_rng(0)
    items = [{"input_features": extractor(example.synthesize(text, rng), sampling_rate=example.RATE,
                                          return_tensors="np").input_features[0],
              "labels": proc.tokenizer(text).input_ids} for text in example.TEXTS]

    def collate(features):
        batch = extractor.pad([{"input_features": f["input_features"]} for f in features], padding=True,
                              return_attention_mask=True, return_tensors="pt")
        labels = proc.tokenizer.pad([{"input_ids": f["labels"]} for f in features], padding=True, return_tensors="pt")
        batch["labels"] = labels["input_ids"].masked_fill(labels.attention_mask.ne(1), -100)
        return batch

    return DataLoader(items, batch_size=batch_size, collate_fn=collate)


def test_wav2vec2_bert_takes_input_features(proc):
    config = transformers.Wav2Vec2BertConfig(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
        feature_projection_input_dim=160, conv_depthwise_kernel_size=3, layerdrop=0.0, ctc_loss_reduction="mean",
        hidden_dropout=0.0, attention_dropout=0.0,
        feat_proj_dropout=0.0, add_adapter=True, num_adapter_layers=1, adapter_stride=2, output_hidden_size=32,
        pad_token_id=proc.tokenizer.pad_token_id, vocab_size=len(proc.tokenizer))
    torch.manual_seed(0)
    model = transformers.Wav2Vec2BertForCTC(config)
    setup = setup_from_hf(model, features_loader(proc), processor=proc)
    batch = next(iter(iterate_batches(setup.loader, 1)))
    assert set(batch.inputs) == {"input_features", "attention_mask"}
    context = check_clean("Wav2Vec2BertForCTC", setup)
    features = batch.inputs["input_features"][:1, : int(batch.inputs["attention_mask"][0].sum())]
    model.eval()
    with torch.no_grad():
        assert model(input_features=features).logits.shape[1] == int(context.output_lengths.scanned[0])


def test_layerdrop_skipping_layers_in_the_backward_pass_is_not_a_missing_gradient(proc):
    """The gradient pass runs in train mode, where layerdrop skips whole transformer layers at random: their
    parameters get no gradient because they never ran, not because the graph is cut (CTC063 used to say so)."""
    model = audio_model("Wav2Vec2ForCTC", proc, layerdrop=0.9, num_hidden_layers=4)
    findings, context = run(setup_from_hf(model, loader(proc), processor=proc), "CTC06")
    assert not serious(findings), serious(findings)
    idle = [layer.name for layer in context.gradients.layers if not layer.ran]
    assert any(".layers." in name for name in idle), idle  # some layers were skipped, and left out
