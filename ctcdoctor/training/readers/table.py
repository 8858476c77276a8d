"""Plain tables of logged scalars: CSV with a header row, or JSON Lines (one object per line).

The step comes from a column named like a step (`step`, `global_step`, `iteration`, ...,
`epoch` last); every other numeric column is a scalar. In CSV an empty cell means "not
logged at this step" (Lightning writes one row per logging call, most cells empty) and
`nan`/`inf` are logged values; a text cell in a column of numbers is read as empty (with a
note naming it), a column of mostly text is no scalar. Nested JSON objects are flattened with `/`
(`{"train": {"loss": 1}}` -> `train/loss`).
"""
from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ctcdoctor.errors import UserInputError
from ctcdoctor.training.monitor_format import FINISHED, check_stop, is_header, parse_number
from ctcdoctor.training.series import Run, Series

STEP_COLUMNS = (
    "step", "global_step", "trainer/global_step", "_step", "steps", "iteration", "iter", "it",
    "num_updates", "update", "updates", "batch", "epoch",
)
"""Step columns in order of preference; `epoch` only when there is nothing finer."""
NOT_SCALARS = {"epoch", "time", "timestamp", "wall_time", "_timestamp", "_runtime", "created_at"}


def step_column(columns: Iterable[str]) -> str | None:
    lowered = {column.strip().lower(): column for column in columns}
    for name in STEP_COLUMNS:
        if name in lowered:
            return lowered[name]
    return None


def _cell(text: str) -> float | None:
    """A CSV cell: '' -> None (not logged), numbers and nan/inf -> float; other text raises ValueError."""
    text = text.strip()
    if not text:
        return None
    return float(text)


def _series_from_columns(
    columns: dict[str, tuple[list[float], list[float]]], step_name: str | None, notes: list[str]
) -> dict[str, Series]:
    scalars = {}
    for name, (steps, values) in columns.items():
        if name == step_name or name.strip().lower() in NOT_SCALARS or len(values) == 0:
            continue
        scalars[name] = Series.from_points(name, steps, values)
    return scalars


def read_csv(path: Path, format: str = "csv") -> Run:
    """Read a CSV log; `format` labels it ("lightning", "keras" or "csv")."""
    text = path.read_text(encoding="utf-8", errors="replace")
    lines = text.splitlines()
    if not any(line.strip() for line in lines):
        raise UserInputError(f"{path} is empty: expected a header row and one row per logged step")
    delimiter = "\t" if "\t" in lines[0] and "," not in lines[0] else ","
    header = [name.strip() for name in next(csv.reader([lines[0]], delimiter=delimiter))]
    if len(lines) < 2 or not any(line.strip() for line in lines[1:]):
        raise UserInputError(f"{path} has a header ({', '.join(header)}) but no rows: expected one row per logged step")
    step_name = step_column(header)
    notes: list[str] = []
    if step_name is None:
        notes.append(f"{path.name} has no step column ({', '.join(STEP_COLUMNS[:5])}, ...): rows are numbered from 0")
    unit = "epoch" if step_name is not None and step_name.strip().lower() == "epoch" else "step"

    columns, cells = _read_dense(text, header, step_name, delimiter), {}
    if columns is None:
        columns, cells = _read_sparse(lines, header, step_name, delimiter)
        _text_notes(cells, step_name, notes)
    scalars = _series_from_columns(columns, step_name, notes)
    if not scalars:
        raise _no_scalars(path, header, cells, step_name)
    return Run(str(path), format, scalars, unit=unit, notes=tuple(notes))


def _read_dense(text: str, header: list[str], step_name: str | None, delimiter: str):
    """Fast path for a table with every cell filled: one C-level parse."""
    try:
        table = np.loadtxt(io.StringIO(text), delimiter=delimiter, skiprows=1, ndmin=2, dtype=np.float64)
    except ValueError:
        return None
    if table.shape[1] != len(header):
        return None
    steps = table[:, header.index(step_name)] if step_name is not None else np.arange(table.shape[0], dtype=np.float64)
    return {name: (steps, table[:, index]) for index, name in enumerate(header)}


@dataclass
class TextCells:
    """The cells of one CSV column that are not numbers: how many, the first one, and the column's numbers."""

    count: int = 0
    numbers: int = 0
    line: int = 0
    """The file line (1-based, the header is line 1) of the first text cell."""
    value: str = ""

    def first(self) -> str:
        return f"line {self.line}: {self.value!r}"


def _read_sparse(lines: list[str], header: list[str], step_name: str | None, delimiter: str):
    """Rows with empty cells (Lightning) or text cells: column by column, empty = not logged.

    A text cell in a column of numbers ("abc" where a loss was expected) is read as not logged,
    like an empty one; a column of mostly text is no scalar. Returns the columns and, by name,
    the text cells of every column that had some."""
    values: dict[str, list[float]] = {name: [] for name in header}
    steps: dict[str, list[float]] = {name: [] for name in header}
    text: dict[str, TextCells] = {}
    step_index = header.index(step_name) if step_name is not None else None
    last_step = -1.0
    for number, row in enumerate(csv.reader(lines[1:], delimiter=delimiter)):
        if not row:
            continue
        if step_index is not None:
            try:
                step = _cell(row[step_index]) if step_index < len(row) else None
            except ValueError:
                step = None
            # Lightning leaves the step empty on no row, but a hand-written log may: reuse the last one
            step = last_step if step is None or not math.isfinite(step) else step
        else:
            step = float(number)
        last_step = step
        for name, cell in zip(header, row):
            try:
                value = _cell(cell)
            except ValueError:
                cells = text.setdefault(name, TextCells(line=number + 2, value=cell.strip()))
                cells.count += 1
                continue
            if value is not None:
                steps[name].append(step)
                values[name].append(value)
    for name, cells in text.items():
        cells.numbers = len(values[name])
    return {name: (steps[name], values[name]) for name in header if not _is_text(text.get(name))}, text


def _is_text(cells: TextCells | None) -> bool:
    """A column of text, not of numbers with a few bad cells: at least as many text cells as numbers."""
    return cells is not None and cells.count >= cells.numbers


def _text_notes(text: dict[str, TextCells], step_name: str | None, notes: list[str]) -> None:
    for name, cells in sorted(text.items()):
        if name == step_name or name.strip().lower() in NOT_SCALARS:
            continue
        if _is_text(cells):
            notes.append(f"column {name!r} holds text, not numbers ({cells.count} of {cells.count + cells.numbers} "
                         f"cells; {cells.first()}): skipped")
        else:
            many = f"{cells.count} cells are" if cells.count > 1 else "1 cell is"
            notes.append(f"column {name!r}: {many} not a number (first at {cells.first()}): read as not logged, "
                         "like an empty cell")


def _no_scalars(path: Path, header: list[str], text: dict[str, TextCells], step_name: str | None) -> UserInputError:
    """The error for a table with no scalar column: name the text cells that made it so, if any."""
    texts = [(name, cells) for name, cells in text.items() if name != step_name and _is_text(cells)]
    if texts:
        name, cells = texts[0]
        return UserInputError(
            f"{path} has no numeric columns besides the step: column {name!r} holds text, not numbers "
            f"({cells.count} of {cells.count + cells.numbers} cells; {cells.first()})",
            f"Write the values of {name!r} as numbers (2.31, nan and empty cells are read), or drop the column; "
            "ctcdoctor reads one row per logged step with a step column and scalar columns.",
        )
    return UserInputError(
        f"{path} has no numeric columns besides the step ({', '.join(header)}): expected columns of logged scalars",
        "Log at least one scalar next to the step: a header such as 'step,loss' and one row per logged step ('1,2.31').",
    )


def flatten(obj: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in obj.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, name + "/"))
        else:
            flat[name] = value
    return flat


def _no_records(path: Path, meta: dict[str, Any], format: str) -> UserInputError:
    """The error for a JSON Lines log without a record, with the fix for the monitor's own log."""
    what = "only a header" if meta else "no records"
    every = meta.get("every")
    hint = ("The run logged no step yet: the monitor writes its records at each evaluation (the first update(), "
            f"then every {every if isinstance(every, int) else 'every='} steps); wait for the first evaluation, or "
            "check that update() is called. A run stopped before its first step logs none."
            if format == "monitor" else "Log at least one step with a loss, or pass the log of a run that has.")
    return UserInputError(f"{path} holds {what}: expected one JSON object per logged step, with a step and a loss", hint)


def read_jsonl(path: Path, format: str = "jsonl") -> Run:
    """Read JSON Lines: one object per line, a step key and numeric values (the monitor's header is kept as meta)."""
    meta: dict[str, Any] = {}
    columns: dict[str, tuple[list[float], list[float]]] = {}
    notes: list[str] = []
    step_name: str | None = None
    records = 0
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    for number, line in enumerate(lines, 1):
        line = line.strip()
        if not line:
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as error:
            if records and number == len(lines):  # a writer is mid-line: the run is still going
                notes.append(f"the last line ({number}) is cut off: read the {records} records before it")
                break
            raise UserInputError(
                f"{path} line {number} is not JSON ({error.msg}): expected one JSON object per line"
            ) from None
        if not isinstance(obj, dict):
            raise UserInputError(
                f"{path} line {number} is {type(obj).__name__}, not an object: expected one JSON object per line"
            )
        if is_header(obj):
            meta.update(obj["meta"])
            continue
        if format == "monitor" and obj.get(FINISHED) is True:
            meta[FINISHED] = True  # the monitor's close() marks its last record: the run is over
        obj = flatten(obj)
        if step_name is None:
            step_name = step_column(obj) or ""
            if not step_name:
                notes.append(f"{path.name} has no step key ({', '.join(STEP_COLUMNS[:5])}, ...): records are numbered from 0")
        step = parse_number(obj.get(step_name)) if step_name else float(records)
        if step is None or not math.isfinite(step):
            step = float(records)
        records += 1
        for key, raw in obj.items():
            if key == step_name:
                continue
            value = parse_number(raw)
            if value is None:
                continue
            column = columns.setdefault(key, ([], []))
            column[0].append(step)
            column[1].append(value)
    if not records:
        if format == "monitor" and check_stop(meta) is not None:  # stopped before step 1: the header says why
            return Run(str(path), format, {}, meta=meta, notes=tuple(notes))
        raise _no_records(path, meta, format)
    scalars = _series_from_columns(columns, step_name, notes)
    if not scalars:
        raise UserInputError(f"{path} has {records} records but no numeric values: expected e.g. {{\"step\": 1, \"loss\": 2.3}}")
    unit = str(meta.get("unit", "epoch" if step_name and step_name.lower() == "epoch" else "step"))
    return Run(str(path), format, scalars, unit=unit, meta=meta, notes=tuple(notes))
