"""Small helpers that turn numbers into the phrases findings are made of."""
from __future__ import annotations

from typing import Sequence


def plural(count: int, word: str, words: str | None = None) -> str:
    return f"{count} {word if count == 1 else (words or word + 's')}"


def listing(values: Sequence[object], limit: int = 8) -> str:
    shown = ", ".join(str(value) for value in values[:limit])
    return shown + (f", … ({len(values) - limit} more)" if len(values) > limit else "")
