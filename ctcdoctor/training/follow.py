"""`ctcdoctor logs --follow`: re-read a growing log every few seconds and judge it again.

`follow_run(path, interval, idle, on_change, **diagnose_options) -> LogsResult` calls
`diagnose_run` whenever the log it reads has changed (size or modification time), hands each
new result to `on_change`, and returns the last one when the log has not changed for `idle`
seconds (never, when `idle` is None) or on Ctrl-C. A log that does not exist yet, or holds no
record yet, is waited for; any other error the user can fix ends the loop at once.
"""
from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ctcdoctor.errors import UserInputError
from ctcdoctor.training.logs import LogsResult, diagnose_run

WAITING = ("does not exist", "is empty", "holds only a header", "holds no records", "no training log in")
"""Errors of a run that has not written its first record yet: wait for it."""


def _signature(path: Path) -> tuple[Any, ...]:
    try:
        if path.is_file():
            stat = path.stat()
            return (str(path), stat.st_size, stat.st_mtime_ns)
        return tuple(sorted((str(item), item.stat().st_size, item.stat().st_mtime_ns)
                            for item in path.rglob("*") if item.is_file()))
    except OSError:
        return ()


def _read(root: Path, on_change: Callable[[LogsResult], None], options: dict[str, Any],
          last: LogsResult | None) -> tuple[LogsResult | None, UserInputError | None]:
    """(the new result, None), or (the last result, why there is nothing to read yet); other errors are raised."""
    try:
        result = diagnose_run(root, **options)
    except UserInputError as error:
        if not any(phrase in error.message for phrase in WAITING):
            raise
        return last, error
    on_change(result)
    return result, None


def follow_run(
    path: str | os.PathLike,
    interval: float,
    idle: float | None,
    on_change: Callable[[LogsResult], None],
    sleep: Callable[[float], None] = time.sleep,
    **options: Any,
) -> LogsResult:
    """Diagnose `path` each time it changes; return the latest result (see the module docstring)."""
    root = Path(path)
    result: LogsResult | None = None
    seen: tuple[Any, ...] | None = None
    changed_at = time.monotonic()
    waiting: UserInputError | None = None
    try:
        while True:
            # Once a log was read, watch that file; before, the whole folder. While waiting for the first record,
            # read again each time: the idle clock restarts whenever the reason changes (the folder appeared, then
            # its log), so a job that is slow to start is not given up on while it makes progress.
            signature = _signature(Path(result.source) if result is not None else root)
            if signature != seen or (result is None and waiting is not None):
                if signature != seen:
                    seen, changed_at = signature, time.monotonic()
                before = waiting.message if waiting is not None else None
                result, waiting = _read(root, on_change, options, result)
                if waiting is not None and before is not None and waiting.message != before:
                    changed_at = time.monotonic()
            if idle is not None and time.monotonic() - changed_at >= idle:
                break
            sleep(interval)
    except KeyboardInterrupt:
        pass
    if result is None:
        if waiting is not None and idle is not None:
            raise UserInputError(f"{waiting.message} (still, after --idle {idle:g} s without a change)", waiting.hint)
        raise waiting or UserInputError(f"no training log appeared in {root}")
    return result
