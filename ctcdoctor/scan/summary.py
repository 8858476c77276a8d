"""What a scan keeps of a data set: a `Summary` that is fed chunk by chunk and merges.

A `Chunk` is a few thousand samples in flat form (labels concatenated, one row of lengths per
sample, the sample ids); `Summary.add` digests it with numpy in a handful of passes and keeps
nothing per sample. Two summaries of disjoint parts merge into the summary of the union, so a
scan split by shards, ranks or files gives the same report as one scan (`merge`).

Everything the length and label checks report is here, in mergeable form: counts, the worst
samples per check (`TopK`), the first sample ids per problem (`FirstIds`), exact histograms of
spare frames, label lengths and output lengths (`IntCounts`), the class indices used.

Targets padded with the blank whose target_lengths count the padding (every length the padded
width) are told apart as `check` does (`measure.labels.find_padding_counted`): whether every
blank read is such padding is known only at the end, so once a sample's blanks could be padding
the label-length statistics are kept a second time with the true lengths (`Summary.unpadded`).
"""
from __future__ import annotations

from copy import deepcopy
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
#: The fields that count each sample's labels: `Summary.unpadded` keeps them with the true lengths.
LABEL_FIELDS = ("label_lengths", "spare", "worst", "infeasible", "not_only_repeats", "infeasible_worst", "tight",
                "tight_worst")


@dataclass
class Chunk:
    """Samples in flat form: sample `i` owns `labels[starts[i] : starts[i] + kept[i]]`."""

    ids: np.ndarray
    """(n,) int64 sample ids (data set index or position in the loader's order): the numbers findings and drop-lists give."""
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
    uniform: np.ndarray | None = None
    """(n,) bool: the sample's batch gives every sample the same target_length (the padded width, when the
    blanks are padding they count); None when the samples were read without their batches."""
    positions: np.ndarray | None = None
    """(n,) int64 each sample's position in the loader's stream, where it differs from `ids` (a collate that reorders
    the items of a batch: `Batch.ids`); the model's own output lengths for the first batch are read by position."""

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


@dataclass(frozen=True)
class BlankRuns:
    """Where each sample's blanks sit (all (n,) arrays)."""

    has: np.ndarray
    """The sample holds a blank."""
    first: np.ndarray
    """Position of its first blank (its label count when it has none): its true length if the blanks are padding."""
    count: np.ndarray
    """How many blanks it holds."""
    trailing: np.ndarray
    """Its blanks form one run that ends its labels (all its labels when `first` is 0): padding, if target_lengths
    count it. A blank before another label is an encoding that uses the blank."""


def blank_runs(is_blank: np.ndarray, kept: np.ndarray) -> BlankRuns:
    """Per sample: does it hold a blank, where the first one is, how many (see `BlankRuns`)."""
    n = kept.shape[0]
    if not is_blank.any():
        nothing = np.zeros(n, dtype=bool)
        return BlankRuns(nothing, kept.copy(), np.zeros(n, dtype=np.int64), nothing)
    owner = np.repeat(np.arange(n, dtype=np.int64), kept)
    position = np.arange(owner.shape[0], dtype=np.int64) - (np.cumsum(kept) - kept)[owner]
    count = np.bincount(owner[is_blank], minlength=n)
    first = kept.copy()
    np.minimum.at(first, owner[is_blank], position[is_blank])
    has = count > 0
    return BlankRuns(has, first, count, has & (first + count == kept))


def counted_padding(chunk: Chunk, runs: BlankRuns, repeats: np.ndarray) -> tuple[np.ndarray | None, np.ndarray, np.ndarray]:
    """The per-batch rule for padding that target_lengths count, which the summary and the drop-list share: a sample
    whose blanks form one trailing run (`runs`) in a batch that gives all its samples one target_length.

    Returns (which samples' blanks may be padding, None when the chunk was read without its batches; the labels before
    that padding, `chunk.kept` for the others; their repeats, without the run's own adjacent pairs). Whether every blank
    of the data set is such padding is decided at the end (`Summary.padding_counted`)."""
    padding = runs.trailing & chunk.uniform if chunk.uniform is not None else None
    if padding is None or not padding.any():
        return padding, chunk.kept, repeats
    # The labels before the run of blanks; the run's own adjacent pairs (count - 1) are not repeats.
    return padding, np.where(padding, runs.first, chunk.kept), np.where(padding, repeats - (runs.count - 1), repeats)


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
    """Samples whose blanks form one run at the end, after a real label (padding, if target_lengths count it)."""
    blank_inner: int = 0
    """Samples with a blank before another label: an encoding that uses the blank."""
    blank_whole: int = 0
    """Samples whose every label is the blank (all padding, if target_lengths count it)."""
    blank_ragged: int = 0
    """Samples with a blank in a batch whose target_lengths differ: true lengths, so their blanks are labels."""
    blank_unbatched: int = 0
    """Samples with a blank read without their batch (`Setup.sample_labels`): whether it counts padding is unknown."""
    padding_worst: TopK = field(default_factory=lambda: TopK(1))
    """The sample whose target_length counts the most padding, as {"sample", "given", "real"} (CTC012 names it)."""
    unpadded: Summary | None = None
    """The `LABEL_FIELDS` with the true lengths (the labels before a trailing run of blanks in a batch of equal
    target_lengths), kept from the first chunk where some sample's blanks could be padding; None before (the
    same as this summary's own). `judged` reads them when every blank is such padding."""
    empty: FirstIds = field(default_factory=FirstIds)
    problems: list[tuple[int, int, str]] = field(default_factory=list)
    problem_count: int = 0

    def __post_init__(self) -> None:
        self.worst = TopK(self.worst_count) if self.worst.k != self.worst_count else self.worst

    # ------------------------------------------------------------ what the blanks are

    def _padding_pattern(self) -> bool:
        """Every blank met trails its sample's labels, after a real label in some sample (the pattern of
        `measure.labels.find_padding_counted`, which also wants two samples with blanks)."""
        return (self.blank_inner == 0 and self.blank_ragged == 0 and self.blank_trailing >= 1
                and self.blank_trailing + self.blank_whole >= 2)

    @property
    def padding_counted(self) -> bool:
        """Every blank in the targets is padding that target_lengths count: each sits in a trailing run, and every
        batch holding one gives all its samples the same target_length (the padded width). CTC012, as `check` says."""
        return self._padding_pattern() and self.blank_unbatched == 0

    @property
    def padding_likely(self) -> bool:
        """The blanks trail the labels as counted padding would, but they were read without their batches, so
        whether target_lengths count the padding is unknown (CTC011 says so)."""
        return self._padding_pattern() and self.blank_unbatched > 0

    def judged(self, padding_counted: bool) -> Summary:
        """The summary the checks read: with the true lengths (`unpadded`) when the lengths count the padding."""
        if not padding_counted or self.unpadded is None:
            return self
        view = Summary(**{name: getattr(self, name) for name in self.__dataclass_fields__})
        for name in LABEL_FIELDS:
            setattr(view, name, getattr(self.unpadded, name))
        return view

    # ------------------------------------------------------------ feeding

    def add(self, chunk: Chunk, frames: np.ndarray, num_classes: int | None, blank: int) -> None:
        """Digest a chunk; `frames` are its output lengths (-1: unknown)."""
        self.samples += chunk.size
        self.batches += chunk.batches
        runs = self._add_labels(chunk, num_classes, blank)
        self.input_lengths.add(chunk.input_lengths)
        self.problems = sorted(self.problems + chunk.problems)[:PROBLEMS_KEPT]
        self.problem_count += len(chunk.problems)
        self._add_frames(chunk, frames)
        repeats = repeats_per_sample(chunk.labels, chunk.kept)
        padding, real, real_repeats = counted_padding(chunk, runs, repeats)
        counts_padding = padding is not None and bool(padding.any())
        if counts_padding and self.unpadded is None:
            self.unpadded = self._label_copy()  # from here on, the true lengths too (before this chunk: the same)
        self._add_label_counts(chunk.ids, chunk.kept, repeats, frames)
        if self.unpadded is not None:
            if counts_padding:
                assert padding is not None
                self._add_padding(chunk, padding, real)
            self.unpadded._add_label_counts(chunk.ids, real, real_repeats, frames)

    def _add_labels(self, chunk: Chunk, num_classes: int | None, blank: int) -> BlankRuns:
        labels, kept, ids = chunk.labels, chunk.kept, chunk.ids
        self.classes.add(labels)
        self.empty.add(ids[chunk.target_lengths == 0])
        is_blank = labels == blank
        self.blank_labels += int(is_blank.sum())
        self.blank.add(samples_with(is_blank, kept, ids))
        runs = blank_runs(is_blank, kept)
        if runs.has.any():
            self.blank_trailing += int((runs.trailing & (runs.first > 0)).sum())
            self.blank_whole += int((runs.trailing & (runs.first == 0)).sum())
            self.blank_inner += int((runs.has & ~runs.trailing).sum())
            if chunk.uniform is None:
                self.blank_unbatched += int(runs.has.sum())
            else:
                self.blank_ragged += int((runs.has & ~chunk.uniform).sum())
        if num_classes is not None:
            outside = (labels < 0) | (labels >= num_classes)
            self.out_of_range_labels += int(outside.sum())
            self.out_of_range.add(samples_with(outside, kept, ids))
        return runs

    def _add_padding(self, chunk: Chunk, padding: np.ndarray, real: np.ndarray) -> None:
        """Offer the samples whose blanks may be padding to `padding_worst`: most padding counted first."""
        where = np.flatnonzero(padding)
        given = chunk.target_lengths[where]
        self.padding_worst.offer(-(given - real[where]), chunk.ids[where], lambda p: [
            {"sample": int(chunk.ids[i]), "given": int(chunk.target_lengths[i]), "real": int(real[i])}
            for i in where[p].tolist()])

    def _add_frames(self, chunk: Chunk, frames: np.ndarray) -> None:
        """What does not depend on the labels: the samples with a known output length, their frames, the ratios."""
        known = frames >= 0
        if not known.any():
            return
        available, lengths = frames[known], chunk.input_lengths[known]
        self.known += int(known.sum())
        self.frames.add(available)
        usable = (available > 0) & (lengths > 0)
        self.ratios.add_ratios(lengths[usable], available[usable])

    def _label_copy(self) -> Summary:
        """A summary holding a copy of this one's `LABEL_FIELDS` (and nothing else)."""
        copy = Summary(worst_count=self.worst_count)
        for name in LABEL_FIELDS:
            setattr(copy, name, deepcopy(getattr(self, name)))
        return copy

    def _add_label_counts(self, ids: np.ndarray, kept: np.ndarray, repeats: np.ndarray, frames: np.ndarray) -> None:
        """The `LABEL_FIELDS`: labels per sample, and against the known output lengths the spare frames, the
        tightest samples and those that cannot be aligned."""
        self.label_lengths.add(kept)
        known = frames >= 0
        if not known.any():
            return
        ids, kept = ids[known], kept[known]
        available, repeats = frames[known], repeats[known]
        required = kept + repeats
        spare = available - required
        self.spare.add(spare)

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
        if self.unpadded is not None or other.unpadded is not None:
            # A part without `unpadded` had no sample whose blanks could be padding: its true lengths are its own.
            mine = self.unpadded if self.unpadded is not None else self._label_copy()
            mine._merge_fields(other.unpadded if other.unpadded is not None else other, LABEL_FIELDS)
            self.unpadded = mine
        self._merge_fields(other, ("samples", "batches", "known", "out_of_range_labels", "blank_labels", "blank_trailing",
                                   "blank_inner", "blank_whole", "blank_ragged", "blank_unbatched", "problem_count",
                                   "frames", "input_lengths", "classes", "ratios", "out_of_range", "blank", "empty",
                                   "padding_worst", *LABEL_FIELDS))
        self.problems = sorted(self.problems + other.problems)[:PROBLEMS_KEPT]

    def _merge_fields(self, other: Summary, names: tuple[str, ...]) -> None:
        for name in names:
            value = getattr(self, name)
            if isinstance(value, int):
                setattr(self, name, value + getattr(other, name))
            else:
                value.merge(getattr(other, name))

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {}
        for name, value in vars(self).items():
            if isinstance(value, (IntCounts, ValueCounts, TopK, FirstIds)):
                data[name] = value.to_json()
            elif name == "problems":
                data[name] = [list(item) for item in value]
            elif name == "unpadded":
                data[name] = None if value is None else {
                    key: item for key, item in value.to_json().items() if key in ("worst_count", *LABEL_FIELDS)}
            else:
                data[name] = value
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Summary:
        kinds = {"spare": IntCounts, "frames": IntCounts, "label_lengths": IntCounts, "input_lengths": IntCounts,
                 "classes": IntCounts, "ratios": ValueCounts, "infeasible_worst": TopK, "tight_worst": TopK, "worst": TopK,
                 "out_of_range": FirstIds, "blank": FirstIds, "empty": FirstIds, "padding_worst": TopK}
        values: dict[str, Any] = {}
        for name, value in data.items():
            if name in kinds:
                values[name] = kinds[name].from_json(value)  # type: ignore[attr-defined]
            elif name == "problems":
                values[name] = [tuple(item) for item in value]
            elif name == "unpadded":
                values[name] = None if value is None else cls.from_json(value)
            else:
                values[name] = value
        return cls(**values)
