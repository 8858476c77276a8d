"""What a fresh-eyes user (trial2) saw in `ctcdoctor overfit` and now sees instead: one test per problem reported.

The label set-ups are tests/overfit_cases/trial2.py (trial-a's per-frame MLP); the Hugging Face ones build a tiny random
Wav2Vec2ForCTC in the test (no download).
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ctcdoctor.cli import app
from ctchelpers import invoke_once

runner = CliRunner()
SPEC = Path(__file__).parent / "overfit_cases" / "trial2.py"


def _json(command: str, build: str, *args: str) -> dict:
    result = runner.invoke(app, [command, f"{SPEC}:{build}", *args, "--format", "json"])
    assert result.exit_code == 1, result.output
    return {item["code"]: item for item in json.loads(result.stdout)["findings"]}


# ----------------------------------------------------------------------------- #1: fixes from the loader's labels


def test_overfit_gives_checks_class_count_fix_not_one_read_from_a_sample_that_uses_neither_0_nor_the_top_label():
    checked = _json("check", "build_off_by_one")["CTC014"]
    found = _json("overfit", "build_off_by_one", "--sample", "0", "--steps", "5")["CTC014"]
    assert found["message"].startswith("[sample 0] the model outputs 5 classes")
    assert found["hint"] == checked["hint"]
    assert found["hint"].startswith("The blank slot is missing: make the final layer (Linear at head) output 6 classes")
    assert "alphabet[1:]" not in found["hint"] and found["evidence"]["hint_from"] == "loader"


def test_overfit_states_the_label_range_of_the_loaders_labels_not_of_the_sample():
    checked = _json("check", "build_blank_clash")["CTC011"]
    found = _json("overfit", "build_blank_clash", "--sample", "0")["CTC011"]
    assert found["message"].startswith("[sample 0] the blank index 0 appears 1 time")
    assert found["hint"] == checked["hint"]
    assert found["hint"].startswith("The labels run 0..4 (alphabet.index(ch)) and class 5 is never used")


def test_a_fix_only_the_sample_shows_says_it_was_judged_on_that_sample_alone():
    found = _json("overfit", "build_blank_clash_late", "--sample", "39")["CTC011"]
    assert found["hint"].startswith("Judged on sample 39's labels alone (the loader's batches that check reads do not "
                                    "show it). The labels run 0..2 (alphabet.index(ch))")
    assert found["evidence"]["hint_from"] == "samples"


@pytest.mark.parametrize("samples", [[3], [3, 5]])
def test_the_samples_alone_wording_names_the_samples(samples):
    from ctcdoctor.overfit.hints import _samples_alone

    assert _samples_alone(samples) == ("sample 3's labels alone" if samples == [3] else "the labels of samples 3, 5 alone")


# ----------------------------------------------------------------------------- #3: notes are not causes

HF_NOTE = ("Wav2Vec2ForCTC emits raw logits; overfit takes log_softmax over the classes, as the model's own CTC loss does: "
           "trained as Hugging Face trains it")


def _result(losses, note: str, blank_ratio: float = 0.5):
    from ctcdoctor.overfit.result import Evaluation, OverfitResult

    result = OverfitResult(samples=(0,), source="test", targets=("hello world",), trained=True, steps_run=len(losses))
    result.losses, result.norms = list(losses), [0.2] * len(losses)
    result.evaluations = [Evaluation(len(losses), losses[-1], 0.64, ("held",), blank_ratio, 1.0, ("held",), 0.64, (False,))]
    result.final_decode = result.train_decode = ("held",)
    result.lr, result.optimizer = 1e-3, "Adam(lr=0.001)"
    result.parameters = {"total": 100, "trainable": 100, "frozen": 0, "freeze_except_head": False}
    result.clipping = {"max_norm": 5.0, "steps": len(losses), "clipped_steps": 0, "median_grad_norm": 0.2,
                       "max_grad_norm": 1.0}
    result.normalisation = note
    return result


def test_the_hugging_face_output_note_is_no_likely_cause_and_too_few_steps_is():
    import math

    from ctcdoctor.overfit.diagnose import classify_failure, explain_failure

    losses = [17.6 * math.exp(-step / 60) + 0.9 for step in range(300)]
    verdict = classify_failure(losses, 0.93, False, None, labels_from=220)
    assert verdict.kind == "blank_phase_ending"
    found = explain_failure(verdict, _result(losses, HF_NOTE, blank_ratio=0.93), [], {})
    assert "log_softmax" not in found.message and HF_NOTE not in found.evidence["likely_causes"]
    assert found.message.endswith("Likely causes: too few steps: the labels only began to appear at step 220 of 300.")
    assert found.hint.startswith("Run longer (--steps 1000)")


@pytest.mark.parametrize(("note", "cause"), [
    (HF_NOTE, False),
    ("the model emits raw logits (CTC021); overfit applies log_softmax over classes, i.e. trains with that fix applied",
     False),
    ("the model emits probabilities (CTC020); overfit trains on log_softmax of them as written, which caps every frame's "
     "confidence: a failure here is that bug, not your data", True),
])
def test_only_an_output_note_that_names_a_bug_is_a_likely_cause(note, cause):
    from ctcdoctor.overfit.diagnose import classify_failure, explain_failure

    losses = [5.0] * 10 + [0.8] * 490
    verdict = classify_failure(losses, 0.5, False, None)
    found = explain_failure(verdict, _result(losses, note), [], {})
    assert (note in found.evidence["likely_causes"]) is cause
    assert (note in found.message) is cause


def test_a_failed_hugging_face_run_keeps_the_output_note_out_of_its_likely_causes():
    # examples/hf_wav2vec2.py: a tiny random Wav2Vec2ForCTC built from its config; 20 steps cannot fit it.
    spec = str(Path(__file__).parents[1] / "examples" / "hf_wav2vec2.py")
    result = invoke_once(["overfit", spec, "--steps", "20", "--format", "json"])  # as test_overfit_fresh_eyes's run
    document = json.loads(result.stdout)
    assert document["result"]["normalisation"].startswith("Wav2Vec2ForCTC emits raw logits")
    (failure,) = [item for item in document["findings"] if item["code"].startswith("CTC07")]
    assert not any("log_softmax" in cause for cause in failure["evidence"]["likely_causes"]), failure
    assert "emits raw logits" not in failure["message"]
