"""Third fresh-eyes trial, #4: a finished 20-step Hugging Face Trainer run (the monitor's JSONL) whose outputs had just
reached the early blank phase while its loss still fell got CTC221, a blank collapse, from `logs` (and from the
monitor's close()). A run that ended still learning is too short to judge: it is CTC220 with "train longer", and
neither CTC221 nor the loss view of a collapse (CTC212). Trial 27: a finished run whose loss went flat in the blank
phase before its budget ran out is too short to judge too."""
from __future__ import annotations

import io

import torch
from typer.testing import CliRunner

from ctcdoctor.cli import app
from ctcdoctor.training import diagnose_run, monitor_format
from ctcdoctor.training.monitor import Monitor

#: The trial's run (hf_ok): AdamW 1e-3 decaying linearly to 0 over 20 steps, 10 classes, evaluated every 5 steps.
TRIAL_LOSS = (83.52, 81.84, 79.5, 77.65, 75.04, 72.92, 70.59, 69.17, 67.1, 65.51, 64.3, 62.75, 61.46, 60.87, 60.0, 59.07,
              58.57, 58.05, 57.64, 57.82)
GARBAGE = {"cer": 33.6, "wer": 10.75, "blank_ratio": 0.045, "blank_prob": 0.1, "empty_rate": 0.0, "entropy": 2.3}
EARLY = {"cer": 6.3, "wer": 1.1, "blank_ratio": 0.82, "blank_prob": 0.13, "empty_rate": 0.0, "entropy": 2.29}
BLANK = {"cer": 1.0, "wer": 1.0, "blank_ratio": 1.0, "blank_prob": 0.2, "empty_rate": 1.0, "entropy": 2.25}


def write_trial_run(path, losses=TRIAL_LOSS, blank=BLANK):
    lines = [monitor_format.header(blank=0, patience=2000, every=5, trainer="huggingface", classes=10, label_length=2.875,
                                   reduction="mean", optimizer="AdamW")]
    for step, loss in enumerate(losses, 1):
        values = {"lr": 1e-3 * (1 - step / len(losses)), "grad_norm": 50.0 + 5 * step}
        if step == 1 or step % 5 == 0:
            outputs = GARBAGE if step == 1 else EARLY if step == 5 else blank
            values.update(evaluated=8.0, infeasible=0.0, nonblank=1 - outputs["blank_ratio"], label_density=0.025,
                          nonfinite_outputs=0.0, alt_decode_rate=1.0, **outputs)
        lines.append(monitor_format.record(step, loss, **values))
    lines[-1] = monitor_format.finished(lines[-1])
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_logs_on_a_finished_20_step_run_still_falling_says_too_short_to_judge_not_blank_collapse(tmp_path):
    result = CliRunner().invoke(app, ["logs", str(write_trial_run(tmp_path / "metrics.jsonl"))])
    assert result.exit_code == 0, result.output  # was exit 1 on "✖ error CTC221 blank collapse"
    assert "CTC221" not in result.output and "CTC212" not in result.output
    assert "ℹ info    CTC220" in result.output
    assert "the run ended in the early blank phase, too short to judge" in result.output
    assert "but the loss was still falling" in result.output and "not a blank collapse" in result.output
    assert "Train longer" in result.output


def test_the_finding_carries_the_numbers_of_the_fall(tmp_path):
    result = diagnose_run(write_trial_run(tmp_path / "metrics.jsonl"))
    (info,) = [found for found in result.findings if found.code == "CTC220"]
    assert info.evidence["still_falling"] and info.evidence["finished"]
    assert "63.5 at step 11 to 57.7 at the end" in info.message
    assert not [found for found in result.findings if found.severity.value != "info"]


def test_the_same_run_gone_flat_in_the_blank_phase_is_too_short_to_judge(tmp_path):
    # trial 27: 10 flat steps under a 2,000-step budget are no collapse at the close either (it was CTC221)
    flat = TRIAL_LOSS[:10] + (65.5,) * 10
    sure = {**BLANK, "entropy": 0.9}  # blank certain, not near uniform (that would be CTC224)
    result = diagnose_run(write_trial_run(tmp_path / "metrics.jsonl", flat, sure))
    codes = {found.code: found.severity.value for found in result.findings}
    assert codes.get("CTC220") == "info" and "CTC221" not in codes and "CTC212" not in codes


def test_the_monitor_says_the_same_at_close():
    monitor = Monitor(every=5, stream=io.StringIO(), optimizer="AdamW", trainer="huggingface")
    classes, frames, samples = 10, 40, 8
    targets = torch.randint(1, classes, (samples, 3), generator=torch.Generator().manual_seed(0))
    blank_heavy = torch.full((frames, samples, classes), -4.0)
    blank_heavy[..., 0] = 4.0  # blank wins every frame: decodes empty
    for step, loss in enumerate(TRIAL_LOSS, 1):
        monitor.update(step, loss, log_probs=blank_heavy.log_softmax(-1), targets=targets,
                       target_lengths=torch.full((samples,), 3), lr=1e-3 * (1 - step / 20))
    report = monitor.close()
    codes = {found.code for found in report.findings}
    assert "CTC221" not in codes and "CTC220" in codes, [found.message for found in report.findings]
