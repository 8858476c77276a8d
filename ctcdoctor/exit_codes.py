"""Exit codes of every ctcdoctor command (documented in docs/ci.md)."""
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
