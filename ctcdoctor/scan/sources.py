"""Where a scan's samples come from, in chunks: the user's loader (whole or one shard of it), or
`Setup.sample_labels` (labels only: no inputs decoded, no collate).

A shard is a set of whole batches, strided: shard `i` of `n` takes batches `i, i + n, i + 2n, …`
of the one batch order a single scan reads, so every sample is read once, none is padded or
dropped, and batch numbers and sample ids in findings are those of the single scan. For a
`DataLoader` over a map-style data set only the shard's batches are loaded; any other iterable
is iterated whole and the other shards' batches are skipped (sized, not normalised).
"""
from __future__ import annotations

import collections
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ctcdoctor.errors import BatchError, UserInputError
from ctcdoctor.load.batches import (
    Batch,
    Collated,
    batch_targets,
    in_dataset_order,
    indexable,
    normalise_batch,
    sorted_by_length,
    starts_elsewhere,
)
from ctcdoctor.load.limits import doing
from ctcdoctor.scan.summary import Chunk

#: Samples per chunk: large enough that numpy's per-call cost vanishes, small enough to stay a few MB.
CHUNK = 1 << 16


@dataclass(frozen=True)
class Shard:
    index: int = 0
    count: int = 1

    def owns(self, batch: int) -> bool:
        return batch % self.count == self.index

    def describe(self) -> str:
        return f"{self.index}/{self.count}"


def parse_shard(text: str) -> Shard:
    """`I/N` with 0 <= I < N."""
    head, sep, tail = text.partition("/")
    try:
        index, count = int(head), int(tail)
    except ValueError:
        index, count = -1, 0
    if not sep or count < 1 or not 0 <= index < count:
        raise UserInputError(f"--shard {text!r} is not I/N with 0 <= I < N", "Write e.g. --shard 0/4 (the first of four shards).")
    return Shard(index, count)


# ---------------------------------------------------------------- batches of the loader


class _StridedBatches:
    """A batch sampler that yields the shard's batches of another, and records where each starts."""

    def __init__(self, batches: Iterable[list[int]], shard: Shard) -> None:
        self.batches, self.shard = batches, shard
        self.placed: collections.deque[tuple[int, int]] = collections.deque()

    def __iter__(self) -> Iterator[list[int]]:
        first = 0
        for index, batch in enumerate(self.batches):
            indices = list(batch)
            if self.shard.owns(index):
                self.placed.append((index, first))
                yield indices
            first += len(indices)

    def __len__(self) -> int:
        total = len(self.batches)  # type: ignore[arg-type]
        return len(range(self.shard.index, total, self.shard.count))


def _remade(loader: Any, batches: Iterable[list[int]], workers: int | None) -> Any:
    """The DataLoader with another batch sampler and worker count (its data set and collate as they are)."""
    from torch.utils.data import DataLoader

    count = loader.num_workers if workers is None else workers
    return DataLoader(
        loader.dataset, batch_sampler=batches, collate_fn=loader.collate_fn, num_workers=count,
        worker_init_fn=loader.worker_init_fn, multiprocessing_context=loader.multiprocessing_context if count else None,
        pin_memory=False, timeout=loader.timeout if count else 0,
    )


def _sharded_loader(loader: Any, shard: Shard, workers: int | None) -> tuple[Iterable[Any], _StridedBatches] | None:
    """The DataLoader re-made to load only the shard's batches, or None when it cannot be."""
    if not indexable(loader):
        return None
    strided = _StridedBatches(loader.batch_sampler, shard)
    return _remade(loader, strided, workers), strided


def _raw_size(raw: Any) -> int | None:
    """Samples in a raw batch without normalising it (for batches another shard owns)."""
    raw = raw.raw if isinstance(raw, Collated) else raw
    try:
        lengths = raw["target_lengths"] if isinstance(raw, dict) else raw[3]
        return int(len(lengths))
    except Exception:
        return None


def _next(iterator: Iterator[Any], index: int) -> Any:
    try:
        return next(iterator)
    except StopIteration:
        raise
    except Exception as error:
        raise BatchError(
            f"iterating the loader raised {type(error).__name__} at batch {index}: {error}",
            "Fix the dataset or collate function (iterate it once by hand to see the error); use --debug for the traceback.",
        ) from error


@dataclass
class ReadStatus:
    """How a shard's reading ended: `capped` is (samples, batches) when it stopped at the sample limit."""

    capped: tuple[int, int] | None = None


def shard_batches(loader: Iterable[Any], shard: Shard, limit: int | None, status: ReadStatus,
                  workers: int | None = None, batch_axis: int | None = None) -> Iterator[Batch]:
    """The shard's normalised batches in order, numbered as in a single scan; reading stops (and says so in
    `status`) once `limit` samples of the whole stream have been read. `workers` re-makes a DataLoader over a
    map-style data set with that many worker processes (its collate runs in them). `batch_axis` is
    Setup.batch_axis: time-major inputs (T, N, ...) are cut on axis 1 even where T == N makes the shape ambiguous."""
    ordered = in_dataset_order(loader)
    if workers is not None and shard.count == 1 and indexable(ordered):
        ordered = _remade(ordered, ordered.batch_sampler, workers)  # type: ignore[attr-defined]
    remade = _sharded_loader(ordered, shard, workers) if shard.count > 1 and limit is None else None
    if remade is not None:
        source, strided = remade
        iterator = iter(source)
        while True:
            with doing("reading a batch of the loader"):
                try:
                    raw = _next(iterator, strided.placed[-1][0] if strided.placed else -1)
                except StopIteration:
                    return
            index, first = strided.placed.popleft()
            yield normalise_batch(raw, index, first, batch_axis)
    first, index, iterator = 0, 0, iter(ordered)
    while True:
        if limit is not None and first >= limit:
            status.capped = (first, index)
            return
        with doing(f"reading batch {index} of the loader"):
            try:
                raw = _next(iterator, index)
            except StopIteration:
                return
        size = None if shard.owns(index) else _raw_size(raw)
        if size is None:
            batch = normalise_batch(raw, index, first, batch_axis)
            size = batch.size
            if shard.owns(index):
                yield batch
        first += size
        index += 1


def flat_batch(batch: Batch) -> tuple[np.ndarray, np.ndarray, list[tuple[int, int, str]]]:
    """(kept lengths, labels flattened, problems) of one batch, through the one target splitter."""
    labels, kept, problems = batch_targets(batch)
    if labels.dim() == 2 and labels.shape[1]:
        mask = torch.arange(labels.shape[1]).unsqueeze(0) < kept.unsqueeze(1)
        flat = labels[mask]
    else:
        flat = labels.reshape(-1)[:0]
    return kept.numpy(), flat.numpy(), [(batch.index, order, text) for order, text in enumerate(problems)]


class ChunkBuilder:
    """Gathers per-batch (or per-sample) pieces and hands out a `Chunk` every `CHUNK` samples."""

    def __init__(self) -> None:
        self.parts: dict[str, list[np.ndarray]] = {"ids": [], "target_lengths": [], "kept": [], "labels": [], "input_lengths": [],
                                                   "positions": []}
        self.problems: list[tuple[int, int, str]] = []
        self.uniform: list[np.ndarray] = []
        self.size = 0
        self.batches = 0

    def add_batch(self, batch: Batch) -> Chunk | None:
        kept, flat, problems = flat_batch(batch)
        lengths = batch.target_lengths.numpy()
        positions = np.arange(batch.first_sample, batch.first_sample + batch.size, dtype=np.int64)
        self.parts["ids"].append(positions if batch.ids is None else np.asarray(batch.ids, dtype=np.int64))
        self.parts["positions"].append(positions)
        self.parts["target_lengths"].append(lengths)
        # One target_length for the whole batch: if its samples end in blanks, they are the padding it counts.
        self.uniform.append(np.full(batch.size, bool(lengths.size) and bool((lengths == lengths[0]).all())))
        self.parts["kept"].append(kept)
        self.parts["labels"].append(flat)
        self.parts["input_lengths"].append(batch.input_lengths.numpy())
        self.problems += problems
        self.size += batch.size
        self.batches += 1
        return self.take() if self.size >= CHUNK else None

    def add_arrays(self, ids: np.ndarray, lengths: np.ndarray, labels: np.ndarray, input_lengths: np.ndarray) -> None:
        for name, value in (("ids", ids), ("target_lengths", lengths), ("kept", lengths), ("labels", labels),
                            ("input_lengths", input_lengths)):
            self.parts[name].append(value)
        self.size += int(ids.shape[0])

    def take(self) -> Chunk | None:
        if not self.size:
            return None
        joined = {name: np.concatenate(values).astype(np.int64, copy=False) if values else np.zeros(0, np.int64)
                  for name, values in self.parts.items()}
        # Samples from Setup.sample_labels come without their batch: whether the lengths count padding is unknown.
        uniform = np.concatenate(self.uniform) if self.uniform else None
        positions = joined["positions"] if self.parts["positions"] and not np.array_equal(joined["positions"], joined["ids"]) \
            else None
        chunk = Chunk(joined["ids"], joined["target_lengths"], joined["kept"], joined["labels"], joined["input_lengths"],
                      self.problems, self.batches, uniform, positions)
        self.__init__()  # type: ignore[misc]
        return chunk


def loader_chunks(batches: Iterator[Batch], on_batch: Callable[[Batch], None] | None = None) -> Iterator[Chunk]:
    builder = ChunkBuilder()
    for batch in batches:
        if on_batch is not None:
            on_batch(batch)
        chunk = builder.add_batch(batch)
        if chunk is not None:
            yield chunk
    last = builder.take()
    if last is not None:
        yield last


# ---------------------------------------------------------------- labels only: Setup.sample_labels


def _as_list(labels: Any) -> list[int]:
    if isinstance(labels, list):
        return labels
    if isinstance(labels, (torch.Tensor, np.ndarray)):
        return labels.reshape(-1).tolist()
    return list(labels)


def sample_label_chunks(
    sample_labels: Callable[[int], Any], total: int, block: int, shard: Shard, on_samples: Callable[[int], None] | None = None,
) -> Iterator[Chunk]:
    """Chunks from `sample_labels(i) -> (input length, labels)` for the shard's blocks of `block` indices."""
    builder = ChunkBuilder()
    for start in range(shard.index * block, total, block * shard.count):
        stop = min(start + block, total)
        lengths: list[int] = []
        flat: list[int] = []
        sizes: list[int] = []
        with doing(f"calling Setup.sample_labels for samples {start}-{stop - 1}"):
            for index in range(start, stop):
                try:
                    length, labels = sample_labels(index)
                except Exception as error:
                    raise UserInputError(
                        f"Setup.sample_labels({index}) raised {type(error).__name__}: {error}",
                        "Make sample_labels(i) return (input length, label indices) for every index of the data set.",
                    ) from error
                values = _as_list(labels)
                lengths.append(int(length))
                sizes.append(len(values))
                flat += values
        kept = np.asarray(sizes, dtype=np.int64)
        builder.add_arrays(np.arange(start, stop, dtype=np.int64), kept, np.asarray(flat, dtype=np.int64),
                           np.asarray(lengths, dtype=np.int64))
        if on_samples is not None:
            on_samples(stop - start)
        if builder.size >= CHUNK:
            chunk = builder.take()
            if chunk is not None:
                yield chunk
    last = builder.take()
    if last is not None:
        yield last


# ---------------------------------------------------------------- sample numbers that are not data set indices

#: Batches of two or more samples looked at for the tell-tale of a collate that sorts by length.
SORTED_LOOK = 4

ORDER_FIX = ("Give Setup.loader the DataLoader itself, with the conversion your wrapper does moved into its collate_fn "
             "(ctcdoctor reads it in data set order and finds the data set index of each sample of a sorted batch), or "
             "give Setup.sample_labels, or use a collate that keeps the items' order (--drop-anyway does not override "
             "this).")


def refuse_iteration_order(loader: Any, batches: Iterator[Batch]) -> Iterator[Batch]:
    """`batches`, for a drop-list, from a loader whose sample numbers are positions in iteration order (one ctcdoctor
    cannot index: a class around a DataLoader, an iterable data set): refused (exit 2) when those are surely not data
    set indices: when a second pass over it starts with other samples (it shuffles), or when its first batches carry
    the tell-tale of a collate that sorts each batch by input length (`sorted_by_length`), before the list holds
    anything."""
    seen: list[Batch] = []
    for batch in batches:
        if not seen and batch.index == 0:  # a shard's first batch is another: a fresh pass starts at batch 0
            _refuse_shuffled(loader, batch)
        if len([item for item in seen if item.size > 1]) < SORTED_LOOK:
            seen.append(batch)
            if len([item for item in seen if item.size > 1]) == SORTED_LOOK:
                _refuse_sorted(loader, seen)
        yield batch
    _refuse_sorted(loader, seen)


def _refuse_shuffled(loader: Any, first: Batch) -> None:
    """Refused when a second pass over the loader starts with another batch (`starts_elsewhere`)."""
    if not starts_elsewhere(loader, first):
        return
    raise UserInputError(
        f"--drop-list: the loader ({type(loader).__name__}) is not a DataLoader ctcdoctor can index, so sample N is the "
        "N-th sample in iteration order; and a second pass over it starts with other samples (it shuffles), so those "
        "numbers are positions in one random order and the list would name other samples",
        ORDER_FIX)


def _refuse_sorted(loader: Any, seen: list[Batch]) -> None:
    if sorted_by_length(seen):
        raise UserInputError(
            f"--drop-list: the loader ({type(loader).__name__}) is not a DataLoader ctcdoctor can index, so sample N is "
            "the N-th sample in iteration order; and each of its first batches is sorted by input length "
            "(a collate that sorts, as deepspeech.pytorch's), so those numbers are not data set indices and the list "
            "would name other samples",
            ORDER_FIX)
