"""Drop-lists: the ids of the samples that cannot train, in the forms trainers filter with.

`--drop-list FILE` writes one id per line (data set indices; a manifest's record numbers from 0),
in increasing order, as the scan streams (nothing is held per sample). `--clean-manifest FILE`
copies a JSONL manifest or label file without those records. Shards and torchrun ranks each
write their own list; `merge_lists` joins sorted lists without reading them into memory.
"""
from __future__ import annotations

import heapq
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO

import numpy as np

from ctcdoctor.errors import UserInputError
from ctcdoctor.scan.summary import TIGHT_RATIO, Chunk, repeats_per_sample, samples_with

REASONS = ("infeasible", "empty", "alphabet", "tight")


def parse_reasons(text: str) -> frozenset[str]:
    chosen = frozenset(part.strip() for part in text.split(",") if part.strip())
    unknown = sorted(chosen - set(REASONS))
    if unknown or not chosen:
        raise UserInputError(f"--drop {text!r}: unknown reason {', '.join(unknown) or '(none given)'}",
                             f"Choose from {', '.join(REASONS)}, comma-separated.")
    return chosen


def dropped(chunk: Chunk, frames: np.ndarray, reasons: frozenset[str], num_classes: int | None, blank: int) -> np.ndarray:
    """Ids of the chunk's samples to drop, in increasing order."""
    mask = np.zeros(chunk.size, dtype=bool)
    known = frames >= 0
    required = chunk.kept + repeats_per_sample(chunk.labels, chunk.kept)
    if "infeasible" in reasons:
        mask |= known & (frames < required)
    if "tight" in reasons:
        mask |= known & (frames >= required) & (required > 0) & (frames < TIGHT_RATIO * required)
    if "empty" in reasons:
        mask |= chunk.target_lengths == 0
    ids = chunk.ids[mask]
    if "alphabet" in reasons:
        bad = (chunk.labels < 0) | (chunk.labels == blank)
        if num_classes is not None:
            bad |= chunk.labels >= num_classes
        ids = np.union1d(ids, samples_with(bad, chunk.kept, chunk.ids))
    return np.sort(ids)


class DropWriter:
    """Streams the dropped ids of each chunk to a file, one per line."""

    def __init__(self, path: Path, reasons: frozenset[str]) -> None:
        self.path, self.reasons = path, reasons
        self.handle: IO[str] = open(path, "w", encoding="utf-8")  # noqa: SIM115 - closed by close()
        self.count = 0

    def __call__(self, chunk: Chunk, frames: np.ndarray, num_classes: int | None, blank: int) -> None:
        ids = dropped(chunk, frames, self.reasons, num_classes, blank)
        if ids.size:
            self.handle.write("\n".join(map(str, ids.tolist())) + "\n")
            self.count += int(ids.size)

    def close(self) -> dict[str, object]:
        self.handle.close()
        return {"file": str(self.path), "count": self.count, "reasons": sorted(self.reasons)}


def read_ids(path: Path) -> Iterator[int]:
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                yield int(line)


def merge_lists(paths: Iterable[Path], out: Path) -> int:
    """Join sorted drop-lists into one sorted list (streamed); returns how many ids."""
    count = 0
    with open(out, "w", encoding="utf-8") as handle:
        for value in heapq.merge(*(read_ids(path) for path in paths)):
            handle.write(f"{value}\n")
            count += 1
    return count


def clean_manifest(manifest: Path, drop_list: Path, out: Path) -> int:
    """Copy the manifest's records (non-blank lines) except those in the sorted drop-list; returns records kept."""
    drops = read_ids(drop_list)
    next_drop = next(drops, None)
    kept = record = 0
    with open(manifest, "rb") as source, open(out, "wb") as target:
        for line in source:
            if not line.strip():
                continue
            if record == next_drop:
                next_drop = next(drops, None)
            else:
                target.write(line if line.endswith(b"\n") else line + b"\n")
                kept += 1
            record += 1
    return kept
