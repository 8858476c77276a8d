"""The JSON envelope shared by every reporting command (DESIGN §4)."""
from __future__ import annotations

import json
import math
from typing import Any

from ctcdoctor import __version__
from ctcdoctor.findings import Report, count_by_severity

SCHEMA = 1


def json_safe(value: Any) -> Any:
    """JSON has no NaN/Infinity: write them as strings so strict parsers accept the document."""
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return value
    if isinstance(value, dict):
        return {str(key): json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(item) for item in value]
    if hasattr(value, "item") and callable(value.item):  # numpy / torch scalars
        return json_safe(value.item())
    return value


def to_document(report: Report) -> dict[str, Any]:
    document: dict[str, Any] = {
        "schema": SCHEMA,
        "command": report.command,
        "version": __version__,
        "spec": report.spec,
        "findings": [finding.to_dict() for finding in report.findings],
        "summary": count_by_severity(list(report.findings)),
        "checks": [result.to_dict() for result in report.checks],
    }
    if report.seed is not None:
        # The seed torch, numpy and random had when build() ran: rerun with --seed N to reproduce.
        document["seed"] = report.seed
    if report.result is not None:
        document["result"] = report.result
    return json_safe(document)


def render_json(report: Report) -> str:
    return json.dumps(to_document(report), indent=2, allow_nan=False)


def error_document(command: str, spec: str, exit_code: int, message: str, fix: str) -> str:
    """The envelope for a run that ended without a report (exit 2 or 3): no findings, and an `error` object
    with the exit code and the two lines the terminal shows, so a `json.load` of stdout still works."""
    document = {
        "schema": SCHEMA,
        "command": command,
        "version": __version__,
        "spec": spec,
        "findings": [],
        "summary": count_by_severity([]),
        "error": {"exit_code": exit_code, "message": message, "fix": fix},
    }
    return json.dumps(json_safe(document), indent=2, allow_nan=False)
