"""`ctcdoctor overfit` on the command line: bad settings are exit 2 before any work, the work is bounded
(--timeout, sample caps), CI logs get plain progress lines, and the LR probe can run in processes."""
from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest
from overfitkit import write_user_module
from typer.testing import CliRunner

from ctcdoctor.cli import app

runner = CliRunner()


@pytest.fixture()
def module(tmp_path):
    return write_user_module(tmp_path)


@pytest.mark.parametrize("value", ["-1", "nan", "inf", "0"])
def test_a_learning_rate_that_cannot_train_is_exit_2(module, value):
    result = runner.invoke(app, ["overfit", str(module), "--lr", value])
    assert result.exit_code == 2, result.output
    assert "a learning rate must be a finite number above 0" in result.output


def test_an_optimizer_factory_that_returns_none_is_exit_2(module):
    result = runner.invoke(app, ["overfit", f"{module}:build_none_optimizer"])
    assert result.exit_code == 2, result.output
    assert "Setup.optimizer(params) returned None, not an optimizer" in result.output


def test_a_huge_sample_range_is_refused_before_it_is_expanded(module):
    result = runner.invoke(app, ["overfit", str(module), "--samples", "0-100000000"])
    assert result.exit_code == 2, result.output
    assert "names 100,000,001 samples; at most 64" in result.output


def test_a_sample_past_what_an_infinite_loader_reads_is_exit_2(module):
    result = runner.invoke(app, ["overfit", f"{module}:build_infinite", "--sample", "1000000"])
    assert result.exit_code == 2, result.output
    assert "is not among the first 10,000 samples the loader yields" in result.output
    fine = runner.invoke(app, ["overfit", f"{module}:build_infinite", "--sample", "9", "--steps", "400"])
    assert fine.exit_code == 0, fine.output


def test_timeout_ends_training_with_exit_2_naming_it(module):
    result = runner.invoke(app, ["overfit", str(module), "--timeout", "6", "--steps", "1000000", "--patience", "1000000"])
    assert result.exit_code == 2, result.output
    # The deadline lands in a training step or in the eval-mode decode between steps: both name the step.
    text = " ".join(result.output.split())
    assert re.search(r"ran past --timeout 6 s while (the eval-mode decode after )?training step \d+ of 1000000 on sample 0", text), text


def test_seed_is_the_shared_option_and_lands_in_the_result(module):
    result = runner.invoke(app, ["overfit", str(module), "--seed", "3", "--steps", "400", "--format", "json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["result"]["seed"] == 3


def test_seed_is_applied_before_build(module):
    def first_loss(seed: str) -> float:
        result = runner.invoke(app, ["overfit", f"{module}:build_unseeded", "--seed", seed, "--steps", "10", "--format", "json"])
        return json.loads(result.stdout)["result"]["loss"]["first"]

    assert first_loss("1") == first_loss("1") != first_loss("2")


def test_plain_progress_lines_when_stderr_is_not_a_terminal(module):
    result = runner.invoke(app, ["overfit", str(module), "--steps", "400", "--progress-every", "20", "--format", "json"])
    assert result.exit_code == 0, result.output
    lines = [line for line in result.stderr.splitlines() if line.startswith("overfit: step ")]
    assert lines and lines[0].startswith("overfit: step 20/400 loss ") and " CER " in lines[0] and " decode '" in lines[0]
    assert "overfit: training…" in result.stderr
    json.loads(result.stdout)  # the JSON stays alone on stdout


def test_the_lr_probe_in_two_processes_matches_the_runs_in_sequence(module):
    base = ["overfit", str(module), "--lr", "1e-4", "--steps", "150", "--lr-probe", "--format", "json"]
    sequential = json.loads(runner.invoke(app, [*base, "--probe-jobs", "1"]).stdout)["result"]["lr_probe"]
    # processes: through the real command line (spawned children import the spec again)
    spawned = subprocess.run([sys.executable, "-m", "ctcdoctor", *base, "--probe-jobs", "2"], capture_output=True, text=True,
                             timeout=300)
    assert spawned.returncode == 1, spawned.stderr
    parallel = json.loads(spawned.stdout)["result"]["lr_probe"]
    assert parallel["how"] == "in 2 processes" and sequential["how"] == "in sequence, in this process"
    for one, other in zip(sequential["runs"], parallel["runs"]):
        assert (one["lr"], one["fitted"], one["steps_to_fit"]) == (other["lr"], other["fitted"], other["steps_to_fit"])
    assert parallel["verdict"] == sequential["verdict"] == "too_low"


def test_the_text_report_shows_the_probe_and_the_small_batch(module):
    probe = runner.invoke(app, ["overfit", str(module), "--lr", "1e-4", "--steps", "150", "--lr-probe"])
    assert "lr 0.001" in probe.stdout and "LR probe        the probe fits at 0.001" in probe.stdout
    assert "← this run" in probe.stdout
    batch = runner.invoke(app, ["overfit", str(module), "--samples", "0-3", "--steps", "400"])
    assert batch.exit_code == 0, batch.output
    assert "small batch     all 4 samples fit together" in batch.stdout
