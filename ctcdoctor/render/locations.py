"""Where a finding points in the user's repository: a file and, when known, a line.

- `check`, `overfit`, `scan`: the spec's file, at the `def` of its build function. The file is read
  with `ast`, never imported (the command that produced the report has already imported it).
- `labels`: CTC090 at the label-file line its evidence names; CTC091 at the alphabet file's line of the
  symbol's class when the alphabet came from `--alphabet @FILE` (read from `result["alphabet_file"]`),
  otherwise nowhere (the alphabet was a string on the command line).
- `logs`: the log file read (`result["source"]`): in a CSV/TSV or JSONL log, or a Hugging Face
  trainer_state.json, the line of the first record of the finding's first step (`evidence["steps"]`),
  found by one pass that stops there; line 1 when the finding names no step or the step is not found.
  A TensorBoard event file is binary: the file, no line.
- any other command: nowhere.

CI formats need paths relative to the repository root (GitHub annotations, SARIF `artifactLocation.uri`);
`repo_root` finds that root. Nothing here imports torch: `ctcdoctor labels` stays fast.
"""

from __future__ import annotations

import ast
import csv
import json
import os
import re
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


#: `logs` formats whose records are lines of text, one record (or logging call) per line.
LINE_FORMATS = frozenset({"csv", "lightning", "keras", "jsonl", "monitor"})


def _first_step(evidence: Mapping[str, Any]) -> float | None:
    steps = evidence.get("steps")
    step = steps[0] if isinstance(steps, (list, tuple)) and steps else evidence.get("step")
    return float(step) if isinstance(step, (int, float)) and not isinstance(step, bool) else None


def _csv_step_line(lines: list[str], step: float) -> int | None:
    from ctcdoctor.training.readers.table import step_column  # the reader's own choice of step column

    delimiter = "\t" if "\t" in lines[0] and "," not in lines[0] else ","
    header = [name.strip() for name in next(csv.reader([lines[0]], delimiter=delimiter))]
    name = step_column(header)
    if name is None:  # rows are numbered from 0
        return int(step) + 2 if step.is_integer() and 0 <= step < len(lines) - 1 else None
    index = header.index(name)
    for number, row in enumerate(csv.reader(lines[1:], delimiter=delimiter), 2):
        try:
            if index < len(row) and float(row[index]) == step:
                return number
        except ValueError:  # an empty or text step cell
            continue
    return None


def _step_key(lines: list[str], format: str) -> str | None:
    """The key that holds the step: `step` in trainer_state.json, else the reader's choice in the first record."""
    if format == "huggingface":
        return "step"
    from ctcdoctor.training.readers.table import step_column  # the reader's own choice of step key

    for line in lines[:10]:
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict) and "meta" not in record:
            return step_column(record)
    return None


def _keyed_step_line(lines: list[str], step: float, format: str) -> int | None:
    """JSONL or trainer_state.json: the first line holding `"KEY": N`, found by a text search (no JSON parse per line)."""
    key = _step_key(lines, format)
    if key is None:
        return None
    number = str(int(step)) if step.is_integer() else repr(step)
    pattern = re.compile(rf'"{re.escape(key)}"\s*:\s*{re.escape(number)}(?:\.0*)?\s*(?:[,}}]|$)')
    for index, line in enumerate(lines, 1):
        if pattern.search(line):
            return index
    return None


def log_location(report: Report, finding: Finding, base: Path) -> Location | None:
    """Where a `logs` finding points: the log file, at the line of its first step when the log is text."""
    result = report.result or {}
    path = Path(str(result.get("source") or report.spec)).expanduser()
    path = (path if path.is_absolute() else base / path).resolve()
    if not path.is_file():
        return None
    format = str(result.get("format", ""))
    if format == "tensorboard":
        return Location(path)
    step = _first_step(finding.evidence)
    if step is None or format not in LINE_FORMATS | {"huggingface"}:
        return Location(path, 1)
    try:
        mtime = path.stat().st_mtime_ns
    except OSError:
        return Location(path, 1)
    return Location(path, _step_line(str(path), mtime, format, step) or 1)


@lru_cache(maxsize=256)
def _step_line(path: str, mtime_ns: int, format: str, step: float) -> int | None:
    """Cached: the SARIF, JUnit and GitHub renderers each ask for every finding, and a log may hold millions of rows."""
    try:
        lines = Path(path).read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return None
    if not lines:
        return None
    if format in ("csv", "lightning", "keras") and not lines[0].lstrip().startswith("{"):
        return _csv_step_line(lines, step)
    return _keyed_step_line(lines, step, format)


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
    if report.command == "logs":
        return log_location(report, finding, base)
    return None
