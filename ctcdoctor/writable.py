"""Check output paths (`--plot`, `--output`, `--out`) before the work, not after it.

A run of `overfit` or `scan` can take minutes; finding out at the end that the figure or the
report cannot be written throws that work away. `ensure_writable` tries the path up front.
"""
from __future__ import annotations

import os
from pathlib import Path

from ctcdoctor.errors import UserInputError


def ensure_writable(path: Path | None, option: str) -> None:
    """Raise UserInputError (exit 2) naming `option` and `path` when a file cannot be written there.

    Creates the missing parent folders (the command would create them anyway) and opens the
    file for appending, removing it again if it did not exist. Permission bits alone do not
    tell (root may write anywhere, yet not into /proc), so this tries for real.
    """
    if path is None:
        return
    if path.is_dir():
        raise UserInputError(f"{option} {path} is a folder", f"Give a file name, e.g. {path / 'report'}{path.suffix or '.png'}.")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        existed = path.exists()
        with open(path, "ab"):
            pass
        if not existed:
            os.unlink(path)
    except OSError as error:
        reason = error.strerror or str(error)
        raise UserInputError(f"cannot write {option} {path}: {reason}", "Choose a path in a folder you can write to.") from None
