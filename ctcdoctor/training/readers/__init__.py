"""Find the training log in a path and read it: `read_run(path) -> Run`.

A file is read by what it is: `events.out.tfevents.*` (TensorBoard), a JSON file with a
`log_history` (Hugging Face `trainer_state.json`), JSON Lines (the monitor's metrics file
when its first line is the monitor header, else a plain table), CSV (Lightning's
`metrics.csv` when it has `epoch` and `step` columns, Keras' `CSVLogger` when its step
column is `epoch`, else a plain table).

A folder is searched (4 levels deep) for those files. When it holds several kinds, one log
is read, in this order: the monitor's JSONL, `trainer_state.json`, Lightning's
`metrics.csv`, TensorBoard event files, other CSV/JSONL; when it holds several logs of one
kind (Lightning's `version_0`, `version_1`; Hugging Face's `checkpoint-500`,
`checkpoint-1000`), the newest is read and a note names the others.
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path

from ctcdoctor.errors import UserInputError
from ctcdoctor.training.monitor_format import FORMAT as MONITOR_FORMAT
from ctcdoctor.training.readers.huggingface import read_trainer_state
from ctcdoctor.training.readers.table import read_csv, read_jsonl, step_column
from ctcdoctor.training.series import Run

EVENT_PREFIX = "events.out.tfevents"
SPLIT_FOLDERS = {"train", "training", "validation", "valid", "val", "eval", "evaluation", "test"}
MAX_DEPTH = 4
MAX_FILES = 20000
SKIPPED_FOLDERS = {".git", ".venv", "venv", "node_modules", "__pycache__", "wandb", ".ipynb_checkpoints"}
EMPTY_HINT = "If the run has just started, wait for the first logging step to be flushed; otherwise pass another log."
PRIORITY = ("monitor", "huggingface", "lightning", "tensorboard", "keras", "csv", "jsonl")
EXPECTED = (
    "TensorBoard event files (events.out.tfevents.*), a Hugging Face trainer_state.json, Lightning's metrics.csv, "
    "a Keras CSVLogger file, a CSV/JSONL with a step column, or the monitor's metrics JSONL"
)


def _first_line(path: Path) -> str:
    try:
        with path.open(encoding="utf-8", errors="replace") as handle:
            for line in handle:
                if line.strip():
                    return line.strip()
    except OSError:
        return ""
    return ""


def classify(path: Path, *, sniff: bool = False) -> str | None:
    """The format of one file, or None when it is not a log ctcdoctor reads.

    Known suffixes decide; a `.log` file (Keras' `CSVLogger("training.log")`, the name its
    documentation uses) and, with `sniff` (a file the user named), any other suffix are read by
    their first line: a CSV header with a step or epoch column, or a JSON object with a step key.
    """
    name = path.name
    if name.startswith(EVENT_PREFIX):
        return "tensorboard"
    suffix = path.suffix.lower()
    if suffix == ".json":
        if name == "trainer_state.json":
            return "huggingface"
        head = _first_line(path)
        if head.startswith("{") and '"log_history"' in path.read_text(encoding="utf-8", errors="replace")[:1_000_000]:
            return "huggingface"
        return _json_lines_kind(head, ".json")
    if suffix in (".jsonl", ".ndjson"):
        return _json_lines_kind(_first_line(path), suffix)
    if suffix in (".csv", ".tsv"):
        return _table_kind(_table_header(_first_line(path)))
    if sniff or suffix == ".log":
        head = _first_line(path)
        if head.startswith("{"):
            return _json_lines_kind(head, suffix)
        columns = _table_header(head)
        # Only a header that names its step column: a text log's first line is not a table.
        if len(columns) > 1 and (step_column(columns) is not None or columns[0] == "epoch"):
            return _table_kind(columns)
    return None


def _table_header(head: str) -> list[str]:
    return [column.strip().lower() for column in re.split(r"[,\t]", head)] if head else []


def _table_kind(columns: list[str]) -> str:
    if "epoch" in columns and "step" in columns:
        return "lightning"
    step = step_column(columns)
    if step == "epoch" or (columns and columns[0] == "epoch" and step is None):
        return "keras"
    return "csv"


def _json_lines_kind(head: str, suffix: str) -> str | None:
    if suffix in (".jsonl", ".ndjson"):
        return "monitor" if f'"{MONITOR_FORMAT}"' in head and '"meta"' in head else "jsonl"
    if head.startswith("{") and head.endswith("}"):
        try:
            first = json.loads(head)
        except json.JSONDecodeError:
            return None
        if isinstance(first, dict) and '"meta"' in head and f'"{MONITOR_FORMAT}"' in head:
            return "monitor"
        # one object per line (detectron2's metrics.json), not a config or a vocabulary
        return "jsonl" if isinstance(first, dict) and step_column(first) is not None else None
    return None


def _walk(root: Path) -> list[Path]:
    found: list[Path] = []
    base_depth = len(root.parts)
    for folder, subfolders, files in os.walk(root):
        depth = len(Path(folder).parts) - base_depth
        subfolders[:] = [] if depth >= MAX_DEPTH else sorted(
            name for name in subfolders if name not in SKIPPED_FOLDERS and not name.startswith(".")
        )
        found.extend(Path(folder) / name for name in sorted(files))
        if len(found) > MAX_FILES:
            break
    return found


def _numbered(path: Path) -> tuple[int, float]:
    """Newest first: the number in checkpoint-1000 / version_3, then the modification time."""
    numbers = [int(number) for part in path.parts for number in re.findall(r"(?:checkpoint|version)[-_](\d+)", part)]
    return (numbers[-1] if numbers else -1, path.stat().st_mtime)


def _tensorboard_run(events: list[Path], root: Path, allow_truncated: bool) -> tuple[Run, list[str]]:
    from ctcdoctor.training.readers.tensorboard import read_event_files

    by_folder: dict[Path, list[Path]] = {}
    for path in events:
        by_folder.setdefault(path.parent, []).append(path)
    folders = sorted(by_folder, key=lambda folder: max(_numbered(path) for path in by_folder[folder]), reverse=True)
    notes: list[str] = []
    newest = folders[0]
    # Keras writes train/ and validation/ side by side: one run, tags prefixed by the split
    if newest.name.lower() in SPLIT_FOLDERS:
        group = [folder for folder in folders if folder.parent == newest.parent and folder.name.lower() in SPLIT_FOLDERS]
    else:
        group = [newest]
    others = [folder for folder in folders if folder not in group]
    if others:
        notes.append(f"read the newest run {_relative(newest, root)}; also found event files in "
                     + ", ".join(_relative(folder, root) for folder in others[:4]) + (" ..." if len(others) > 4 else ""))
    files, prefixes = [], []
    for folder in group:
        for path in sorted(by_folder[folder]):
            files.append(path)
            prefixes.append(f"{folder.name}/" if len(group) > 1 else "")
    return read_event_files(files, prefixes, allow_truncated=allow_truncated), notes


def _relative(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root)) or "."
    except ValueError:
        return str(path)


def _read_file(path: Path, kind: str, allow_truncated: bool) -> Run:
    if kind == "tensorboard":
        run, _ = _tensorboard_run([path], path.parent, allow_truncated)
        return run
    if kind == "huggingface":
        return read_trainer_state(path)
    if kind in ("monitor", "jsonl"):
        return read_jsonl(path, kind)
    return read_csv(path, kind)


def read_run(path: str | os.PathLike, *, allow_truncated: bool = False) -> Run:
    """Read the training log at `path` (a log file or a run folder)."""
    root = Path(path)
    if not root.exists():
        raise UserInputError(f"{root} does not exist: expected a training log or a run folder",
                             "Pass the folder your trainer logs to (output_dir, lightning_logs, the TensorBoard log_dir) "
                             "or the log file itself.")
    if root.is_file():
        kind = classify(root, sniff=True)
        if kind is None:
            raise UserInputError(f"{root} is not a training log ctcdoctor reads: expected {EXPECTED}",
                                 "Pass the log file your trainer writes, or its folder.")
        if root.stat().st_size == 0:
            raise UserInputError(f"{root} is empty: expected {_what(kind)}", EMPTY_HINT)
        return _read_file(root, kind, allow_truncated)

    files = _walk(root)
    by_kind: dict[str, list[Path]] = {}
    for file in files:
        kind = classify(file)
        if kind is not None:
            by_kind.setdefault(kind, []).append(file)
    if not by_kind:
        shown = ", ".join(_relative(file, root) for file in files[:5]) + (" ..." if len(files) > 5 else "")
        found = f"{len(files)} files ({shown})" if files else "no files"
        raise UserInputError(f"no training log in {root}: found {found}; expected {EXPECTED}",
                             "Pass the folder your trainer logs to (output_dir, lightning_logs, the TensorBoard log_dir) "
                             "or the log file itself.")
    kind = next(kind for kind in PRIORITY if kind in by_kind)
    candidates = sorted(by_kind[kind], key=_numbered, reverse=True)
    if kind == "tensorboard":
        run, notes = _tensorboard_run(candidates, root, allow_truncated)
    else:
        chosen = candidates[0]
        if chosen.stat().st_size == 0:
            raise UserInputError(f"{chosen} is empty: expected {_what(kind)}", EMPTY_HINT)
        run = _read_file(chosen, kind, allow_truncated)
        notes = []
        if len(candidates) > 1:
            notes.append(f"read {_relative(chosen, root)}; also found " + ", ".join(
                _relative(other, root) for other in candidates[1:5]) + (" ..." if len(candidates) > 5 else ""))
    skipped = [other for other in by_kind if other != kind]
    if skipped:
        notes.append(f"read the {kind} log; the folder also holds {', '.join(skipped)} logs (pass a file to choose)")
    return Run(run.source, run.format, run.scalars, unit=run.unit, meta=run.meta, notes=run.notes + tuple(notes))


def _what(kind: str) -> str:
    return {
        "tensorboard": "TensorBoard event records",
        "huggingface": "a JSON object with a log_history list",
        "monitor": "the monitor's header line and one JSON record per step",
        "jsonl": "one JSON object per logged step",
    }.get(kind, "a header row and one row per logged step")
