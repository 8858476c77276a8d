"""`ctcdoctor explain CODE` and `ctcdoctor codes`: the documentation of the finding codes. No torch here."""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from rich.console import RenderableType
from rich.markup import escape

from ctcdoctor.cli.output import console_for, fail, silence_stdout


def _show(*renderables: RenderableType) -> None:
    """Print to stdout: the terminal's width in a terminal, unwrapped and unpadded in a pipe; a reader
    that leaves early (`| head`) is not an error."""
    console = console_for(sys.stdout)
    try:
        for renderable in renderables:
            console.print(renderable)
    except (BrokenPipeError, SystemExit):  # Rich answers a broken pipe with sys.exit(1)
        silence_stdout()


def explain(codes: Annotated[list[str], typer.Argument(help="Finding codes such as CTC001 (several: one after another).",
                                                       show_default=False, metavar="CODE")]) -> None:
    """Print the documentation of one or more finding codes."""
    from rich.markdown import Markdown

    from ctcdoctor.registry import all_codes, get_code

    found = [(code, get_code(_as_code(code))) for code in codes]
    unknown = [code for code, info in found if info is None]
    if unknown:  # said before any page, so that an error is not lost above them
        known = ", ".join(item.code for item in all_codes())
        what = f"unknown code {unknown[0]!r}" if len(unknown) == 1 else f"unknown codes {', '.join(map(repr, unknown))}"
        fail(what, f"Known codes: {known}.")
        return
    pages: list[RenderableType] = []
    for number, (_, info) in enumerate(found):
        assert info is not None
        if number:
            pages.append("")  # a blank line: in a pipe the console is unbounded, and a rule would be too
        pages += [f"[bold]{info.code}[/] ({info.severity.value}) — {escape(info.title)}\n", Markdown(info.doc)]
    _show(*pages)


def _as_code(text: str) -> str:
    """CTC001 from `CTC001`, `ctc1`, `1` or `001`: the number is what people remember."""
    text = text.strip()
    digits = text[3:] if text[:3].upper() == "CTC" else text
    return f"CTC{int(digits):03d}" if digits.isdigit() else text


def codes() -> None:
    """List every finding code with its severity and title."""
    from rich.table import Table

    from ctcdoctor.registry import all_codes

    table = Table(show_header=True, header_style="bold", box=None, padding=(0, 2), pad_edge=False)
    table.add_column("code")
    table.add_column("severity")
    table.add_column("title")
    for info in all_codes():
        severities = " / ".join(dict.fromkeys(severity.value for severity, _ in info.documented))  # a code may vary
        table.add_row(info.code, severities, escape(info.title))
    _show(table)
