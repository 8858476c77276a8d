"""What the training monitor prints: a compact line per evaluation with a few decodes next to
their targets, each verdict when it appears, or the same as a Rich live table in a terminal.

Pure formatting of plain values; the monitor decides when to print.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import IO, Any

from ctcdoctor.findings import Finding
from ctcdoctor.training.curve import fmt

PREFIX = "[ctcdoctor]"
MARKS = {"error": "✖ error", "warning": "▲ warning", "info": "ℹ info"}
SHOWN = 48
"""Decodes longer than this are cut (…) on the line."""


def _rate(value: Any) -> str:
    return "-" if value is None or not math.isfinite(value) else f"{value:.2f}"


def _share(value: Any) -> str:
    return "-" if value is None or not math.isfinite(value) else f"{value:.0%}"


def _cut(text: str) -> str:
    return text if len(text) <= SHOWN else text[: SHOWN - 1] + "…"


def metric_cells(step: int, record: dict[str, float], nonfinite: int, per_step_ms: float | None,
                 infeasible_steps: int = 0) -> dict[str, str]:
    """The numbers of one evaluation, as short strings by column; `infeasible_steps`: batches so far that held
    samples CTC cannot align (counted at every step, where the evaluation sees one batch)."""
    cells = {"step": f"{step:,}", "loss": fmt(record.get("loss", math.nan))}
    if "cer" in record:
        cells["CER"] = _rate(record["cer"])
    if "wer" in record:
        cells["WER"] = _rate(record["wer"])
    if "blank_ratio" in record:
        cells["blank"] = f"{_share(record['blank_ratio'])} (p {_rate(record.get('blank_prob'))})"
    if "empty_rate" in record:
        cells["empty"] = _share(record["empty_rate"])
    if "infeasible" in record:  # of the samples evaluated; a step whose outputs were not measured: the count alone
        evaluated = record.get("evaluated")
        cells["infeasible"] = f"{int(record['infeasible'])}" + (f"/{int(evaluated)}" if evaluated is not None else "")
    if infeasible_steps:
        cells["infeasible"] = f"{cells.get('infeasible', '-')} ({infeasible_steps} batch{'es' if infeasible_steps != 1 else ''} so far)"
    if "lr" in record:
        cells["lr"] = fmt(record["lr"])
    if nonfinite:
        cells["non-finite"] = f"{nonfinite} steps"
    if record.get("nonfinite_outputs"):
        cells["non-finite outputs"] = f"{int(record['nonfinite_outputs'])} frames"
    if per_step_ms is not None:
        cells["monitor"] = f"{per_step_ms:.2f} ms/step"
    return cells


def metrics_line(cells: dict[str, str]) -> str:
    return PREFIX + " " + "  ".join(f"{name} {value}" if name != "step" else f"step {value}" for name, value in cells.items())


def samples_line(examples: Sequence[tuple[str, str]]) -> str:
    shown = "   ".join(f"{_cut(target)!r} → {_cut(decoded)!r}" for target, decoded in examples)
    return f"{' ' * len(PREFIX)}  target → decoded: {shown}" if examples else ""


def finding_lines(found: Finding) -> list[str]:
    lines = [f"{PREFIX} {MARKS[found.severity.value]} {found.code} {found.title}", f"    {found.message}"]
    if found.hint:
        lines.append(f"    fix: {found.hint}")
    return lines


class Printer:
    """Plain lines on a stream, or a Rich live table (in a terminal) that is redrawn at each evaluation."""

    def __init__(self, stream: IO[str], live: bool) -> None:
        self.stream = stream
        self.live = None
        self.rows: list[dict[str, str]] = []
        self.examples: Sequence[tuple[str, str]] = ()
        self.verdicts: list[Finding] = []
        if live:
            from rich.console import Console
            from rich.live import Live

            self.live = Live(console=Console(file=stream), auto_refresh=False, transient=False)
            self.live.start()

    def evaluation(self, cells: dict[str, str], examples: Sequence[tuple[str, str]], new: list[Finding],
                   findings: Sequence[Finding]) -> None:
        if self.live is None:
            lines = [metrics_line(cells)]
            if examples:
                lines.append(samples_line(examples))
            for found in new:
                lines.extend(finding_lines(found))
            self.write(lines)
            return
        self.rows = (self.rows + [cells])[-12:]
        self.examples, self.verdicts = examples, list(findings)
        self.live.update(self._table(), refresh=True)

    def write(self, lines: list[str]) -> None:
        if self.live is not None:
            for line in lines:
                self.live.console.print(line, markup=False, highlight=False)
            return
        self.stream.write("\n".join(line for line in lines if line) + "\n")
        self.stream.flush()

    def _table(self) -> Any:
        from rich.console import Group
        from rich.table import Table
        from rich.text import Text

        columns = list(dict.fromkeys(key for row in self.rows for key in row))
        table = Table(title="ctcdoctor monitor", title_justify="left", box=None, padding=(0, 1), header_style="bold")
        for column in columns:
            table.add_column(column, justify="right")
        for row in self.rows:
            table.add_row(*(row.get(column, "") for column in columns))
        parts: list[Any] = [table]
        for target, decoded in self.examples:
            parts.append(Text(f"  {_cut(target)!r} → {_cut(decoded)!r}", style="dim"))
        styles = {"error": "bold red", "warning": "bold yellow", "info": "cyan"}
        for found in self.verdicts:
            parts.append(Text(f"{MARKS[found.severity.value]} {found.code} {found.title}", style=styles[found.severity.value]))
        return Group(*parts)

    def stop(self) -> None:
        if self.live is not None:
            self.live.stop()
            self.live = None
