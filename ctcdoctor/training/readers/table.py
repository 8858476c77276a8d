"""Plain tables of logged scalars: CSV with a header row, or JSON Lines (one object per line).

The step comes from a column named like a step (`step`, `global_step`, `iteration`, ...,
`epoch` last); every other numeric column is a scalar. In CSV an empty cell means "not
logged at this step" (Lightning writes one row per logging call, most cells empty) and
`nan`/`inf` are logged values. Nested JSON objects are flattened with `/`
(`{"train": {"loss": 1}}` -> `train/loss`).
"""
from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from ctcdoctor.errors import UserInputError
from ctcdoctor.training.monitor_format import FINISHED, is_header, parse_number
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

    columns = _read_dense(text, header, step_name, delimiter)
    if columns is None:
        columns = _read_sparse(lines, header, step_name, delimiter, notes)
    scalars = _series_from_columns(columns, step_name, notes)
    if not scalars:
        raise UserInputError(
            f"{path} has no numeric columns besides the step ({', '.join(header)}): expected columns of logged scalars"
        )
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


def _read_sparse(lines: list[str], header: list[str], step_name: str | None, delimiter: str, notes: list[str]):
    """Rows with empty cells (Lightning) or text cells: column by column, empty = not logged."""
    values: dict[str, list[float]] = {name: [] for name in header}
    steps: dict[str, list[float]] = {name: [] for name in header}
    bad: set[str] = set()
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
            if name in bad:
                continue
            try:
                value = _cell(cell)
            except ValueError:
                bad.add(name)
                continue
            if value is not None:
                steps[name].append(step)
                values[name].append(value)
    for name in sorted(bad):
        if name != step_name and name.strip().lower() not in NOT_SCALARS:
            notes.append(f"column {name!r} holds text, not numbers: skipped")
    return {name: (steps[name], values[name]) for name in header if name not in bad}


def flatten(obj: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in obj.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, name + "/"))
        else:
            flat[name] = value
    return flat


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
        what = "only a header" if meta else "no records"
        raise UserInputError(f"{path} holds {what}: expected one JSON object per logged step, with a step and a loss")
    scalars = _series_from_columns(columns, step_name, notes)
    if not scalars:
        raise UserInputError(f"{path} has {records} records but no numeric values: expected e.g. {{\"step\": 1, \"loss\": 2.3}}")
    unit = str(meta.get("unit", "epoch" if step_name and step_name.lower() == "epoch" else "step"))
    return Run(str(path), format, scalars, unit=unit, meta=meta, notes=tuple(notes))
