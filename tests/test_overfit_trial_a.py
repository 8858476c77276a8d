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
from ctchelpers import invoke_text_and_json

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
    result, document = invoke_text_and_json(["overfit", f"{CASES / 'trial_a.py'}:{build}"])
    assert result.exit_code == 1, result.output
    (found,) = [item for item in document["findings"] if item["code"] == code]
    assert found["severity"] == "error" and found["message"].startswith("[the loader's first batch] ")
    assert document["result"]["decode_matches"] is True and document["result"]["fitted"] is False
    assert document["result"]["caveats"] == [{"code": code, "words": words}]
    text = _text(result)
    assert "✔ fitted" not in text
    assert "▲ decode matches sample 0 (\"2 3\")" in text
    assert f"but {words}: a fit of this sample alone, not of the set-up as its loader feeds it" in text


@pytest.mark.parametrize(("example", "code", "words", "verdict"), [
    ("nan_inputs.py", "CTC040", "the loader's first batch has NaN or Inf inputs (CTC040)",
     "a fit of this sample alone, not of the set-up as its loader feeds it"),
    ("constant_inputs.py", "CTC042", "the sample's inputs are constant (CTC042): the model learned the labels by "
     "position, not from the input", "not a fit"),
])
def test_a_fit_on_inputs_that_prove_nothing_is_no_clean_fit(example, code, words, verdict):
    spec = str(Path(__file__).parents[1] / "examples" / "broken" / example)
    result, document = invoke_text_and_json(["overfit", spec, "--sample", "0"])
    assert document["result"]["decode_matches"] is True and document["result"]["fitted"] is False, result.output
    assert document["result"]["caveats"] == [{"code": code, "words": words}]
    assert f"but {words}: {verdict}" in _text(result)


@pytest.mark.parametrize(("example", "code", "words"), [
    ("criterion_view_not_transpose.py", "CTC030", "the loader's first batch shows that Setup.criterion does not compute "
     "CTC on the model output (layout) (CTC030)"),  # a .view for a transpose is the identity on one sample
    ("lstm_batch_first.py", "CTC028", "the loader's first batch shows the model mixing samples along the batch axis "
     "(CTC028)"),  # one sample cannot be mixed with others
])
def test_batch_bugs_one_sample_cannot_show_are_read_on_the_loaders_first_batch(example, code, words):
    spec = str(Path(__file__).parents[1] / "examples" / "broken" / example)
    result = runner.invoke(app, ["overfit", spec, "--sample", "0", "--format", "json"])
    document = json.loads(result.stdout)
    assert result.exit_code == 1 and document["result"]["fitted"] is False, result.output
    assert document["result"]["caveats"] == [{"code": code, "words": words}]
    (found,) = [item for item in document["findings"] if item["code"] == code]
    assert found["message"].startswith("[the loader's first batch] ")


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


# ----------------------------------------------------------------------------- #6: still learning at the default budget


def test_a_slow_healthy_run_still_learning_at_the_default_budget_trains_on_and_fits_saying_so():
    result, document = invoke_text_and_json(["overfit", f"{CASES / 'trial_a.py'}:build_slow", "--sample", "3"])
    assert result.exit_code == 0, result.output
    run = document["result"]
    assert run["fitted"] is True and 1000 < run["steps_to_fit"] <= 2000, run["steps_to_fit"]
    assert run["budget"] == {"steps": 1000, "extended_to": 2000, "limit": 4000}
    assert [item["code"] for item in document["findings"]] == []
    text = _text(result)
    assert f"✔ fitted sample 3 (\"5 1 4 5 3\") in {run['steps_to_fit']} steps" in text
    assert ("note still learning when the budget ran out at step 1000 (CER down to 0.20), the loss still falling: "
            "the budget grew to 2000 steps (the default budget grows up to 4000 steps while the run improves; --steps N "
            "fixes it)") in text
    assert "--sample 3 --steps 2000 --lr 0.0001" in text  # the line that reproduces the run names the budget it used


def test_an_explicit_steps_budget_is_fixed_and_a_run_still_learning_there_fails_with_run_longer():
    result = _overfit("build_slow", "--sample", "3", "--steps", "1000", "--format", "json")
    assert result.exit_code == 1, result.output
    document = json.loads(result.stdout)
    assert document["result"]["steps"] == 1000
    assert document["result"]["budget"] == {"steps": 1000, "extended_to": None, "limit": None}
    (failure,) = document["findings"]
    assert failure["code"] == "CTC070" and "run longer (--steps 2000)" in failure["hint"]


def test_a_named_static_cause_is_reported_at_the_budget_instead_of_extending_it():
    from ctcdoctor.findings import Finding, Severity
    from ctcdoctor.overfit.extend import blocks_extension

    def one(code: str, severity: str, evidence: dict) -> Finding:
        return Finding(code, Severity.parse(severity), "t", "m", "h", evidence)

    assert blocks_extension([one("CTC041", "warning", {"overfit_samples": [0]})])
    assert not blocks_extension([one("CTC041", "info", {"overfit_samples": [0]})])  # the model normalises them itself
    assert not blocks_extension([one("CTC041", "warning", {})])  # the loader's other samples, not the one trained
    assert not blocks_extension([one("CTC022", "warning", {"overfit_samples": [0]})])


def test_still_learning_needs_a_clearly_falling_loss_and_a_decode_at_its_best():
    from ctcdoctor.overfit.extend import next_budget
    from ctcdoctor.overfit.result import Evaluation

    def evaluations(*cers: float) -> list[Evaluation]:
        return [Evaluation(step=10 * (i + 1), loss=1.0, cer=cer, decodes=("",), blank_ratio=0.5, seconds=0.0)
                for i, cer in enumerate(cers)]

    falling = [10.0 - 0.009 * step for step in range(1000)]
    assert next_budget(1000, 1000, 4000, falling, evaluations(1.0, 0.5, 0.2)) == 2000
    assert next_budget(3000, 1000, 4000, falling, evaluations(1.0, 0.5, 0.2)) == 4000
    assert next_budget(4000, 1000, 4000, falling, evaluations(1.0, 0.5, 0.2)) == 4000  # the limit
    assert next_budget(1000, 1000, None, falling, evaluations(1.0, 0.5, 0.2)) == 1000  # a fixed budget
    assert next_budget(1000, 1000, 4000, falling, evaluations(1.0, 1.0, 1.0)) == 1000  # all-blank: no decode progress
    assert next_budget(1000, 1000, 4000, falling, evaluations(1.0, 0.2, 0.5)) == 1000  # the decode got worse
    assert next_budget(1000, 1000, 4000, [1.0] * 1000, evaluations(1.0, 0.5, 0.2)) == 1000  # a flat loss


# ----------------------------------------------------------------------------- #11: the LR probe's runs on the plot


def test_the_overfit_plot_draws_the_lr_probes_other_runs_labelled_with_their_learning_rates(tmp_path):
    import sys

    from ctcdoctor.overfit.result import OverfitOptions
    from ctcdoctor.overfit.train import run_overfit
    from ctcdoctor.render.plot_overfit import plot

    sys.path.insert(0, str(CASES))
    try:
        import trial_a
    finally:
        sys.path.remove(str(CASES))
    options = OverfitOptions(samples=(3,), steps=300, lr_probe=True, probe_jobs=1)
    _, _, result = run_overfit(trial_a.build_slow(), "trial_a.py:build_slow", options)
    runs = {run["lr"]: run for run in result.lr_probe["runs"]}
    assert sorted(runs) == [1e-5, 1e-4, 1e-3] and runs[1e-3]["fitted"], runs
    assert runs[1e-5]["curve"][0][0] == 1 and runs[1e-5]["curve"][-1][0] == runs[1e-5]["steps"]
    top = plot(result).axes[0]
    lines = {line.get_label(): line for line in top.get_lines()}
    fitted = f"loss at lr 0.001 (LR probe: fitted in {runs[1e-3]['steps_to_fit']} steps)"
    assert set(lines) >= {"CTC loss at lr 0.0001 (this run, every step)", fitted,
                          f"loss at lr 1e-05 (LR probe: {runs[1e-5]['verdict']})"}, set(lines)
    assert list(lines[fitted].get_ydata()) == [loss for _, loss in runs[1e-3]["curve"]]
    legend = [text.get_text() for text in top.get_legend().get_texts()]
    assert fitted in legend
    # The command line draws the same figure: its wiring needs no long run (the curves are checked above).
    path = tmp_path / "overfit.png"
    result_cli = runner.invoke(app, ["overfit", f"{CASES / 'trial_a.py'}:build_slow", "--sample", "3", "--steps", "20",
                                     "--lr-probe", "--probe-jobs", "1", "--plot", str(path)])
    assert result_cli.exit_code == 1 and path.stat().st_size > 10_000, result_cli.output
