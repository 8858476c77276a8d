"""What a fresh-eyes user (trial-a) saw in `ctcdoctor overfit` and now sees instead: one test per problem reported.

The set-ups are tests/overfit_cases/trial_a.py: a per-frame MLP that fits one sample in about 100 steps, with one
planted problem per build.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ctcdoctor.cli import app

runner = CliRunner()
CASES = Path(__file__).parent / "overfit_cases"


def _overfit(build: str, *args: str):
    return runner.invoke(app, ["overfit", f"{CASES / 'trial_a.py'}:{build}", *args])


def _text(result) -> str:
    return " ".join(result.output.split())


# ----------------------------------------------------------------------------- #5: the loader's batches, not only the sample


@pytest.mark.parametrize(("build", "code", "words"), [
    ("build_label_past_head", "CTC010", "the loader's first batch has labels outside the model's classes (CTC010)"),
    ("build_lengths_count_padding", "CTC012", "the loader's first batch has target_lengths that count the padding (CTC012)"),
])
def test_a_sample_that_fits_alone_is_no_clean_fit_when_the_loaders_batches_cannot_train(build, code, words):
    result = _overfit(build, "--format", "json")
    assert result.exit_code == 1, result.output
    document = json.loads(result.stdout)
    (found,) = [item for item in document["findings"] if item["code"] == code]
    assert found["severity"] == "error" and found["message"].startswith("[the loader's first batch] ")
    assert document["result"]["decode_matches"] is True and document["result"]["fitted"] is False
    assert document["result"]["caveats"] == [{"code": code, "words": words}]
    text = _text(_overfit(build))
    assert "✔ fitted" not in text
    assert "▲ decode matches sample 0 (\"2 3\")" in text
    assert f"but {words}: a fit of this sample alone, not of the set-up as its loader feeds it" in text


# ----------------------------------------------------------------------------- #3: unnormalised inputs named as the cause


def test_unnormalised_inputs_are_the_first_likely_cause_of_a_failed_fit_before_the_lr_and_run_longer():
    result = _overfit("build_raw_features", "--steps", "40", "--lr-probe", "--probe-jobs", "1", "--format", "json")
    assert result.exit_code == 1, result.output
    findings = {item["code"]: item for item in json.loads(result.stdout)["findings"]}
    assert findings["CTC041"]["message"].startswith("[sample 0] inputs sit far below zero")
    failure = findings["CTC070"]
    causes = failure["message"].split("Likely causes: ", 1)[1]
    assert causes.startswith("inputs not normalised (CTC041, reported above: range -112.3 to 8.21, mean -58.95): "
                             "unnormalised inputs saturate the first layers"), causes
    assert causes.index("CTC041") < causes.index("the probe fits at none of")
    assert failure["hint"].startswith("Fix the inputs first (CTC041). Standardise the features: (x - mean) / std")
    assert failure["hint"].index("CTC041") < failure["hint"].index("--lr") < failure["hint"].index("--steps")
    assert failure["evidence"]["likely_causes"][0].startswith("inputs not normalised (CTC041")


# ----------------------------------------------------------------------------- #4: a negative loss from the loss's blank


def test_a_negative_loss_on_log_probabilities_names_the_loss_blank_in_the_targets_and_ctc030s_fix():
    result = _overfit("build_blank_last_loss_default", "--steps", "200", "--format", "json")
    assert result.exit_code == 1, result.output
    findings = {item["code"]: item for item in json.loads(result.stdout)["findings"]}
    assert "the loss uses blank=0 while Setup.blank is 5" in findings["CTC030"]["message"]
    negative = findings["CTC074"]
    assert negative["title"] == "overfit loss is negative: the targets contain the loss's blank"
    assert ("the model's output is log-probabilities already, but the loss takes class 0 as its blank while Setup.blank "
            "is 5 and the targets use 0 as a label (CTC030, reported above)") in negative["message"]
    assert "not given log-probabilities" not in negative["message"]
    assert negative["hint"] == findings["CTC030"]["hint"] and "blank=5" in negative["hint"]
    assert "log_softmax" not in negative["hint"]
    assert negative["evidence"]["cause"] == "blank_in_targets"


def test_without_the_criterion_audits_word_label_0_in_the_targets_is_the_default_blank_of_the_loss():
    from ctcdoctor.overfit.negative import blank_cause

    found = blank_cause("log_probs", [], [0, 2, 3], blank=5)
    assert found is not None and "if the loss keeps its default blank=0" in found.words
    assert found.fix.startswith("Call the loss with blank=5, Setup.blank: F.ctc_loss(")
    assert blank_cause("probs", [], [0, 2, 3], blank=5) is None  # softmax output: log_softmax is the fix
    assert blank_cause("log_probs", [], [1, 2, 3], blank=5) is None  # no label is the loss's blank
    assert blank_cause("log_probs", [], [0, 2, 3], blank=0) is None  # label 0 is Setup's blank too: CTC011's business
