"""SARIF 2.1.0: the fields GitHub code scanning needs, on located findings."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from renderhelpers import ROOT, check_sarif_for_code_scanning, def_line
from typer.testing import CliRunner

from ctcdoctor.cli import app
from ctcdoctor.findings import Finding, Report, Severity
from ctcdoctor.registry import get_code
from ctcdoctor.render.from_json import report_from_json
from ctcdoctor.render.sarif import render_sarif, write_sarif


@pytest.mark.parametrize("name", ["too_much_pooling", "nan_inputs", "no_blank_slot"])
def test_broken_examples(example_runs, name):
    run = example_runs[name]
    log = json.loads(render_sarif(run.report, run.fail_on, root=ROOT, cwd=run.cwd))
    results = check_sarif_for_code_scanning(log, ROOT)
    findings = run.document["findings"]
    assert [result["ruleId"] for result in results] == [item["code"] for item in findings]
    levels = {"error": "error", "warning": "warning", "info": "note"}
    assert [result["level"] for result in results] == [levels[item["severity"]] for item in findings]
    for result, item in zip(results, findings):
        assert item["message"] in result["message"]["text"] and item["hint"] in result["message"]["text"]
        (location,) = result["locations"]
        assert location["physicalLocation"]["artifactLocation"]["uri"] == f"examples/broken/{name}.py"
        assert location["physicalLocation"]["region"]["startLine"] == def_line(run.spec_file)
    rules = log["runs"][0]["tool"]["driver"]["rules"]
    for rule in rules:
        info = get_code(rule["id"])
        assert rule["shortDescription"]["text"] == info.title
        assert rule["help"]["markdown"] == info.doc and "What it" in rule["help"]["text"]
        assert "**" not in rule["help"]["text"]
    invocation = log["runs"][0]["invocations"][0]
    assert invocation["exitCode"] == run.exit_code and invocation["executionSuccessful"] is True


def test_labels_results_at_their_lines(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "gt.txt").write_text("a.png\tcab\nb.png\tCAB\nc.png\n", encoding="utf-8")
    (tmp_path / "data" / "alphabet.txt").write_text("a\nb\nc\na\n", encoding="utf-8")
    result = CliRunner().invoke(app, ["labels", "data/gt.txt", "--alphabet", "@data/alphabet.txt", "--format", "json"])
    report = report_from_json(json.loads(result.stdout))
    report = replace(
        report, result={**report.result, "alphabet_file": "data/alphabet.txt"}
    )  # see the report to the lead
    log = json.loads(render_sarif(report, Severity.ERROR, root=tmp_path, cwd=tmp_path))
    results = check_sarif_for_code_scanning(log, tmp_path)
    where = {
        (
            item["ruleId"],
            item["locations"][0]["physicalLocation"]["artifactLocation"]["uri"],
            item["locations"][0]["physicalLocation"]["region"]["startLine"],
        )
        for item in results
    }
    assert where == {("CTC090", "data/gt.txt", 2), ("CTC090", "data/gt.txt", 3), ("CTC091", "data/alphabet.txt", 4)}
    assert log["runs"][0]["invocations"][0]["exitCode"] == 0  # warnings only, --fail-on error


def test_findings_without_a_file_are_left_out_and_counted(tmp_path):
    (tmp_path / "inside.py").write_text("def build():\n    pass\n", encoding="utf-8")
    finding = Finding("CTC001", Severity.ERROR, "t", "m", "h")
    outside = json.loads(
        render_sarif(Report("check", "inside.py", (finding,)), Severity.ERROR, root=tmp_path / "sub", cwd=tmp_path)
    )
    assert outside["runs"][0]["results"] == [] and outside["runs"][0]["properties"]["findings_without_location"] == 1
    check_sarif_for_code_scanning(outside, tmp_path)
    string_alphabet = Report(
        "labels", "gt.txt", (Finding("CTC091", Severity.WARNING, "t", "m", "h", {"problem": "duplicates"}),)
    )
    assert (
        json.loads(render_sarif(string_alphabet, Severity.ERROR, root=tmp_path, cwd=tmp_path))["runs"][0]["results"]
        == []
    )


def test_write_sarif(tmp_path):
    (tmp_path / "train.py").write_text("\n\ndef build():\n    pass\n", encoding="utf-8")
    report = Report("check", "train.py", (Finding("CTC023", Severity.ERROR, "t", "m", "h", {"value": float("nan")}),))
    path = tmp_path / "out" / "ctc.sarif"
    write_sarif(report, path, Severity.ERROR, cwd=tmp_path)
    results = check_sarif_for_code_scanning(json.loads(path.read_text(encoding="utf-8")), tmp_path)
    assert results[0]["locations"][0]["physicalLocation"]["region"]["startLine"] == 3


def _nan_log(path, jsonl: bool) -> None:
    """40 steps logged, the loss NaN from step 30 (CTC200 over steps 30-40); a header line above the records."""
    losses = [5.0 * 0.95**step if step < 30 else "nan" for step in range(1, 41)]
    if jsonl:
        header = json.dumps({"meta": {"format": "ctcdoctor-monitor", "version": 1, "blank": 0}})
        rows = [json.dumps({"step": step, "loss": loss}) for step, loss in enumerate(losses, 1)]
        path.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    else:
        path.write_text("\n".join(["step,lr,loss", *(f"{step},0.001,{loss}" for step, loss in enumerate(losses, 1))]) + "\n",
                        encoding="utf-8")


@pytest.mark.parametrize("name", ["train.csv", "metrics.jsonl", "trainer_state.json"])
def test_logs_results_point_at_the_first_step_of_their_range(tmp_path, monkeypatch, name):
    """`logs --sarif` had no results: every finding was "without location". Now each points at the log file, on
    the line of the first record of its step range (step 30 is the 30th record, below one header line)."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "run").mkdir()
    if name == "trainer_state.json":
        history = [{"loss": 5.0 * 0.95**step if step < 30 else float("nan"), "step": step} for step in range(1, 41)]
        (tmp_path / "run" / name).write_text(json.dumps({"global_step": 40, "log_history": history}, indent=2), encoding="utf-8")
    else:
        _nan_log(tmp_path / "run" / name, jsonl=name.endswith(".jsonl"))
    result = CliRunner().invoke(app, ["logs", f"run/{name}", "--format", "json", "--sarif", "ci.sarif"])
    assert result.exit_code == 1, result.output
    log = json.loads((tmp_path / "ci.sarif").read_text(encoding="utf-8"))
    results = check_sarif_for_code_scanning(log, tmp_path)
    assert log["runs"][0]["properties"]["findings_without_location"] == 0
    [nan] = [item for item in results if item["ruleId"] == "CTC200"]
    physical = nan["locations"][0]["physicalLocation"]
    assert physical["artifactLocation"]["uri"] == f"run/{name}"
    lines = (tmp_path / "run" / name).read_text(encoding="utf-8").splitlines()
    expected = 31 if name != "trainer_state.json" else next(
        number for number, line in enumerate(lines, 1) if line.strip() == '"step": 30')
    assert physical["region"]["startLine"] == expected and "30" in lines[expected - 1]


def test_a_logs_finding_without_steps_points_at_line_one(tmp_path):
    (tmp_path / "train.csv").write_text("step,loss\n1,2\n", encoding="utf-8")
    report = Report("logs", "train.csv", (Finding("CTC215", Severity.INFO, "t", "m"),),
                    result={"source": "train.csv", "format": "csv"})
    [result] = check_sarif_for_code_scanning(json.loads(render_sarif(report, Severity.ERROR, root=tmp_path, cwd=tmp_path)),
                                             tmp_path)
    assert result["locations"][0]["physicalLocation"]["region"]["startLine"] == 1
