"""Rebuild a `Report` from the JSON envelope (DESIGN §4), so a saved `--output` file can be rendered again
in another format (JUnit, SARIF, a GitHub summary) without re-running the checks."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ctcdoctor.findings import CheckResult, Finding, Report, Severity


def _check(item: Mapping[str, Any]) -> CheckResult:
    name, code = str(item.get("name", "")), str(item.get("code", ""))
    status, seconds = str(item.get("status", "passed")), float(item.get("seconds") or 0.0)
    return CheckResult(name, code, status, seconds, reason=str(item.get("reason") or ""),
                       applicable=bool(item.get("applicable", True)))


def report_from_json(document: str | Mapping[str, Any]) -> Report:
    """The `Report` behind a `--format json` document (a string or the parsed mapping).

    Renderer-only extras (Rich tables, timings) are not part of the envelope and come back empty.
    """
    data = json.loads(document) if isinstance(document, str) else document
    if not isinstance(data, Mapping) or "findings" not in data:
        raise ValueError("not a ctcdoctor JSON report: it has no 'findings'")
    findings = tuple(
        Finding(
            code=str(item["code"]),
            severity=Severity.parse(str(item["severity"])),
            title=str(item.get("title", "")),
            message=str(item.get("message", "")),
            hint=str(item.get("hint", "")),
            evidence=dict(item.get("evidence") or {}),
        )
        for item in data["findings"]
    )
    checks = tuple(_check(item) for item in data.get("checks") or [])
    seed = data.get("seed")
    return Report(str(data.get("command", "check")), str(data.get("spec", "")), findings, checks, data.get("result"),
                  seed=int(seed) if isinstance(seed, int) else None)


def read_report(path: str | Path) -> Report:
    """`report_from_json` of a file written with `--output`."""
    return report_from_json(Path(path).read_text(encoding="utf-8"))
