"""The options shared by the commands, declared once so a flag means the same thing everywhere,
and the check that an output path is writable before the work starts."""

from __future__ import annotations

import os
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from ctcdoctor.errors import UserInputError


class OutputFormat(str, Enum):
    text = "text"
    json = "json"


class FailOn(str, Enum):
    error = "error"
    warning = "warning"
    info = "info"


SPEC_HELP = "Your module and function: path/to/file.py[:build] or package.module[:build]."

Spec = Annotated[str, typer.Argument(help=SPEC_HELP, show_default=False, metavar="SPEC")]
Format = Annotated[
    OutputFormat, typer.Option("--format", "-f", metavar="text|json", help="text for people, json for CI (stdout carries only the JSON).")
]
Output = Annotated[Path | None, typer.Option("--output", "-o", metavar="FILE", help="Also write the JSON report to this file.", show_default=False)]
Select = Annotated[
    list[str], typer.Option("--select", metavar="CODES", help="Report only these codes or prefixes (repeat or comma-separate).", show_default=False)
]
Ignore = Annotated[
    list[str], typer.Option("--ignore", metavar="CODES", help="Skip these codes or prefixes (repeat or comma-separate).", show_default=False)
]
FailOnOption = Annotated[
    FailOn | None,
    typer.Option(
        "--fail-on", metavar="error|warning|info", help="Exit 1 on findings at or above this severity [default: error].", show_default=False
    ),
]
Verbose = Annotated[bool, typer.Option("--verbose", "-v", help="Show every check with its status and time.")]
Debug = Annotated[bool, typer.Option("--debug", help="Show tracebacks.")]
Plot = Annotated[Path | None, typer.Option("--plot", metavar="FILE", help="Write the figure to this file (.png, .pdf or .svg).", show_default=False)]
Device = Annotated[
    str | None,
    typer.Option(
        "--device",
        metavar="DEVICE",
        help="Run a copy of the model on this device: auto, cpu, cuda or cuda:N [default: where it is].",
        show_default=False,
    ),
]

JunitXml = Annotated[
    Path | None,
    typer.Option("--junit-xml", metavar="FILE", help="Also write a JUnit XML report (GitLab, Jenkins, Azure).", show_default=False),
]
Sarif = Annotated[
    Path | None,
    typer.Option("--sarif", metavar="FILE", help="Also write SARIF 2.1.0 (GitHub code scanning) for findings with a file and line.",
                 show_default=False),
]
NoGithub = Annotated[bool, typer.Option("--no-github", help="No job summary or annotations, even when GITHUB_ACTIONS=true.")]

Timeout = Annotated[
    float | None,
    typer.Option("--timeout", metavar="SECONDS", min=0.001, help="End with exit 2, naming what was running, after this long.",
                 show_default=False),
]
OverfitTimeout = Annotated[
    float | None,
    typer.Option("--timeout", metavar="SECONDS", min=0.001,
                 help="Stop after this long: a cut in training is reported on the steps run (with a note); a deadline "
                      "before training ends with exit 2, naming what was running.", show_default=False),
]
Seed = Annotated[
    int | None,
    typer.Option("--seed", metavar="N", min=0, help="Seed torch, numpy and random before build() [default: 0].", show_default=False),
]

PLOT_SUFFIXES = (".png", ".pdf", ".svg")
#: A file name to suggest when an output option names a folder.
DEFAULT_NAMES = {"--output": "report.json", "--junit-xml": "junit.xml", "--sarif": "ctcdoctor.sarif", "--drop-list": "drop.txt"}


def ensure_writable(path: Path | None, option: str, make_folders: bool = True) -> None:
    """Raise UserInputError (exit 2) naming `option` and `path` when a file cannot be written there.

    A run of `overfit` or `scan` can take minutes; finding out at the end that the figure or the
    report cannot be written throws that work away, so this tries the path up front: it creates
    the missing parent folders (the command would create them anyway) and opens the file for
    appending, removing it again if it did not exist. Permission bits alone do not tell (root
    may write anywhere, yet not into /proc). With `make_folders=False` a missing folder is a usage
    error naming it instead (a typo in a path must not grow a tree of folders somewhere else).
    """
    if path is None:
        return
    example = path / ("figure.png" if option in ("--plot", "--out") else DEFAULT_NAMES.get(option, "report.json"))
    if path.is_dir() or str(path).endswith(("/", os.sep)):
        raise UserInputError(f"{option} {path} is a folder", f"Give a file name, e.g. {example}.")
    missing = None if make_folders else next((folder for folder in reversed(path.parents) if not folder.exists()), None)
    if missing is not None:
        raise UserInputError(f"cannot write {option} {path}: the folder {missing} does not exist",
                             f"Create it first (mkdir -p {path.parent}), or choose a path in an existing folder.")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        existed = path.exists()
        with open(path, "ab"):
            pass
        if not existed:
            os.unlink(path)
    except OSError as error:
        reason = error.strerror or str(error)
        blocker = next((parent for parent in path.parents if parent.is_file()), None)
        if blocker is not None:  # mkdir says "File exists" when a parent is a file: say which
            reason = f"{blocker} is a file, not a folder"
        raise UserInputError(f"cannot write {option} {path}: {reason}", "Choose a path in a folder you can write to.") from None


def ensure_plot_path(path: Path | None, option: str = "--plot", make_folders: bool = True) -> None:
    """A figure path must have a suffix matplotlib writes and must be writable."""
    if path is None:
        return
    if path.suffix.lower() not in PLOT_SUFFIXES:
        raise UserInputError(f"{option} {path}: write a .png (or .pdf/.svg) file", f"Use e.g. {option} figure.png.")
    ensure_writable(path, option, make_folders)
