"""Mergeable, bounded building blocks of a scan summary.

Each one holds a fixed-size digest of a stream of values, merges with another of its kind so
that merging the digests of the parts gives the digest of the whole (in any order), and
round-trips through JSON. Memory depends on the values' range, never on how many there are:

- `IntCounts`: exact counts of integer values (spare frames, label lengths, class indices) in a
  dense array over the values' span, at most `SPAN` wide; exact min and max besides.
- `ValueCounts`: exact counts of float values (downsampling ratios) in a dict of at most
  `MAX_KEYS` keys; past that, keys are rounded to 6 significant digits.
- `TopK`: the k items with the smallest sort keys (the tightest samples), ties by sample id.
- `FirstIds`: the k smallest sample ids of a kind, and how many there are.
"""
from __future__ import annotations

import heapq
import math
from collections.abc import Iterable, Sequence
from typing import Any, overload

import numpy as np

#: Widest span of integer values `IntCounts` counts exactly (8 MB of int64): far beyond any
#: frame or label count; values past it are clamped into the edge bins (min and max stay exact).
SPAN = 1 << 20
#: Distinct float values `ValueCounts` keeps before rounding them to 6 significant digits.
MAX_KEYS = 1 << 16


class IntCounts:
    """Exact counts of integer values in a dense array over their span (at most `SPAN` wide)."""

    def __init__(self) -> None:
        self.low = 0
        self.counts = np.zeros(0, dtype=np.int64)
        self.minimum: int | None = None
        self.maximum: int | None = None

    @property
    def total(self) -> int:
        return int(self.counts.sum())

    def _cover(self, low: int, high: int) -> None:
        """Grow the array (with room to spare) so that [low, high] fits; past SPAN, the lowest SPAN values stay exact."""
        if self.counts.size and self.low <= low and high < self.low + self.counts.size:
            return
        if self.counts.size:
            low, high = min(low, self.low), max(high, self.low + self.counts.size - 1)
        span = min(high - low + 1, SPAN)
        width = min(SPAN, max(64, 2 * span))
        new_low = low - (width - span) // 2
        grown = np.zeros(width, dtype=np.int64)
        if self.counts.size:
            start = self.low - new_low
            keep = min(self.counts.size, width - start)
            grown[start : start + keep] = self.counts[:keep]
            grown[-1] += self.counts[keep:].sum()
        self.low, self.counts = new_low, grown

    def add(self, values: np.ndarray) -> None:
        if values.size == 0:
            return
        low, high = int(values.min()), int(values.max())
        self.minimum = low if self.minimum is None else min(self.minimum, low)
        self.maximum = high if self.maximum is None else max(self.maximum, high)
        self._cover(low, high)
        shifted = values.astype(np.int64, copy=False) - self.low
        if low < self.low or high >= self.low + self.counts.size:
            shifted = np.clip(shifted, 0, self.counts.size - 1)
        self.counts += np.bincount(shifted, minlength=self.counts.size)

    def add_counts(self, values: Sequence[int], counts: Sequence[int]) -> None:
        """Add `counts[i]` occurrences of `values[i]` (how merges and JSON come back in)."""
        if not len(values):
            return
        array = np.asarray(values, dtype=np.int64)
        self.minimum = int(array.min()) if self.minimum is None else min(self.minimum, int(array.min()))
        self.maximum = int(array.max()) if self.maximum is None else max(self.maximum, int(array.max()))
        self._cover(int(array.min()), int(array.max()))
        np.add.at(self.counts, np.clip(array - self.low, 0, self.counts.size - 1), np.asarray(counts, dtype=np.int64))

    def merge(self, other: IntCounts) -> None:
        values, counts = other.items()
        self.add_counts(values, counts)
        if other.minimum is not None:  # exact extremes even where the counts were clamped
            self.minimum = other.minimum if self.minimum is None else min(self.minimum, other.minimum)
            self.maximum = other.maximum if self.maximum is None else max(self.maximum, other.maximum)  # type: ignore[type-var]

    def items(self) -> tuple[list[int], list[int]]:
        """(values, counts) of the values seen, in increasing order."""
        present = np.flatnonzero(self.counts)
        return (present + self.low).tolist(), self.counts[present].tolist()

    def count_where(self, low: int | None = None, high: int | None = None) -> int:
        """How many values lie in [low, high] (None: unbounded)."""
        start = 0 if low is None else max(0, low - self.low)
        stop = self.counts.size if high is None else max(0, min(self.counts.size, high - self.low + 1))
        return int(self.counts[start:stop].sum()) if stop > start else 0

    def kth(self, k: int) -> int:
        """The k-th smallest value (0-based), as `sorted(values)[k]`."""
        cumulative = np.cumsum(self.counts)
        return int(np.searchsorted(cumulative, k, side="right")) + self.low

    def quantile(self, q: float) -> float:
        """The nearest-rank percentile, `sorted(values)[ceil(q * n) - 1]` (the smallest for q = 0): a value
        at or above a share q of the samples. With 5 samples p99 is the largest, as a reader expects; the
        former `int(q * (n - 1))` gave the 4th of 5 (p99 15 next to a max of 52)."""
        n = self.total
        return float(self.kth(min(n - 1, max(0, math.ceil(q * n) - 1))))

    def histogram(self, bins: int = 12, split: int | None = None) -> list[dict[str, int]]:
        """Integer-aligned bins from min to max: [{"from", "to", "count"}], `to` inclusive.

        With `split`, values below it never share a bin with values at or above it: the bins below
        end at `split - 1`, those above start at `split` (spare frames split at 0: a bin of -1..0
        mixed samples CTC cannot align with feasible ones)."""
        if self.minimum is None or self.maximum is None:
            return []
        low, high = self.minimum, self.maximum
        width = max(1, -(-(high - low + 1) // bins))
        if split is not None and low < split <= high:
            below = list(range(split - width, low - width, -width))[::-1]
            edges = [max(edge, low) for edge in below] + list(range(split, high + 1, width))
        else:
            edges = list(range(low, high + 1, width))
        out = []
        for index, edge in enumerate(edges):
            last = index == len(edges) - 1
            to = edge + width - 1 if last else edges[index + 1] - 1
            count = self.count_where(edge, to)
            if index == 0:
                count += self.count_where(None, edge - 1)  # clamped values, if any
            if last:
                count += self.count_where(to + 1, None)
            out.append({"from": edge, "to": to, "count": count})
        return out

    def percentiles(self) -> dict[str, Any]:
        """min, p1, p5, median, p95, p99, max (None when empty)."""
        if not self.total:
            return {"count": 0}
        return {"count": self.total, "min": self.minimum, "p1": self.quantile(0.01), "p5": self.quantile(0.05),
                "median": self.quantile(0.5), "p95": self.quantile(0.95), "p99": self.quantile(0.99), "max": self.maximum}

    def to_json(self) -> dict[str, Any]:
        values, counts = self.items()
        return {"values": values, "counts": counts, "min": self.minimum, "max": self.maximum}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> IntCounts:
        made = cls()
        made.add_counts(data["values"], data["counts"])
        made.minimum, made.maximum = data["min"], data["max"]
        return made


class ValueCounts:
    """Exact counts of float values while there are at most `MAX_KEYS` distinct ones."""

    def __init__(self) -> None:
        self.counts: dict[float, int] = {}

    def add(self, values: np.ndarray) -> None:
        if values.size == 0:
            return
        keys, counts = np.unique(values, return_counts=True)
        self.add_counts(keys.tolist(), counts.tolist())

    def add_ratios(self, numerators: np.ndarray, denominators: np.ndarray) -> None:
        """Add numerators / denominators (positive integers), counting distinct integer pairs first (no float sort)."""
        if numerators.size == 0:
            return
        low_n, low_d = int(numerators.min()), int(denominators.min())
        span_n, span_d = int(numerators.max()) - low_n + 1, int(denominators.max()) - low_d + 1
        if span_n * span_d <= (1 << 22):  # a dense table of pairs: one bincount, no sort
            counts = np.bincount((numerators - low_n) * span_d + (denominators - low_d), minlength=span_n * span_d)
            pairs = np.flatnonzero(counts)
            ratios = (pairs // span_d + low_n).astype(np.float64) / (pairs % span_d + low_d).astype(np.float64)
            self.add_counts(ratios.tolist(), counts[pairs].tolist())
        elif int(numerators.max()) < (1 << 38) and int(denominators.max()) < (1 << 24):
            pairs, counts = np.unique(numerators.astype(np.int64) << 24 | denominators.astype(np.int64), return_counts=True)
            ratios = (pairs >> 24).astype(np.float64) / (pairs & ((1 << 24) - 1)).astype(np.float64)
            self.add_counts(ratios.tolist(), counts.tolist())
        else:
            self.add(numerators.astype(np.float64) / denominators.astype(np.float64))

    def add_counts(self, keys: Iterable[float], counts: Iterable[int]) -> None:
        for key, count in zip(keys, counts):
            self.counts[key] = self.counts.get(key, 0) + int(count)
        if len(self.counts) > MAX_KEYS:
            rounded: dict[float, int] = {}
            for key, count in self.counts.items():
                short = float(f"{key:.6g}")
                rounded[short] = rounded.get(short, 0) + count
            self.counts = rounded

    def merge(self, other: ValueCounts) -> None:
        self.add_counts(other.counts.keys(), other.counts.values())

    def lower_median(self) -> float | None:
        """The lower middle value, as `torch.median` gives it."""
        total = sum(self.counts.values())
        if not total:
            return None
        wanted, seen = (total - 1) // 2, 0
        for key in sorted(self.counts):
            seen += self.counts[key]
            if seen > wanted:
                return key
        return None  # pragma: no cover - the loop always returns

    def to_json(self) -> dict[str, Any]:
        keys = sorted(self.counts)
        return {"values": keys, "counts": [self.counts[key] for key in keys]}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ValueCounts:
        made = cls()
        made.add_counts(data["values"], data["counts"])
        return made


class TopK:
    """The `k` items with the smallest `(key, sample)`; `key` is a number, the item a JSON dict with "sample"."""

    def __init__(self, k: int) -> None:
        self.k = k
        self.items: list[tuple[float, int, dict[str, Any]]] = []

    def offer(self, keys: np.ndarray, samples: np.ndarray, make: Any) -> None:
        """Offer candidates: `make(positions)` builds the item dicts of the chosen positions."""
        if keys.size == 0 or self.k == 0:
            return
        if keys.size > self.k:
            threshold = np.partition(keys, self.k - 1)[self.k - 1]
            candidates = np.flatnonzero(keys <= threshold)
        else:
            candidates = np.arange(keys.size)
        order = candidates[np.lexsort((samples[candidates], keys[candidates]))][: self.k]
        if self.items and len(self.items) == self.k:
            worst = self.items[-1][:2]
            order = np.asarray([p for p in order.tolist() if (float(keys[p]), int(samples[p])) < worst], dtype=np.int64)
            if order.size == 0:
                return
        made = make(order)
        fresh = [(float(keys[p]), int(samples[p]), item) for p, item in zip(order.tolist(), made)]
        self.items = heapq.nsmallest(self.k, self.items + fresh, key=lambda entry: entry[:2])

    def merge(self, other: TopK) -> None:
        self.items = heapq.nsmallest(self.k, self.items + other.items, key=lambda entry: entry[:2])

    def values(self) -> list[dict[str, Any]]:
        return [item for _, _, item in self.items]

    def to_json(self) -> dict[str, Any]:
        return {"k": self.k, "items": [[key, sample, item] for key, sample, item in self.items]}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TopK:
        made = cls(data["k"])
        made.items = [(float(key), int(sample), item) for key, sample, item in data["items"]]
        return made


class FirstIds(Sequence[int]):
    """The `k` smallest sample ids with some property, and how many samples have it.

    It reads as the whole list to `phrases.listing` (its length is the full count), so a
    finding says "samples 3, 9, … (12 more)" exactly as it would with every id at hand.
    """

    def __init__(self, k: int = 20) -> None:
        self.k = k
        self.ids: list[int] = []
        self.total = 0

    def add(self, ids: np.ndarray) -> None:
        if ids.size == 0:
            return
        self.total += int(ids.size)
        smallest = np.sort(ids)[: self.k].tolist() if ids.size > self.k else sorted(ids.tolist())
        self.ids = heapq.nsmallest(self.k, self.ids + smallest)

    def merge(self, other: FirstIds) -> None:
        self.total += other.total
        self.ids = heapq.nsmallest(self.k, self.ids + other.ids)

    def __len__(self) -> int:
        return self.total

    @overload
    def __getitem__(self, index: int) -> int: ...
    @overload
    def __getitem__(self, index: slice) -> list[int]: ...
    def __getitem__(self, index: int | slice) -> int | list[int]:
        if isinstance(index, slice):
            stop = index.stop if index.stop is not None else self.total
            if stop > len(self.ids) and len(self.ids) < self.total:
                raise IndexError(f"only the first {len(self.ids)} of {self.total} ids are kept")
            return self.ids[index]
        return self.ids[index]

    def to_json(self) -> dict[str, Any]:
        return {"k": self.k, "ids": self.ids, "count": self.total}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FirstIds:
        made = cls(data["k"])
        made.ids, made.total = list(data["ids"]), int(data["count"])
        return made
