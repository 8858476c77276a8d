"""GitHub Actions: a Markdown job summary and `::error`/`::warning`/`::notice` workflow commands.

Both come from the same `Report` as the console and JSON output. The CLI turns them on when
`GITHUB_ACTIONS=true` (unless `--no-github`) through `write_github`, which appends the summary to
`$GITHUB_STEP_SUMMARY` and writes the commands to **stderr**: with `--format json` stdout carries the JSON
document alone, and the runner reads workflow commands from both streams.

GitHub shows at most 10 annotations of each level per step, so the commands carry one annotation per code
(the worst finding of that code, and how many there are), and fold the codes past the ninth of a level into
one last annotation.
"""

from __future__ import annotations

import html
import os
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from ctcdoctor.findings import Finding, Report, Severity, count_by_severity, fails
from ctcdoctor.render.locations import Location, locate, repo_root
from ctcdoctor.render.phrases import plural
from ctcdoctor.render.skips import skip_reason

#: Bytes of Markdown one report may add to the job summary. GitHub refuses a step's summary above 1 MiB;
#: several ctcdoctor runs may share a step, so one report stays far below.
SUMMARY_LIMIT = 64 * 1024
#: GitHub displays at most this many annotations of one level (error, warning, notice) per step.
ANNOTATIONS_PER_LEVEL = 10
#: Characters of one annotation's message; the summary has the rest.
MESSAGE_LIMIT = 4000
#: Characters of one finding's message in the summary's details.
DETAIL_LIMIT = 8000
EVIDENCE_ROWS = 5
EVIDENCE_COLUMNS = 8

LEVELS = {Severity.ERROR: "error", Severity.WARNING: "warning", Severity.INFO: "notice"}
MARKS = {Severity.ERROR: "🔴", Severity.WARNING: "🟡", Severity.INFO: "🔵"}


# ---------------------------------------------------------------------------------------------- escaping


def escape_data(text: str) -> str:
    """A workflow command's message: `%`, CR and LF are percent-encoded (`%` first, so nothing is encoded twice)."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    """A workflow command's property value (`file=`, `title=`): also `:` and `,`, which delimit properties."""
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def workflow_command(level: str, message: str, properties: Mapping[str, Any] | None = None) -> str:
    """`::level key=value,...::message`, escaped. Properties whose value is None are left out."""
    shown = [f"{key}={escape_property(str(value))}" for key, value in (properties or {}).items() if value is not None]
    return f"::{level}{' ' + ','.join(shown) if shown else ''}::{escape_data(message)}"


_MARKDOWN_PUNCTUATION = "\\`*_[]|~$#"


def md(text: str) -> str:
    """Plain text as inline Markdown: HTML special characters escaped, Markdown (and GitHub's `$` math)
    punctuation backslash-escaped, line breaks as `<br>` so the text can sit in a table cell. Text between
    paired backticks (`ctcdoctor scan`, in hints) becomes a code span, as the terminal report means it:
    escaped, its backticks would show literally."""
    parts = str(text).split("`")
    if len(parts) % 2 == 0:  # an unpaired backtick: all of it plain text
        parts = [str(text)]
    return "".join(_code_span(part) if index % 2 else _plain(part) for index, part in enumerate(parts))


def _plain(text: str) -> str:
    text = html.escape(text, quote=False)
    text = "".join("\\" + char if char in _MARKDOWN_PUNCTUATION else char for char in text)
    return text.replace("\r\n", "\n").replace("\r", "\n").replace("\n", "<br>")


def _code_span(text: str) -> str:
    """A code span that can sit in a table cell: no line breaks, pipes escaped (GitHub's tables read `\\|` in one)."""
    text = " ".join(text.splitlines()).replace("|", "\\|")
    return f"`{text}`" if text.strip() else ""


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


# ---------------------------------------------------------------------------------------------- grouping


@dataclass(frozen=True)
class CodeGroup:
    """The findings of one code, worst first."""

    code: str
    findings: tuple[Finding, ...]

    @property
    def worst(self) -> Finding:
        return self.findings[0]

    @property
    def severity(self) -> Severity:
        return self.worst.severity


def group_by_code(findings: Iterable[Finding], by_file: bool = False) -> list[CodeGroup]:
    """One group per code, worst severity first (then by code); inside a group, report order among equals.
    `by_file` (`labels` with several files): one group per code and file, so each file gets its own annotation."""
    by_code: dict[tuple[str, str], list[Finding]] = {}
    for finding in findings:
        file = str(finding.evidence.get("file") or "") if by_file else ""
        by_code.setdefault((finding.code, file), []).append(finding)
    groups = [
        CodeGroup(code, tuple(sorted(items, key=lambda item: -item.severity.rank))) for (code, _), items in by_code.items()
    ]
    return sorted(groups, key=lambda group: (-group.severity.rank, group.code))


def _where(location: Location | None, root: Path) -> tuple[str | None, int | None]:
    if location is None:
        return None, None
    return location.relative_to(root), location.line


# ---------------------------------------------------------------------------------------------- commands


def _group_message(group: CodeGroup) -> str:
    worst = group.worst
    text = worst.message + (f" Fix: {worst.hint}" if worst.hint else "")
    if len(group.findings) > 1:
        others = "; ".join(item.title for item in group.findings[1:])
        text = f"{len(group.findings)} {group.code} findings. The worst: {text} Also: {others}."
    return _clip(text, MESSAGE_LIMIT)


def github_commands(
    report: Report, fail_on: Severity, *, root: Path | None = None, cwd: Path | None = None
) -> list[str]:
    """Workflow commands annotating the report: one per code, at most `ANNOTATIONS_PER_LEVEL` per level.

    Each sits on the file and line the finding points at (the spec's build function; the label file's line),
    or on no file when it has none. `fail_on` does not change levels: an annotation's level is its severity.
    """
    del fail_on  # levels follow severities; kept so every CI renderer takes the same arguments
    root = root if root is not None else repo_root(cwd=cwd)
    by_level: dict[Severity, list[CodeGroup]] = {}
    for group in group_by_code(report.findings, by_file=report.command == "labels"):
        by_level.setdefault(group.severity, []).append(group)
    commands: list[str] = []
    for severity in (Severity.ERROR, Severity.WARNING, Severity.INFO):
        groups = by_level.get(severity, [])
        shown = groups if len(groups) <= ANNOTATIONS_PER_LEVEL else groups[: ANNOTATIONS_PER_LEVEL - 1]
        for group in shown:
            path, line = _where(locate(report, group.worst, cwd), root)
            count = f" (×{len(group.findings)})" if len(group.findings) > 1 else ""
            properties = {
                "file": path,
                "line": line if path else None,
                "title": f"{group.code} {group.worst.title}{count}",
            }
            commands.append(workflow_command(LEVELS[severity], _group_message(group), properties))
        rest = groups[len(shown) :]
        if rest:
            listed = "; ".join(f"{group.code} {group.worst.title}" for group in rest)
            commands.append(
                workflow_command(
                    LEVELS[severity],
                    _clip(
                        f"{len(rest)} more {severity.value} codes: {listed}. "
                        "The job summary and the report list them all.",
                        MESSAGE_LIMIT,
                    ),
                    {"title": f"ctcdoctor: {len(rest)} more {severity.value} codes"},
                )
            )
    return commands


# ---------------------------------------------------------------------------------------------- summary


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return md(f"{value:.4g}")
    if isinstance(value, (list, tuple)):
        return md(", ".join(str(item) for item in value[:10]) + (", …" if len(value) > 10 else ""))
    return md(_clip(str(value), 200))


def evidence_rows(evidence: Mapping[str, Any], limit: int = EVIDENCE_ROWS) -> tuple[list[str], list[list[Any]]] | None:
    """The worst instances a finding's evidence lists, as (columns, rows); None when it lists none.

    Understands the shapes checks write: `table` ({columns, rows}), `worst` (rows as dicts, CTC001/CTC002/CTC051),
    `examples` (CTC090: symbol -> the lines that hold it) and `failed` (CTC091 round trips).
    """
    table = evidence.get("table")
    if isinstance(table, Mapping) and table.get("columns"):
        return [str(column) for column in table["columns"]], [list(row) for row in (table.get("rows") or [])[:limit]]
    records: list[Mapping[str, Any]] = []
    examples = evidence.get("examples")
    if isinstance(examples, Mapping):
        records = [
            {"symbol": symbol, **item}
            for symbol, items in examples.items()
            for item in items[:1]
            if isinstance(item, Mapping)
        ]
    for key in ("worst", "failed"):
        if not records and isinstance(evidence.get(key), list):
            records = [item for item in evidence[key] if isinstance(item, Mapping)]
    if not records:
        return None
    columns: list[str] = []
    for record in records[:limit]:
        columns += [str(key) for key in record if str(key) not in columns]
    columns = columns[:EVIDENCE_COLUMNS]
    return columns, [[record.get(column, "") for column in columns] for record in records[:limit]]


def _table(columns: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(md(column) for column in columns) + " |", "|" + " --- |" * len(columns)]
    lines += ["| " + " | ".join(_cell(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def _status_line(report: Report) -> str:
    """`41 checks: 7 passed, 24 skipped, 10 not applicable`, as the console counts them; for an overfit, the checks
    ran before training and the training's own outcome follows (the checks passing is not the overfit passing)."""
    if not report.checks:
        return ""
    statuses: dict[str, int] = {}
    for check in report.checks:
        key = "not applicable" if check.status == "skipped" and not check.applicable else check.status
        statuses[key] = statuses.get(key, 0) + 1
    words = {"passed": "passed", "findings": "with findings", "skipped": "skipped", "crashed": "crashed",
             "not applicable": "not applicable"}
    parts = [f"{statuses[key]} {words[key]}" for key in words if statuses.get(key)]
    parts += [f"{count} {key}" for key, count in statuses.items() if key not in words]
    line = f"{plural(len(report.checks), 'check')}{' before training' if report.command == 'overfit' else ''}: {', '.join(parts)}"
    return line + _overfit_outcome(report)


def _overfit_outcome(report: Report) -> str:
    result = report.result if report.command == "overfit" and isinstance(report.result, dict) else None
    if result is None:
        return ""
    if not result.get("trained", True):
        return " · not trained (a blocking finding makes training pointless)"
    steps = plural(int(result.get("steps") or 0), "step")
    if result.get("fitted"):
        return f" · training: fitted in {steps}"
    return f" · training: did not fit in {steps}" + (f" ({result['diagnosis']})" if result.get("diagnosis") else "")


def _heading(report: Report, fail_on: Severity) -> str:
    counts = count_by_severity(list(report.findings))
    failed = fails(list(report.findings), fail_on)
    tally = ", ".join(
        f"{counts[key]} {key}{'s' if counts[key] != 1 and key != 'info' else ''}"
        for key in ("error", "warning", "info")
    )
    verdict = (
        f"❌ failed: {tally}" if failed else (f"✅ passed: {tally}" if report.findings else "✅ passed: no findings")
    )
    gate = f"fails on {fail_on.value}" + (" or worse" if fail_on is not Severity.ERROR else "")
    facts = [f"`{report.spec.replace('`', '')}`", gate]
    status = _status_line(report)
    if status:
        facts.append(status)
    return f"### ctcdoctor {md(report.command)} — {verdict}\n\n" + " · ".join(facts) + "\n"


def _details(finding: Finding) -> str:
    body = [md(_clip(finding.message, DETAIL_LIMIT))]
    if finding.hint:
        body.append(f"**Fix:** {md(_clip(finding.hint, DETAIL_LIMIT))}")
    body.append(f"More: `ctcdoctor explain {finding.code}`")
    return (
        f"<details><summary>{MARKS[finding.severity]} <b>{finding.code}</b> {html.escape(finding.title)}</summary>\n\n"
        + "\n\n".join(body)
        + "\n\n</details>\n"
    )


def summary_sections(report: Report, fail_on: Severity, root: Path, cwd: Path | None = None) -> list[str]:
    """The summary's blocks in the order they are shown (and kept when the summary must be cut)."""
    sections = [_heading(report, fail_on)]
    if report.findings:
        sections.append("\n| | code | problem | where |\n| --- | --- | --- | --- |\n")
        for finding in report.findings:
            path, line = _where(locate(report, finding, cwd), root)
            # GFM splits table cells on '|' before reading code spans: escape it even there.
            shown = (path or "").replace("`", "").replace("|", "\\|") + (f":{line}" if line else "")
            where = f"`{shown}`" if path else ""
            mark = f"{MARKS[finding.severity]} {finding.severity.value}"
            sections.append(f"| {mark} | {finding.code} | {md(finding.title)} | {where} |\n")
        worst = []
        for finding in report.findings:
            table = evidence_rows(finding.evidence)
            if table is not None and table[1]:
                worst.append(f"\n**{finding.code}** {md(finding.title)}\n\n{_table(*table)}\n")
        if worst:
            sections += ["\n#### Worst samples\n", *worst]
        sections.append("\n#### Details\n\n")
        sections += [_details(finding) for finding in report.findings]
    skipped = [check for check in report.checks if check.status == "skipped" and check.applicable]
    if skipped:
        sections.append("\n#### Skipped checks\n\n")
        sections += [
            f"- {check.code} `{check.name}`: {md(_clip(skip_reason(check, report.findings), 500))}\n"
            for check in skipped
        ]
    idle: dict[str, list[str]] = {}
    for check in report.checks:
        if check.status == "skipped" and not check.applicable:
            idle.setdefault(check.reason or "nothing to examine", []).append(check.code)
    if idle:
        sections.append("\n_Not applicable: " + "; ".join(f"{', '.join(codes)} ({md(reason)})" for reason, codes in idle.items())
                        + "._\n")
    return sections


def render_github_summary(
    report: Report,
    fail_on: Severity,
    *,
    root: Path | None = None,
    cwd: Path | None = None,
    limit: int = SUMMARY_LIMIT,
) -> str:
    """Markdown for `$GITHUB_STEP_SUMMARY`: verdict, a findings table, the worst samples, collapsed details.

    Cut to at most `limit` UTF-8 bytes: blocks are kept in order while they fit, then a note says what is left out.
    """
    root = root if root is not None else repo_root(cwd=cwd)
    sections = summary_sections(report, fail_on, root, cwd)
    kept: list[str] = []
    size = 0
    reserve = 400  # room for the note
    for index, section in enumerate(sections):
        length = len(section.encode("utf-8"))
        if size + length + reserve > limit:
            left = len(sections) - index
            note = (
                f"\n\n_Summary cut at {limit // 1024} KiB: {left} more blocks left out. "
                f"The full report: `ctcdoctor {md(report.command)} ... --format json --output FILE`._\n"
            )
            return "".join(kept) + note
        kept.append(section)
        size += length
    return "".join(kept)


# ---------------------------------------------------------------------------------------------- writing


def github_enabled(environ: Mapping[str, str] | None = None, disabled: bool = False) -> bool:
    """True on GitHub Actions (`GITHUB_ACTIONS=true`) unless `--no-github` was given."""
    environ = os.environ if environ is None else environ
    return not disabled and environ.get("GITHUB_ACTIONS") == "true"


def write_github(
    report: Report,
    fail_on: Severity,
    *,
    environ: Mapping[str, str] | None = None,
    stream: TextIO | None = None,
    cwd: Path | None = None,
) -> None:
    """Append the summary to `$GITHUB_STEP_SUMMARY` (when set) and write the workflow commands to `stream`
    (default stderr). A summary that cannot be written becomes a warning annotation, never a failed gate."""
    environ = os.environ if environ is None else environ
    stream = sys.stderr if stream is None else stream
    root = repo_root(environ, cwd)
    commands = github_commands(report, fail_on, root=root, cwd=cwd)
    summary_path = environ.get("GITHUB_STEP_SUMMARY")
    if summary_path:
        try:
            with open(summary_path, "a", encoding="utf-8") as handle:
                handle.write(render_github_summary(report, fail_on, root=root, cwd=cwd) + "\n")
        except OSError as error:
            commands.append(workflow_command("warning", f"ctcdoctor could not append to $GITHUB_STEP_SUMMARY: {error}"))
    for command in commands:
        stream.write(command + "\n")
    stream.flush()
