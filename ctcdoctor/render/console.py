"""Rich text report for a terminal: findings grouped by severity, the command's own result,
the checks (with -v), the configuration that applied, then a summary line."""
from __future__ import annotations

from dataclasses import dataclass

from rich.console import Console, Group
from rich.markup import escape
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

from ctcdoctor.findings import Finding, Report, Severity, count_by_severity
from ctcdoctor.registry import consequence_of
from ctcdoctor.render.phrases import plural
from ctcdoctor.render.results import RESULTS

STYLES = {Severity.ERROR: "bold red", Severity.WARNING: "bold yellow", Severity.INFO: "bold cyan"}
MARKS = {Severity.ERROR: "✖", Severity.WARNING: "▲", Severity.INFO: "ℹ"}


@dataclass(frozen=True)
class RenderOptions:
    verbose: bool = False
    """List every check with its status, time and, when skipped, why."""
    every: int | None = None
    """`simulate`: a metrics row every this many steps."""


def _finding_block(finding: Finding) -> Group:
    style = STYLES[finding.severity]
    cause = consequence_of(finding)
    head = Text.assemble(
        (f"{MARKS[finding.severity]} {finding.severity.value:<7} ", style),
        (f"{finding.code}  ", "bold"),
        (finding.title, style),
        (f"  (consequence of {cause})" if cause else "", "dim"),
    )
    # Padding keeps wrapped lines indented under the heading.
    lines: list = [head, Padding(Text(finding.message), (0, 0, 0, 4), expand=False)]
    if finding.hint:
        lines.append(Padding(Text.assemble(("fix: ", "green bold"), (finding.hint, "green")), (0, 0, 0, 4), expand=False))
    table = finding.evidence.get("table") if isinstance(finding.evidence, dict) else None
    if isinstance(table, dict) and table.get("columns"):
        grid = Table(show_header=True, header_style="bold", box=None, padding=(0, 2), pad_edge=False)
        for column in table["columns"]:
            grid.add_column(escape(str(column)))
        for row in table.get("rows", []):
            grid.add_row(*(escape(str(cell)) for cell in row))
        lines.append(Text(""))
        lines.append(grid)
    return Group(*lines)


def _checks_table(report: Report) -> Table:
    table = Table(title="checks", show_header=True, header_style="bold", box=None, padding=(0, 2), pad_edge=False)
    table.add_column("code")
    table.add_column("check")
    table.add_column("status")
    table.add_column("seconds", justify="right")
    reasons = any(result.reason for result in report.checks)
    if reasons:
        table.add_column("why", overflow="fold")
    for result in report.checks:
        status = "n/a" if result.status == "skipped" and not result.applicable else result.status
        cells = [result.code, result.name, status, f"{result.seconds:.3f}"]
        table.add_row(*cells, *([escape(result.reason)] if reasons else []))
    return table


def _by_reason(results: list, listed: frozenset[str] = frozenset()) -> str:
    """`CTC030, CTC031 (no Setup.criterion given); CTC014 (...)`: codes grouped under their reason.

    A group whose codes a CTC999 finding above already lists (the model failed: every check needing its output was
    skipped) is not listed a second time."""
    groups: dict[str, list[str]] = {}
    for result in results:
        groups.setdefault(result.reason or "no reason given", []).append(result.code)
    parts = []
    for reason, codes in groups.items():
        if listed and set(codes) <= listed:
            parts.append("those CTC999 lists above" if len(groups) == 1 else f"{plural(len(codes), 'check')} CTC999 lists above")
        else:
            parts.append(f"{', '.join(codes)} ({reason})")
    return "; ".join(parts)


def _listed_by_ctc999(report: Report) -> frozenset[str]:
    """Codes a CTC999 finding names as skipped (the runner writes `"CTC001 (infeasible_alignment)"` into its evidence)."""
    return frozenset(str(item).split(" ", 1)[0] for finding in report.findings if finding.code == "CTC999"
                     for item in finding.evidence.get("skipped") or [])


def _skipped_lines(report: Report) -> list[Text]:
    """Checks that could not run are never silently counted as passed (pytest's -rs): a skip worth
    reading in yellow; checks the set-up gives nothing to examine ("not applicable") in a quiet line."""
    lines = []
    skipped = [result for result in report.checks if result.status == "skipped" and result.applicable]
    if skipped:
        lines.append(Text.assemble((f"{plural(len(skipped), 'check')} skipped: ", "yellow"),
                                   _by_reason(skipped, _listed_by_ctc999(report))))
    idle = [result for result in report.checks if result.status == "skipped" and not result.applicable]
    if idle:
        lines.append(Text(f"{plural(len(idle), 'check')} not applicable: {_by_reason(idle)}", style="dim"))
    return lines


def summary_line(report: Report) -> Text:
    counts = count_by_severity(list(report.findings))
    seconds = report.seconds if report.seconds is not None else sum(result.seconds for result in report.checks)
    parts = [
        (f"{counts['error']} error{'s' if counts['error'] != 1 else ''}", "bold red" if counts["error"] else "dim"),
        (", ", ""),
        (f"{counts['warning']} warning{'s' if counts['warning'] != 1 else ''}", "bold yellow" if counts["warning"] else "dim"),
        (", ", ""),
        (f"{counts['info']} info", "bold cyan" if counts["info"] else "dim"),
    ]
    ran = len(report.checks)
    tail = f" ({ran} check{'s' if ran != 1 else ''} in {seconds:.1f} s)" if report.checks and report.command == "check" else ""
    return Text.assemble((f"ctcdoctor {report.command} {report.invocation or report.spec}: ", "bold"), *parts, (tail, "dim"))


def _clean_line(report: Report) -> Text:
    """"no problems found" only when some check looked: with every selected check skipped or not applicable (an
    --ignore or --select that leaves nothing to run), nothing was examined and the line says so."""
    if report.checks and all(result.status == "skipped" for result in report.checks):
        return Text(f"no check ran: {'the' if len(report.checks) == 1 else 'all'} {plural(len(report.checks), 'selected check')} "
                    f"{'was' if len(report.checks) == 1 else 'were'} skipped or not applicable (see below); nothing was examined",
                    style="bold yellow")
    return Text("✔ no problems found", style="bold green")


def render_console(report: Report, console: Console, options: RenderOptions | None = None) -> None:
    options = options or RenderOptions()
    if not report.findings and report.command in ("check", "scan", "labels", "logs"):
        console.print(_clean_line(report))
    for severity in (Severity.ERROR, Severity.WARNING, Severity.INFO):
        for finding in (item for item in report.findings if item.severity is severity):
            console.print(_finding_block(finding))
            console.print()
    renderer = RESULTS.get(report.command)
    if renderer is not None and report.result is not None:
        console.print(renderer(report.result, options.every))
    if options.verbose and report.checks:
        console.print(_checks_table(report))
    for line in _skipped_lines(report):
        console.print(line)
    if report.config:
        console.print(Text(f"settings from {report.config} [tool.ctcdoctor]", style="dim"))
    console.print(summary_line(report))
