"""overfit judges the fit in eval mode, names the model's stochastic parts when the modes disagree,
and trains the user's own loss (Setup.criterion) when there is one."""
from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import torch
from overfitkit import write_user_module
from torch import nn
from typer.testing import CliRunner

from ctcdoctor.cli import app
from ctcdoctor.load.spec import load_setup
from ctcdoctor.overfit.result import OverfitOptions
from ctcdoctor.overfit.stochastic import explain_disagreement, stochastic_parts
from ctcdoctor.overfit.train import run_overfit

runner = CliRunner()


@pytest.fixture()
def module(tmp_path):
    return write_user_module(tmp_path)


def _run(module, function: str, **options):
    return run_overfit(load_setup(f"{module}:{function}"), "tiny", OverfitOptions(**options))


# ----------------------------------------------------------------------------- eval-mode judging


def test_training_noise_does_not_hide_a_fit_judged_in_eval_mode(module):
    findings, _, result = _run(module, "build_masked", steps=400)
    assert result.fitted, [item.message for item in findings]
    assert list(result.final_decode) == list(result.targets)
    # the training steps' own decodes (masked frames) were wrong at some evaluations after the first exact eval decode
    history = [(e.decodes, e.train_decodes) for e in result.evaluations]
    assert any(train != list(result.targets) and list(decode) == list(result.targets) for decode, train in
               ((list(d), list(t)) for d, t in history))
    assert result.stochastic[0] == {"kind": "masking", "where": "Masked (mask_time_prob=0.25)"}
    from ctcdoctor.render.plot_overfit import plot

    figure = plot(result)
    labels = [line.get_label() for axis in figure.axes for line in axis.get_lines()]
    assert "CER (eval-mode decode, judges the fit)" in labels and "CER (training steps' own decode)" in labels


def test_a_disagreement_at_the_end_is_explained_by_what_the_model_contains(module):
    from ctcdoctor.overfit.final import compare_modes
    from ctcdoctor.overfit.result import OverfitResult

    result = OverfitResult(samples=(0,), source="test", targets=("abc",), final_decode=("abc",), train_decode=("ac",))
    model = load_setup(f"{module}:build_masked").model
    compare_modes(result, model)
    assert result.modes_agree is False
    (note,) = result.notes
    assert note.startswith('the eval-mode decode fits but the training steps\' own (train-mode) decode is "ac"')
    assert "masking (Masked (mask_time_prob=0.25))" in note


def test_a_model_that_fits_in_train_mode_only_is_ctc070_eval_mode(module):
    findings, _, result = _run(module, "build_eval_reversed", steps=300)
    assert not result.fitted and result.diagnosis == "CTC070"
    (found,) = [item for item in findings if item.code == "CTC070"]
    assert found.evidence["kind"] == "eval_mode"
    assert list(result.train_decode) == list(result.targets) != list(result.final_decode)
    assert "self.training" in found.message and "self.training" in found.hint


def test_one_weight_update_between_the_decodes_is_not_a_train_eval_difference(module):
    # A deterministic model (no dropout, masking, BatchNorm or self.training branch) at a high learning rate: the last
    # training step decodes the output from before its optimizer update, the eval-mode decode runs after it, so the two
    # differ by that update. Not a train/eval difference: no note sends the user looking for a self.training branch.
    findings, _, result = _run(module, "build", steps=3, lr=0.3, eval_every=1, extend_to=None)
    assert list(result.evaluations[-1].train_decodes) != list(result.final_decode)  # the decode moved in the last step
    assert result.stochastic == []
    assert result.modes_agree is True and list(result.train_decode) == list(result.final_decode)
    assert not [note for note in result.notes if "self.training" in note], result.notes
    assert not [item for item in findings if "self.training" in item.message]


def test_the_same_weights_train_mode_decode_leaves_buffers_and_random_state_alone():
    from ctcdoctor.overfit.final import same_weights_train_decode
    from ctcdoctor.overfit.result import OverfitResult

    class Noise(nn.Module):  # random in train mode, and no part ctcdoctor recognises: the forward runs
        def forward(self, x):
            return x + torch.rand_like(x) if self.training else x

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 4), Noise(), nn.BatchNorm1d(2), nn.Linear(4, 3)).train()
    before = [buffer.clone() for buffer in model.buffers()]
    symbols = SimpleNamespace(text=lambda labels: "".join("xab"[label] for label in labels))
    problem = SimpleNamespace(device=torch.device("cpu"), inputs=torch.randn(2, 2, 4), layout="TNC", blank=0, symbols=symbols)
    result = OverfitResult(samples=(0,), source="test", targets=("ab",), final_decode=("ab",), train_decode=("ba",))
    state = torch.get_rng_state()
    same_weights_train_decode(result, SimpleNamespace(model=model), problem, SimpleNamespace(lengths=torch.tensor([2, 2])))
    assert result.train_decode != ("ba",)  # decoded again from the same weights
    assert torch.equal(torch.get_rng_state(), state)  # the noise's draw did not move the caller's random state
    assert all(torch.equal(a, b) for a, b in zip(before, model.buffers()))  # BatchNorm's running statistics kept
    assert model.training


def test_stochastic_parts_are_read_from_modules_attributes_and_config():
    model = nn.Sequential(nn.Linear(3, 3), nn.Dropout(0.1), nn.LSTM(3, 3, num_layers=2, dropout=0.2),
                          nn.BatchNorm1d(3), nn.MultiheadAttention(4, 2, dropout=0.3))
    kinds = {part.kind: part.where for part in stochastic_parts(model)}
    assert set(kinds) == {"dropout", "BatchNorm"}
    assert "1 p=0.1" in kinds["dropout"] and "LSTM dropout=0.2" in kinds["dropout"] and "attention dropout=0.3" in kinds["dropout"]
    assert stochastic_parts(nn.Linear(3, 3)) == []
    assert "self.training" in explain_disagreement([])

    class HuggingFaceLike(nn.Module):
        def __init__(self):
            super().__init__()
            self.config = SimpleNamespace(mask_time_prob=0.05, apply_spec_augment=True, layerdrop=0.1, hidden_dropout=0.1)
            self.drop = nn.Dropout(0.1)

    described = explain_disagreement(stochastic_parts(HuggingFaceLike()))
    assert described == ("the model's masking (config.mask_time_prob=0.05); layer drop (config.layerdrop=0.1); "
                         "dropout (config.hidden_dropout=0.1)")


def test_a_tiny_wav2vec2_shows_its_specaugment_layerdrop_and_dropout():
    transformers = pytest.importorskip("transformers")
    config = transformers.Wav2Vec2Config(vocab_size=8, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                         intermediate_size=16, conv_dim=(8, 8), conv_stride=(5, 2), conv_kernel=(10, 3),
                                         num_conv_pos_embeddings=8, num_conv_pos_embedding_groups=2)
    kinds = [part.kind for part in stochastic_parts(transformers.Wav2Vec2ForCTC(config))]
    assert kinds == ["masking", "layer drop", "dropout"]


# ----------------------------------------------------------------------------- the user's own loss


def test_the_users_criterion_is_what_trains(module):
    _, _, result = _run(module, "build_criterion_offset", steps=400)
    assert result.loss_source == "criterion" and result.loss_function.startswith("Setup.criterion, your own loss")
    assert min(result.losses) > 100.0  # CTC + 100: ctcdoctor's own loss would be below 10
    assert result.fitted and "judged exactly as written" in result.normalisation
    assert result.ctc_path == "inside Setup.criterion (its own CTC call)"


def test_a_softmax_head_whose_loss_takes_the_log_is_judged_as_written(module):
    findings, _, result = _run(module, "build_softmax_own_loss", steps=400)
    assert result.loss_source == "criterion" and result.fitted
    assert {item.code for item in findings} == {"CTC020"}  # the output format is still reported


def test_loss_ctc_and_alpha_train_ctcdoctors_loss(module):
    _, _, result = _run(module, "build_criterion_offset", steps=40, loss="ctc")
    assert result.loss_source == "ctcdoctor" and max(result.losses) < 100
    _, _, result = _run(module, "build_criterion_offset", steps=40, alpha=0.5)
    assert result.loss_function == "ctcdoctor.ctc.ctc_loss (alpha=0.5)"
    assert result.loss_source == "ctcdoctor"


def test_a_criterion_that_cannot_train_falls_back_and_says_why(module):
    _, _, result = _run(module, "build_loss_runs_the_model", steps=40)
    assert result.loss_source == "ctcdoctor"
    assert any("does not use the model output it is given" in note for note in result.notes)
    _, _, result = _run(module, "build_loss_raises", steps=40)
    assert result.loss_source == "ctcdoctor"
    assert any("raised ValueError: my loss is broken" in note for note in result.notes)


def test_loss_criterion_insists_and_fails_with_exit_2(module):
    result = runner.invoke(app, ["overfit", f"{module}:build_loss_raises", "--loss", "criterion"])
    assert result.exit_code == 2, result.output
    assert "--loss criterion: Setup.criterion raised ValueError: my loss is broken" in result.output
    no_criterion = runner.invoke(app, ["overfit", str(module), "--loss", "criterion"])
    assert no_criterion.exit_code == 2 and "the Setup has no criterion" in no_criterion.output


def test_the_report_says_which_loss_trained(module):
    result = runner.invoke(app, ["overfit", f"{module}:build_criterion_offset", "--steps", "400", "--format", "json"])
    assert result.exit_code == 1, result.output  # the criterion audit runs on the sample: CTC030 (CTC + 100)
    document = json.loads(result.stdout)
    assert [item["code"] for item in document["findings"]] == ["CTC030"]
    assert document["result"]["loss_source"] == "criterion" and document["result"]["fitted"]
    text = runner.invoke(app, ["overfit", f"{module}:build_criterion_offset", "--steps", "400"])
    assert "trained loss    Setup.criterion, your own loss" in text.stdout


def test_the_users_model_is_untouched_and_the_rng_kept_with_the_criterion(module):
    setup = load_setup(f"{module}:build_masked")
    before = {name: value.clone() for name, value in setup.model.state_dict().items()}
    torch.manual_seed(7)
    expected = torch.rand(2)
    torch.manual_seed(7)
    run_overfit(setup, "tiny", OverfitOptions(steps=20))
    torch.testing.assert_close(torch.rand(2), expected)
    assert all(torch.equal(before[name], value) for name, value in setup.model.state_dict().items())
    assert setup.model.training  # as found (a fresh module is in train mode)


def test_overfit_trains_even_when_called_under_no_grad(module):
    with torch.no_grad():
        _, _, result = _run(module, "build", steps=400)
    assert result.fitted and torch.is_grad_enabled()
