"""Trial 27, #2 and #3: what the monitor's findings say about the run they judge.

#2: the blank-plateau finding (CTC212) said "(an estimate from --classes/--label-length)" inside a training loop, where
those `ctcdoctor logs` flags mean nothing: the monitor measured C and U itself. #3: an Adam lr=1 run whose loss rose
from its first step read "best 727 at step 1 (smoothed; the lowest single value was 13.5)", and its fix said "clip
gradients (clip_grad_norm_(params, 1.0))" although the loop clipped at 5 and gave the monitor the optimizer and
clip_grad_norm_'s result.
"""
from __future__ import annotations

import io
import json

import torch
from typer.testing import CliRunner

from ctcdoctor.cli import app
from ctcdoctor.training import monitor_format
from ctcdoctor.training.monitor import Monitor

#: The trial's run_adam_lr1: loss and clip_grad_norm_'s result (the norm before clipping at 5), steps 1-25.
ADAM_LR1 = ((13.46, 2.2), (1440.9, 2540.6), (1922.7, 727.1), (8778.3, 4133.7), (9926.0, 4423.3), (10749.3, 5290.4),
            (12773.9, 4462.1), (19081.1, 5374.2), (22862.3, 4515.0), (29704.4, 4219.7), (30220.7, 4466.9),
            (29906.8, 3440.4), (20944.9, 2858.9), (14152.5, 2208.3), (6128.0, 1794.6), (9150.9, 1390.6),
            (6778.5, 1592.1), (9014.0, 2335.3), (7876.4, 546.2), (5544.5, 1723.9), (9453.0, 1996.1), (3939.0, 2606.2),
            (8651.6, 1887.7), (11241.3, 544.1), (9080.7, 585.3))


def logs_json(*args):
    result = CliRunner().invoke(app, ["logs", *map(str, args), "--format", "json"])
    return result.exit_code, {item["code"]: item for item in json.loads(result.stdout)["findings"]}


def blank_level(step):
    """Down from 14.8 to the blank level of 37 classes (ln 36 = 3.58 per label) by step 21, then flat."""
    return 14.8 - (14.8 - 3.7) * min(step - 1, 20) / 20 + 0.02 * ((step * 7) % 5 - 2)


def test_the_monitor_names_its_own_class_count_not_the_logs_flags(tmp_path):
    stream = io.StringIO()
    monitor = Monitor(every=50, classes=37, reduction="mean", patience=100, stream=stream, optimizer="Adam",
                      metrics_path=tmp_path / "metrics.jsonl")
    for step in range(1, 401):
        monitor.update(step, blank_level(step), lr=1e-3)
    (found,) = [item for item in monitor.close().findings if item.code == "CTC212"]
    assert "(an estimate from the monitor's C=37 classes)" in found.message
    assert "--classes" not in stream.getvalue() and "--label-length" not in stream.getvalue()
    code, findings = logs_json(tmp_path / "metrics.jsonl")  # logs on the monitor's file: the same words
    assert code == 1 and findings["CTC212"]["message"] == found.message


def test_logs_given_the_flags_names_the_flags(tmp_path):
    path = tmp_path / "log.csv"
    path.write_text("step,loss\n" + "".join(f"{step},{blank_level(step)}\n" for step in range(1, 401)), encoding="utf-8")
    code, findings = logs_json(path, "--classes", 37, "--reduction", "mean")
    assert code == 1 and "(an estimate from --classes/--label-length)" in findings["CTC212"]["message"]


def write_adam_lr1(path, grad_norms):
    lines = [monitor_format.header(blank=0, patience=2000, every=25, trainer="loop", classes=37, label_length=6.0,
                                   reduction="mean", optimizer="Adam")]
    lines += [monitor_format.record(step, loss, lr=1.0, grad_norm=norm)
              for step, ((loss, _), norm) in enumerate(zip(ADAM_LR1, grad_norms), 1)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_a_loss_that_rose_from_its_first_step_is_told_from_that_step_not_a_smoothed_best(tmp_path):
    code, findings = logs_json(write_adam_lr1(tmp_path / "metrics.jsonl", [norm for _, norm in ADAM_LR1]))
    message = findings["CTC203"]["message"]
    assert code == 1
    assert message.startswith("the loss diverged from its first steps: it was 13.5 at step 1 and rose from step 2 to "
                              "9.08e+03 at the end (675x the first value)")
    assert "727" not in message and "smoothed" not in message


def test_the_monitor_that_sees_clipped_gradients_does_not_advise_clipping():
    weights = torch.nn.Parameter(torch.zeros(64))
    optimizer = torch.optim.Adam([weights], lr=1.0)
    monitor = Monitor(every=5, stream=io.StringIO(), optimizer=optimizer, stop_on=None)
    generator = torch.Generator().manual_seed(0)
    for step, (loss, norm) in enumerate(ADAM_LR1, 1):
        grad = torch.randn(64, generator=generator)
        weights.grad = grad * (norm / grad.norm())  # the backward pass's gradients, then the loop's clipping at 5
        given = torch.nn.utils.clip_grad_norm_([weights], 5.0)
        optimizer.step()
        monitor.update(step, loss, lr=1.0, grad_norm=given)
    (found,) = [item for item in monitor.close().findings if item.code == "CTC203"]
    assert "clip_grad_norm_(params, 1.0)" not in found.hint
    assert "keep the gradient clipping you have (the gradients were already clipped to a norm of about 5" in found.hint


def test_without_the_optimizer_the_monitor_cannot_tell_and_still_advises_clipping():
    monitor = Monitor(every=5, stream=io.StringIO(), optimizer="Adam", stop_on=None)
    for step, (loss, norm) in enumerate(ADAM_LR1, 1):
        monitor.update(step, loss, lr=1.0, grad_norm=norm)
    (found,) = [item for item in monitor.close().findings if item.code == "CTC203"]
    assert "clip gradients (clip_grad_norm_(params, 1.0))" in found.hint


def test_logs_reads_a_grad_norm_bounded_by_a_cap_as_clipped(tmp_path):
    bounded = [min(norm, 5.0) for _, norm in ADAM_LR1]  # a loop that logs the norm after clipping
    code, findings = logs_json(write_adam_lr1(tmp_path / "metrics.jsonl", bounded))
    hint = findings["CTC203"]["hint"]
    assert "clip_grad_norm_(params, 1.0)" not in hint
    assert "keep the gradient clipping you have (the gradients were already clipped to a norm of about 5:" in hint
