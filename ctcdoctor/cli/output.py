"""Running a command body and emitting its report: the documented exit codes, stdout kept for
the report alone, chatter and errors on stderr.

With `--format json` stdout must carry the JSON document and nothing else, so the user's own
`print()` calls (in their module, data set or `forward`) go to stderr while a command runs.
"""

from __future__ import annotations

import atexit
import contextlib
import io
import os
import re
import sys
import traceback
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import typer
from rich.console import Console

from ctcdoctor.cli.options import OutputFormat
from ctcdoctor.errors import ExitCode, UserInputError
from ctcdoctor.load.limits import CommandTimeout, current_activity

#: The stdout the report goes to: the process's stdout at the start of the command, before the
#: user's prints were redirected to stderr.
_REPORT_STREAM: ContextVar[IO[str] | None] = ContextVar("report_stream", default=None)


#: Width for output that is not a terminal (CI logs, pipes, files): wide enough that no message is
#: ever wrapped or cut, so each stays one greppable line without trailing padding.
LOG_WIDTH = 100_000


class _Unpadded(io.TextIOBase):
    """A text stream that drops the spaces Rich pads table cells with at the end of a line."""

    def __init__(self, stream: IO[str]) -> None:
        self._stream = stream
        self._spaces = ""

    def write(self, text: str) -> int:
        text = self._spaces + text
        stripped = re.sub(r" +\n", "\n", text)
        body = stripped.rstrip(" ")
        self._spaces = stripped[len(body):]  # held back: spaces before a newline that has not come yet
        self._stream.write(body)
        return len(text)

    def flush(self) -> None:
        self._stream.flush()

    def isatty(self) -> bool:
        return False


def console_for(stream: IO[str], stderr: bool = False) -> Console:
    """A Console on `stream`: the terminal's width in a terminal; anywhere else (CI logs, pipes,
    files) lines that are never wrapped or cut and carry no trailing padding."""
    if stream.isatty():
        return Console(file=stream, stderr=stderr)
    return Console(file=_Unpadded(stream), stderr=stderr, width=LOG_WIDTH, soft_wrap=True)  # type: ignore[arg-type]


def stderr_console() -> Console:
    """Progress, status lines and errors: stderr, wrapped only in a terminal."""
    return console_for(sys.stderr, stderr=True)


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)


@dataclass
class JsonErrors:
    """With --format json, an error that ends the command is also a JSON document on stdout (`error_document`),
    unless the report was printed already (an error writing a report file after it)."""

    command: str
    spec: str
    printed: bool = False


_JSON_ERRORS: ContextVar[JsonErrors | None] = ContextVar("json_errors", default=None)


def json_errors_for(command: str, spec: str, output_format: OutputFormat) -> JsonErrors | None:
    """What `guarded` needs to print an error as JSON, when the command was asked for JSON."""
    return JsonErrors(command, spec) if output_format is OutputFormat.json else None


def fail(message: str, hint: str = "", code: ExitCode = ExitCode.USAGE) -> None:
    json_errors = _JSON_ERRORS.get()
    if json_errors is not None and not json_errors.printed:
        from ctcdoctor.render.json import error_document

        with contextlib.suppress(BrokenPipeError, OSError):
            stream = report_stream()
            stream.write(error_document(json_errors.command, json_errors.spec, int(code), message, hint) + "\n")
            stream.flush()
    console = stderr_console()
    # soft_wrap: one logical line each, so logs and greps keep the whole cause.
    console.print(f"[bold red]error:[/] {_escape(message)}", soft_wrap=True)
    if hint:
        console.print(f"[green]fix:[/] {_escape(hint)}", soft_wrap=True)
    _github_error(message, hint, code)
    raise typer.Exit(int(code))


def _github_error(message: str, hint: str, code: ExitCode) -> None:
    """On GitHub Actions an error that ends the command is an `::error` annotation and a job-summary line too: the
    cause is on the run's page, not only in its log (`--no-github` turns it off, as for reports)."""
    from ctcdoctor.render.github import github_enabled, md, workflow_command

    if not github_enabled(disabled="--no-github" in sys.argv[1:]):
        return
    with contextlib.suppress(OSError, ValueError):
        text = f"{message}\nfix: {hint}" if hint else message
        sys.stderr.write(workflow_command("error", text, {"title": f"ctcdoctor: exit {int(code)}"}) + "\n")
        sys.stderr.flush()
        summary = os.environ.get("GITHUB_STEP_SUMMARY")
        if summary:
            with open(summary, "a", encoding="utf-8") as handle:
                handle.write(f"### ctcdoctor — ❌ exit {int(code)}\n\n{md(message)}\n\n" + (f"**Fix:** {md(hint)}\n\n" if hint else ""))


_exit_hook_registered = False


def _user_prints_at_exit_to_stderr() -> None:
    """Registered after the user's module has loaded, so it runs before the atexit handlers that module
    registered (atexit is last in, first out): their prints then go to stderr, not after the JSON."""
    with contextlib.suppress(Exception):
        sys.stdout.flush()
    sys.stdout = sys.stderr


@contextlib.contextmanager
def _user_prints_to_stderr() -> Iterator[None]:
    """The user's print() calls (module, build(), dataset, forward, criterion, threads they start) go to stderr
    while the command runs, and at interpreter exit. Output written below Python (C extensions, os.write(1, ...))
    is not redirected."""
    global _exit_hook_registered
    token = _REPORT_STREAM.set(sys.stdout)
    try:
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        _REPORT_STREAM.reset(token)
        if not _exit_hook_registered:
            atexit.register(_user_prints_at_exit_to_stderr)
            _exit_hook_registered = True


def guarded(debug: bool, work: Callable[[], int], json_errors: JsonErrors | None = None) -> None:
    """Run a command body and map its end to the documented exit codes; a traceback only with --debug.
    `json_errors` (with --format json): an error is also printed as a JSON document on stdout.

    A command arms its `--timeout` inside `work`, once its settings are resolved:
    `with ctcdoctor.load.limits.deadline(settings.timeout): ...`.
    """
    token = _JSON_ERRORS.set(json_errors)
    try:
        _guarded(debug, work)
    finally:
        _JSON_ERRORS.reset(token)


def _guarded(debug: bool, work: Callable[[], int]) -> None:
    try:
        with _user_prints_to_stderr():
            code = work()
    except typer.Exit:
        raise
    except UserInputError as error:
        if debug:
            traceback.print_exc()
        fail(error.message, error.hint, ExitCode.USAGE)
    except CommandTimeout as error:
        if debug:
            traceback.print_exc()
        fail(error.message, error.hint, ExitCode.USAGE)
    except SystemExit as error:
        # Only the user's code calls sys.exit inside a command (ctcdoctor raises typer.Exit): never our exit code.
        if debug:
            traceback.print_exc()
        fail(f"your code called sys.exit({'' if error.code is None else repr(error.code)}) while ctcdoctor was "
             f"{current_activity()}", "Raise an exception instead of calling sys.exit() in code that ctcdoctor runs.",
             ExitCode.USAGE)
    except KeyboardInterrupt:
        stderr_console().print("interrupted")
        raise typer.Exit(130) from None
    except Exception as error:  # an internal error of ctcdoctor, not a finding
        if debug:
            traceback.print_exc()
        fail(
            f"internal error: {type(error).__name__}: {error}",
            "Run again with --debug and report the traceback at the ctcdoctor issue tracker.",
            ExitCode.INTERNAL,
        )
    raise typer.Exit(code)


@dataclass(frozen=True)
class Emit:
    """How a command wants its report shown."""

    output_format: OutputFormat = OutputFormat.text
    output: Path | None = None
    verbose: bool = False
    every: int | None = None
    """For `simulate`: print the metrics table every this many steps."""
    junit_xml: Path | None = None
    sarif: Path | None = None
    no_github: bool = False
    """No GitHub job summary or annotations even when GITHUB_ACTIONS=true."""

    def check_paths(self) -> None:
        """Every report file can be written: found out before the work, not after it."""
        from ctcdoctor.cli.options import ensure_writable

        ensure_writable(self.output, "--output")
        ensure_writable(self.junit_xml, "--junit-xml")
        ensure_writable(self.sarif, "--sarif")


def report_stream() -> IO[str]:
    return _REPORT_STREAM.get() or sys.stdout


def emit(report, how: Emit, fail_on) -> int:  # noqa: ANN001 - Report and Severity, imported lazily
    """Print the report (JSON alone on stdout with --format json), write --output, return the exit code."""
    from ctcdoctor.findings import fails
    from ctcdoctor.render.json import render_json

    document = render_json(report)
    if how.output is not None:
        try:
            how.output.parent.mkdir(parents=True, exist_ok=True)
            how.output.write_text(document + "\n", encoding="utf-8")
        except OSError as error:
            raise UserInputError(f"cannot write --output {how.output}: {error.strerror or error}", "Choose a writable path.") from error
    code = int(ExitCode.FINDINGS if fails(list(report.findings), fail_on) else ExitCode.OK)
    stream = report_stream()
    try:
        if how.output_format is OutputFormat.json:
            stream.write(document + "\n")
            stream.flush()
            json_errors = _JSON_ERRORS.get()
            if json_errors is not None:
                json_errors.printed = True
        else:
            from ctcdoctor.render.console import RenderOptions, render_console

            console = console_for(stream)
            render_console(report, console, RenderOptions(verbose=how.verbose, every=how.every))
    except (BrokenPipeError, SystemExit):
        # `ctcdoctor check ... | head -1`: the reader left (Rich answers a broken pipe with sys.exit(1));
        # the verdict, and so the exit code, stand.
        silence_stdout()
    _ci_formats(report, how, fail_on)
    return code


def silence_stdout() -> None:
    """Point the process's stdout at /dev/null so the interpreter's final flush cannot fail again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    with contextlib.suppress(OSError, ValueError):
        os.dup2(devnull, sys.stdout.fileno())


def _ci_formats(report, how: Emit, fail_on) -> None:  # noqa: ANN001 - Report and Severity, imported lazily
    """The formats CI speaks, from the same findings: JUnit XML, SARIF, GitHub summary and annotations.

    Workflow commands go to stderr: with --format json stdout carries only the JSON, and GitHub
    reads workflow commands from both streams.
    """
    try:
        if how.junit_xml is not None:
            from ctcdoctor.render.junit import write_junit

            write_junit(report, how.junit_xml, fail_on)
        if how.sarif is not None:
            from ctcdoctor.render.sarif import write_sarif

            write_sarif(report, how.sarif, fail_on)
    except OSError as error:
        raise UserInputError(f"cannot write a report file: {error.strerror or error} ({error.filename})",
                             "Choose a writable path.") from error
    from ctcdoctor.render.github import github_enabled, write_github

    if github_enabled(disabled=how.no_github):
        write_github(report, fail_on, stream=sys.stderr)
