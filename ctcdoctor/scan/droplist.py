"""Drop-lists: the ids of the samples that cannot train, in the forms trainers filter with.

`--drop-list FILE` writes one id per line (data set indices; a manifest's record numbers from 0),
in increasing order, as the scan streams (nothing is held per sample). `--clean-manifest FILE`
copies a JSONL manifest or label file without those records. Shards and torchrun ranks each
write their own list; `merge_lists` joins sorted lists without reading them into memory.

Whether target_lengths count the padding (`Summary.padding_counted`: CTC012, the length checks read
the true lengths) is known only once the whole data set is read, and it changes which samples
cannot train. So where some batch's blanks could be such padding, the writer streams the list both
ways: with the lengths as given, and with the true lengths of those batches (the summary's own
per-batch rule, `counted_padding`). At the end it keeps the one the report's decision reads. A
shard or a rank keeps the other beside its list (`FILE.lengths-as-given` or `FILE.true-lengths`),
because its own decision may not be that of the merged data set (`part_lists` picks per part).
"""
from __future__ import annotations

import heapq
import shutil
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO

import numpy as np

from ctcdoctor.errors import UserInputError
from ctcdoctor.scan.summary import TIGHT_RATIO, Chunk, blank_runs, counted_padding, repeats_per_sample, samples_with

REASONS = ("infeasible", "empty", "alphabet", "tight")
#: The two ways to judge the lengths (`DropWriter.close`, the `lengths` of the result's `drop_list`): "true" when
#: target_lengths count the padding (the labels before it), "given" otherwise.
LENGTHS = ("given", "true")
#: The suffix of the list judged the other way, kept beside a shard's or a rank's list for the merge.
SIDE_SUFFIX = {"given": ".lengths-as-given", "true": ".true-lengths"}


def parse_reasons(text: str) -> frozenset[str]:
    chosen = frozenset(part.strip() for part in text.split(",") if part.strip())
    unknown = sorted(chosen - set(REASONS))
    if unknown or not chosen:
        raise UserInputError(f"--drop {text!r}: unknown reason {', '.join(unknown) or '(none given)'}",
                             f"Choose from {', '.join(REASONS)}, comma-separated.")
    return chosen


def dropped(chunk: Chunk, frames: np.ndarray, reasons: frozenset[str], num_classes: int | None, blank: int,
            true_lengths: bool = False) -> np.ndarray:
    """Ids of the chunk's samples to drop, in increasing order.

    `true_lengths`: judge the samples whose blanks may be padding that target_lengths count (`counted_padding`, the
    summary's per-batch rule) by the labels before that padding, and their padding blanks as no alphabet problem;
    for when the data set's decision is that the lengths count the padding (`Summary.padding_counted`)."""
    mask = np.zeros(chunk.size, dtype=bool)
    known = frames >= 0
    is_blank = chunk.labels == blank
    kept, repeats = chunk.kept, repeats_per_sample(chunk.labels, chunk.kept)
    padding = None
    if true_lengths:
        padding, kept, repeats = counted_padding(chunk, blank_runs(is_blank, chunk.kept), repeats)
    required = kept + repeats
    if "infeasible" in reasons:
        mask |= known & (frames < required)
    if "tight" in reasons:
        mask |= known & (frames >= required) & (required > 0) & (frames < TIGHT_RATIO * required)
    if "empty" in reasons:
        mask |= chunk.target_lengths == 0  # as CTC013 counts them
    ids = chunk.ids[mask]
    if "alphabet" in reasons:
        bad = (chunk.labels < 0) | is_blank
        if padding is not None and padding.any():
            bad &= ~(is_blank & np.repeat(padding, chunk.kept))  # the padding's blanks: every blank of such a sample
        if num_classes is not None:
            bad |= chunk.labels >= num_classes
        ids = np.union1d(ids, samples_with(bad, chunk.kept, chunk.ids))
    return np.sort(ids)


def _may_count_padding(chunk: Chunk, blank: int) -> bool:
    """Read with its batches and holding a blank: the two ways of judging the lengths may differ for this chunk."""
    return chunk.uniform is not None and bool(chunk.uniform.any()) and bool((chunk.labels == blank).any())


class _List:
    """One sorted list of ids being written."""

    def __init__(self, path: Path, mode: str = "w") -> None:
        self.path = path
        self.handle: IO[str] = open(path, mode, encoding="utf-8")  # noqa: SIM115 - closed by close()
        self.count = 0

    def write(self, ids: np.ndarray) -> None:
        if ids.size:
            self.handle.write("\n".join(map(str, ids.tolist())) + "\n")
            self.count += int(ids.size)

    def close(self) -> None:
        self.handle.close()


class DropWriter:
    """Streams the dropped ids of each chunk to a file, one per line; with the lengths as given and, from the first
    chunk where that differs, with the true lengths too (see the module's note), until `close` decides."""

    def __init__(self, path: Path, reasons: frozenset[str]) -> None:
        self.path, self.reasons = path, reasons
        self.given = _List(path)
        self.true: _List | None = None
        """The list with the true lengths: None while it equals `given`."""

    def __call__(self, chunk: Chunk, frames: np.ndarray, num_classes: int | None, blank: int) -> None:
        given = dropped(chunk, frames, self.reasons, num_classes, blank)
        true = dropped(chunk, frames, self.reasons, num_classes, blank, true_lengths=True) \
            if _may_count_padding(chunk, blank) else given
        if self.true is None and not np.array_equal(given, true):
            self.given.handle.flush()  # the lists agree so far: the true one starts as a copy
            side = self.path.with_name(self.path.name + SIDE_SUFFIX["true"])
            shutil.copyfile(self.path, side)
            self.true = _List(side, "a")
            self.true.count = self.given.count
        self.given.write(given)
        if self.true is not None:
            self.true.write(true)

    def close(self, padding_counted: bool = False, keep_other: bool = False) -> dict[str, object]:
        """Keep at `path` the list judged as the report is (`padding_counted`: with the true lengths); the other one
        beside it when `keep_other` (a shard or a rank: the merged decision may differ), else removed. Returns the
        result's `drop_list` entry."""
        self.given.close()
        info: dict[str, object] = {"file": str(self.path), "count": self.given.count, "reasons": sorted(self.reasons),
                                   "lengths": "true" if padding_counted else "given"}
        if self.true is None:
            return info  # both ways give this list
        self.true.close()
        if padding_counted:
            beside = self.path.with_name(self.path.name + SIDE_SUFFIX["given"])
            self.path.replace(beside)  # the list with the lengths as given steps aside
            self.true.path.replace(self.path)
            info["count"] = self.true.count
            other, count, lengths = beside, self.given.count, "given"
        else:
            other, count, lengths = self.true.path, self.true.count, "true"
        if keep_other:
            info["other"] = {"file": str(other), "count": count, "lengths": lengths}
        else:
            other.unlink(missing_ok=True)
        return info


def part_lists(parts: list[dict[str, object]], padding_counted: bool) -> list[Path]:
    """Each part's list judged as the merged report is (`padding_counted`): its own, or the one it kept beside it."""
    wanted = "true" if padding_counted else "given"
    files = []
    for part in parts:
        other = part.get("other")
        if isinstance(other, dict) and other.get("lengths") == wanted and part.get("lengths") != wanted:
            files.append(Path(str(other["file"])))
        else:
            files.append(Path(str(part["file"])))  # judged that way, or the same list both ways
    return files


def side_files(parts: list[dict[str, object]]) -> list[Path]:
    """The lists the parts kept beside their own (see `part_lists`)."""
    return [Path(str(part["other"]["file"])) for part in parts if isinstance(part.get("other"), dict)]  # type: ignore[index]


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
