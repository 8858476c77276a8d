"""Third fresh-eyes trial, CTC030: losses divided by a batch size, as public training code writes them.

#1 georgeretsi/HTR-best-practices divides a summed CTC loss by its configured batch size, a fixed number; on the one
sample overfit trains (N = 1) that is no reduction the audit knew, so overfit reported an unexplained CTC030 error.
#2 A crnn.pytorch port to torch.nn.CTCLoss() kept train.py's "/ batch_size" on top of the default mean and lost
log_softmax: check's CTC030 said nothing known explains the value, where overfit (N = 1) named the raw logits.
The set-ups are tests/overfit_cases/trial3.py (a per-frame MLP, a DataLoader of batch size 4).
"""
from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from ctcdoctor.cli import app

runner = CliRunner()
SPEC = Path(__file__).parent / "overfit_cases" / "trial3.py"


def _report(command: str, build: str, *args: str) -> tuple[int, dict]:
    result = runner.invoke(app, [command, f"{SPEC}:{build}", *args, "--format", "json"])
    assert result.exit_code in (0, 1), result.output
    return result.exit_code, json.loads(result.stdout)


def _ctc030(report: dict) -> dict:
    (found,) = [item for item in report["findings"] if item["code"] == "CTC030"]
    return found


def test_overfit_explains_a_sum_divided_by_the_loaders_fixed_batch_size_as_a_reduction():
    code, report = _report("overfit", "build_htr", "--sample", "0", "--steps", "300")
    found = _ctc030(report)
    assert found["severity"] == "info", found["message"]
    assert found["evidence"]["reduction"] == "sum_by_loader_batch" and found["evidence"]["divisor"] == 4
    assert 'reduction="sum" divided by 4, the loader\'s batch size' in found["message"]
    assert "not this batch's 1 sample" in found["message"]
    assert code == 0 and report["result"]["fitted"]


def test_overfit_says_what_the_fixed_divisor_means_for_the_learning_rate():
    _, adam = _report("overfit", "build_htr", "--sample", "0", "--steps", "300")
    assert "Adam normalises its step, so the learning rate needs no change" in _ctc030(adam)["message"]
    _, sgd = _report("overfit", "build_htr_sgd", "--sample", "0", "--steps", "20")
    message = _ctc030(sgd)["message"]
    assert "SGD's steps on this 1 sample are 4x smaller than on a full batch of 4" in message
    assert "--lr 0.4" in message


def test_check_keeps_the_full_batch_reading_of_the_same_criterion():
    code, report = _report("check", "build_htr", "--select", "CTC03")
    found = _ctc030(report)
    assert found["severity"] == "info" and found["evidence"]["reduction"] == "batch_mean" and code == 0


def test_check_names_raw_logits_and_the_extra_division_by_the_batch_size_at_once():
    code, report = _report("check", "build_ported", "--select", "CTC03")
    found = _ctc030(report)
    assert code == 1 and found["severity"] == "error"
    assert found["evidence"]["mistake"] == "raw_logits" and found["evidence"]["reduction"] == "mean_by_batch"
    assert "two differences at once, (1) the loss receives raw logits, not log-probabilities, and (2) " in found["message"]
    assert "the loss receives raw logits, not log-probabilities" in found["message"]
    assert "divided again by the batch size 4" in found["message"]
    assert "log_softmax(-1)" in found["hint"] and "/ batch_size" in found["hint"]


def test_overfit_and_check_name_the_same_first_mistake_of_the_ported_criterion():
    _, checked = _report("check", "build_ported", "--select", "CTC03")
    _, trained = _report("overfit", "build_ported", "--sample", "0", "--steps", "20")
    assert _ctc030(checked)["evidence"]["mistake"] == _ctc030(trained)["evidence"]["mistake"] == "raw_logits"


def test_a_mean_divided_again_by_the_batch_size_alone_is_a_reduction_note():
    code, report = _report("check", "build_double_mean", "--select", "CTC03")
    found = _ctc030(report)
    assert found["severity"] == "info" and code == 0
    assert found["evidence"]["mistake"] == "reduction" and found["evidence"]["reduction"] == "mean_by_batch"
    assert "4x smaller" in found["message"]
