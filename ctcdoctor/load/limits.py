"""Bounded work: `--timeout` for a whole command, and what the command was doing when it ran out.

A data loader can be infinite and a model can be slow; a CI gate must end. The command line
arms a wall-clock deadline around the command (`deadline`); the long phases say what they are
doing (`doing`), so a timeout names it: "ran past --timeout 60 s while running the model on
batch 3 (check CTC050)".

Work that can end early with a result (overfit's training loop) runs inside `stoppable()`: a deadline
that lands there does not raise; it cuts the work (`stop_now()` turns true, the loop ends after its
step) and grants GRACE_SECONDS (or GRACE_SHARE of the timeout, whichever is longer) to report what
is known. Only when that grace runs out too does the command end with exit 2. `stop_now(reserve)`
also cuts the work a little before the deadline, when the next step and the report would not fit.
"""
from __future__ import annotations

import contextlib
import signal
import sys
import threading
import time
from collections.abc import Iterator

_activity: list[str] = []
_purpose: list[str] = []
REFIRE_SECONDS = 1.0
"""After the deadline, how often the timeout is raised again until the command has ended."""
GRACE_SECONDS = 10.0
GRACE_SHARE = 0.1
"""Once stoppable work is cut by the deadline: the time granted to report what is known (the longer of the two)."""
_stoppable: list[None] = []
_armed: dict[str, float] = {}
"""While a deadline is armed: "seconds" (the --timeout), "expires" (time.monotonic() at the deadline)."""
_cut: list[str] = []
"""What was running when the deadline (or the reserve before it) cut stoppable work; empty until then."""


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


@contextlib.contextmanager
def stoppable() -> Iterator[None]:
    """A block that ends early on the deadline instead of raising: it polls `stop_now()` between its steps."""
    _stoppable.append(None)
    try:
        yield
    finally:
        _stoppable.pop()


def remaining() -> float | None:
    """Seconds left before the armed deadline (negative once past); None when no deadline is armed."""
    if not _armed:
        return None
    return _armed["expires"] - time.monotonic()


def armed_timeout() -> float | None:
    """The armed deadline's --timeout in seconds; None when none is armed."""
    return _armed.get("seconds")


def cut_short() -> str | None:
    """What was running when the deadline cut stoppable work ("training step 438 of 1000 on sample 0"), else None."""
    return _cut[0] if _cut else None


def _grace(seconds: float) -> float:
    return max(GRACE_SECONDS, GRACE_SHARE * seconds)


def _cut_now(what: str) -> None:
    """Cut the stoppable work: from now on the command has until the deadline plus the grace to report."""
    _cut.append(what)
    left = max(remaining() or 0.0, 0.0) + _grace(_armed["seconds"])
    _armed["expires"] = time.monotonic() + left
    signal.setitimer(signal.ITIMER_REAL, left, REFIRE_SECONDS)


def stop_now(reserve: float = 0.0, what: str | None = None) -> bool:
    """Whether stoppable work should end now: the deadline cut it, or fewer than `reserve` seconds are left before it
    (what the next step and the report need; `what` names the work then cut). Always False without a deadline or
    outside `stoppable()`."""
    if not _armed or not _stoppable:
        return False
    if _cut:
        return True
    left = remaining()
    if left is not None and left < reserve:
        _cut_now(what or current_activity())
        return True
    return False


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
        if _stoppable and not _cut:  # training: end it after this step and report what it showed
            _cut_now(current_activity())
            return
        granted = f" and the {_grace(_armed['seconds']):g} s granted to report after {_cut[0]} was cut" if _cut else ""
        raise CommandTimeout(
            f"ran past --timeout {seconds:g} s{granted} while {current_activity()}",
            "Give it more time (--timeout), or bound the work: fewer batches (check: --max-batches/--scan-batches), "
            "fewer samples (scan: --max-samples), a smaller --steps (overfit), a finite loader.",
        )

    previous = signal.signal(signal.SIGALRM, expire)
    _armed.update(seconds=float(seconds), expires=time.monotonic() + float(seconds))  # type: ignore[arg-type]
    _cut.clear()
    # Fire again every REFIRE_SECONDS until the block ends: an exception raised while Python runs a
    # finaliser (`__del__`, a weakref or gc callback) is printed as "Exception ignored" and lost, and so
    # is one that a loader catches with a bare `except`; a one-shot alarm then never ends the command.
    signal.setitimer(signal.ITIMER_REAL, float(seconds), REFIRE_SECONDS)  # type: ignore[arg-type]
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        _armed.clear()
        _cut.clear()
