"""Rich text report for a terminal: findings grouped by severity, then a summary line."""
from __future__ import annotations

from rich.console import Console, Group
from rich.markup import escape
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

from ctcdoctor.findings import Severity, count_by_severity
from ctcdoctor.findings import Report

STYLES = {Severity.ERROR: "bold red", Severity.WARNING: "bold yellow", Severity.INFO: "bold cyan"}
MARKS = {Severity.ERROR: "✖", Severity.WARNING: "▲", Severity.INFO: "ℹ"}


def _finding_block(finding) -> Group:
    style = STYLES[finding.severity]
    head = Text.assemble(
        (f"{MARKS[finding.severity]} {finding.severity.value:<7} ", style),
        (f"{finding.code}  ", "bold"),
        (finding.title, style),
    )
    # Padding keeps wrapped lines indented under the heading.
    lines = [head, Padding(Text(finding.message), (0, 0, 0, 4), expand=False)]
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


def summary_line(report: Report) -> Text:
    counts = count_by_severity(list(report.findings))
    seconds = report.extras.get("seconds", sum(result.seconds for result in report.checks))
    parts = [
        (f"{counts['error']} error{'s' if counts['error'] != 1 else ''}", "bold red" if counts["error"] else "dim"),
        (", ", ""),
        (f"{counts['warning']} warning{'s' if counts['warning'] != 1 else ''}", "bold yellow" if counts["warning"] else "dim"),
        (", ", ""),
        (f"{counts['info']} info", "bold cyan" if counts["info"] else "dim"),
    ]
    tail = f" ({len(report.checks)} check{'s' if len(report.checks) != 1 else ''} in {seconds:.1f} s)" if report.checks and report.command == "check" else ""
    invocation = report.extras.get("invocation") or report.spec
    return Text.assemble((f"ctcdoctor {report.command} {invocation}: ", "bold"), *parts, (tail, "dim"))


def render_console(report: Report, console: Console, verbose: bool = False) -> None:
    if not report.findings and report.command in ("check", "scan", "labels"):
        console.print(Text("✔ no problems found", style="bold green"))
    for severity in (Severity.ERROR, Severity.WARNING, Severity.INFO):
        for finding in (item for item in report.findings if item.severity is severity):
            console.print(_finding_block(finding))
            console.print()
    for block in report.extras.get("blocks", []):
        console.print(block)
    if verbose and report.checks:
        table = Table(title="checks", show_header=True, header_style="bold", box=None, padding=(0, 2))
        table.add_column("code")
        table.add_column("check")
        table.add_column("status")
        table.add_column("seconds", justify="right")
        for result in report.checks:
            table.add_row(result.code, result.name, result.status, f"{result.seconds:.3f}")
        console.print(table)
    console.print(summary_line(report))
