"""Normalise the user's batches, and gather every scanned target into one table.

A batch is `(inputs, targets, input_lengths, target_lengths)` or a mapping with those
keys; targets are padded `(N, S)` or concatenated 1-D, as in `F.ctc_loss`. Structural
problems (not a batch at all) raise `BatchError` (exit 2); inconsistent lengths are left
for the label checks to report as findings.
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import torch

from ctcdoctor.errors import BatchError

BATCH_KEYS = ("inputs", "targets", "input_lengths", "target_lengths")
BATCH_HINT = (
    "Make the loader yield (inputs, targets, input_lengths, target_lengths) tuples, or dicts with those keys, "
    "as torch.nn.functional.ctc_loss takes them."
)


@dataclass(frozen=True)
class Batch:
    inputs: Any
    """Whatever `model(inputs)` takes; usually a tensor whose first axis is the batch."""
    targets: torch.Tensor
    input_lengths: torch.Tensor
    target_lengths: torch.Tensor
    index: int
    """Position of the batch in the loader."""
    first_sample: int
    """Running index of the batch's first sample over the scanned batches."""
    raw: Any
    """The batch exactly as the loader yielded it (passed to the user's criterion)."""

    @property
    def size(self) -> int:
        return int(self.input_lengths.shape[0])

    @property
    def concatenated(self) -> bool:
        return self.targets.dim() == 1


def _as_lengths(value: Any, name: str, batch_index: int) -> torch.Tensor:
    try:
        tensor = torch.as_tensor(value)
    except Exception as error:
        raise BatchError(f"batch {batch_index}: {name} is a {type(value).__name__} that is not a tensor ({error})", BATCH_HINT) from error
    if tensor.dim() == 0:
        tensor = tensor.reshape(1)
    if tensor.dim() != 1:
        raise BatchError(f"batch {batch_index}: {name} has shape {tuple(tensor.shape)}; it must be 1-D, one length per sample", BATCH_HINT)
    if tensor.is_floating_point():
        if not torch.equal(tensor, tensor.round()):
            raise BatchError(f"batch {batch_index}: {name} holds fractional values", "Lengths are whole numbers of frames / labels: use an integer tensor.")
    elif tensor.dtype not in (torch.int8, torch.int16, torch.int32, torch.int64, torch.uint8):
        raise BatchError(f"batch {batch_index}: {name} has dtype {tensor.dtype}", "Use an integer tensor of lengths.")
    return tensor.detach().to("cpu", torch.long)


def normalise_batch(raw: Any, index: int, first_sample: int) -> Batch:
    """Turn one loader item into a `Batch`, or raise `BatchError` naming what is wrong."""
    if isinstance(raw, Mapping):
        missing = [key for key in BATCH_KEYS if key not in raw]
        if missing:
            raise BatchError(
                f"batch {index}: the dict has keys {sorted(map(str, raw))} but lacks {missing}",
                f"Use the keys {list(BATCH_KEYS)}.",
            )
        parts = [raw[key] for key in BATCH_KEYS]
    elif isinstance(raw, (tuple, list)):
        if len(raw) != 4:
            raise BatchError(
                f"batch {index}: the loader yielded a {type(raw).__name__} of {len(raw)} items, not 4",
                BATCH_HINT,
            )
        parts = list(raw)
    else:
        raise BatchError(f"batch {index}: the loader yielded a {type(raw).__name__}, not a batch", BATCH_HINT)
    inputs, targets, input_lengths, target_lengths = parts
    if isinstance(targets, str) or (isinstance(targets, (list, tuple)) and targets and isinstance(targets[0], str)):
        raise BatchError(
            f"batch {index}: targets are text ({targets[0] if not isinstance(targets, str) else targets!r:.40}…), not class indices",
            "Encode each label to class indices in the dataset or collate function "
            "(e.g. [alphabet.index(ch) + 1 for ch in text] with blank 0), and pass target_lengths.",
        )
    try:
        targets = torch.as_tensor(targets)
    except Exception as error:
        raise BatchError(f"batch {index}: targets are a {type(targets).__name__} that is not a tensor ({error})", BATCH_HINT) from error
    if targets.dim() not in (1, 2):
        raise BatchError(f"batch {index}: targets have shape {tuple(targets.shape)}; they must be padded (N, S) or concatenated 1-D", BATCH_HINT)
    if targets.is_floating_point() or targets.is_complex() or targets.dtype == torch.bool:
        raise BatchError(f"batch {index}: targets have dtype {targets.dtype}", "Encode labels as integer class indices (torch.long).")
    input_lengths = _as_lengths(input_lengths, "input_lengths", index)
    target_lengths = _as_lengths(target_lengths, "target_lengths", index)
    if input_lengths.shape[0] != target_lengths.shape[0]:
        raise BatchError(
            f"batch {index}: {input_lengths.shape[0]} input lengths but {target_lengths.shape[0]} target lengths",
            "Give one input length and one target length per sample.",
        )
    if isinstance(inputs, torch.Tensor) and inputs.dim() > 0 and inputs.shape[0] != input_lengths.shape[0]:
        raise BatchError(
            f"batch {index}: inputs have {inputs.shape[0]} samples on their first axis but input_lengths has {input_lengths.shape[0]}",
            "Put the batch first in inputs (N, ...), one input length per sample.",
        )
    if targets.dim() == 2 and targets.shape[0] != input_lengths.shape[0]:
        raise BatchError(
            f"batch {index}: padded targets have {targets.shape[0]} rows for {input_lengths.shape[0]} samples",
            "Padded targets are (N, S): one row per sample.",
        )
    return Batch(inputs, targets.detach().to("cpu", torch.long), input_lengths, target_lengths, index, first_sample, raw)


@dataclass(frozen=True)
class TargetTable:
    """Every scanned sample's target as one padded table, so checks stay vectorised."""

    labels: torch.Tensor
    """(M, S) long; entries past a sample's length are 0 (see `mask`)."""
    mask: torch.Tensor
    """(M, S) bool; True where `labels` holds a real label."""
    lengths: torch.Tensor
    """(M,) target lengths as given (may be inconsistent: see `length_problems`)."""
    input_lengths: torch.Tensor
    """(M,) input lengths as given."""
    batch_index: torch.Tensor
    """(M,) which batch each sample came from."""
    length_problems: tuple[str, ...]
    """Inconsistencies between targets and target_lengths, one sentence each (CTC012)."""

    @property
    def size(self) -> int:
        return int(self.lengths.shape[0])

    @property
    def valid_lengths(self) -> torch.Tensor:
        """Lengths clipped to what the targets actually hold."""
        return self.mask.sum(dim=1)

    def repeats(self) -> torch.Tensor:
        """(M,) adjacent equal labels per sample: each needs a blank frame between the two."""
        if self.labels.shape[1] < 2:
            return torch.zeros(self.size, dtype=torch.long)
        left, right = self.labels[:, :-1], self.labels[:, 1:]
        return ((left == right) & self.mask[:, 1:]).sum(dim=1)

    def required_frames(self) -> torch.Tensor:
        """(M,) minimum output frames for a CTC alignment: U + adjacent repeats."""
        return self.valid_lengths + self.repeats()


def split_targets(batch: Batch) -> tuple[list[torch.Tensor], list[str]]:
    """Per-sample label sequences of a batch, clipped to what exists, plus the problems met."""
    problems: list[str] = []
    lengths = batch.target_lengths
    negative = (lengths < 0).nonzero().flatten().tolist()
    if negative:
        problems.append(f"batch {batch.index}: target_lengths are negative for samples {_sample_ids(batch, negative)}")
    clipped = lengths.clamp(min=0)
    sequences: list[torch.Tensor] = []
    if batch.concatenated:
        total = int(clipped.sum())
        if total != batch.targets.shape[0]:
            problems.append(
                f"batch {batch.index}: target_lengths sum to {total} but the concatenated targets hold {batch.targets.shape[0]} labels"
            )
        offsets = torch.cumsum(clipped, 0) - clipped
        for offset, length in zip(offsets.tolist(), clipped.tolist()):
            sequences.append(batch.targets[offset : offset + length])
    else:
        width = batch.targets.shape[1]
        too_long = (lengths > width).nonzero().flatten().tolist()
        if too_long:
            problems.append(
                f"batch {batch.index}: target_lengths exceed the padded width {width} for samples {_sample_ids(batch, too_long)} "
                f"(longest {int(lengths.max())})"
            )
        for row, length in zip(batch.targets, clipped.tolist()):
            sequences.append(row[:length])
    return sequences, problems


def _sample_ids(batch: Batch, positions: list[int]) -> list[int]:
    return [batch.first_sample + position for position in positions[:10]]


def build_target_table(batches: list[Batch]) -> TargetTable:
    sequences: list[torch.Tensor] = []
    problems: list[str] = []
    batch_index: list[int] = []
    for batch in batches:
        batch_sequences, batch_problems = split_targets(batch)
        sequences.extend(batch_sequences)
        problems.extend(batch_problems)
        batch_index.extend([batch.index] * len(batch_sequences))
    width = max((len(sequence) for sequence in sequences), default=0)
    labels = torch.zeros((len(sequences), width), dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.bool)
    for row, sequence in enumerate(sequences):
        labels[row, : len(sequence)] = sequence
        mask[row, : len(sequence)] = True
    lengths = torch.cat([batch.target_lengths for batch in batches]) if batches else torch.zeros(0, dtype=torch.long)
    input_lengths = torch.cat([batch.input_lengths for batch in batches]) if batches else torch.zeros(0, dtype=torch.long)
    return TargetTable(labels, mask, lengths, input_lengths, torch.tensor(batch_index, dtype=torch.long), tuple(problems))


def in_dataset_order(loader: Iterable[Any]) -> Iterable[Any]:
    """A shuffling DataLoader re-made without shuffling, so that sample numbers in findings are
    data set indices (what `overfit --sample N` takes), not positions in one random order."""
    from torch.utils.data import DataLoader, IterableDataset, RandomSampler

    if not isinstance(loader, DataLoader) or isinstance(loader.dataset, IterableDataset):
        return loader
    if loader.batch_size is None or not isinstance(loader.sampler, RandomSampler):
        return loader  # a custom (bucketing, weighted) sampler decides the batches: keep it
    return DataLoader(
        loader.dataset,
        batch_size=loader.batch_size,
        shuffle=False,
        collate_fn=loader.collate_fn,
        num_workers=loader.num_workers,
        drop_last=loader.drop_last,
        worker_init_fn=loader.worker_init_fn,
        multiprocessing_context=loader.multiprocessing_context if loader.num_workers else None,
        persistent_workers=False,
    )


def iterate_batches(loader: Iterable[Any], limit: int | None = None) -> Iterator[Batch]:
    """Normalised batches from the loader (in data set order), at most `limit`; a loader that
    raises or yields nothing ends the command with exit 2 (`BatchError`), naming the batch and
    the cause."""
    iterator = iter(in_dataset_order(loader))
    first_sample = 0
    index = 0
    while limit is None or index < limit:
        try:
            raw = next(iterator)
        except StopIteration:
            break
        except Exception as error:
            raise BatchError(
                f"iterating the loader raised {type(error).__name__} at batch {index}: {error}",
                "Fix the dataset or collate function (iterate it once by hand to see the error); use --debug for the traceback.",
            ) from error
        batch = normalise_batch(raw, index, first_sample)
        yield batch
        first_sample += batch.size
        index += 1
    if index == 0:
        raise BatchError("the loader yielded no batches", "Check that the dataset is not empty and drop_last does not drop everything.")
