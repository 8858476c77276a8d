"""The `ctcdoctor` command line.

Start-up stays light: nothing here imports torch at module level, so `--help` and
`explain` answer at once; each command imports what it needs when it runs.
"""
from __future__ import annotations

import sys
import traceback
from enum import Enum
from pathlib import Path
from typing import Any, Callable, List, Optional

import typer
from rich.console import Console

from ctcdoctor.exit_codes import ExitCode

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    rich_markup_mode="rich",
    help="Find out why a CTC model will not learn, before you burn a week of GPU time.\n\n"
    "Exit codes: 0 no finding at or above --fail-on; 1 some finding at or above it; "
    "2 usage error or the spec cannot be loaded; 3 internal error.",
)

stderr = Console(stderr=True)


class OutputFormat(str, Enum):
    text = "text"
    json = "json"


class FailOn(str, Enum):
    error = "error"
    warning = "warning"
    info = "info"


def _fail(message: str, hint: str = "", code: ExitCode = ExitCode.USAGE) -> None:
    # soft_wrap: one logical line each, so logs and greps keep the whole cause.
    stderr.print(f"[bold red]error:[/] {_escape(message)}", soft_wrap=True)
    if hint:
        stderr.print(f"[green]fix:[/] {_escape(hint)}", soft_wrap=True)
    raise typer.Exit(int(code))


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)


def guarded(debug: bool, work: Callable[[], int]) -> None:
    """Map failures to the documented exit codes; a traceback only with --debug."""
    from ctcdoctor.errors import UserInputError

    try:
        code = work()
    except typer.Exit:
        raise
    except UserInputError as error:
        if debug:
            traceback.print_exc()
        _fail(error.message, error.hint, ExitCode.USAGE)
    except KeyboardInterrupt:
        stderr.print("interrupted")
        raise typer.Exit(130)
    except Exception as error:  # an internal error of ctcdoctor, not a finding
        if debug:
            traceback.print_exc()
        _fail(
            f"internal error: {type(error).__name__}: {error}",
            "Run again with --debug and report the traceback at the ctcdoctor issue tracker.",
            ExitCode.INTERNAL,
        )
    raise typer.Exit(code)


def emit(report: Any, output_format: OutputFormat, output: Optional[Path], verbose: bool, fail_on: str) -> int:
    """Print the report (JSON alone on stdout with --format json) and return the exit code."""
    from ctcdoctor.findings import Severity, fails
    from ctcdoctor.report.json_report import render_json

    document = render_json(report)
    if output is not None:
        try:
            output.parent.mkdir(parents=True, exist_ok=True)
            output.write_text(document + "\n", encoding="utf-8")
        except OSError as error:
            from ctcdoctor.errors import UserInputError

            raise UserInputError(f"cannot write --output {output}: {error}", "Choose a writable path.") from error
    if output_format is OutputFormat.json:
        sys.stdout.write(document + "\n")
        sys.stdout.flush()
    else:
        from ctcdoctor.report.console import render_console

        render_console(report, Console(), verbose=verbose)
    return int(ExitCode.FINDINGS if fails(list(report.findings), Severity.parse(fail_on)) else ExitCode.OK)


def _settings(spec: str, fail_on: Optional[FailOn], select: List[str], ignore: List[str], **flags: Any) -> dict[str, Any]:
    from ctcdoctor.config import as_code_list, load_config

    config, _ = load_config(spec)
    settings = {
        "fail_on": (fail_on.value if fail_on else None) or str(config.get("fail-on", "error")),
        "select": as_code_list(select) or as_code_list(config.get("select")),
        "ignore": as_code_list(ignore) or as_code_list(config.get("ignore")),
    }
    for name, value in flags.items():
        settings[name] = value if value is not None else config.get(name.replace("_", "-"))
    return settings


SPEC_HELP = "Your module and function: path/to/file.py[:build] or package.module[:build]."


@app.command()
def check(
    spec: str = typer.Argument(..., help=SPEC_HELP),
    output_format: OutputFormat = typer.Option(OutputFormat.text, "--format", "-f", help="text for people, json for CI."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Also write the JSON report to this file."),
    select: List[str] = typer.Option([], "--select", help="Run only these codes or prefixes (repeat or comma-separate)."),
    ignore: List[str] = typer.Option([], "--ignore", help="Skip these codes or prefixes."),
    fail_on: Optional[FailOn] = typer.Option(None, "--fail-on", help="Exit 1 on findings at or above this severity \\[default: error]."),
    max_batches: Optional[int] = typer.Option(None, "--max-batches", min=1, help="Batches the model is run on \\[default: 2]."),
    scan_batches: Optional[int] = typer.Option(None, "--scan-batches", min=1, help="Batches the label and length checks read \\[default: 32]."),
    device: Optional[str] = typer.Option(None, "--device", help="Run the model on this device (a copy of it); default: where it is."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Show per-check timings."),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks."),
) -> None:
    """Load SPEC's model and data and run every check on them."""

    def work() -> int:
        from ctcdoctor.check_command import run_check

        from ctcdoctor.writable import ensure_writable

        ensure_writable(output, "--output")
        settings = _settings(spec, fail_on, select, ignore, max_batches=max_batches, scan_batches=scan_batches, device=device)
        report = run_check(spec, settings, progress=stderr if output_format is OutputFormat.text else None)
        return emit(report, output_format, output, verbose, settings["fail_on"])

    guarded(debug, work)


@app.command()
def explain(code: str = typer.Argument(..., help="A check code such as CTC001.")) -> None:
    """Print the documentation of a check code."""
    from rich.markdown import Markdown

    from ctcdoctor.registry import all_codes, get_code

    info = get_code(code.strip())
    if info is None:
        known = ", ".join(item.code for item in all_codes())
        _fail(f"unknown code {code!r}", f"Known codes: {known}.")
    console = Console()
    console.print(f"[bold]{info.code}[/] ({info.severity.value}) — {_escape(info.title)}\n")
    console.print(Markdown(info.doc))


@app.command("codes")
def list_codes() -> None:
    """List every check code with its severity and title."""
    from rich.table import Table

    from ctcdoctor.registry import all_codes

    table = Table(show_header=True, header_style="bold", box=None, padding=(0, 2))
    table.add_column("code")
    table.add_column("severity")
    table.add_column("title")
    for info in all_codes():
        table.add_row(info.code, info.severity.value, _escape(info.title))
    Console().print(table)


def _print_version(value: bool) -> None:
    # An eager option callback runs before click asks for a command, so `ctcdoctor --version` works alone.
    if value:
        from ctcdoctor import __version__

        typer.echo(f"ctcdoctor {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", help="Print the version and exit.", is_eager=True, callback=_print_version),
) -> None:
    pass


def _register_commands() -> None:
    import importlib
    import pkgutil

    import ctcdoctor.commands as package

    for module in pkgutil.iter_modules(package.__path__):
        importlib.import_module(f"{package.__name__}.{module.name}")


_register_commands()


def main() -> None:
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
