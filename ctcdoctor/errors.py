"""The exit codes of every command, and the user-facing errors that end a command with exit 2."""
from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    """No finding at or above `--fail-on`."""
    FINDINGS = 1
    """Some finding at or above `--fail-on`."""
    USAGE = 2
    """Usage error, or the spec could not be imported, found or built, or the data is not batches."""
    INTERNAL = 3
    """An internal error of ctcdoctor (please report it, with `--debug` output)."""


class UserInputError(Exception):
    """The user's spec, module, `build()` or batches cannot be used.

    Rendered as one line naming the problem plus one line with the fix; the traceback
    is shown only with `--debug`.
    """

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


class SpecError(UserInputError):
    """The spec cannot be imported, found or built."""


class BatchError(UserInputError):
    """The loader yields something that is not a CTC batch."""


class TrainingStopped(UserInputError):
    """A training callback stopped training before its first step: the check before training found a problem at or
    above the callback's `stop_on`.

    Raised by the Hugging Face callback from `on_train_begin` (its Trainer reads `should_training_stop` only after
    a step, which would train on the broken set-up first), after the report is written and the monitor's verdict
    printed. The message names the findings and the report; the hint, the way to train anyway (`stop_on=None`).
    A traceback shows both.
    """

    def __str__(self) -> str:
        return f"{self.message}. {self.hint}" if self.hint else self.message
