"""Why a check was skipped, for the CI formats that show skipped checks (JUnit `<skipped>`, the GitHub summary)."""

from __future__ import annotations

from collections.abc import Iterable

from ctcdoctor.findings import CheckResult, Finding

DEFAULT_REASON = "skipped: an input it needs could not be computed"


def skip_reason(check: CheckResult, findings: Iterable[Finding]) -> str:
    """`CheckResult.reason` when the runner sets it; else the message of the CTC999 finding that lists the check
    among those it skipped (the runner writes `"CTC001 (infeasible_alignment)"` into `evidence["skipped"]`)."""
    reason = getattr(check, "reason", "") or ""
    if reason:
        return str(reason)
    for finding in findings:
        if finding.code != "CTC999":
            continue
        skipped = finding.evidence.get("skipped") or []
        if any(isinstance(item, str) and item.split(" ", 1)[0] == check.code for item in skipped):
            return finding.message
    return DEFAULT_REASON
