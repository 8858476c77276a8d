"""GitHub Actions: workflow commands (annotations) and the Markdown job summary."""

from __future__ import annotations

import io
import json
import re

from renderhelpers import ROOT, clean_env, def_line, parse_workflow_command, run_cli
from typer.testing import CliRunner

from ctcdoctor.cli import app
from ctcdoctor.findings import CheckResult, Finding, Report, Severity
from ctcdoctor.render.github import (
    ANNOTATIONS_PER_LEVEL,
    escape_data,
    escape_property,
    evidence_rows,
    github_commands,
    github_enabled,
    render_github_summary,
    workflow_command,
    write_github,
)


def finding(code="CTC001", severity=Severity.ERROR, title="a title", message="a message", hint="a hint", **evidence):
    return Finding(code, severity, title, message, hint, evidence)


# ------------------------------------------------------------------------------------------- escaping


NASTY = "50% done\r\nnext line: a, b ::error::injected %0A"


def test_escaping_round_trips_through_the_runners_parser():
    line = workflow_command("warning", NASTY, {"file": "dir,x/a:b.py", "line": 7, "title": NASTY})
    assert "\n" not in line and "\r" not in line  # one line: nothing can start a second command
    command, properties, message = parse_workflow_command(line)
    assert command == "warning"
    assert properties == {"file": "dir,x/a:b.py", "line": "7", "title": NASTY}
    assert message == NASTY


def test_escape_rules():
    assert escape_data("100%\n\r") == "100%25%0A%0D"
    assert escape_property("a:b,c%") == "a%3Ab%2Cc%25"
    assert escape_data("a:b,c") == "a:b,c"  # the message keeps ':' and ','


# ------------------------------------------------------------------------------------------- commands


def test_one_annotation_per_code_with_the_worst_and_the_count():
    report = Report(
        "labels",
        "gt.txt",
        (
            finding("CTC090", Severity.WARNING, "the label file starts with a byte-order mark", "BOM found"),
            finding("CTC090", Severity.WARNING, "label symbols outside the alphabet", "12 characters outside"),
            finding("CTC090", Severity.WARNING, "empty labels", "2 labels are empty"),
            finding("CTC080", Severity.INFO, "spiky outputs", "blank-dominated"),
        ),
    )
    commands = [parse_workflow_command(line) for line in github_commands(report, Severity.ERROR)]
    assert [command for command, _, _ in commands] == ["warning", "notice"]
    _, properties, message = commands[0]
    assert properties["title"] == "CTC090 the label file starts with a byte-order mark (×3)"
    assert message.startswith("3 CTC090 findings. The worst: BOM found Fix: a hint")
    assert "label symbols outside the alphabet; empty labels" in message


def test_never_more_than_ten_annotations_of_a_level():
    errors = [finding(f"CTC{100 + i:03d}", Severity.ERROR, f"problem {i}") for i in range(25)]
    warnings = [finding(f"CTC{200 + i:03d}", Severity.WARNING, f"issue {i}") for i in range(4)]
    commands = [
        parse_workflow_command(line)
        for line in github_commands(Report("check", "x.py", tuple(errors + warnings)), Severity.ERROR)
    ]
    levels = [command for command, _, _ in commands]
    assert levels.count("error") == ANNOTATIONS_PER_LEVEL and levels.count("warning") == 4
    _, properties, message = [item for item in commands if item[0] == "error"][-1]
    assert properties["title"] == "ctcdoctor: 16 more error codes"
    assert message.startswith("16 more error codes: CTC109 problem 9;") and "CTC124 problem 24" in message


def test_annotations_sit_on_the_spec_file_at_build(tmp_path):
    (tmp_path / "train.py").write_text("import os\n\n\ndef build():\n    return None\n", encoding="utf-8")
    report = Report("check", "train.py", (finding(severity=Severity.INFO),))
    (line,) = github_commands(report, Severity.ERROR, root=tmp_path, cwd=tmp_path)
    command, properties, _ = parse_workflow_command(line)
    assert command == "notice" and properties["file"] == "train.py" and properties["line"] == "4"
    # Outside the repository root: an annotation without a file rather than a wrong path.
    (line,) = github_commands(report, Severity.ERROR, root=tmp_path / "other", cwd=tmp_path)
    assert "file" not in parse_workflow_command(line)[1]


def test_no_findings_no_commands():
    assert github_commands(Report("check", "x.py", ()), Severity.ERROR) == []


def test_enabled_only_on_github_actions():
    assert github_enabled({"GITHUB_ACTIONS": "true"})
    assert not github_enabled({"GITHUB_ACTIONS": "true"}, disabled=True)  # --no-github
    assert not github_enabled({})


# ------------------------------------------------------------------------------------------- summary


def table_rows(markdown: str) -> list[list[str]]:
    """Cells of the Markdown table lines, split on unescaped pipes as GitHub does."""
    rows = []
    for line in markdown.splitlines():
        if line.startswith("|") and not line.startswith("| ---") and not line.startswith("|---"):
            rows.append([cell.strip() for cell in re.split(r"(?<!\\)\|", line)[1:-1]])
    return rows


def test_summary_table_escapes_user_text():
    report = Report(
        "labels",
        "gt.txt",
        (finding("CTC090", Severity.WARNING, "label | with <script>alert(1)</script> and *stars*", "m\nsecond line"),),
    )
    summary = render_github_summary(report, Severity.WARNING)
    header, row = table_rows(summary)
    assert len(row) == len(header) == 4  # the pipe in the title did not add a column
    assert "<script>" not in summary and "&lt;script&gt;" in summary
    assert "\\*stars\\*" in summary
    assert "m<br>second line" in summary
    assert summary.startswith("### ctcdoctor labels — ❌ failed: 0 errors, 1 warning, 0 info")


def test_summary_passed_and_skipped_checks():
    checks = (
        CheckResult("infeasible_alignment", "CTC001", "skipped", 0.0),
        CheckResult("nonfinite_output", "CTC023", "passed", 0.1),
    )
    crash = finding(
        "CTC999",
        Severity.WARNING,
        "the model failed on a batch",
        "model(inputs) failed on batch 0",
        skipped=["CTC001 (infeasible_alignment)"],
    )
    summary = render_github_summary(Report("check", "x.py", (crash,), checks), Severity.ERROR)
    assert "✅ passed: 0 errors, 1 warning, 0 info" in summary
    assert "2 checks: 1 passed, 1 skipped" in summary
    assert "- CTC001 `infeasible_alignment`: model(inputs) failed on batch 0" in summary
    clean = render_github_summary(Report("check", "x.py", (), checks[1:]), Severity.ERROR)
    assert "✅ passed: no findings" in clean and "<details>" not in clean


def test_summary_is_capped_with_a_note():
    findings = tuple(finding(f"CTC{i:03d}", Severity.ERROR, f"problem {i}", "x" * 5000, "y" * 2000) for i in range(200))
    summary = render_github_summary(Report("check", "x.py", findings), Severity.ERROR, limit=32 * 1024)
    assert len(summary.encode("utf-8")) <= 32 * 1024
    assert "_Summary cut at 32 KiB:" in summary
    assert summary.count("<details>") == summary.count("</details>")  # never cut inside a block
    assert len(render_github_summary(Report("check", "x.py", findings), Severity.ERROR).encode()) <= 64 * 1024


def test_evidence_rows_of_each_shape():
    assert evidence_rows({"worst": [{"sample": 3, "frames": 2}, {"sample": 9, "frames": 1}]}) == (
        ["sample", "frames"],
        [[3, 2], [9, 1]],
    )
    assert evidence_rows({"table": {"columns": ["layer", "norm"], "rows": [["fc", 0.1]]}}) == (
        ["layer", "norm"],
        [["fc", 0.1]],
    )
    assert evidence_rows({"examples": {"É": [{"line": 3, "text": "École", "kept": "cole"}]}}) == (
        ["symbol", "line", "text", "kept"],
        [["É", 3, "École", "cole"]],
    )
    assert evidence_rows({"samples": [1, 2]}) is None


# ------------------------------------------------------------------------------------------- real reports


def test_github_output_for_a_broken_example(example_runs, tmp_path):
    run = example_runs["too_much_pooling"]
    summary_file = tmp_path / "summary.md"
    summary_file.write_text("earlier step output\n", encoding="utf-8")
    environ = {"GITHUB_ACTIONS": "true", "GITHUB_STEP_SUMMARY": str(summary_file), "GITHUB_WORKSPACE": str(ROOT)}
    stream = io.StringIO()
    write_github(run.report, run.fail_on, environ=environ, stream=stream, cwd=run.cwd)
    commands = [parse_workflow_command(line) for line in stream.getvalue().splitlines()]
    codes = [finding.code for finding in run.report.findings]
    assert codes == ["CTC001", "CTC002"]
    build = str(def_line(run.spec_file))
    assert [(command, props["file"], props["line"], props["title"][:6]) for command, props, _ in commands] == [
        ("error", "examples/broken/too_much_pooling.py", build, "CTC001"),
        ("warning", "examples/broken/too_much_pooling.py", build, "CTC002"),
    ]
    assert commands[0][2].startswith(run.document["findings"][0]["message"])
    summary = summary_file.read_text(encoding="utf-8")
    assert summary.startswith("earlier step output\n### ctcdoctor check — ❌ failed: 1 error, 1 warning")  # appended
    assert f"`examples/broken/too_much_pooling.py:{build}`" in summary
    worst = run.document["findings"][0]["evidence"]["worst"][0]
    assert f"| {worst['sample']} | {worst['frames']} | {worst['labels']} |" in summary  # the worst sample's row
    assert summary.count("<details>") == 2


def test_github_output_lists_skipped_checks_of_a_failing_model(model_fails_run):
    summary = render_github_summary(model_fails_run.report, model_fails_run.fail_on, cwd=model_fails_run.cwd)
    # Checks the set-up gives nothing to examine (no Setup.criterion) are skipped for that reason instead.
    skipped = [check for check in model_fails_run.report.checks if check.status == "skipped" and check.applicable]
    assert len(skipped) >= 10
    assert summary.count("model(inputs) failed on batch 0") == len(skipped) + 1  # each skip's reason, and the details
    (line,) = github_commands(model_fails_run.report, model_fails_run.fail_on, cwd=model_fails_run.cwd)
    command, properties, message = parse_workflow_command(line)
    assert (command, properties["file"], properties["line"]) == (
        "error",
        "train.py",
        str(def_line(model_fails_run.spec_file)),
    )
    assert "planted" in message


def test_cli_on_github_actions_keeps_stdout_json(tmp_path, monkeypatch):
    summary_file = tmp_path / "summary.md"
    env = clean_env(GITHUB_ACTIONS="true", GITHUB_STEP_SUMMARY=str(summary_file), GITHUB_WORKSPACE=str(ROOT))
    done = run_cli(
        [
            "check",
            "examples/broken/no_blank_slot.py",
            "--format",
            "json",
            "--junit-xml",
            str(tmp_path / "junit.xml"),
            "--sarif",
            str(tmp_path / "ctc.sarif"),
        ],
        ROOT,
        env,
    )
    assert done.returncode == 1
    document = json.loads(done.stdout)  # workflow commands did not leak into stdout
    annotated = [parse_workflow_command(line) for line in done.stderr.splitlines() if line.startswith("::")]
    assert {props["title"][:6] for _, props, _ in annotated} == {item["code"] for item in document["findings"]}
    assert "### ctcdoctor check" in summary_file.read_text(encoding="utf-8")
    assert (tmp_path / "junit.xml").is_file() and (tmp_path / "ctc.sarif").is_file()
    # --no-github on GitHub Actions: the flag's effect, in this process (the installed script's streams are shown above)
    monkeypatch.chdir(ROOT)
    no_github = CliRunner().invoke(app, ["check", "examples/broken/no_blank_slot.py", "--format", "json", "--no-github"],
                                   env={**env, "GITHUB_STEP_SUMMARY": str(tmp_path / "no_github.md")})
    assert no_github.exit_code == 1 and json.loads(no_github.stdout)["findings"], no_github.output
    assert not [line for line in no_github.stderr.splitlines() if line.startswith("::")]
    assert not (tmp_path / "no_github.md").exists()  # no job summary either


def test_overfit_summary_counts_the_checks_before_training_and_states_the_training_outcome():
    # The trial's summary read "22 checks: 22 passed" above a failed overfit: the checks ran before training, the
    # failure is the training's own.
    checks = tuple(CheckResult(f"check_{i}", f"CTC0{i:02d}", "passed", 0.0) for i in range(20)) + (
        CheckResult("declared_lengths_disagree", "CTC004", "skipped", 0.0, "no output lengths declared", False),
    )
    failed = finding("CTC070", title="overfit did not fit")
    result = {"fitted": False, "trained": True, "steps": 150, "diagnosis": "CTC070"}
    summary = render_github_summary(Report("overfit", "x.py", (failed,), checks, result=result), Severity.ERROR)
    assert "21 checks before training: 20 passed, 1 not applicable · training: did not fit in 150 steps (CTC070)" in summary
    assert "#### Skipped checks" not in summary and "_Not applicable: CTC004 (no output lengths declared)._" in summary
    fitted = render_github_summary(Report("overfit", "x.py", (), checks, result={**result, "fitted": True, "steps": 1}),
                                   Severity.ERROR)
    assert "· training: fitted in 1 step" in fitted
    blocked = render_github_summary(Report("overfit", "x.py", (failed,), checks, result={**result, "trained": False}),
                                    Severity.ERROR)
    assert "· not trained (a blocking finding makes training pointless)" in blocked


def test_check_summary_counts_not_applicable_apart_from_skipped():
    checks = (CheckResult("a", "CTC001", "passed", 0.0), CheckResult("b", "CTC002", "skipped", 0.0, "input unavailable"),
              CheckResult("c", "CTC100", "skipped", 0.0, "not a Hugging Face transformers CTC model", False))
    summary = render_github_summary(Report("check", "x.py", (), checks), Severity.ERROR)
    assert "3 checks: 1 passed, 1 skipped, 1 not applicable" in summary
    assert "- CTC002 `b`: input unavailable" in summary and "- CTC100" not in summary
