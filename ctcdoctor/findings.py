"""What a check returns: small frozen findings, kept apart from any rendering."""
from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any


class Severity(str, Enum):
    ERROR = "error"
    WARNING = "warning"
    INFO = "info"

    @property
    def rank(self) -> int:
        """Higher is worse; used for `--fail-on` and for ordering the report."""
        return {"info": 0, "warning": 1, "error": 2}[self.value]

    @classmethod
    def parse(cls, text: str) -> Severity:
        try:
            return cls(text.lower())
        except ValueError:
            raise ValueError(f"unknown severity {text!r}: use one of error, warning, info") from None


@dataclass(frozen=True)
class Finding:
    """One problem found in a set-up."""

    code: str
    """Stable code such as `CTC001`; `ctcdoctor explain CODE` documents it."""
    severity: Severity
    """error (training cannot work), warning (likely to hurt), info (worth knowing)."""
    title: str
    """One line naming the problem."""
    message: str
    """What is wrong, with the numbers (which samples, how many frames)."""
    hint: str = ""
    """What to change, in the imperative."""
    evidence: dict[str, Any] = field(default_factory=dict)
    """JSON-serialisable data behind the message (sample indices, values)."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "severity": self.severity.value,
            "title": self.title,
            "message": self.message,
            "hint": self.hint,
            "evidence": self.evidence,
        }


@dataclass(frozen=True)
class CheckResult:
    """How one check ended: its status and, when it did not run to the end, why."""

    name: str
    code: str
    status: str
    """"passed" (no finding), "findings", "crashed" or "skipped" (its inputs could not be built or cannot support it)."""
    seconds: float
    reason: str = ""
    """Why the check was skipped or crashed; empty when it ran."""
    applicable: bool = True
    """False for a skip that is no problem: the set-up does not give what the check examines (no Setup.criterion)."""

    def to_dict(self) -> dict[str, Any]:
        document: dict[str, Any] = {"name": self.name, "code": self.code, "status": self.status, "seconds": round(self.seconds, 4)}
        if self.reason:
            document["reason"] = self.reason
        if not self.applicable:
            document["applicable"] = False
        return document


@dataclass(frozen=True)
class Report:
    """What a command found: the data behind every renderer (console, JSON, CI formats).

    Plain data only: renderers turn it into text, nothing here knows about Rich.
    """

    command: str
    """The command that made it: check, overfit, scan, labels, simulate, logs, monitor."""
    spec: str
    """What the command examined: the spec, the label file, the run directory."""
    findings: tuple[Finding, ...]
    checks: tuple[CheckResult, ...] = ()
    result: dict[str, Any] | None = None
    """The command's own JSON-serialisable result (overfit: steps to fit, decodes, ...)."""
    seconds: float | None = None
    """Wall time of the whole command, loading included."""
    invocation: str = ""
    """How the report names the run in its summary line (defaults to the spec)."""
    config: str | None = None
    """The configuration file whose [tool.ctcdoctor] settings applied, if any."""
    seed: int | None = None
    """The seed of torch, numpy and random before build() was called (None: the command does not seed)."""


def count_by_severity(findings: list[Finding]) -> dict[str, int]:
    counts = {"error": 0, "warning": 0, "info": 0}
    for finding in findings:
        counts[finding.severity.value] += 1
    return counts


def fails(findings: list[Finding], fail_on: Severity) -> bool:
    """True when some finding is at or above the `--fail-on` severity."""
    return any(finding.severity.rank >= fail_on.rank for finding in findings)
