"""Errors that end a command with exit code 2: the user's spec or data cannot be used."""
from __future__ import annotations


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
