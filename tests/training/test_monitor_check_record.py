"""Third fresh-eyes trial, #3: the monitor's JSONL of a run the check before training stopped held no record of the stop,
so `ctcdoctor logs` on it had nothing to report ("holds only a header", exit 2). The header now records the check (its
findings and the stop), and `logs` reports them as the monitor did."""
from __future__ import annotations

import io
import json

from typer.testing import CliRunner

from ctcdoctor.cli import app
from ctcdoctor.findings import Finding, Report, Severity
from ctcdoctor.training.monitor import Monitor

runner = CliRunner()
SOFTMAX = Finding("CTC020", Severity.ERROR, "model output is probabilities", "the output lies in [0, 1]", "Use log_softmax.",
                  {"min": 0.0, "max": float("inf")})
SPIKY = Finding("CTC080", Severity.INFO, "spiky outputs", "blank wins 90% of the frames")


def _logs(path, *args: str) -> tuple[int, dict]:
    result = runner.invoke(app, ["logs", str(path), "--format", "json", *args])
    assert result.exit_code in (0, 1), result.output
    return result.exit_code, json.loads(result.stdout)


def _stopped_run(tmp_path, **options) -> Monitor:
    monitor = Monitor(every=1, stream=io.StringIO(), metrics_path=tmp_path / "m.jsonl", plot_path=tmp_path / "p.png",
                      **options)
    assert monitor.preflight(Report("check", "model", (SOFTMAX, SPIKY)))
    monitor.close()
    return monitor


def test_logs_on_a_run_the_check_stopped_before_step_1_reports_the_check_and_the_stop(tmp_path):
    monitor = _stopped_run(tmp_path)
    code, document = _logs(tmp_path / "m.jsonl")  # was exit 2: "holds only a header"
    assert code == 1
    assert [(item["code"], item["severity"]) for item in document["findings"]] == [("CTC020", "error"), ("CTC080", "info")]
    assert document["findings"][0]["message"] == "[the check before training] the output lies in [0, 1]"
    assert document["findings"][0]["hint"] == "Use log_softmax." and document["findings"][0]["evidence"]["max"] == "inf"
    assert document["result"]["stopped_by_check"] == {"step": 0, "code": "CTC020"}
    assert ("the check before training stopped the run before step 1 on CTC020 (the monitor's stop_on): no training "
            "step was logged") in document["result"]["notes"]
    assert {item.code for item in monitor.report().findings} == {item["code"] for item in document["findings"]}


def test_the_header_records_the_checks_findings_and_its_stop(tmp_path):
    _stopped_run(tmp_path, trainer="lightning")
    lines = (tmp_path / "m.jsonl").read_text().splitlines()
    assert len(lines) == 1  # no step ran
    check = json.loads(lines[0])["meta"]["check"]
    assert [item["code"] for item in check["findings"]] == ["CTC020", "CTC080"]
    assert check["stopped"] == {"step": 0, "code": "CTC020"}


def test_the_console_report_says_the_run_was_stopped_and_draws_no_empty_plot(tmp_path):
    _stopped_run(tmp_path)
    result = runner.invoke(app, ["logs", str(tmp_path), "--plot", str(tmp_path / "logs.png")])
    assert result.exit_code == 1, result.output
    assert "✖ error   CTC020" in result.output and "[the check before training] the output lies in [0, 1]" in result.output
    assert "note: the check before training stopped the run before step 1 on CTC020" in result.output
    assert "no plot written to" in result.output and not (tmp_path / "logs.png").exists()
    assert "role" not in result.output  # no table of empty curves


def test_a_check_that_let_training_run_is_reported_beside_the_curves(tmp_path):
    monitor = Monitor(every=5, stream=io.StringIO(), metrics_path=tmp_path / "m.jsonl")
    assert not monitor.preflight(Report("check", "model", (SPIKY,)))
    for step in range(1, 41):
        monitor.update(step, 3.0 / step)
    monitor.close()
    code, document = _logs(tmp_path / "m.jsonl")
    assert code == 0 and "CTC080" in [item["code"] for item in document["findings"]]
    assert "stopped_by_check" not in document["result"]
    assert not any("stopped the run" in note for note in document["result"]["notes"])


def test_a_stop_after_step_1_says_after_step_1(tmp_path):
    monitor = Monitor(every=1, stream=io.StringIO(), metrics_path=tmp_path / "m.jsonl")
    assert monitor.preflight(Report("check", "model", (SOFTMAX,)), runs_first_step="Keras reads model.stop_training after each batch")
    monitor.update(1, 2.5)
    monitor.close()
    code, document = _logs(tmp_path / "m.jsonl")
    assert code == 1 and document["result"]["stopped_by_check"] == {"step": 1, "code": "CTC020"}
    assert any("stopped the run after step 1 on CTC020" in note for note in document["result"]["notes"])


def test_a_header_without_a_stop_and_no_record_is_still_a_log_with_nothing_yet(tmp_path):
    monitor = Monitor(every=1, stream=io.StringIO(), metrics_path=tmp_path / "m.jsonl")
    assert not monitor.preflight(Report("check", "model", (SPIKY,)))
    monitor.close()
    result = runner.invoke(app, ["logs", str(tmp_path / "m.jsonl")])
    assert result.exit_code == 2 and "holds only a header" in result.output
