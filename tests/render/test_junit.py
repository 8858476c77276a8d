"""JUnit XML: parsed as GitLab and Jenkins parse it; counts match the report."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from dataclasses import dataclass

import pytest
from typer.testing import CliRunner

from ctcdoctor.cli import app
from ctcdoctor.findings import CheckResult, Finding, Report, Severity, fails
from ctcdoctor.render.from_json import report_from_json
from ctcdoctor.render.junit import render_junit, write_junit


@dataclass(frozen=True)
class CheckWithReason(CheckResult):
    """`CheckResult` as it will be once the runner records why a check was skipped."""

    reason: str = ""


def parse(xml: str) -> tuple[ET.Element, ET.Element, list[ET.Element]]:
    suites = ET.fromstring(xml.encode("utf-8"))
    assert suites.tag == "testsuites"
    (suite,) = suites.findall("testsuite")
    for key in ("tests", "failures", "errors", "skipped"):
        assert suites.get(key) == suite.get(key), key  # totals agree with the one suite
    float(suite.get("time"))
    float(suites.get("time"))
    cases = suite.findall("testcase")
    for case in cases:
        assert case.get("classname") and case.get("name")
        float(case.get("time"))
    return suites, suite, cases


def outcome(case: ET.Element) -> str:
    for tag in ("failure", "error", "skipped"):
        if case.find(tag) is not None:
            return tag
    return "passed"


def counts(suite: ET.Element) -> dict[str, int]:
    return {key: int(suite.get(key)) for key in ("tests", "failures", "errors", "skipped")}


def assert_counts_match(suite: ET.Element, cases: list[ET.Element]) -> None:
    outcomes = [outcome(case) for case in cases]
    assert counts(suite) == {
        "tests": len(cases),
        "failures": outcomes.count("failure"),
        "errors": outcomes.count("error"),
        "skipped": outcomes.count("skipped"),
    }


@pytest.mark.parametrize("name", ["too_much_pooling", "nan_inputs", "no_blank_slot"])
def test_broken_examples(example_runs, name):
    run = example_runs[name]
    _, suite, cases = parse(render_junit(run.report, run.fail_on, cwd=run.cwd))
    assert_counts_match(suite, cases)
    checks = run.document["checks"]
    assert len(cases) == len(checks)  # one test case per check; every finding belongs to a check here
    assert [case.get("name") for case in cases] == [f"{check['code']} {check['name']}" for check in checks]
    failing = {check["code"] for check in checks if check["status"] == "findings"}
    assert {case.get("name").split()[0] for case in cases if outcome(case) == "failure"} == failing
    # The gate and the test report agree: exit 1 exactly when something failed.
    assert (counts(suite)["failures"] + counts(suite)["errors"] > 0) == (run.exit_code == 1)
    for item in run.document["findings"]:
        case = next(case for case in cases if case.get("name").startswith(item["code"] + " "))
        text = case.find("failure").text
        assert item["message"] in text and f"fix: {item['hint']}" in text
        assert case.get("file") == f"examples/broken/{name}.py"


def test_skipped_checks_of_a_failing_model(model_fails_run):
    run = model_fails_run
    _, suite, cases = parse(render_junit(run.report, run.fail_on, cwd=run.cwd))
    assert_counts_match(suite, cases)
    skipped = [check for check in run.document["checks"] if check["status"] == "skipped"]
    assert counts(suite)["skipped"] == len(skipped) >= 10
    by_name = {f"{check['code']} {check['name']}": check for check in run.document["checks"]}
    for case in cases:
        if outcome(case) == "skipped":
            check = by_name[case.get("name")]
            # A check the set-up gives nothing to examine (no Setup.criterion) says so; the others, why the model failed.
            expected = "model(inputs) failed on batch 0" if check.get("applicable", True) else check["reason"]
            assert expected in case.find("skipped").get("message")
    # The CTC999 that explains the skips is a finding no check owns: a test case of its own, failing.
    (ctc999,) = [case for case in cases if case.get("name").startswith("CTC999")]
    assert outcome(ctc999) == "failure" and "planted" in ctc999.find("failure").text
    assert len(cases) == len(run.document["checks"]) + 1
    assert run.exit_code == 1 and counts(suite)["failures"] == 1


def test_skip_reason_from_the_check_result_when_present():
    checks = (CheckWithReason("infeasible_alignment", "CTC001", "skipped", 0.0, reason="output lengths unknown"),)
    _, suite, (case,) = parse(render_junit(Report("check", "x.py", (), checks), Severity.ERROR))
    assert case.find("skipped").get("message") == "output lengths unknown" and counts(suite)["skipped"] == 1


def test_crashed_check_is_an_error_and_findings_below_fail_on_pass():
    checks = (
        CheckResult("infeasible_alignment", "CTC001", "crashed", 0.5),
        CheckResult("tight_length_budget", "CTC002", "findings", 0.25),
        CheckResult("spiky_outputs", "CTC080", "findings", 0.0),
    )
    findings = (
        Finding(
            "CTC999",
            Severity.ERROR,
            "a check crashed",
            "check infeasible_alignment (CTC001) raised KeyError: 'x'",
            "report it",
            {"check": "infeasible_alignment", "code": "CTC001", "exception": "KeyError"},
        ),
        Finding("CTC002", Severity.WARNING, "length budget tight", "3 of 8 samples", "leave room"),
        Finding("CTC080", Severity.INFO, "spiky outputs", "95% blank frames", ""),
    )
    report = Report("check", "x.py", findings, checks)
    _, suite, cases = parse(render_junit(report, Severity.ERROR))
    assert [outcome(case) for case in cases] == ["error", "passed", "passed"]
    assert cases[0].find("error").get("type") == "KeyError"
    assert "3 of 8 samples" in cases[1].find("system-out").text  # shown, not failing, below --fail-on
    assert counts(suite) == {"tests": 3, "failures": 0, "errors": 1, "skipped": 0}
    assert float(suite.get("time")) == pytest.approx(0.75)
    _, suite, cases = parse(render_junit(report, Severity.WARNING))
    assert [outcome(case) for case in cases] == ["error", "failure", "passed"]
    _, suite, cases = parse(render_junit(report, Severity.INFO))
    assert counts(suite)["failures"] == 2


def test_labels_one_case_per_code_and_a_case_when_clean(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "gt.txt").write_text("\ufeffa.png\tHi\x1b there\nb.png\n", encoding="utf-8")
    result = CliRunner().invoke(
        app, ["labels", "gt.txt", "--alphabet", "abcdefghijklmnopqrstuvwxyz \t\t", "--format", "json"]
    )
    report = report_from_json(json.loads(result.stdout))
    assert {item.code for item in report.findings} == {"CTC090", "CTC091"} and len(report.findings) >= 4
    xml = render_junit(report, Severity.WARNING, root=tmp_path, cwd=tmp_path)
    _, suite, cases = parse(xml)  # the ESC in a label did not make the XML unparsable
    assert [case.get("name") for case in cases] == [
        f"{code} {title}"
        for code, title in (
            ("CTC090", "label text problems: byte-order mark, bad bytes, symbols outside the alphabet, empty labels"),
            ("CTC091", "alphabet problems: duplicates, whitespace-only symbols, failed round trip"),
        )
    ]
    assert [outcome(case) for case in cases] == ["failure", "failure"]
    assert cases[0].get("file") == "gt.txt" and cases[0].get("line") == "1"
    assert "(+" in cases[0].find("failure").get("message")  # several CTC090 findings in one case
    assert "\\x1b" in cases[0].find("failure").text
    assert fails(list(report.findings), Severity.WARNING) and not fails(list(report.findings), Severity.ERROR)
    _, suite, cases = parse(render_junit(report, Severity.ERROR))
    assert counts(suite) == {"tests": 2, "failures": 0, "errors": 0, "skipped": 0}
    _, suite, (case,) = parse(render_junit(Report("labels", "gt.txt", ()), Severity.ERROR))
    assert case.get("name") == "ctcdoctor labels: no findings" and outcome(case) == "passed"


def test_write_junit(tmp_path):
    path = tmp_path / "reports" / "ctc.xml"
    write_junit(Report("check", "x.py", (), (CheckResult("a", "CTC001", "passed", 0.0),)), path, Severity.ERROR)
    assert ET.parse(path).getroot().get("tests") == "1"
