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
from ctchelpers import invoke_text_and_json

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


def test_a_timeout_during_training_reports_the_static_findings_and_the_verdict_on_the_steps_run(module):
    """--timeout that lands in training cuts it there: the static findings known before training (CTC027: a ReLU on the
    output) and the verdict on the steps run (CTC070: nothing reaches the weights) are reported, with the cut named."""
    result = runner.invoke(app, ["overfit", f"{module}:build_slow_dead_head", "--timeout", "6", "--steps", "100000",
                                 "--format", "json"])
    assert result.exit_code == 1, result.output  # the findings decide it, as for any report
    document = json.loads(result.stdout)
    codes = [item["code"] for item in document["findings"]]
    assert "CTC027" in codes and "CTC070" in codes, codes
    outcome = document["result"]
    cut = outcome["timed_out"]
    assert cut["timeout"] == 6 and cut["budget"] == 100000 and 10 < cut["step"] == outcome["steps"] < 100000, cut
    assert cut["still_falling"] is False  # a flat loss: the verdict does not wait for more steps
    # (0.1 s a step: cut long before step 100, where a dead network stops by itself, ctcdoctor.overfit.loop.DEAD_STEPS)
    note = f"training was cut by --timeout 6 s at step {cut['step']} of 100000: the verdict is judged on the {cut['step']} steps run"
    assert outcome["stopped_early"] == note and note in outcome["notes"]
    assert outcome["history"][-1]["step"] == cut["step"]  # the cut step is evaluated, as a budget's last step is
    verdict = next(item for item in document["findings"] if item["code"] == "CTC070")
    assert verdict["evidence"]["kind"] == "dead" and verdict["evidence"]["timed_out"] == cut
    assert f"Training was cut by --timeout 6 s at step {cut['step']} of 100000: judged on the steps run." in verdict["message"]


def test_a_run_cut_while_still_learning_is_provisional_in_the_text_report(module):
    result = runner.invoke(app, ["overfit", f"{module}:build_slow_learner", "--timeout", "4", "--steps", "100000"])
    assert result.exit_code == 1, result.output
    text = " ".join(result.stdout.split())
    assert "did not fit (CTC070)" in text, text
    step = re.search(r"training was cut by --timeout 4 s at step (\d+) of 100000", text)
    assert step and 10 < int(step.group(1)) < 100000, text
    assert "the loss was still falling, so it is provisional: rerun with a larger --timeout or fewer --steps" in text
    assert "so this verdict is provisional" in text and "Rerun with a larger --timeout or fewer --steps" in text
    assert "ran past --timeout" not in result.output


def test_a_timeout_while_loading_the_spec_is_exit_2_naming_the_phase(module):
    result = runner.invoke(app, ["overfit", f"{module}:build_slow_to_load", "--timeout", "2"])
    assert result.exit_code == 2, result.output
    text = " ".join(result.output.split())
    assert re.search(r"ran past --timeout 2 s while loading \S*tinyctc.py:build_slow_to_load", text), text


def test_a_report_that_outlasts_the_grace_after_the_cut_is_exit_2_naming_both(module, monkeypatch):
    import time

    import ctcdoctor.load.limits as limits
    import ctcdoctor.overfit.train as train_module

    monkeypatch.setattr(limits, "GRACE_SECONDS", 1.0)
    monkeypatch.setattr(limits, "GRACE_SHARE", 0.0)
    final_state = train_module.final_state

    def slow_final_state(*args, **kwargs):
        time.sleep(5)
        return final_state(*args, **kwargs)

    monkeypatch.setattr(train_module, "final_state", slow_final_state)
    result = runner.invoke(app, ["overfit", f"{module}:build_slow_learner", "--timeout", "3", "--steps", "100000"])
    assert result.exit_code == 2, result.output
    text = " ".join(result.output.split())
    assert re.search(r"ran past --timeout 3 s and the 1 s granted to report after training step \d+ of 100000 on sample 0 "
                     r"was cut while the final decode \(eval mode\) after training step \d+", text), text


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


PROBE = ["--lr", "1e-4", "--steps", "150", "--lr-probe"]


@pytest.fixture(scope="module")
def probe_module(tmp_path_factory):
    return write_user_module(tmp_path_factory.mktemp("probe"))


@pytest.fixture(scope="module")
def probe_in_sequence(probe_module):
    """The LR probe run in this process: its text report and its JSON document, from one run (two tests read it)."""
    return invoke_text_and_json(["overfit", str(probe_module), *PROBE, "--probe-jobs", "1"])


def test_the_lr_probe_in_two_processes_matches_the_runs_in_sequence(probe_module, probe_in_sequence):
    base = ["overfit", str(probe_module), *PROBE, "--format", "json"]
    sequential = probe_in_sequence[1]["result"]["lr_probe"]
    # processes: through the real command line (spawned children import the spec again)
    spawned = subprocess.run([sys.executable, "-m", "ctcdoctor", *base, "--probe-jobs", "2"], capture_output=True, text=True,
                             timeout=300)
    assert spawned.returncode == 1, spawned.stderr
    parallel = json.loads(spawned.stdout)["result"]["lr_probe"]
    assert parallel["how"] == "in 2 processes" and sequential["how"] == "in sequence, in this process"
    for one, other in zip(sequential["runs"], parallel["runs"]):
        assert (one["lr"], one["fitted"], one["steps_to_fit"]) == (other["lr"], other["fitted"], other["steps_to_fit"])
    assert parallel["verdict"] == sequential["verdict"] == "too_low"


def test_the_text_report_shows_the_probe_and_the_small_batch(module, probe_in_sequence):
    probe = probe_in_sequence[0]
    assert "lr 0.001" in probe.stdout and "LR probe        the probe fits at 0.001" in probe.stdout
    assert "← this run" in probe.stdout
    batch = runner.invoke(app, ["overfit", str(module), "--samples", "0-3", "--steps", "400"])
    assert batch.exit_code == 0, batch.output
    assert "small batch     all 4 samples fit together" in batch.stdout
