"""Trial 27 (ESPnet, deep-text-recognition-benchmark): criteria that use another returned item, normalise over the
wrong axis, or are proved not to be CTC, as `check` and `overfit` report them."""
from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from ctcdoctor.cli import app

runner = CliRunner()
SPEC = str(Path(__file__).parent / "overfit_cases" / "s27_criterion.py")


def _json(*args: str) -> tuple[int, dict]:
    result = runner.invoke(app, [*args, "--format", "json"])
    assert result.exit_code in (0, 1), result.output
    return result.exit_code, json.loads(result.stdout)


def _one(document: dict, code: str) -> dict:
    (found,) = [item for item in document["findings"] if item["code"] == code]
    return found


def test_a_criterion_on_the_returned_encoder_state_trains_as_the_users_loss():
    code, document = _json("overfit", f"{SPEC}:build_espnet", "--steps", "300")
    result = document["result"]
    assert result["loss_source"] == "criterion", result["notes"]
    assert not any("does not use" in note for note in result["notes"]), result["notes"]
    assert result["fitted"] and code == 0, document["findings"]


def test_loss_criterion_accepts_a_criterion_on_another_returned_item():
    result = runner.invoke(app, ["overfit", f"{SPEC}:build_espnet", "--steps", "5", "--loss", "criterion"])
    assert result.exit_code != 2, result.output


def test_the_users_model_is_left_as_it_was():
    import torch

    from ctcdoctor.load.spec import load_setup
    from ctcdoctor.overfit.result import OverfitOptions
    from ctcdoctor.overfit.train import run_overfit

    setup = load_setup(f"{SPEC}:build_espnet")
    before = {name: tensor.clone() for name, tensor in setup.model.state_dict().items()}
    parameters = [id(parameter) for parameter in setup.model.parameters()]
    _, _, result = run_overfit(setup, "x", OverfitOptions(steps=20, static_checks=False))
    assert result.loss_source == "criterion"
    assert [id(parameter) for parameter in setup.model.parameters()] == parameters
    assert all(torch.equal(before[name], tensor) for name, tensor in setup.model.state_dict().items())


def test_a_criterion_on_a_frozen_or_detached_state_trains_what_it_reaches():
    for build, extra in (("build_espnet", ("--freeze-except-head",)), ("build_espnet_detached", ())):
        _, document = _json("overfit", f"{SPEC}:{build}", "--steps", "5", *extra)
        result = document["result"]
        assert result["loss_source"] == "criterion", (build, result["notes"])


def test_a_criterion_that_runs_the_model_itself_says_what_was_found():
    _, document = _json("overfit", f"{SPEC}:build_espnet_runs_the_model", "--steps", "5")
    result = document["result"]
    assert result["loss_source"] == "ctcdoctor"
    (note,) = [note for note in result["notes"] if note.startswith("Setup.criterion")]
    assert note.startswith("Setup.criterion does not use the model's output or any other item it returned (output[1], "
                           "output[2]; a detached item counts as unused), though its loss reaches the model's parameters "
                           "(body.0, ctc) by another path"), note


def test_log_softmax_over_time_in_the_criterion_is_named_with_the_axis_to_use():
    code, document = _json("check", f"{SPEC}:build_softmax_dim1")
    assert code == 1
    found = _one(document, "CTC030")
    assert found["severity"] == "error" and found["evidence"]["mistake"] == "criterion_axis"
    assert "your criterion normalises over the wrong axis: it takes log_softmax over axis 1 (time) of the (N, T, C) output" in found["message"]
    assert found["hint"].startswith("Normalise over the class axis: log_softmax(2)")
    raw = _one(document, "CTC021")
    assert "The criterion normalises them with log_softmax over axis 1 (time), not over the class axis 2 (CTC030)" in raw["message"]
    assert raw["hint"].startswith("In the criterion") and raw["evidence"]["consequence_of"] == "CTC030"


def test_overfit_does_not_train_a_criterion_proved_not_ctc():
    for build in ("build_softmax_dim1", "build_raw_preds"):
        code, document = _json("overfit", f"{SPEC}:{build}", "--steps", "50")
        result = document["result"]
        assert code == 1 and result["trained"] is False and result["skipped_because"] == ["CTC030"], (build, result)
        assert "add --loss ctc" in _one(document, "CTC030")["hint"]
        assert "CTC070" not in [item["code"] for item in document["findings"]]


def test_loss_ctc_still_trains_a_set_up_whose_criterion_is_not_ctc():
    _, document = _json("overfit", f"{SPEC}:build_raw_preds", "--steps", "20", "--loss", "ctc")
    assert document["result"]["trained"] is True and document["result"]["loss_source"] == "ctcdoctor"


def test_raw_input_lengths_give_the_frame_count_to_pass():
    _, document = _json("check", f"{SPEC}:build_raw_lengths")
    found = _one(document, "CTC030")
    assert found["evidence"]["mistake"] == "raw_input_lengths"
    assert found["hint"].startswith("Pass the output frame counts as input lengths: 8 for every sample (output.size(1)"), found["hint"]
    assert "not the lengths passed (up to 16)" in found["hint"]


def test_a_batch_mean_is_named_alike_by_check_and_by_overfit_on_one_sample():
    _, checked = _json("check", f"{SPEC}:build_batch_mean")
    _, overfitted = _json("overfit", f"{SPEC}:build_batch_mean", "--steps", "5")
    for document in (checked, overfitted):
        found = _one(document, "CTC030")
        assert found["severity"] == "info" and 'reduction="none" then .mean()' in found["message"], found["message"]


def test_raw_logits_without_a_criterion_offer_the_training_loops_loss_as_setup_criterion():
    _, document = _json("check", f"{SPEC}:build_minimal")
    hint = _one(document, "CTC021")["hint"]
    assert hint.startswith("Apply log_softmax(dim=-1) over the classes before F.ctc_loss.") and "give that loss as Setup.criterion" in hint


def test_targets_read_as_text_when_the_alphabet_spells_them_though_the_class_count_is_off():
    _, document = _json("overfit", f"{SPEC}:build_no_blank_class", "--sample", "0", "--steps", "5")
    assert "CTC014" in [item["code"] for item in document["findings"]]
    (target,) = document["result"]["targets"]
    assert target and set(target) <= set("abcde"), target
