"""`ctcdoctor labels FILE --alphabet ...`: label-file and alphabet problems (CTC090, CTC091).

No torch here: the command reads text only.
"""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from ctcdoctor.cli import FailOn, OutputFormat, app, emit, guarded


@app.command()
def labels(
    file: Path = typer.Argument(..., help="Label file: `path<TAB>text`, ICDAR `path, \"text\"`, or `path text` per line."),
    alphabet: Optional[str] = typer.Option(
        None, "--alphabet", "-a",
        help="The symbols of the non-blank classes in class order: a string, or @FILE (one line: its characters; "
        "several lines: one symbol per line).",
    ),
    top: int = typer.Option(5, "--top", min=1, help="How many of the longest labels to list."),
    output_format: OutputFormat = typer.Option(OutputFormat.text, "--format", "-f", help="text for people, json for CI."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Also write the JSON report to this file."),
    ignore: List[str] = typer.Option([], "--ignore", help="Skip these codes or prefixes."),
    fail_on: Optional[FailOn] = typer.Option(None, "--fail-on", help="Exit 1 on findings at or above this severity \\[default: error]."),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks."),
) -> None:
    """Check a label file against an alphabet, and the alphabet itself (CTC090, CTC091)."""

    def work() -> int:
        from ctcdoctor.errors import UserInputError
        from ctcdoctor.labels_file import alphabet_problems, analyse_labels, label_problems, read_alphabet_arg, read_label_bytes
        from ctcdoctor.registry import finding, load_builtin, matches
        from ctcdoctor.findings import Report
        from ctcdoctor.runner import sort_findings

        load_builtin()
        try:
            data = file.read_bytes()
        except OSError as error:
            raise UserInputError(f"cannot read label file {str(file)!r}: {error.strerror or error}", "Check the path.") from error
        symbols = None
        if alphabet is not None:
            try:
                symbols = read_alphabet_arg(alphabet)
            except OSError as error:
                raise UserInputError(f"cannot read --alphabet {alphabet!r}: {error}", "Give the symbols as a string, or @FILE.") from error
        parsed = read_label_bytes(data)
        report = analyse_labels(parsed, symbols, top)
        found = [finding("CTC090", p.message, p.hint, {"problem": p.kind, **p.evidence}, title=p.title)
                 for p in label_problems(parsed, report, symbols)]
        if symbols is not None:
            found += [finding("CTC091", p.message, p.hint, {"problem": p.kind, **p.evidence}, title=p.title)
                      for p in alphabet_problems(symbols)]
        ignored = [code.upper() for item in ignore for code in item.split(",") if code]
        found = [item for item in found if not (ignored and matches(item.code, ignored))]
        lengths = sorted(report.lengths)
        result = {
            "file": str(file),
            "lines": report.lines,
            "blank_lines": parsed.blank_lines,
            "formats": report.formats,
            "alphabet_size": len(symbols) if symbols is not None else None,
            "outside_symbols": dict(report.outside.most_common()),
            "empty_labels": report.empty,
            "longest": [{"line": line, "length": size, "text": text} for size, line, text in report.longest],
            "max_length": lengths[-1] if lengths else 0,
            "median_length": lengths[len(lengths) // 2] if lengths else 0,
        }
        blocks = []
        if output_format is OutputFormat.text:
            from rich.table import Table

            table = Table(title=f"{report.lines} labels; longest", box=None, padding=(0, 2), header_style="bold")
            table.add_column("line", justify="right")
            table.add_column("symbols", justify="right")
            table.add_column("text")
            for size, line, text in report.longest:
                table.add_row(str(line), str(size), text)
            blocks.append(table)
        settings_fail_on = fail_on.value if fail_on else "error"
        return emit(Report("labels", str(file), sort_findings(found), (), result, {"blocks": blocks}),
                    output_format, output, False, settings_fail_on)

    guarded(debug, work)
