"""Trial 27, #1: a smoke test (20 steps) or a run stopped early in the blank phase got "error CTC212 the blank plateau
never ends" (or CTC221, blank collapse) from the monitor's close() and `ctcdoctor logs`, exit 1, after the live
verdict had said "it becomes CTC221 past step 2,010 (patience 2,000)". A finished run keeps the budget stated live:
shorter than it, the run is too short to judge (CTC220, info, saying how long judging takes); past it, a collapse."""
from __future__ import annotations

import io
import json

import torch
from typer.testing import CliRunner

from ctcdoctor.cli import app
from ctcdoctor.training import monitor_format
from ctcdoctor.training.monitor import Monitor

BLANK = {"cer": 1.0, "blank_ratio": 1.0, "blank_prob": 0.72, "empty_rate": 1.0, "entropy": 1.2, "evaluated": 32.0,
         "infeasible": 0.0, "nonblank": 0.0, "label_density": 0.0, "nonfinite_outputs": 0.0, "alt_decode_rate": 1.0}
GARBAGE = {**BLANK, "cer": 0.97, "blank_ratio": 0.0, "blank_prob": 0.02, "empty_rate": 0.0, "entropy": 3.6, "nonblank": 1.0}


def write_run(path, steps, every=10, patience=2000):
    """The trial's smoke_big run, any length: the loss falls from 14.8 to the blank level (4.1) by step 8 and stays;
    decodes are empty from the evaluation at step `every` on; 37 classes, reduction mean; the run is over."""
    lines = [monitor_format.header(blank=0, patience=patience, every=every, trainer="loop", classes=37, label_length=5.5,
                                   reduction="mean", optimizer="Adadelta")]
    for step in range(1, steps + 1):
        loss = 14.8 - (14.8 - 4.1) * min(step - 1, 7) / 7
        values = {"lr": 1.0, "grad_norm": 2.6}
        if step == 1 or step % every == 0:
            values.update(GARBAGE if step == 1 else BLANK)
        lines.append(monitor_format.record(step, loss + 0.02 * ((step * 7) % 5 - 2), **values))
    lines[-1] = monitor_format.finished(lines[-1])
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def logs_json(path):
    result = CliRunner().invoke(app, ["logs", str(path), "--format", "json"])
    return result.exit_code, {item["code"]: item for item in json.loads(result.stdout)["findings"]}


def test_a_finished_20_step_smoke_test_on_the_blank_plateau_is_too_short_to_judge_not_an_error(tmp_path):
    code, findings = logs_json(write_run(tmp_path / "metrics.jsonl", 20))
    assert code == 0, findings  # was 1: "error CTC212 the blank plateau never ends ... over steps 8-20"
    assert "CTC212" not in findings and "CTC221" not in findings
    info = findings["CTC220"]
    assert info["severity"] == "info"
    assert "Too short to judge" in info["message"]
    assert "once it lasts 2,000 steps (patience 2,000), and this one lasted 10" in info["message"]
    assert "judging it takes a run to step 2,010" in info["message"]
    assert info["hint"].startswith("Train longer")


def test_a_run_stopped_early_with_a_smaller_budget_is_judged_by_that_budget(tmp_path):
    code, findings = logs_json(write_run(tmp_path / "metrics.jsonl", 96, every=20, patience=50))
    assert code == 1 and findings["CTC221"]["severity"] == "error"
    assert "past the budget of 50 steps" in findings["CTC221"]["message"]


def test_a_genuinely_long_run_stuck_on_the_blank_plateau_is_still_an_error(tmp_path):
    code, findings = logs_json(write_run(tmp_path / "metrics.jsonl", 2400, every=100))
    assert code == 1
    assert findings["CTC221"]["severity"] == "error" and "past the budget of 2,000 steps" in findings["CTC221"]["message"]
    assert "CTC220" not in findings


def test_the_monitor_close_says_what_it_said_live():
    stream = io.StringIO()
    monitor = Monitor(every=10, stream=stream, optimizer="Adam")
    classes, frames, samples = 10, 40, 8
    targets = torch.randint(1, classes, (samples, 3), generator=torch.Generator().manual_seed(0))
    blank_heavy = torch.full((frames, samples, classes), -4.0)
    blank_heavy[..., 0] = 4.0  # blank wins every frame: decodes empty
    for step in range(1, 97):
        loss = max(60.0 - 2.0 * step, 51.0)  # down to the blank level by step 5, then flat (the trial's ESPnet run)
        monitor.update(step, loss, log_probs=blank_heavy.log_softmax(-1), targets=targets,
                       target_lengths=torch.full((samples,), 3), lr=1e-3)
    assert "it becomes CTC221 (blank collapse) past step 2,001 (patience 2,000)" in stream.getvalue()
    report = monitor.close()
    assert not [found for found in report.findings if found.severity.value == "error"], \
        [found.message for found in report.findings]
    (info,) = [found for found in report.findings if found.code == "CTC220"]
    assert "judging it takes a run to step 2,001" in info.message


def test_a_short_finished_run_with_uniform_outputs_is_too_short_to_judge_not_an_error(tmp_path):
    # the same contradiction for CTC224: 60 steps near uniform at a normal rate were an error at the close
    monitor = Monitor(every=10, stream=io.StringIO(), optimizer="Adam", metrics_path=tmp_path / "metrics.jsonl")
    classes, frames, samples = 10, 40, 8
    targets = torch.randint(1, classes, (samples, 3), generator=torch.Generator().manual_seed(0))
    uniform = torch.zeros(frames, samples, classes).log_softmax(-1)
    for step in range(1, 61):
        monitor.update(step, 9.5, log_probs=uniform, targets=targets, target_lengths=torch.full((samples,), 3), lr=1e-3)
    report = monitor.close()
    assert not [found for found in report.findings if found.severity.value == "error"], \
        [found.message for found in report.findings]
    code, findings = logs_json(tmp_path / "metrics.jsonl")
    assert code == 0 and findings["CTC224"]["severity"] == "info"
    assert "judging it takes a run to step 2,001" in findings["CTC224"]["message"]
    assert findings["CTC224"]["hint"].startswith("Train longer")
