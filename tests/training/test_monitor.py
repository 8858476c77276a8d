"""The training monitor fed from a plain loop: what it records, when it reads tensors back, its verdicts,
its files, and that `ctcdoctor logs` on its JSONL says what it said."""
from __future__ import annotations

import io
import json
import math

import pytest
import torch
import torch.nn.functional as F

from ctcdoctor.training import diagnose_run
from ctcdoctor.training.monitor import Monitor

T, N, C, S = 24, 8, 6, 4


def train(monitor: Monitor, steps: int, lr: float = 0.05, blank: int = 0, zero_infinity: bool = False,
          frames: torch.Tensor | None = None, nan_from: int | None = None) -> int:
    """Free logits trained with CTC on fixed random targets; returns the steps run."""
    torch.manual_seed(0)
    logits = torch.randn(T, N, C, requires_grad=True)
    optimizer = torch.optim.Adam([logits], lr=lr)
    labels = [c for c in range(C) if c != blank]
    targets = torch.tensor(labels)[torch.randint(0, len(labels), (N, S))]
    lengths = torch.full((N,), S)
    frames = frames if frames is not None else torch.full((N,), T)
    for step in range(1, steps + 1):
        log_probs = logits.log_softmax(-1)
        loss = F.ctc_loss(log_probs, targets, frames, lengths, blank=blank, zero_infinity=zero_infinity)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        shown = loss if nan_from is None or step < nan_from else loss * math.nan
        if monitor.update(step, shown, log_probs=log_probs, targets=targets, target_lengths=lengths,
                          output_lengths=frames, lr=lr):
            return step
    return steps


def quiet(**options) -> Monitor:
    return Monitor(echo=False, **options)


def test_a_healthy_run_writes_files_that_logs_reads_and_agrees_with(tmp_path):
    monitor = quiet(every=10, metrics_path=tmp_path / "m.jsonl", report_path=tmp_path / "r.json",
                    plot_path=tmp_path / "p.png", alphabet="abcde", patience=60)
    assert train(monitor, 150) == 150
    report = monitor.close()
    assert not [found for found in report.findings if found.severity.value == "error"]
    lines = (tmp_path / "m.jsonl").read_text().splitlines()
    assert json.loads(lines[0])["meta"] == {"format": "ctcdoctor-monitor", "version": 1, "blank": 0, "patience": 60,
                                            "every": 10, "trainer": "loop", "classes": C, "label_length": 4.0}
    # each record is written at its evaluation; close() writes the last one again, saying the run is over (for `logs`)
    assert len(lines) == 152 and [json.loads(line)["step"] for line in lines[1:]] == [*range(1, 151), 150]
    assert json.loads(lines[-1]) == {**json.loads(lines[-2]), "finished": True}
    evaluated = [json.loads(line) for line in lines[1:-1] if "cer" in json.loads(line)]
    assert [record["step"] for record in evaluated] == [1] + list(range(10, 151, 10))
    assert evaluated[-1]["cer"] < 0.1 < evaluated[0]["cer"]
    logs = diagnose_run(tmp_path / "m.jsonl")
    assert [found.to_dict() for found in logs.findings] == [found.to_dict() for found in report.findings]
    document = json.loads((tmp_path / "r.json").read_text())
    assert document["command"] == "monitor" and document["result"]["finished"] is True
    assert document["result"]["latest"]["samples"][0]["target"] == document["result"]["latest"]["samples"][0]["decoded"]
    assert (tmp_path / "p.png").stat().st_size > 10_000


def test_a_loss_that_goes_nan_is_stopped_at_the_next_evaluation(tmp_path):
    monitor = quiet(every=10, report_path=tmp_path / "r.json")
    assert train(monitor, 100, nan_from=23) == 30
    assert monitor.should_stop and monitor.stop_reason.code == "CTC200" and monitor.stopped_at == 30
    document = json.loads((tmp_path / "r.json").read_text())  # written at the evaluation, before close()
    assert document["result"]["stopped"] == {"step": 30, "code": "CTC200"} and document["summary"]["error"] == 1
    never = quiet(every=10, stop_on=None)
    assert train(never, 40, nan_from=23) == 40 and not never.should_stop
    assert "CTC200" in {found.code for found in never.findings}


def test_stop_on_warning_stops_on_hidden_infeasible_samples():
    frames = torch.full((N,), T)
    frames[0] = 2  # 4 labels in 2 frames: no alignment; zero_infinity=True makes its loss 0
    monitor = quiet(every=10, stop_on="warning")
    assert train(monitor, 50, zero_infinity=True, frames=frames) == 1
    assert monitor.stop_reason.code == "CTC223" and "zeroed (zero_infinity=True)" in monitor.stop_reason.message
    errors_only = quiet(every=10)
    assert train(errors_only, 30, zero_infinity=True, frames=frames) == 30


def test_a_blank_index_mismatch_between_loss_and_monitor():
    monitor = quiet(every=10, blank=0)
    stopped = train(monitor, 200, blank=C - 1)
    assert stopped < 200 and monitor.stop_reason.code == "CTC222"
    assert f"blank={C - 1} (the last class)" in monitor.stop_reason.message


@pytest.mark.parametrize(("dim", "axis"), [(0, "time"), (1, "batch")])
def test_log_softmax_over_the_wrong_axis_is_stopped_and_logs_agrees(tmp_path, dim, axis):
    torch.manual_seed(0)
    logits = torch.randn(T, N, C, requires_grad=True)
    targets, lengths = torch.randint(1, C, (N, S)), torch.full((N,), S)
    monitor = quiet(every=10, metrics_path=tmp_path / "m.jsonl")
    log_probs = logits.log_softmax(dim)  # the mistake: normalised over time or over the batch
    loss = F.ctc_loss(log_probs, targets, torch.full((N,), T), lengths)
    assert monitor.update(1, loss, log_probs=log_probs, targets=targets, target_lengths=lengths)
    assert monitor.stop_reason.code == "CTC225" and f"sum to 1 over the {axis} axis" in monitor.stop_reason.message
    assert f"log_softmax(dim=-1), not dim={dim}" in monitor.stop_reason.hint
    report = monitor.close()
    assert [found.code for found in diagnose_run(tmp_path / "m.jsonl").findings] == [found.code for found in report.findings]


def test_raw_logits_or_log_probabilities_over_the_classes_are_not_ctc225():
    torch.manual_seed(0)
    logits = torch.randn(T, N, C)
    targets, lengths = torch.randint(1, C, (N, S)), torch.full((N,), S)
    for given in (logits, logits.log_softmax(-1), logits.log_softmax(-1).double()):  # a loss that normalises itself
        monitor = quiet(every=10)
        assert not monitor.update(1, 3.0, log_probs=given, targets=targets, target_lengths=lengths)
        assert "CTC225" not in {found.code for found in monitor.findings}
    monitor = quiet(every=10)
    assert monitor.update(1, 3.0, log_probs=logits.softmax(-1), targets=targets, target_lengths=lengths)
    assert monitor.stop_reason.code == "CTC225" and "are probabilities" in monitor.stop_reason.message


class Counted:
    """A stand-in for a loss tensor that counts how often it is read back."""

    reads = 0

    def __init__(self, value: float) -> None:
        self.value = value

    def detach(self) -> torch.Tensor:
        Counted.reads += 1
        return torch.tensor(self.value)


def test_losses_are_read_back_only_at_evaluations():
    Counted.reads = 0
    monitor = quiet(every=50)
    for step in range(1, 50):
        monitor.update(step, Counted(3.0 / step), lr=torch.tensor(1e-3))
    assert Counted.reads == 1  # step 1 is evaluated
    monitor.update(50, Counted(0.06))
    assert Counted.reads == 50
    assert [monitor.wants_outputs(step) for step in (51, 99, 100, 150)] == [False, False, True, True]


def test_records_of_one_step_merge_and_late_values_join_their_step(tmp_path):
    monitor = quiet(every=5, metrics_path=tmp_path / "m.jsonl")
    for step in range(1, 11):
        monitor.update(step, 1.0 / step)
        if step == 7:
            monitor.update(7, 0.5, grad_norm=2.0)  # gradient accumulation: the same step again
    monitor.log(10, eval_loss=0.9)  # after the evaluation at step 10
    monitor.log(12, eval_cer=0.4)  # before step 12 is recorded
    monitor.update(11, 0.09)
    monitor.update(12, 0.08)
    monitor.log(3, eval_loss=1.0)  # already written: dropped
    monitor.close()
    records = {record["step"]: record for record in map(json.loads, (tmp_path / "m.jsonl").read_text().splitlines()[1:])}
    assert sorted(records) == list(range(1, 13))
    assert records[7] == {"step": 7, "loss": 0.5, "grad_norm": 2.0}
    assert records[10]["eval_loss"] == 0.9 and records[12]["eval_cer"] == 0.4 and "eval_loss" not in records[3]


def test_printed_lines_show_numbers_decodes_and_new_verdicts():
    stream = io.StringIO()
    monitor = Monitor(every=10, stream=stream, alphabet="abcde")
    train(monitor, 30, nan_from=15)
    monitor.close()
    text = stream.getvalue()
    assert "[ctcdoctor] step 10  loss" in text and "CER" in text and "target → decoded:" in text
    assert "✖ error CTC200" in text and "fix:" in text and "stop: CTC200 at step 20" in text
    live = io.StringIO()
    live_monitor = Monitor(every=10, stream=live, live=True, alphabet="abcde")
    train(live_monitor, 20)
    live_monitor.close()
    assert "ctcdoctor monitor" in live.getvalue() and "CER" in live.getvalue()


def test_ignore_and_select_filter_the_verdicts():
    ignored = quiet(every=10, ignore=["CTC200"])
    assert train(ignored, 40, nan_from=15) == 40
    selected = quiet(every=10, select=["CTC22"])
    assert train(selected, 40, nan_from=15) == 40 and not selected.findings


@pytest.mark.parametrize("options, message", [
    ({"every": 0}, "every=0"), ({"stop_on": "fatal"}, "stop_on='fatal'"), ({"layout": "CTN"}, "layout='CTN'"),
    ({"patience": -1}, "patience=-1"), ({"reduction": "avg"}, "reduction='avg'"),
])
def test_bad_options_name_the_problem(options, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        Monitor(**options)


def test_outputs_given_twice_is_a_warning_and_the_first_is_measured():
    monitor = quiet()
    with pytest.warns(UserWarning, match="give one of log_probs, logits, probs, outputs; measuring log_probs"):
        monitor.update(1, 1.0, log_probs=torch.zeros(2, 1, 3), logits=torch.zeros(2, 1, 3), targets=torch.tensor([[1]]),
                       target_lengths=torch.tensor([1]))
    assert monitor.evaluations == 1


def test_a_saved_monitor_report_renders_in_the_console(tmp_path):
    from rich.console import Console

    from ctcdoctor.render.console import render_console
    from ctcdoctor.render.from_json import report_from_json

    monitor = quiet(every=10, report_path=tmp_path / "r.json", metrics_path=tmp_path / "m.jsonl", alphabet="abcde")
    train(monitor, 40, nan_from=25)
    monitor.close()
    console = Console(record=True, width=200)
    render_console(report_from_json((tmp_path / "r.json").read_text()), console)
    text = console.export_text()
    assert "CTC200" in text and "stopped at step 30 on CTC200" in text
    assert "decodes" in text and "sample" in text and f"metrics {tmp_path / 'm.jsonl'}" in text
    assert "ctcdoctor monitor training run: 1 error" in text


def test_a_kept_loss_does_not_keep_its_autograd_graph():
    """Losses wait for the next evaluation to be read back; holding them attached would keep every step's graph."""
    monitor = quiet(every=100)
    weights = torch.randn(50, requires_grad=True)
    for step in range(1, 10):
        loss = (weights * step).square().mean()
        loss.backward()
        monitor.update(step, loss, grad_norm=weights.grad.norm())
    kept = [record[1] for record in monitor._pending]
    assert kept and not any(value.requires_grad or value.grad_fn is not None for value in kept)


def test_a_step_that_goes_back_warns_once_and_text_values_are_dropped_with_a_warning():
    monitor = quiet(every=100)
    monitor.update(10, 1.0)
    with pytest.warns(UserWarning, match="the step went back from 10 to 3"):
        monitor.update(3, 1.0)
    with pytest.warns(UserWarning, match="phase='warm-up'"):  # a monitor never raises into the training loop
        monitor.update(11, 1.0, phase="warm-up")
    assert "phase" not in monitor.run_data().scalars


def feed(monitor: Monitor, steps: int, head: torch.Tensor, loss: float, lr: float) -> None:
    """Steps of a run whose outputs never change: every frame's logits are `head` (C values)."""
    torch.manual_seed(0)
    targets = torch.randint(1, C, (N, S))
    log_probs = head.expand(T, N, C).log_softmax(-1)
    for step in range(1, steps + 1):
        level = loss + 8 * math.exp(-step / 5)  # the first fall from the start, then flat
        monitor.update(step, level * (1 + 0.01 * math.sin(step)), log_probs=log_probs, targets=targets,
                       target_lengths=torch.full((N,), S), output_lengths=torch.full((N,), T), lr=lr)


def test_a_short_finished_run_that_only_decodes_blanks_is_too_short_to_judge_at_close(tmp_path):
    # 60 steps under the default budget of 2,000: the early phase while it runs, and at the close too short to judge
    # (trial 27: a collapse at the close contradicted "it becomes CTC221 past step 2,010" said while it ran)
    monitor = quiet(every=10, metrics_path=tmp_path / "m.jsonl", optimizer="AdamW")
    feed(monitor, 60, torch.tensor([8.0] + [0.0] * (C - 1)), loss=2.1, lr=1e-3)
    assert {found.code for found in monitor.findings} == {"CTC220"}
    report = monitor.close()
    (info,) = [found for found in report.findings if found.code == "CTC220"]
    assert "Too short to judge" in info.message and "Train longer" in info.hint
    assert not [found for found in report.findings if found.severity.value != "info"]
    assert not [found for found in report.findings if "Nothing to fix" in found.hint]
    logs = diagnose_run(tmp_path / "m.jsonl")  # the JSONL says the run is over: logs judges it the same
    assert sorted(found.code for found in logs.findings) == sorted(found.code for found in report.findings)
    assert [found for found in logs.findings if found.code == "CTC220"][0].to_dict() == info.to_dict()


def test_a_short_run_at_a_tiny_learning_rate_is_told_to_raise_it_at_close():
    monitor = quiet(every=20, optimizer="Adam")
    feed(monitor, 200, torch.linspace(0, 0.01, C), loss=6.2, lr=1e-7)  # near uniform, blank not on top
    assert not monitor.findings  # within the budget while it runs
    report = monitor.close()
    (error,) = [found for found in report.findings if found.code == "CTC224"]
    assert error.hint.startswith("Raise the learning rate: 1.00e-07 is 1000x below Adam's usual 1e-4 to 1e-3 for CTC")
    assert "the learning rate was 1.00e-07 at most" in error.message
    assert "CTC213" not in {found.code for found in report.findings}  # "decay the rate on a plateau" would be wrong


def infeasible_at(monitor: Monitor, steps: int, bad_step: int, zero_infinity: bool) -> int:
    """Free logits trained with CTC; at `bad_step` sample 0 gets 2 frames for its 4 labels (CTC cannot align it)."""
    torch.manual_seed(0)
    logits = torch.randn(T, N, C, requires_grad=True)
    optimizer = torch.optim.Adam([logits], lr=0.05)
    targets, lengths = torch.randint(1, C, (N, S)), torch.full((N,), S)
    for step in range(1, steps + 1):
        frames = torch.full((N,), T)
        if step == bad_step:
            frames[0] = 2
        log_probs = logits.log_softmax(-1)
        loss = F.ctc_loss(log_probs, targets, frames, lengths, zero_infinity=zero_infinity)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if monitor.update(step, loss, log_probs=log_probs, targets=targets, target_lengths=lengths, output_lengths=frames):
            return step
    return steps


def test_an_inf_loss_from_a_sample_ctc_cannot_align_points_at_the_sample_not_the_learning_rate():
    stream = io.StringIO()
    monitor = Monitor(every=10, stream=stream, optimizer="Adam")
    assert infeasible_at(monitor, 30, bad_step=7, zero_infinity=False) == 10  # stopped at the next evaluation
    (error,) = [found for found in monitor.findings if found.code == "CTC200"]
    assert "the first non-finite value, at step 7, was +inf" in error.message
    assert error.hint.startswith("Run `ctcdoctor scan SPEC`") and "zero_infinity=True" in error.hint
    assert "Lower the learning rate" not in error.hint
    # step 7 was no evaluation, yet its batch is counted: the line and CTC223 say so
    assert "infeasible 0/8 (1 batch so far)" in stream.getvalue()
    (warning,) = [found for found in monitor.findings if found.code == "CTC223"]
    assert warning.message.startswith("1 sample in the batches of 1 of 10 steps (step 7) cannot be aligned")


def test_samples_zeroed_by_zero_infinity_between_evaluations_are_counted():
    monitor = quiet(every=10)
    assert infeasible_at(monitor, 20, bad_step=7, zero_infinity=True) == 20
    (warning,) = [found for found in monitor.findings if found.code == "CTC223"]
    assert "(step 7)" in warning.message and "zeroed (zero_infinity=True)" in warning.message


@pytest.mark.parametrize("trainer", ["loop", "huggingface"])
def test_a_nan_gradient_then_a_nan_loss_names_the_batch_and_fits_the_trainer(trainer):
    monitor = quiet(every=10, stop_on=None, trainer=trainer)
    for step in range(1, 21):  # a non-finite input at step 15: the loss is finite, its gradient is not
        monitor.update(step, 2.0 / step ** 0.5 if step <= 15 else math.nan, grad_norm=math.nan if step == 15 else 1.0)
    (error,) = [found for found in monitor.findings if found.code == "CTC200"]
    assert "the gradient norm was already non-finite at step 15, where the loss was still finite" in error.message
    assert error.hint.startswith("Check the batch of step 15 for non-finite inputs or labels")
    (warning,) = [found for found in monitor.findings if found.code == "CTC202"]
    assert "the weights are now non-finite (CTC200)" in warning.message
    if trainer == "loop":
        assert "Hugging Face" not in warning.message + warning.hint and "optimizer.step() applies" in warning.message
    else:
        assert "logging_nan_inf_filter=False" in warning.hint


@pytest.mark.parametrize(("checks", "said"), [(1, "(1 check)"), (3, "(3 checks)")])
def test_the_check_before_training_counts_its_checks_in_words(checks, said):
    from ctcdoctor.findings import CheckResult, Report

    stream = io.StringIO()
    monitor = Monitor(stream=stream)
    results = tuple(CheckResult(f"check_{index}", f"CTC0{index}0", "passed", 0.0) for index in range(checks))
    monitor.preflight(Report("check", "train.py", (), results))
    assert f"[ctcdoctor] check before training {said}: 0 errors" in stream.getvalue()


@pytest.mark.parametrize("concatenated", [False, True])
def test_the_per_step_infeasible_count_on_the_host_equals_the_device_formula(concatenated):
    from ctcdoctor.training.feasible import _repeats, count_infeasible

    generator = torch.Generator().manual_seed(0)
    for _ in range(50):
        lengths = torch.randint(0, 7, (5,), generator=generator)
        labels = torch.randint(1, 3, (5, 6), generator=generator)  # few classes: many adjacent repeats
        frames = torch.randint(0, 12, (5,), generator=generator)
        expected = int((frames[:4] < (lengths + _repeats(labels, lengths))[:4]).sum())
        given = torch.cat([labels[n, : lengths[n]] for n in range(5)]) if concatenated else labels
        assert count_infeasible(given, lengths, frames, 4) == expected
