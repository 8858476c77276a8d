"""Bounded work: `--timeout` for a whole command, and what the command was doing when it ran out.

A data loader can be infinite and a model can be slow; a CI gate must end. The command line
arms a wall-clock deadline around the command (`deadline`); the long phases say what they are
doing (`doing`), so a timeout names it: "ran past --timeout 60 s while running the model on
batch 3 (check CTC050)".
"""
from __future__ import annotations

import contextlib
import signal
import sys
import threading
from collections.abc import Iterator

_activity: list[str] = []
_purpose: list[str] = []
REFIRE_SECONDS = 1.0
"""After the deadline, how often the timeout is raised again until the command has ended."""


class CommandTimeout(BaseException):
    """The command ran past `--timeout` (exit 2, naming what was running).

    A BaseException, like KeyboardInterrupt: the deadline fires anywhere, also inside the many
    `except Exception` that turn a failing model or criterion into a finding, and it must end the
    command rather than become one. `ctcdoctor.cli.output.guarded` turns it into exit 2.
    """

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


def current_activity() -> str:
    """The innermost activity, and what it was for: "running the model on batch 3 (for check CTC050)"."""
    what = _activity[-1] if _activity else "starting"
    if _purpose and _purpose[-1] not in what:
        what += f" (for {_purpose[-1]})"
    return what


@contextlib.contextmanager
def doing(what: str, purpose: str | None = None) -> Iterator[None]:
    """Record what the command is doing while the block runs (for the timeout message); `purpose`
    names the larger step it belongs to ("check CTC050"), kept while inner activities come and go."""
    _activity.append(what)
    if purpose is not None:
        _purpose.append(purpose)
    try:
        yield
    finally:
        _activity.pop()
        if purpose is not None:
            _purpose.pop()


def _timeout_in_flight() -> bool:
    """Whether the exception being handled (in an `except`, a `finally` or a context manager's exit),
    or one it arose from, is a CommandTimeout: then a repeated alarm must not interrupt the cleanup."""
    error: BaseException | None = sys.exc_info()[1]
    while error is not None:
        if isinstance(error, CommandTimeout):
            return True
        error = error.__context__
    return False


@contextlib.contextmanager
def deadline(seconds: float | None) -> Iterator[None]:
    """Raise CommandTimeout in the main thread once `seconds` of wall time have passed.

    Uses SIGALRM, so it interrupts Python code anywhere (a loader's `__iter__`, a model's
    `forward` between ops); off the main thread or without SIGALRM (Windows) it is a no-op.
    """
    usable = seconds is not None and seconds > 0 and hasattr(signal, "SIGALRM") \
        and threading.current_thread() is threading.main_thread()
    if not usable:
        yield
        return

    def expire(_signum: int, _frame: object) -> None:
        if _timeout_in_flight():  # fired before and on its way out through the cleanups: let it finish
            return
        raise CommandTimeout(
            f"ran past --timeout {seconds:g} s while {current_activity()}",
            "Give it more time (--timeout), or bound the work: fewer batches (check: --max-batches/--scan-batches), "
            "fewer samples (scan: --max-samples), a smaller --steps (overfit), a finite loader.",
        )

    previous = signal.signal(signal.SIGALRM, expire)
    # Fire again every REFIRE_SECONDS until the block ends: an exception raised while Python runs a
    # finaliser (`__del__`, a weakref or gc callback) is printed as "Exception ignored" and lost, and so
    # is one that a loader catches with a bare `except`; a one-shot alarm then never ends the command.
    signal.setitimer(signal.ITIMER_REAL, float(seconds), REFIRE_SECONDS)  # type: ignore[arg-type]
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
