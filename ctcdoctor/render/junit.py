"""JUnit XML (`--junit-xml FILE`) for GitLab's `artifacts:reports:junit`, Jenkins' `junit` step, Azure and others.

One `<testcase>` per check in `Report.checks`; findings no check owns (the overfit verdicts, `labels`, a
CTC999 for an input that could not be computed) get one `<testcase>` per code. A test case

- fails (`<failure>`) when one of its findings reaches `fail_on`, with message and hint in the text;
- errs (`<error>`) when its check crashed (CTC999 names the check in `evidence["code"]`);
- is skipped (`<skipped message=...>`) when its check was skipped because an input could not be built;
- passes otherwise, findings below `fail_on` shown in `<system-out>`.

So the report fails the gate exactly when `failures + errors > 0`. A report with neither checks nor findings
still has one passing test case: Jenkins treats a report without test cases as an error.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

from ctcdoctor.findings import CheckResult, Finding, Report, Severity
from ctcdoctor.registry import get_code
from ctcdoctor.render.locations import locate, repo_root
from ctcdoctor.render.skips import skip_reason

#: Characters XML 1.0 cannot hold at all (ElementTree would write them and produce an unparsable file).
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def xml_text(text: str) -> str:
    """Text XML 1.0 can carry: control characters become visible `\\xNN` escapes (e.g. an ESC in a label)."""
    return _NOT_XML.sub(
        lambda match: f"\\x{ord(match.group()):02x}" if ord(match.group()) < 0x100 else f"\\u{ord(match.group()):04x}",
        str(text),
    )


def finding_text(finding: Finding) -> str:
    lines = [f"{finding.severity.value} {finding.code} {finding.title}", finding.message]
    if finding.hint:
        lines.append(f"fix: {finding.hint}")
    if finding.evidence:
        lines.append("evidence: " + json.dumps(finding.evidence, ensure_ascii=False, default=str)[:4000])
    lines.append(f"more: ctcdoctor explain {finding.code}")
    return "\n".join(lines)


def _suite_id(report: Report) -> str:
    """`ctcdoctor.check.examples_broken_nan_inputs_py`: the spec makes names unique when a pipeline checks several."""
    spec = re.sub(r"\W+", "_", report.spec).strip("_")
    return f"ctcdoctor.{report.command}" + (f".{spec}" if spec else "")


def _case_name(code: str, name: str | None, findings: list[Finding]) -> str:
    if name:
        return f"{code} {name}"
    info = get_code(code)
    # The registry's title is stable across runs (test history keys on names); a finding's may vary.
    return f"{code} {info.title if info is not None else (findings[0].title if findings else '')}".strip()


class _Case:
    def __init__(
        self,
        code: str,
        name: str | None,
        seconds: float = 0.0,
        status: str = "passed",
        check: CheckResult | None = None,
    ):
        self.code, self.name, self.seconds, self.status, self.check = code, name, seconds, status, check
        self.findings: list[Finding] = []
        self.file = ""
        """The label file of a `labels` test case when the report covers several files (part of its name)."""


def _cases(report: Report) -> list[_Case]:
    cases = [_Case(check.code, check.name, check.seconds, check.status, check) for check in report.checks]
    by_check = {case.code: case for case in cases}
    by_code: dict[tuple[str, str], _Case] = {}
    # `labels` with several files: one test case per code and file, each at its own file (never folded into the first).
    files = {str(item.evidence.get("file") or "") for item in report.findings} if report.command == "labels" else set()
    for finding in report.findings:
        owner = by_check.get(finding.code)
        crashed = finding.evidence.get("code") if finding.code == "CTC999" else None
        if isinstance(crashed, str) and crashed in by_check:
            owner = by_check[crashed]  # a check that raised: its CTC999 belongs to its own test case
        if owner is None:
            file = str(finding.evidence.get("file") or "") if len(files) > 1 and finding.code != "CTC091" else ""
            owner = by_code.get((finding.code, file))
            if owner is None:
                owner = by_code[(finding.code, file)] = _Case(finding.code, None)
                owner.file = file
                cases.append(owner)
        owner.findings.append(finding)
    return cases


def render_junit(report: Report, fail_on: Severity, *, root: Path | None = None, cwd: Path | None = None) -> str:
    """The JUnit XML document (UTF-8, with declaration) for a report."""
    root = root if root is not None else repo_root(cwd=cwd)
    suite_id = _suite_id(report)
    cases = _cases(report) or [_Case("", None)]
    counts = {"tests": len(cases), "failures": 0, "errors": 0, "skipped": 0}
    suite = ET.Element("testsuite", name=xml_text(f"ctcdoctor {report.command} {report.spec}".strip()))
    properties = ET.SubElement(suite, "properties")
    for key, text in (("command", report.command), ("spec", report.spec), ("fail_on", fail_on.value)):
        ET.SubElement(properties, "property", name=key, value=xml_text(text))
    for case in cases:
        element = _case_element(suite, report, case, suite_id, root, cwd)
        outcome = _outcome(element, report, case, fail_on)
        if outcome:
            counts[outcome] += 1
    suites = ET.Element("testsuites", name="ctcdoctor")
    total_seconds = sum(case.seconds for case in cases)
    for element in (suites, suite):
        for key, value in counts.items():
            element.set(key, str(value))
        element.set("time", f"{total_seconds:.3f}")
    suites.append(suite)
    ET.indent(suites)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suites, encoding="unicode") + "\n"


def _case_element(suite: ET.Element, report: Report, case: _Case, suite_id: str, root: Path, cwd: Path | None) -> ET.Element:
    """The <testcase> of one check (or code), with the file and line its first finding points at."""
    name = _case_name(case.code, case.name, case.findings) if case.code else f"ctcdoctor {report.command}: no findings"
    name += f" ({case.file})" if case.file else ""
    element = ET.SubElement(suite, "testcase", classname=suite_id, name=xml_text(name), time=f"{case.seconds:.3f}")
    location = locate(report, case.findings[0], cwd) if case.findings else None
    path = location.relative_to(root) if location is not None else None
    if path:
        element.set("file", xml_text(path))
        if location is not None and location.line:
            element.set("line", str(location.line))
    return element


def _outcome(element: ET.Element, report: Report, case: _Case, fail_on: Severity) -> str | None:
    """Add the case's error, failure or skip (and the findings below fail_on); return which counter it adds to."""
    crash = [item for item in case.findings if item.code == "CTC999" and item.evidence.get("code") == case.code]
    failing = [item for item in case.findings if item.severity.rank >= fail_on.rank and item not in crash]
    below = [item for item in case.findings if item not in failing and item not in crash]
    outcome = None
    if crash:
        outcome = "errors"
        error = ET.SubElement(
            element, "error", type=xml_text(crash[0].evidence.get("exception") or "CTC999"), message=xml_text(crash[0].message)
        )
        error.text = xml_text("\n\n".join(finding_text(item) for item in crash + failing))
    elif failing:
        outcome = "failures"
        worst = max(failing, key=lambda item: item.severity.rank)
        more = f" (+{len(failing) - 1} more)" if len(failing) > 1 else ""
        failure = ET.SubElement(element, "failure", type=f"{worst.code} {worst.severity.value}", message=xml_text(f"{worst.title}{more}"))
        failure.text = xml_text("\n\n".join(finding_text(item) for item in failing))
    elif case.status == "skipped" or (case.status == "crashed" and not case.findings):
        outcome = "skipped"
        reason = (
            skip_reason(case.check, report.findings)
            if case.status == "skipped" and case.check is not None
            else "the check crashed and its CTC999 finding is ignored"
        )
        ET.SubElement(element, "skipped", message=xml_text(reason))
    if below:
        ET.SubElement(element, "system-out").text = xml_text("\n\n".join(finding_text(item) for item in below))
    return outcome


def write_junit(report: Report, path: str | Path, fail_on: Severity, *, cwd: Path | None = None) -> None:
    """Write `render_junit` to `path` (parent folders created)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_junit(report, fail_on, cwd=cwd), encoding="utf-8")
