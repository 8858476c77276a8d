"""What overfit says when a run fails: dead networks, exploding updates, a blank phase still ending,
plateaus, words that match their numbers, the LR probe's verdict and the small-batch verdict."""
from __future__ import annotations

import math

import pytest
import torch
from overfitkit import write_user_module

from ctcdoctor.load.spec import load_setup
from ctcdoctor.overfit.curve import loss_summary
from ctcdoctor.overfit.diagnose import Verdict, classify_failure, explain_failure
from ctcdoctor.overfit.explain import recent_words
from ctcdoctor.overfit.probe import ProbeRun, conclude, probe_jobs
from ctcdoctor.overfit.result import Evaluation, OverfitOptions, OverfitResult
from ctcdoctor.overfit.train import run_overfit


@pytest.fixture()
def module(tmp_path):
    return write_user_module(tmp_path)


def _result(losses, norms=None, lr=1e-3, decode="gafah", target="gaifah", blank_ratio=0.5) -> OverfitResult:
    result = OverfitResult(samples=(0,), source="test", targets=(target,), trained=True, steps_run=len(losses))
    result.losses, result.norms = list(losses), list(norms if norms is not None else [0.2] * len(losses))
    result.evaluations = [Evaluation(len(losses), losses[-1], 0.17, (decode,), blank_ratio, 1.0, (decode,), 0.17, (False,))]
    result.final_decode = result.train_decode = (decode,)
    result.lr, result.optimizer = lr, f"Adam(lr={lr:g})"
    result.parameters = {"total": 100, "trainable": 100, "frozen": 0, "freeze_except_head": False}
    result.clipping = {"max_norm": 5.0, "steps": len(losses), "clipped_steps": 0, "median_grad_norm": 0.2, "max_grad_norm": 1.0}
    result.normalisation = "trained exactly as written"
    return result


# ----------------------------------------------------------------------------- words that match the numbers


def test_a_loss_that_rose_is_never_called_falling():
    # The line through the last quarter falls (30 -> 10 in its middle), but its measured ends rose: 11 -> 18.4.
    losses = [40.0] * 300 + [11.0] * 5 + [30 - 20 * i / 89 for i in range(90)] + [18.4] * 5
    summary = loss_summary(losses)
    assert summary["trend"] == "falling"
    words = recent_words(summary)
    assert words.startswith("rose from 11 to 18.4") and "falling" not in words


def test_the_diverged_example_message_reads_its_numbers():
    losses = [10.4] + [161.0] * 4 + [1.2] * 600 + [13.6] * 150 + [16.3] * 245
    verdict = classify_failure(losses, 0.0, False, None)
    assert verdict.kind == "diverged"
    found = explain_failure(verdict, _result(losses), [], {})
    assert "rose from 13.6 to 16.3 over the last 250 steps" in found.message and "flat" not in found.message


# ----------------------------------------------------------------------------- the new verdicts, as pure rules


def test_gradients_near_zero_from_the_start_are_a_dead_network():
    losses, norms = [2.58] * 200, [9e-11] * 200
    verdict = classify_failure(losses, 1.0, True, None, norms=norms)
    assert (verdict.code, verdict.kind) == ("CTC070", "dead")
    found = explain_failure(verdict, _result(losses, norms, decode=""), [], {})
    assert "median gradient norm of the first steps is 9e-11" in found.message
    assert "a ReLU, clamp or sigmoid on the output scores" in found.hint and found.title.startswith("overfit cannot start")


def test_a_gradient_norm_that_grows_a_hundredfold_is_exploding():
    losses = [5.0 - 0.001 * step for step in range(400)]
    norms = [1.0] * 100 + [500.0] * 300
    verdict = classify_failure(losses, 0.2, False, None, norms=norms)
    assert (verdict.code, verdict.kind, verdict.step) == ("CTC072", "exploding", 101)
    found = explain_failure(verdict, _result(losses, norms), [], {})
    assert "the gradient norm grew from 1 in the first steps to 500 at the end" in found.message
    assert "--lr 0.0001" in found.hint


def test_a_blank_phase_still_ending_is_not_a_collapse_nor_a_plateau():
    losses = [6.0 * math.exp(-step / 400) + 0.5 for step in range(1000)]
    verdict = classify_failure(losses, 0.96, False, None, labels_from=980)
    assert (verdict.code, verdict.kind, verdict.step) == ("CTC070", "blank_phase_ending", 980)
    found = explain_failure(verdict, _result(losses, lr=1e-5, decode="i", target="dinner", blank_ratio=0.96), [], {})
    assert "the first label appeared at step 980" in found.message and "96%" in found.message
    assert "--steps 2000" in found.hint and "from 1e-05 to 0.001" in found.hint


def test_a_flat_loss_is_a_plateau_with_the_probe_as_the_next_step():
    losses = [5.0] * 10 + [0.8] * 490
    verdict = classify_failure(losses, 0.5, False, None)
    assert verdict.kind == "plateau"
    found = explain_failure(verdict, _result(losses), [], {})
    assert "--lr-probe" in found.hint and "--steps" not in found.hint


def test_labels_stuck_at_a_clipped_floor_are_named():
    losses = [9.0] * 10 + [0.55] * 990
    verdict = classify_failure(losses, 0.6, False, None, clipped=True)
    assert verdict.kind == "clipped"
    result = _result(losses, decode="dnner", target="dinner")
    result.clipped_labels = ("i",)
    found = explain_failure(verdict, result, [], {})
    assert '"i" never appears' in found.message and "Remove the ReLU, clamp" in found.hint


def test_clipped_labels_are_read_off_ties_at_the_frame_minimum():
    from ctcdoctor.overfit.final import clipped_labels
    from ctcdoctor.overfit.prepare import Symbols

    # (T=3, N=1, C=4) scores after a ReLU: class 2 sits at 0 with class 3 on every frame; class 1 wins frame 1.
    scores = torch.tensor([[[0.0, 3.0, 0.0, 0.0]], [[2.0, 0.0, 0.0, 0.0]], [[1.0, 0.5, 0.0, 0.0]]])
    problem = type("P", (), {"target_lists": ((1, 2),), "symbols": Symbols("abc", 0)})()
    assert clipped_labels(scores.log_softmax(-1), torch.tensor([3]), problem, [[1]]) == ("b",)
    assert clipped_labels(scores.log_softmax(-1), torch.tensor([3]), problem, [[1, 2]]) == ()


def test_a_dead_relu_head_stops_early_and_points_at_ctc027(module):
    findings, _, result = run_overfit(load_setup(f"{module}:build_dead_head"), "tiny", OverfitOptions())
    codes = [item.code for item in findings]
    assert codes == ["CTC027", "CTC070"]
    assert result.steps_run == 100 and result.stopped_early.startswith("stopped at step 100: the gradient norm stayed at 0")
    found = findings[-1]
    assert found.evidence["kind"] == "dead" and "CTC027" in found.message
    assert found.hint.startswith("Remove the clipping after the output layer")  # a functional relu: no module to name


# ----------------------------------------------------------------------------- the LR probe


def _probe_run(lr, steps=None, verdict="CTC070 budget", best=0.5):
    return ProbeRun(lr, steps is not None, steps, None if steps is None else 1.0, steps or 1000, 2.0,
                    "fitted" if steps else verdict, best)


def test_the_probe_conclusion_names_the_rate_that_fits():
    low = conclude([_probe_run(1e-4), _probe_run(1e-3), _probe_run(1e-2, 150)], 1e-3)
    assert low == {"verdict": "too_low", "suggested_lr": 1e-2, "fitted_at_suggested": True, "conclusion":
                   "the probe fits at 0.01 in 150 steps, not at 0.001 (CTC070 budget): the learning rate is too low"}
    high = conclude([_probe_run(0.1, 400), _probe_run(1.0, verdict="CTC072 diverged"), _probe_run(10.0)], 1.0)
    assert high["verdict"] == "too_high" and "not at 1 (CTC072 diverged)" in high["conclusion"]
    none = conclude([_probe_run(1e-4), _probe_run(1e-3), _probe_run(1e-2)], 1e-3)
    assert none["verdict"] == "not_lr" and "none of 0.0001, 0.001, 0.01" in none["conclusion"]
    crawling = conclude([_probe_run(1e-7, best=5.8), _probe_run(1e-6, best=5.1), _probe_run(1e-5, best=0.78)], 1e-6)
    assert crawling["verdict"] == "too_low" and crawling["suggested_lr"] == 1e-4 and not crawling["fitted_at_suggested"]
    assert "the best loss falls as the learning rate grows (5.8 at 1e-07, 5.1 at 1e-06, 0.78 at 1e-05)" in crawling["conclusion"]
    fine = conclude([_probe_run(1e-4), _probe_run(1e-3, 300), _probe_run(1e-2, 100)], 1e-3)
    assert fine["verdict"] == "fine" and "(fastest at 0.01 in 100 steps)" in fine["conclusion"]


def test_probe_processes_only_with_cores_to_spare_and_a_spec_to_load(monkeypatch):
    import os

    assert probe_jobs(3, spec_loadable=False) == 1 and probe_jobs(3, spec_loadable=True) == 3
    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: {0, 1}, raising=False)
    assert probe_jobs(None, spec_loadable=True) == 1
    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: set(range(8)), raising=False)
    assert probe_jobs(None, spec_loadable=True) == 2


def test_the_probe_turns_into_the_diagnosis(module):
    options = OverfitOptions(lr=1e-4, steps=150, lr_probe=True)
    findings, _, result = run_overfit(load_setup(f"{module}:build"), "tiny", options)
    probe = result.lr_probe
    assert [run["lr"] for run in probe["runs"]] == [1e-5, 1e-4, 1e-3]
    assert probe["verdict"] == "too_low" and probe["suggested_lr"] == 1e-3
    (found,) = [item for item in findings if item.code.startswith("CTC07")]
    assert "the learning rate is too low" in found.message and found.hint.startswith("Use --lr 0.001")


# ----------------------------------------------------------------------------- the small-batch mode


def test_a_small_batch_that_fits_gets_its_own_verdict(module):
    _, _, result = run_overfit(load_setup(f"{module}:build"), "tiny", OverfitOptions(samples=tuple(range(8)), steps=400))
    assert result.fitted
    assert result.batch["fitted"] == [True] * 8 and None not in result.batch["first_exact_step"]
    assert result.batch["verdict"].startswith("all 8 samples fit together; the slowest, sample ")


def test_a_batch_short_of_its_budget_is_ctc073_and_the_worst_sample_is_tried_alone(module):
    findings, _, result = run_overfit(load_setup(f"{module}:build"), "tiny", OverfitOptions(samples=tuple(range(8)), steps=60))
    (found,) = findings
    assert found.code == "CTC073" and result.diagnosis == "CTC073"
    alone = result.batch["alone"]
    assert alone["fitted"] and alone["sample"] in result.samples
    assert f"sample {alone['sample']} fits alone in {alone['steps_to_fit']} steps but not in the batch of 8" in found.message
    assert "Adam normalises the step size, so keep its learning rate" in found.hint


def test_verdict_for_a_batch_when_nothing_could_be_tried():
    result = _result([1.0] * 50)
    result.samples, result.targets = (0, 1), ("ab", "cd")
    verdict = classify_failure(result.losses, 0.5, False, None, samples=2)
    assert verdict == Verdict("CTC073", "plateau")
