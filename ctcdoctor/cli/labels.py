"""`ctcdoctor labels FILE --alphabet ...`: label-file and alphabet problems (CTC090, CTC091). No torch here."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

import ctcdoctor.cli.options as opt
from ctcdoctor.cli.output import Emit, emit, guarded, json_errors_for

if TYPE_CHECKING:  # pragma: no cover
    from ctcdoctor.findings import Finding


def labels(
    files: Annotated[
        list[Path],
        typer.Argument(
            help='Label files: `path<TAB>text`, ICDAR `path, "text"`, or `path text` per line.', show_default=False, metavar="FILE"
        ),
    ],
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
    junit_xml: opt.JunitXml = None,
    sarif: opt.Sarif = None,
    no_github: opt.NoGithub = False,
    select: opt.Select = [],  # noqa: B006 - typer reads the default, never mutates it
    ignore: opt.Ignore = [],  # noqa: B006
    fail_on: opt.FailOnOption = None,
    verbose: opt.Verbose = False,
    debug: opt.Debug = False,
) -> None:
    """Check label files against an alphabet, and the alphabet itself (CTC090, CTC091).

    Several files (as pre-commit passes them) are checked one by one; each finding names its file.
    """

    def work() -> int:
        how = Emit(output_format, output, verbose, junit_xml=junit_xml, sarif=sarif, no_github=no_github)
        from ctcdoctor.config import resolve_settings
        from ctcdoctor.errors import UserInputError
        from ctcdoctor.findings import Report
        from ctcdoctor.labels import check_labels, read_alphabet_arg
        from ctcdoctor.registry import apply_ignore, matches, sort_findings

        settings = resolve_settings(files[0].parent, fail_on=fail_on, select=select, ignore=ignore)
        how.check_paths()
        symbols = None
        if alphabet is not None:
            try:
                symbols = read_alphabet_arg(alphabet)
            except OSError as error:
                raise UserInputError(
                    f"cannot read --alphabet {alphabet!r}: {error.strerror or error}", "Give the symbols as a string, or @FILE."
                ) from error
        found: list = []
        results = []
        for number, file in enumerate(files):
            try:
                data = file.read_bytes()
            except OSError as error:
                raise UserInputError(f"cannot read label file {str(file)!r}: {error.strerror or error}", "Check the path.") from error
            file_findings, result = check_labels(data, symbols, top, str(file))
            if number > 0:  # the alphabet's own problems (CTC091) once, not once per file
                file_findings = [item for item in file_findings if item.code != "CTC091"]
            found += [named(item, str(file), several=len(files) > 1) for item in file_findings]
            result["alphabet_file"] = alphabet[1:] if alphabet and alphabet.startswith("@") else None
            results.append(result)
        found = apply_ignore(found, settings.ignore)
        if settings.select:
            found = [item for item in found if matches(item.code, settings.select)]
        combined = results[0] if len(results) == 1 else {"files": results, "alphabet_file": results[0]["alphabet_file"]}
        spec = " ".join(str(file) for file in files)
        report = Report("labels", spec, sort_findings(found), (), combined,
                        config=str(settings.config_path) if settings.config_path else None)
        return emit(report, how, settings.fail_on)

    guarded(debug, work, json_errors_for("labels", " ".join(map(str, files)), output_format))


def named(item: Finding, file: str, several: bool) -> Finding:
    """The finding with its file in the evidence; with several files, a label-file finding's message starts with the
    file's name too (the terminal and the CI formats show the message, not the evidence)."""
    import dataclasses

    message = f"{file}: {item.message}" if several and item.code != "CTC091" else item.message
    return dataclasses.replace(item, message=message, evidence={**item.evidence, "file": file})
