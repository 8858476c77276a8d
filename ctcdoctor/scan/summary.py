"""What a scan keeps of a data set: a `Summary` that is fed chunk by chunk and merges.

A `Chunk` is a few thousand samples in flat form (labels concatenated, one row of lengths per
sample, the sample ids); `Summary.add` digests it with numpy in a handful of passes and keeps
nothing per sample. Two summaries of disjoint parts merge into the summary of the union, so a
scan split by shards, ranks or files gives the same report as one scan (`merge`).

Everything the length and label checks report is here, in mergeable form: counts, the worst
samples per check (`TopK`), the first sample ids per problem (`FirstIds`), exact histograms of
spare frames, label lengths and output lengths (`IntCounts`), the class indices used.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ctcdoctor.scan.counts import FirstIds, IntCounts, TopK, ValueCounts

#: A sample with fewer output frames than this many per needed frame is tight (CTC002); as checks/lengths.py.
TIGHT_RATIO = 1.25
#: Worst samples kept per check finding (the findings list 5).
WORST_PER_CODE = 5
#: Sample ids kept per problem (findings and their evidence show at most 20).
IDS_KEPT = 20
#: Inconsistent-length sentences kept (CTC012 shows 5, its evidence 20).
PROBLEMS_KEPT = 20


@dataclass
class Chunk:
    """Samples in flat form: sample `i` owns `labels[starts[i] : starts[i] + kept[i]]`."""

    ids: np.ndarray
    """(n,) int64 sample ids (data set index or position in the loader's order)."""
    target_lengths: np.ndarray
    """(n,) int64 target lengths as given (may disagree with the labels: see `problems`)."""
    kept: np.ndarray
    """(n,) int64 labels each sample really holds."""
    labels: np.ndarray
    """(sum(kept),) int64 class indices, sample after sample."""
    input_lengths: np.ndarray
    """(n,) int64 input lengths."""
    problems: list[tuple[int, int, str]] = field(default_factory=list)
    """(batch, order, sentence) for each target/length inconsistency met (CTC012)."""
    batches: int = 0

    @property
    def size(self) -> int:
        return int(self.ids.shape[0])


def repeats_per_sample(labels: np.ndarray, kept: np.ndarray) -> np.ndarray:
    """(n,) adjacent equal labels within each sample: a running count of equal neighbours, read at each sample's ends."""
    n = kept.shape[0]
    if labels.size < 2:
        return np.zeros(n, dtype=np.int64)
    flags = np.zeros(labels.size, dtype=np.int64)
    flags[1:] = labels[1:] == labels[:-1]
    starts = np.cumsum(kept) - kept
    flags[starts[kept > 0]] = 0  # a sample's first label has no left neighbour of its own
    running = np.concatenate(([0], np.cumsum(flags)))
    return running[starts + kept] - running[starts]


def samples_with(mask: np.ndarray, kept: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Ids of the samples that own at least one label where `mask` is True."""
    if not mask.any():
        return ids[:0]
    owner = np.repeat(np.arange(kept.shape[0], dtype=np.int64), kept)
    return ids[np.unique(owner[mask])]


def blank_runs(is_blank: np.ndarray, kept: np.ndarray) -> tuple[int, int]:
    """(samples whose blanks all sit in one run at the end, after a real label: padding that target_lengths
    count; samples with a blank anywhere else: an encoding that uses the blank)."""
    if not is_blank.any():
        return 0, 0
    owner = np.repeat(np.arange(kept.shape[0], dtype=np.int64), kept)
    position = np.arange(owner.shape[0], dtype=np.int64) - (np.cumsum(kept) - kept)[owner]
    count = np.bincount(owner[is_blank], minlength=kept.shape[0])
    first = np.full(kept.shape[0], np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(first, owner[is_blank], position[is_blank])
    has = count > 0
    trailing = has & (first + count == kept) & (first > 0)
    return int(trailing.sum()), int((has & ~trailing).sum())


@dataclass
class Summary:
    """The mergeable digest of a scanned data set (or of one shard of it)."""

    worst_count: int = 10
    samples: int = 0
    batches: int = 0
    known: int = 0
    spare: IntCounts = field(default_factory=IntCounts)
    frames: IntCounts = field(default_factory=IntCounts)
    label_lengths: IntCounts = field(default_factory=IntCounts)
    input_lengths: IntCounts = field(default_factory=IntCounts)
    classes: IntCounts = field(default_factory=IntCounts)
    ratios: ValueCounts = field(default_factory=ValueCounts)
    infeasible: int = 0
    not_only_repeats: int = 0
    infeasible_worst: TopK = field(default_factory=lambda: TopK(WORST_PER_CODE))
    tight: int = 0
    tight_worst: TopK = field(default_factory=lambda: TopK(WORST_PER_CODE))
    worst: TopK = field(default_factory=lambda: TopK(10))
    out_of_range_labels: int = 0
    out_of_range: FirstIds = field(default_factory=FirstIds)
    blank_labels: int = 0
    blank: FirstIds = field(default_factory=FirstIds)
    blank_trailing: int = 0
    """Samples whose blanks all trail their labels (padding counted by target_lengths, see `blank_runs`)."""
    blank_inner: int = 0
    """Samples with a blank before another label (or as their first label)."""
    empty: FirstIds = field(default_factory=FirstIds)
    problems: list[tuple[int, int, str]] = field(default_factory=list)
    problem_count: int = 0

    def __post_init__(self) -> None:
        self.worst = TopK(self.worst_count) if self.worst.k != self.worst_count else self.worst

    # ------------------------------------------------------------ feeding

    def add(self, chunk: Chunk, frames: np.ndarray, num_classes: int | None, blank: int) -> None:
        """Digest a chunk; `frames` are its output lengths (-1: unknown)."""
        self.samples += chunk.size
        self.batches += chunk.batches
        self._add_labels(chunk, num_classes, blank)
        self.input_lengths.add(chunk.input_lengths)
        self.problems = sorted(self.problems + chunk.problems)[:PROBLEMS_KEPT]
        self.problem_count += len(chunk.problems)
        repeats = repeats_per_sample(chunk.labels, chunk.kept)
        self._add_lengths(chunk, frames, repeats)

    def _add_labels(self, chunk: Chunk, num_classes: int | None, blank: int) -> None:
        labels, kept, ids = chunk.labels, chunk.kept, chunk.ids
        self.classes.add(labels)
        self.label_lengths.add(kept)
        self.empty.add(ids[chunk.target_lengths == 0])
        is_blank = labels == blank
        self.blank_labels += int(is_blank.sum())
        self.blank.add(samples_with(is_blank, kept, ids))
        trailing, inner = blank_runs(is_blank, kept)
        self.blank_trailing += trailing
        self.blank_inner += inner
        if num_classes is not None:
            outside = (labels < 0) | (labels >= num_classes)
            self.out_of_range_labels += int(outside.sum())
            self.out_of_range.add(samples_with(outside, kept, ids))

    def _add_lengths(self, chunk: Chunk, frames: np.ndarray, repeats: np.ndarray) -> None:
        known = frames >= 0
        if not known.any():
            return
        ids, kept = chunk.ids[known], chunk.kept[known]
        available, repeats, lengths = frames[known], repeats[known], chunk.input_lengths[known]
        required = kept + repeats
        spare = available - required
        self.known += int(known.sum())
        self.spare.add(spare)
        self.frames.add(available)
        usable = (available > 0) & (lengths > 0)
        self.ratios.add_ratios(lengths[usable], available[usable])

        def rows(positions: np.ndarray, **extra: np.ndarray) -> list[dict[str, int]]:
            columns = {"sample": ids, "frames": available, "labels": kept, "repeats": repeats, "needed": required, **extra}
            picked = {name: values[positions].tolist() for name, values in columns.items()}
            return [dict(zip(picked, row)) for row in zip(*picked.values())]

        self.worst.offer(spare, ids, lambda p: rows(p, spare=spare))
        short = available < required
        if short.any():
            self.infeasible += int(short.sum())
            self.not_only_repeats += int((short & ~((available >= kept) & (repeats > 0))).sum())
            where = np.flatnonzero(short)
            deficit = required[where] - available[where]
            self.infeasible_worst.offer(-deficit, ids[where], lambda p: rows(where[p], short_by=required - available))
        tight = (available >= required) & (required > 0) & (available < TIGHT_RATIO * required)
        if tight.any():
            self.tight += int(tight.sum())
            where = np.flatnonzero(tight)
            ratio = available[where] / required[where].astype(np.float64)
            self.tight_worst.offer(ratio, ids[where], lambda p: [
                {"sample": int(ids[i]), "frames": int(available[i]), "needed": int(required[i])} for i in where[p].tolist()])

    # ------------------------------------------------------------ merging and JSON

    def merge(self, other: Summary) -> None:
        for name in ("samples", "batches", "known", "infeasible", "not_only_repeats", "tight", "out_of_range_labels",
                     "blank_labels", "blank_trailing", "blank_inner", "problem_count"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for name in ("spare", "frames", "label_lengths", "input_lengths", "classes", "ratios", "infeasible_worst",
                     "tight_worst", "worst", "out_of_range", "blank", "empty"):
            getattr(self, name).merge(getattr(other, name))
        self.problems = sorted(self.problems + other.problems)[:PROBLEMS_KEPT]

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {}
        for name, value in vars(self).items():
            if isinstance(value, (IntCounts, ValueCounts, TopK, FirstIds)):
                data[name] = value.to_json()
            elif name == "problems":
                data[name] = [list(item) for item in value]
            else:
                data[name] = value
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Summary:
        kinds = {"spare": IntCounts, "frames": IntCounts, "label_lengths": IntCounts, "input_lengths": IntCounts,
                 "classes": IntCounts, "ratios": ValueCounts, "infeasible_worst": TopK, "tight_worst": TopK, "worst": TopK,
                 "out_of_range": FirstIds, "blank": FirstIds, "empty": FirstIds}
        values: dict[str, Any] = {}
        for name, value in data.items():
            if name in kinds:
                values[name] = kinds[name].from_json(value)  # type: ignore[attr-defined]
            elif name == "problems":
                values[name] = [tuple(item) for item in value]
            else:
                values[name] = value
        return cls(**values)
