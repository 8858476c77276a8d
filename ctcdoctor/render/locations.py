"""Where a finding points in the user's repository: a file and, when known, a line.

- `check`, `overfit`, `scan`: the spec's file, at the `def` of its build function. The file is read
  with `ast`, never imported (the command that produced the report has already imported it).
- `labels`: CTC090 at the label-file line its evidence names; CTC091 at the alphabet file's line of the
  symbol's class when the alphabet came from `--alphabet @FILE` (read from `result["alphabet_file"]`),
  otherwise nowhere (the alphabet was a string on the command line).
- any other command: nowhere.

CI formats need paths relative to the repository root (GitHub annotations, SARIF `artifactLocation.uri`);
`repo_root` finds that root. Nothing here imports torch: `ctcdoctor labels` stays fast.
"""

from __future__ import annotations

import ast
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from ctcdoctor.findings import Finding, Report

DEFAULT_FUNCTION = "build"
#: Commands whose `Report.spec` is a build() spec (`path/to/file.py[:function]` or `package.module[:function]`).
SPEC_COMMANDS = frozenset({"check", "overfit", "scan"})


@dataclass(frozen=True)
class Location:
    path: Path
    """Absolute path of the file."""
    line: int | None = None
    """1-based line, or None when only the file is known."""

    def relative_to(self, root: Path) -> str | None:
        """The path relative to `root` with forward slashes, or None when the file lies outside it."""
        try:
            return self.path.relative_to(root.resolve()).as_posix()
        except ValueError:
            return None


def repo_root(environ: Mapping[str, str] | None = None, cwd: Path | None = None) -> Path:
    """The folder paths are made relative to: `$GITHUB_WORKSPACE` (the checkout on GitHub Actions), else the
    nearest folder above the working directory holding `.git`, else the working directory."""
    environ = os.environ if environ is None else environ
    workspace = environ.get("GITHUB_WORKSPACE")
    if workspace:
        return Path(workspace).resolve()
    start = (cwd or Path.cwd()).resolve()
    for folder in (start, *start.parents):
        if (folder / ".git").exists():
            return folder
    return start


def split_spec(spec: str) -> tuple[str, str, bool]:
    """`(module or path, function, is_file)`, read as `ctcdoctor check` reads a spec (ctcdoctor/loading.py)."""
    text = spec.strip()
    module, function = text, DEFAULT_FUNCTION
    # rpartition keeps Windows drive letters ("C:\\x.py") in the module part.
    head, sep, tail = text.rpartition(":")
    if sep and "/" not in tail and "\\" not in tail and not tail.endswith(".py") and (tail or head):
        module, function = head, tail or DEFAULT_FUNCTION
    is_file = module.endswith(".py") or os.sep in module or "/" in module
    return module, function, is_file


def spec_file(spec: str, cwd: Path | None = None) -> tuple[Path, str] | None:
    """The spec's source file and function name, without importing anything; None when not found."""
    module, function, is_file = split_spec(spec)
    base = cwd or Path.cwd()
    if is_file:
        path = Path(module).expanduser()
        path = path if path.is_absolute() else base / path
        return (path.resolve(), function) if path.is_file() else None
    if not module.replace(".", "").replace("_", "").isalnum():
        return None
    relative = Path(*module.split("."))
    # The loader puts the working directory first on sys.path, then imports as usual.
    for folder in (base, *(Path(entry) for entry in sys.path if entry)):
        for candidate in (folder / relative.with_suffix(".py"), folder / relative / "__init__.py"):
            if candidate.is_file():
                return candidate.resolve(), function
    return None


@lru_cache(maxsize=64)
def _function_lines(path: str, mtime_ns: int) -> dict[str, int]:
    try:
        tree = ast.parse(Path(path).read_bytes())
    except (OSError, SyntaxError, ValueError):
        return {}
    lines: dict[str, int] = {}
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            lines[node.name] = node.lineno  # the `def` line, below any decorators
        elif isinstance(node, ast.Assign):  # build = make_build(...)
            for target in node.targets:
                if isinstance(target, ast.Name):
                    lines.setdefault(target.id, node.lineno)
    return lines


def function_line(path: Path, name: str) -> int | None:
    """Line of the module-level `def name` (or `name = ...`) in a Python file; None when absent."""
    try:
        mtime = path.stat().st_mtime_ns
    except OSError:
        return None
    return _function_lines(str(path), mtime).get(name)


def spec_location(spec: str, cwd: Path | None = None) -> Location | None:
    found = spec_file(spec, cwd)
    if found is None:
        return None
    path, function = found
    return Location(path, function_line(path, function))


def _smallest(values: Any) -> int | None:
    numbers = [
        value for value in (values or []) if isinstance(value, int) and not isinstance(value, bool) and value > 0
    ]
    return min(numbers) if numbers else None


def label_line(evidence: Mapping[str, Any]) -> int | None:
    """The label-file line a CTC090 finding is about: its worst (most frequent) or first instance."""
    problem = evidence.get("problem")
    if problem == "bom":
        return 1
    if problem == "outside":
        examples = evidence.get("examples") or {}
        # `symbols` is ordered most frequent first; point at that symbol's first example.
        for symbol in evidence.get("symbols") or {}:
            if examples.get(symbol):
                return examples[symbol][0].get("line")
        return _smallest(item.get("line") for items in examples.values() for item in items)
    if problem == "empty":
        # The message lists the empty labels first, then those emptied by dropping unknown symbols.
        return _smallest(evidence.get("empty")) or _smallest(evidence.get("emptied"))
    # inner_bom, undecodable, and any later problem that names its line(s).
    if isinstance(evidence.get("line"), int):
        return evidence["line"]
    return _smallest(evidence.get("lines"))


def alphabet_class(evidence: Mapping[str, Any]) -> int | None:
    """The 1-based class (= line of a one-symbol-per-line alphabet file) a CTC091 finding is about."""
    problem = evidence.get("problem")
    if problem == "duplicates":
        # The repeat is the mistake: point at the second occurrence of the first repeated symbol.
        repeats = [positions[1] for positions in (evidence.get("duplicates") or {}).values() if len(positions) > 1]
        return _smallest(repeats)
    if problem == "whitespace":
        pairs = [*(evidence.get("whitespace") or []), *(evidence.get("padded") or [])]
        return _smallest([*(evidence.get("empty") or []), *(pair[0] for pair in pairs)])
    if problem == "unicode":
        return _smallest(pair[0] for pair in evidence.get("symbols") or [])
    if problem == "round_trip":
        return _smallest(item.get("class") for item in evidence.get("failed") or [])
    return None


def _alphabet_location(finding: Finding, alphabet_file: str, base: Path) -> Location | None:
    path = Path(alphabet_file).expanduser()
    path = (path if path.is_absolute() else base / path).resolve()
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError):
        return None
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    if len(lines) <= 1:
        return Location(path, 1)  # one line: its characters are the symbols
    number = alphabet_class(finding.evidence)
    return Location(path, number if number is not None and number <= len(lines) else None)


def locate(report: Report, finding: Finding, cwd: Path | None = None) -> Location | None:
    """The file (and line) a finding points at, or None when it has no place in a file."""
    base = cwd or Path.cwd()
    if report.command in SPEC_COMMANDS:
        return spec_location(report.spec, base)
    if report.command == "labels":
        result = report.result or {}
        if finding.code == "CTC091":
            alphabet_file = result.get("alphabet_file")
            return _alphabet_location(finding, alphabet_file, base) if alphabet_file else None
        path = Path(str(finding.evidence.get("file") or result.get("file") or report.spec)).expanduser()
        path = (path if path.is_absolute() else base / path).resolve()
        if not path.is_file():
            return None
        return Location(path, label_line(finding.evidence))
    return None
