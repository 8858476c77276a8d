"""What a fresh-eyes user saw in `ctcdoctor overfit` (round 2) and now sees instead: one test per problem."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ctcdoctor.cli import app
from ctchelpers import invoke_once, invoke_text_and_json

runner = CliRunner()
CASES = Path(__file__).parent / "overfit_cases"


def _overfit(*args: str):
    return runner.invoke(app, ["overfit", *args])


def test_a_blank_outside_the_classes_blocks_training_instead_of_crashing():
    result = _overfit("examples/broken/blank_past_the_classes.py", "--steps", "20")
    assert result.exit_code == 1, result.output
    assert "internal error" not in result.output
    assert "CTC015" in result.output
    assert "■ overfit not run on sample 0" in result.output and "fix CTC015 above first" in result.output


def test_ctc_argument_errors_during_training_are_usage_errors_naming_the_problem():
    from ctcdoctor.errors import UserInputError
    from ctcdoctor.load.spec import load_setup
    from ctcdoctor.overfit.result import OverfitOptions
    from ctcdoctor.overfit.train import run_overfit

    setup = load_setup("examples/broken/blank_past_the_classes.py")
    with pytest.raises(UserInputError, match="blank=26 is out of range for C=26 classes"):
        run_overfit(setup, "x", OverfitOptions(steps=2, static_checks=False))  # the static checks would block it first


@pytest.mark.parametrize("name", ["wrong_softmax_axis.py", "conv1d_softmax_over_time.py"])
def test_a_decode_that_matches_on_an_output_normalised_over_time_is_not_a_fit(name):
    result, report = invoke_text_and_json(["overfit", f"examples/broken/{name}"])
    assert result.exit_code == 1, result.output
    document = report["result"]
    assert document["decode_matches"] is True and document["fitted"] is False, document
    assert document["caveats"][0] == {"code": "CTC024", "words": "the output is normalised over the time axis (CTC024)"}
    text = " ".join(result.output.split())
    assert "✔ fitted" not in text
    assert "▲ decode matches sample 0" in text and "but the output is normalised over the time axis (CTC024): not a fit" in text


def test_a_fit_on_fewer_declared_frames_than_the_model_outputs_says_so():
    result = _overfit(f"{CASES / 'crnn_lengths.py'}", "--sample", "2")
    assert result.exit_code == 1, result.output
    text = " ".join(result.output.split())
    assert "✔ fitted" not in text and "CTC004" in text
    assert "but fitted on the 8 declared frames only; the model outputs 16 (CTC004): not a fit" in text


def test_the_plot_title_of_a_decode_that_is_no_fit_says_why():
    from ctcdoctor.overfit.result import OverfitResult
    from ctcdoctor.render.plot_overfit import plot

    result = OverfitResult(samples=(0,), source="dataset[i]", targets=("cat",), trained=True, decode_matches=True,
                           caveats=[{"code": "CTC024", "words": "the output is normalised over the time axis (CTC024)"}],
                           losses=[3.0, 2.0], final_decode=("cat",))
    title = plot(result)._suptitle.get_text()
    assert title.endswith("decode matches, but the output is normalised over the time axis (CTC024): not a fit"), title


def test_static_findings_inside_overfit_name_the_users_sample_ids():
    result = _overfit(str(CASES / "crnn_pool.py"), "--sample", "43", "--format", "json")
    assert result.exit_code == 1, result.output
    findings = {item["code"]: item for item in json.loads(result.stdout)["findings"]}
    ctc001 = findings["CTC001"]
    assert "sample 43 has 6 frames for 8 labels + 2 repeats" in ctc001["message"] and "sample 0" not in ctc001["message"]
    assert ctc001["hint"].startswith("Sample 43 needs 10 frames and gets 6")
    assert ctc001["evidence"]["worst"][0]["sample"] == 43
    assert "On batch 0" not in findings["CTC031"]["message"] and findings["CTC031"]["evidence"]["samples"] == [43]


def test_user_ids_maps_positions_in_lists_and_leaves_other_numbers():
    from ctcdoctor.overfit.prepare import user_ids

    assert user_ids("samples 0, 2 and 1 of 3 samples; sample 5", (7, 9, 11)) == "samples 7, 11 and 9 of 3 samples; sample 5"


@pytest.mark.parametrize(("name", "codes", "verdict"), [
    ("hf_pad_token_id.py", ["CTC101", "CTC107"], "the decode matches by accident, not a fit"),
    # The blank-as-a-letter labels are in samples 2, 4, 5, 10 and 14 of the first batch, not in sample 0: its fit is
    # real, the set-up's is not (the torchaudio trial: "matches by accident" of a sample that really fits).
    ("blank_is_a_letter.py", ["CTC011"], "a fit of this sample alone, not of the set-up as its loader feeds it"),
])
def test_configuration_errors_check_finds_on_the_loader_show_in_overfit_and_qualify_its_fit(name, codes, verdict):
    result, document = invoke_text_and_json(["overfit", f"examples/broken/{name}"])
    assert result.exit_code == 1, result.output
    found = [item["code"] for item in document["findings"]]
    assert all(code in found for code in codes), found
    assert document["result"]["fitted"] is False and [item["code"] for item in document["result"]["caveats"]] == codes
    text = " ".join(result.output.split())
    assert "✔ fitted" not in text and verdict in text
    assert "[the loader's first batch]" in text


def test_log_softmax_over_the_size_one_batch_axis_is_ctc024_not_clipping_or_raw_logits():
    result = _overfit(str(CASES / "lstm_tm_axis.py"), "--sample", "3", "--format", "json")
    assert result.exit_code == 1, result.output
    document = json.loads(result.stdout)
    codes = [item["code"] for item in document["findings"]]
    assert codes == ["CTC024"], codes  # not CTC027 (clipping), CTC021/CTC030 (raw logits) or CTC074
    (found,) = document["findings"]
    assert "log_softmax over an axis of size 1 (the batch axis of (T, N, C), dim=1)" in found["message"]
    assert found["hint"].startswith("Take log_softmax(dim=-1)")
    assert document["result"]["trained"] is False and document["result"]["skipped_because"] == ["CTC024"]


def test_a_hugging_face_model_without_a_criterion_is_described_truly():
    spec = str(Path(__file__).parents[1] / "examples" / "hf_wav2vec2.py")
    result = invoke_once(["overfit", spec, "--steps", "20", "--format", "json"])  # as test_overfit_trial2's run
    document = json.loads(result.stdout)["result"]
    assert document["normalisation"].startswith("Wav2Vec2ForCTC emits raw logits; overfit takes log_softmax over the classes")
    assert not any("Setup.criterion does not use the model output" in note for note in document["notes"]), document["notes"]
    assert any(note.startswith("no Setup.criterion given: Wav2Vec2ForCTC's own loss") for note in document["notes"])


def test_a_model_that_fails_only_on_one_sample_is_named_a_hard_coded_batch_size():
    result = _overfit("examples/broken/square_batch.py", "--format", "json")
    assert result.exit_code == 1, result.output
    (found,) = [item for item in json.loads(result.stdout)["findings"] if item["code"] == "CTC999"]
    assert ("the model fails on a single sample (inputs (1, 1, 32, 64)) though it runs on the loader's full batch of 16 "
            "(inputs (16, 1, 32, 64)): a hard-coded batch size? overfit trains on N=1") in found["message"]
    assert "Run one batch through the model by hand" not in found["hint"] and "x.size(0)" in found["hint"]
