"""A monitor must never end the training run it watches: a mistake in what the loop hands it is one warning
naming the argument and the fix, and the monitor goes on. From a fresh-eyes trial of the monitor (its
api_edges scripts): each case here crashed the loop or showed wrong decodes without a word."""
from __future__ import annotations

import io
import json
import warnings

import pytest
import torch

from ctcdoctor.errors import UserInputError
from ctcdoctor.findings import Finding, Report, Severity
from ctcdoctor.training import diagnose_run, monitor_format
from ctcdoctor.training.monitor import Monitor

T, N, C = 17, 8, 6
ALPHABET = "abcde"
TARGETS = torch.tensor([[3, 4, 0], [1, 2, 5], [2, 2, 1], [5, 1, 0], [4, 0, 0], [1, 3, 5], [2, 5, 4], [3, 3, 0]])
LENGTHS = torch.tensor([2, 3, 3, 2, 1, 3, 3, 2])
FRAMES = torch.full((N,), T)


def peaky(targets: torch.Tensor = TARGETS, lengths: torch.Tensor = LENGTHS, blank: int = 0) -> torch.Tensor:
    """(T, N, C) log-probabilities whose greedy decode (blank 0) is each sample's target."""
    logits = torch.full((T, N, C), -10.0)
    logits[..., blank] = 0.0
    for n in range(N):
        for i, label in enumerate(targets[n, : lengths[n]].tolist()):
            logits[2 * i, n] = -10.0
            logits[2 * i, n, label] = 0.0
    return logits.log_softmax(-1)


def watched(**options) -> tuple[Monitor, io.StringIO]:
    stream = io.StringIO()
    return Monitor(every=1, stream=stream, **options), stream


def said(caught, *words: str) -> list[str]:
    """The warnings whose text holds every one of `words`."""
    return [str(item.message) for item in caught if all(word in str(item.message) for word in words)]


# ---------------------------------------------------------------- close() always gives the verdict
def test_close_without_a_step_skips_the_plot_in_one_line_and_prints_the_verdict(tmp_path):
    monitor, stream = watched(plot_path=tmp_path / "p.png", metrics_path=tmp_path / "m.jsonl")
    report = monitor.close()  # used to raise "no training loss in ... found no scalars" from the plot
    text = stream.getvalue()
    assert "[ctcdoctor] training run: 0 errors, 0 warnings, 0 info" in text
    [line] = [line for line in text.splitlines() if "no plot" in line]
    assert "no training step was recorded" in line and str(tmp_path / "p.png") in line
    assert not (tmp_path / "p.png").exists() and report.result["files"]["plot"] is None


def test_a_check_that_stops_before_the_first_step_says_so_and_close_gives_the_verdict(tmp_path):
    monitor, stream = watched(plot_path=tmp_path / "p.png")
    error = Finding("CTC020", Severity.ERROR, "model output is probabilities", "softmax head")
    assert monitor.preflight(Report("check", "model", (error,)))
    report = monitor.close()
    text = stream.getvalue()
    assert "stopping before step 1 on CTC020" in text.splitlines()[0]
    assert "1 error, 0 warnings, 0 info; stopped before step 1 on CTC020" in text  # not "stop at step 0"
    assert "no plot" in text and "the run stopped before its first step" in text
    assert report.result["stopped"] == {"step": 0, "code": "CTC020"}


# ---------------------------------------------------------------- input mistakes: one warning, the run goes on
def test_ntc_outputs_without_layout_are_read_as_ntc_with_one_warning():
    monitor, stream = watched(alphabet=ALPHABET)
    ntc = peaky().transpose(0, 1)  # (N, T, C), layout left at "TNC"
    with pytest.warns(UserWarning) as caught:
        monitor.update(1, 1.0, log_probs=ntc, targets=TARGETS, target_lengths=LENGTHS)  # was an IndexError
        monitor.update(2, 1.0, log_probs=ntc, targets=TARGETS, target_lengths=LENGTHS, output_lengths=FRAMES)
    [message] = said(caught, "layout='NTC'")  # was "output_lengths has 8 entries for 17 samples", no layout hint
    assert f"{tuple(ntc.shape)}" in message and "target_lengths has 8 entries" in message
    assert monitor.latest.cer == 0.0 and "'cd' → 'cd'" in stream.getvalue()


def test_measure_outputs_names_the_layout_when_the_lengths_fit_the_other_axis():
    from ctcdoctor.training.outputs import measure_outputs

    with pytest.raises(ValueError, match=r"output_lengths has 8 entries for 17 samples .*pass layout='NTC'"):
        measure_outputs(peaky().transpose(0, 1), TARGETS, torch.full((17,), 2), FRAMES)


def test_a_per_sample_loss_is_recorded_as_its_mean_with_one_warning():
    monitor, _ = watched()
    with pytest.warns(UserWarning) as caught:
        monitor.update(1, torch.tensor([1.0, 2.0, 3.0, 6.0]))  # F.ctc_loss(..., reduction="none")
        monitor.update(2, torch.tensor([2.0, 2.0, 2.0, 2.0]))
    [message] = said(caught, "loss", "4 values")
    assert "mean" in message and "loss.mean()" in message
    assert monitor.run_data().scalars["loss"].values.tolist() == [3.0, 2.0]


def test_lr_as_get_last_lr_list_takes_the_first_group():
    monitor, _ = watched()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # one group: nothing to say
        monitor.update(1, 1.0, lr=[0.001])
    with pytest.warns(UserWarning) as caught:
        monitor.update(2, 1.0, lr=[0.002, 0.0002])
        monitor.update(3, 1.0, lr=[0.003, 0.0003])
    [message] = said(caught, "lr=", "first")
    assert "2 parameter groups" in message
    assert monitor.run_data().scalars["lr"].values.tolist() == [0.001, 0.002, 0.003]


def test_target_lengths_with_the_wrong_count_are_named_and_the_loss_still_recorded():
    monitor, _ = watched(alphabet=ALPHABET)
    with pytest.warns(UserWarning) as caught:
        monitor.update(1, 1.5, log_probs=peaky(), targets=TARGETS, target_lengths=LENGTHS[:4], output_lengths=FRAMES)
    [message] = said(caught, "target_lengths has 4 entries for 8 samples")  # was torch's raw expand error
    assert "one length per sample" in message
    monitor.update(2, 1.0, log_probs=peaky(), targets=TARGETS, target_lengths=LENGTHS, output_lengths=FRAMES)
    assert monitor.run_data().scalars["loss"].values.tolist() == [1.5, 1.0] and monitor.latest.cer == 0.0


def test_a_blank_outside_the_classes_is_named():
    monitor, _ = watched(blank=C)
    with pytest.warns(UserWarning) as caught:
        monitor.update(1, 1.0, log_probs=peaky(), targets=TARGETS, target_lengths=LENGTHS)
    [message] = said(caught, f"blank={C}", f"C={C}")
    assert "pass the blank index your loss uses" in message


def test_outputs_given_twice_text_values_and_update_after_close_warn_instead_of_raising():
    monitor, _ = watched(alphabet=ALPHABET)
    with pytest.warns(UserWarning) as caught:
        monitor.update(1, 1.0, log_probs=peaky(), logits=peaky(), targets=TARGETS, target_lengths=LENGTHS)
        monitor.update(2, 1.0, phase="warm-up", loss_ctc=0.5)
        monitor.close()
        assert monitor.update(3, 1.0) is False
    assert said(caught, "log_probs", "logits", "one of")
    assert said(caught, "phase='warm-up'")
    assert said(caught, "after close()")
    assert monitor.latest.cer == 0.0  # the log_probs were measured
    assert "phase" not in monitor.run_data().scalars and "loss_ctc" in monitor.run_data().scalars


def test_a_crash_inside_the_monitor_is_a_warning_not_an_exception_in_the_loop(monkeypatch):
    import ctcdoctor.training.verdicts as verdicts

    def broken(*args, **kwargs):
        raise RuntimeError("a rule crashed")

    monitor, _ = watched()
    monkeypatch.setattr(verdicts, "verdict", broken)
    with pytest.warns(UserWarning) as caught:
        for step in range(1, 4):
            assert monitor.update(step, 1.0) is False
        monitor.close()
    assert len(said(caught, "a rule crashed")) == 1 and said(caught, "Please report")
    assert monitor.steps_seen == 3 and monitor.closed


# ---------------------------------------------------------------- the metrics JSONL keeps up with the run
def test_each_evaluated_step_is_on_disk_once_it_is_evaluated(tmp_path):
    path = tmp_path / "m.jsonl"
    monitor = Monitor(every=10, metrics_path=path, echo=False)

    def steps() -> list[int]:
        return [json.loads(line)["step"] for line in path.read_text().splitlines()[1:]]

    monitor.update(1, 2.0)
    assert steps() == [1]  # used to hold only the header until the next evaluation
    for step in range(2, 11):
        monitor.update(step, 2.0 - step / 10)
    assert steps() == list(range(1, 11))
    monitor.log(10, eval_loss=1.5)  # a late value for the evaluated step is on disk at once too
    records = [json.loads(line) for line in path.read_text().splitlines()[1:]]
    assert records[-1]["step"] == 10 and records[-1]["eval_loss"] == 1.5 and records[-1]["loss"] == pytest.approx(1.0)
    assert diagnose_run(path).curves.eval_loss.values.tolist() == [1.5]  # `logs` on the file mid-run
    monitor.close()
    records = [json.loads(line) for line in path.read_text().splitlines()[1:]]
    assert records[-1]["step"] == 10 and records[-1]["finished"] is True


def test_logs_on_a_header_only_monitor_file_says_what_to_do(tmp_path):
    path = tmp_path / "m.jsonl"
    path.write_text(monitor_format.header(blank=0, every=100) + "\n")
    with pytest.raises(UserInputError) as error:
        diagnose_run(path)
    assert "only a header" in error.value.message
    assert "no step yet" in error.value.hint and "update()" in error.value.hint


# ---------------------------------------------------------------- decodes are shown right, or not without a word
def test_an_alphabet_that_includes_the_blank_is_named_and_decodes_stay_right():
    monitor, stream = watched(alphabet="-" + ALPHABET)
    with pytest.warns(UserWarning) as caught:
        for step in (1, 2):
            monitor.update(step, 1.0, log_probs=peaky(), targets=TARGETS, target_lengths=LENGTHS)
    [message] = said(caught, "alphabet has 6 symbols", "5 non-blank classes")
    assert "'-'" in message and "alphabet='abcde'" in message
    assert "'cd' → 'cd'" in stream.getvalue() and "'bc'" not in stream.getvalue()  # used to shift every decode


def test_an_alphabet_too_short_is_named():
    monitor, stream = watched(alphabet="abc")
    with pytest.warns(UserWarning) as caught:
        monitor.update(1, 1.0, log_probs=peaky(), targets=TARGETS, target_lengths=LENGTHS)
    [message] = said(caught, "alphabet has 3 symbols", "5 non-blank classes")
    assert "'�'" in message and "one symbol per non-blank class" in message


def test_targets_holding_the_blank_are_named_and_not_shown_as_a_letter():
    monitor, stream = watched(alphabet=ALPHABET)
    targets = TARGETS.clone()
    targets[0, 0] = 0  # the blank inside sample 0's labels: 'cd' becomes (blank, 'd')
    with pytest.warns(UserWarning) as caught:
        for step in (1, 2):
            monitor.update(step, 1.0, log_probs=peaky(), targets=targets, target_lengths=LENGTHS)
    [message] = said(caught, "targets hold the blank index 0")
    assert "blank=" in message
    assert "'�d' → 'cd'" in stream.getvalue() and "'ad'" not in stream.getvalue()


# ---------------------------------------------------------------- the plot
@pytest.mark.parametrize("steps", [5, 20])
def test_the_plot_ticks_whole_steps(steps):
    monitor = Monitor(every=5, echo=False)
    for step in range(1, steps + 1):
        monitor.update(step, 3.0 - 0.1 * step, lr=1e-3)
    monitor.close()
    figure = monitor.plot()
    for ax in figure.axes:
        assert all(float(tick).is_integer() for tick in ax.get_xticks()), ax.get_xticks()
