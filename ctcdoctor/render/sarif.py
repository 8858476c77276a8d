"""SARIF 2.1.0 (`--sarif FILE`) for GitHub code scanning (`github/codeql-action/upload-sarif`) and other SARIF viewers.

Results are the findings that point into a file of the repository: `labels` findings at their label-file line,
and `check`/`overfit`/`scan` findings at the spec's build function. Findings with no file there (a spec outside
the repository, an alphabet given as a string) are left out and counted in `runs[0].properties`; the console,
JSON, JUnit and GitHub outputs still carry them.

What code scanning needs, and this writes: `version`, `$schema`, `runs[].tool.driver.name`, rules with
`shortDescription`, `fullDescription` and `help.text` (from the code's documentation), and per result
`ruleId`, `level`, `message.text` and a location with a repository-relative `artifactLocation.uri` and
`region.startLine`. Fingerprints are left to `upload-sarif`, which computes them from the source.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from ctcdoctor.findings import Finding, Report, Severity, fails
from ctcdoctor.registry import CodeInfo, get_code
from ctcdoctor.render.locations import locate, repo_root

SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
VERSION = "2.1.0"
LEVELS = {Severity.ERROR: "error", Severity.WARNING: "warning", Severity.INFO: "note"}
#: `security-severity`-free tags: these are correctness findings, not vulnerabilities.
TAGS = ["ctc", "correctness"]


def _plain(markdown: str) -> str:
    """Markdown of a code's documentation as plain text for `help.text` (markdown goes to `help.markdown`)."""
    text = re.sub(r"^```\w*\n", "", markdown, flags=re.MULTILINE)
    text = re.sub(r"\*\*(.+?)\*\*", r"\1", text)
    return re.sub(r"`([^`]*)`", r"\1", text)


def _camel(text: str) -> str:
    return "".join(word[:1].upper() + word[1:] for word in re.split(r"[\W_]+", text) if word)[:100]


def _first_paragraph(doc: str) -> str:
    for paragraph in doc.split("\n\n"):
        if paragraph.strip():
            return " ".join(_plain(paragraph).split())
    return ""


def _rule(code: str, finding: Finding, info: CodeInfo | None) -> dict[str, Any]:
    title = info.title if info is not None else finding.title
    doc = info.doc if info is not None and info.doc else f"{title}."
    severity = info.severity if info is not None else finding.severity
    return {
        "id": code,
        # SARIF wants an identifier-like name: the check's function name when a check raises the code.
        "name": _camel(info.check_name if info is not None and info.check_name else title) or code,
        "shortDescription": {"text": title},
        "fullDescription": {"text": _first_paragraph(doc) or title},
        "help": {"text": _plain(doc), "markdown": doc},
        "defaultConfiguration": {"level": LEVELS[severity]},
        "properties": {"tags": TAGS},
    }


def _message(finding: Finding) -> str:
    text = f"{finding.title}: {finding.message}"
    return text + (f" Fix: {finding.hint}" if finding.hint else "")


def render_sarif(report: Report, fail_on: Severity, *, root: Path | None = None, cwd: Path | None = None) -> str:
    """The SARIF 2.1.0 log (JSON text) of a report's located findings.

    `root` is the repository root URIs are relative to (default: `$GITHUB_WORKSPACE`, else the enclosing git
    checkout, else the working directory). `fail_on` sets the invocation's `exitCode` as the command's.
    """
    from ctcdoctor import __version__

    root = root if root is not None else repo_root(cwd=cwd)
    rules: list[dict[str, Any]] = []
    rule_index: dict[str, int] = {}
    results: list[dict[str, Any]] = []
    omitted = 0
    for finding in report.findings:
        location = locate(report, finding, cwd)
        uri = location.relative_to(root) if location is not None else None
        if location is None or uri is None:
            omitted += 1
            continue
        if finding.code not in rule_index:
            rule_index[finding.code] = len(rules)
            rules.append(_rule(finding.code, finding, get_code(finding.code)))
        results.append(
            {
                "ruleId": finding.code,
                "ruleIndex": rule_index[finding.code],
                "level": LEVELS[finding.severity],
                "message": {"text": _message(finding)},
                "locations": [
                    {
                        "physicalLocation": {
                            "artifactLocation": {"uri": uri, "uriBaseId": "%SRCROOT%"},
                            # A file-level finding (no line known) sits on line 1, where GitHub shows file-level alerts.
                            "region": {"startLine": location.line or 1},
                        },
                    }
                ],
                "properties": {"title": finding.title},
            }
        )
    run: dict[str, Any] = {
        "tool": {
            "driver": {
                "name": "ctcdoctor",
                "version": __version__,
                "semanticVersion": __version__,
                "rules": rules,
            }
        },
        "invocations": [
            {
                "executionSuccessful": True,
                "exitCode": 1 if fails(list(report.findings), fail_on) else 0,
            }
        ],
        "results": results,
        "properties": {
            "command": report.command,
            "spec": report.spec,
            "fail_on": fail_on.value,
            "findings": len(report.findings),
            "findings_without_location": omitted,
        },
    }
    log = {"$schema": SCHEMA, "version": VERSION, "runs": [run]}
    return json.dumps(log, indent=2, ensure_ascii=False, default=str)


def write_sarif(report: Report, path: str | Path, fail_on: Severity, *, cwd: Path | None = None) -> None:
    """Write `render_sarif` to `path` (parent folders created)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_sarif(report, fail_on, cwd=cwd) + "\n", encoding="utf-8")
