"""`ctcdoctor labels FILE --alphabet ...`: label-file and alphabet problems (CTC090, CTC091). No torch here."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

import ctcdoctor.cli.options as opt
from ctcdoctor.cli.output import Emit, emit, guarded


def labels(
    file: Annotated[Path, typer.Argument(help='Label file: `path<TAB>text`, ICDAR `path, "text"`, or `path text` per line.', show_default=False)],
    alphabet: Annotated[
        str | None,
        typer.Option(
            "--alphabet",
            "-a",
            help="The symbols of the non-blank classes in class order: a string, or @FILE (one line: its characters; "
            "several lines: one symbol per line).",
            show_default=False,
        ),
    ] = None,
    top: Annotated[int, typer.Option("--top", min=1, help="How many of the longest labels to list.")] = 5,
    output_format: opt.Format = opt.OutputFormat.text,
    output: opt.Output = None,
    select: opt.Select = [],  # noqa: B006 - typer reads the default, never mutates it
    ignore: opt.Ignore = [],  # noqa: B006
    fail_on: opt.FailOnOption = None,
    verbose: opt.Verbose = False,
    debug: opt.Debug = False,
) -> None:
    """Check a label file against an alphabet, and the alphabet itself (CTC090, CTC091)."""

    def work() -> int:
        from ctcdoctor.config import resolve_settings
        from ctcdoctor.errors import UserInputError
        from ctcdoctor.findings import Report
        from ctcdoctor.labels import check_labels, read_alphabet_arg
        from ctcdoctor.registry import apply_ignore, matches, sort_findings

        settings = resolve_settings(file.parent, fail_on=fail_on, select=select, ignore=ignore)
        opt.ensure_writable(output, "--output")
        try:
            data = file.read_bytes()
        except OSError as error:
            raise UserInputError(f"cannot read label file {str(file)!r}: {error.strerror or error}", "Check the path.") from error
        symbols = None
        if alphabet is not None:
            try:
                symbols = read_alphabet_arg(alphabet)
            except OSError as error:
                raise UserInputError(
                    f"cannot read --alphabet {alphabet!r}: {error.strerror or error}", "Give the symbols as a string, or @FILE."
                ) from error
        found, result = check_labels(data, symbols, top, str(file))
        found = apply_ignore(found, settings.ignore)
        if settings.select:
            found = [item for item in found if matches(item.code, settings.select)]
        report = Report("labels", str(file), sort_findings(found), (), result, config=str(settings.config_path) if settings.config_path else None)
        return emit(report, Emit(output_format, output, verbose), settings.fail_on)

    guarded(debug, work)
