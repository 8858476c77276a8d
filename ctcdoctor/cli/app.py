"""The `ctcdoctor` command line: the Typer app, its commands, and `main(argv) -> int`.

Start-up stays light: nothing here imports torch at module level, so `--help`, `explain`,
`codes` and `labels` answer at once; each command imports what it needs when it runs.
Each command lives in a module of its own here; this file only registers them.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Annotated

import typer

from ctcdoctor.cli.check import check
from ctcdoctor.cli.explain import codes, explain
from ctcdoctor.cli.labels import labels
from ctcdoctor.cli.logs import logs
from ctcdoctor.cli.overfit import overfit
from ctcdoctor.cli.scan import scan
from ctcdoctor.cli.simulate import simulate
from ctcdoctor.errors import ExitCode

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    rich_markup_mode=None,
    help="Find out why a CTC model will not learn, before you burn a week of GPU time.\n\n"
    "Exit codes: 0 no finding at or above --fail-on; 1 some finding at or above it; "
    "2 usage error or the spec cannot be loaded; 3 internal error.",
)


def _print_version(value: bool) -> None:
    # An eager option callback runs before click asks for a command, so `ctcdoctor --version` works alone.
    if value:
        from ctcdoctor import __version__

        typer.echo(f"ctcdoctor {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(
    version: Annotated[bool, typer.Option("--version", help="Print the version and exit.", is_eager=True, callback=_print_version)] = False,
) -> None:
    pass


app.command()(check)
app.command()(overfit)
app.command()(scan)
app.command()(labels)
app.command()(simulate)
app.command()(logs)
app.command()(explain)
app.command()(codes)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line on `argv` (default: the process's arguments) and return the exit code."""
    try:
        # Standalone mode ends with sys.exit(code) whatever typer/click version is installed (typer 0.29
        # vendors its own click); catching it turns the command line into a function.
        app(args=list(argv) if argv is not None else None, prog_name="ctcdoctor")
    except SystemExit as done:
        code = done.code
        if code is None:
            return int(ExitCode.OK)
        if isinstance(code, int):
            return code
        print(code, file=sys.stderr)
        return int(ExitCode.USAGE)
    return int(ExitCode.OK)
