"""Small helpers that turn numbers into the phrases findings are made of."""
from __future__ import annotations

from collections.abc import Sequence


def plural(count: int, word: str, words: str | None = None) -> str:
    return f"{count} {word if count == 1 else (words or word + 's')}"


def listing(values: Sequence[object], limit: int = 8) -> str:
    shown = ", ".join(str(value) for value in values[:limit])
    return shown + (f", … ({len(values) - limit} more)" if len(values) > limit else "")


def numbered(values: Sequence[object], noun: str, nouns: str | None = None, limit: int = 8) -> str:
    """"sample 2" / "samples 2, 5, 9" / "line 5": the noun agrees with how many values follow it."""
    return f"{noun if len(values) == 1 else (nouns or noun + 's')} {listing(values, limit)}"


def of_total(count: int, total: int, noun: str, verb_singular: str, verb_plural: str) -> str:
    """"1 of 64 samples needs" / "12 of 64 samples need": the verb agrees with the count."""
    return f"{count} of {total} {noun if total == 1 else noun + 's'} {verb_singular if count == 1 else verb_plural}"


def number(value: float | None, digits: int = 4, missing: str = "-") -> str:
    """A measured number for a message: `digits` significant digits, `nan`/`inf` as such, `missing` for None."""
    if value is None:
        return missing
    if value != value or value in (float("inf"), float("-inf")):
        return str(value)
    return f"{value:.{digits}g}"
