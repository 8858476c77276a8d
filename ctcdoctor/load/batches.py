"""Normalise the user's batches, and gather every scanned target into one table.

A batch is `(inputs, targets, input_lengths, target_lengths)` or a mapping with those
keys; targets are padded `(N, S)` or concatenated 1-D, as in `F.ctc_loss`. Structural
problems (not a batch at all) raise `BatchError` (exit 2); inconsistent lengths are left
for the label checks to report as findings.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from ctcdoctor.errors import BatchError
from ctcdoctor.load.batch_shapes import BATCH_KEYS, dict_keys_error, nested_items, per_sample_targets, refuse_numpy_inputs
from ctcdoctor.load.limits import doing

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
    batch_axis: int = 0
    """The axis of the input tensors that holds the samples: 0, or 1 for time-major `(T, N, ...)` inputs."""
    ids: tuple[int, ...] | None = None
    """The sample number of each position when it is not `first_sample + position`: the data set index of each item
    of a batch whose collate reordered them (deepspeech.pytorch's sorts by input length; see `KeepOrder`)."""
    mispaired: tuple[tuple[int, int, int], ...] = ()
    """(position, input length in the batch, input length of that sample's own item collated alone) for each position
    whose inputs are another sample's: the collate reordered the inputs without their labels (see `KeepOrder`)."""

    def sample_id(self, position: int) -> int:
        """The number of the sample at `position` of the batch (its data set index where ctcdoctor knows it)."""
        return self.first_sample + position if self.ids is None else self.ids[position]

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
            raise _fractional(tensor, name, batch_index)
    elif tensor.dtype not in (torch.int8, torch.int16, torch.int32, torch.int64, torch.uint8):
        raise BatchError(f"batch {batch_index}: {name} has dtype {tensor.dtype}", "Use an integer tensor of lengths.")
    return tensor.detach().to("cpu", torch.long)


def _fractional(tensor: torch.Tensor, name: str, batch_index: int) -> BatchError:
    """Fractional lengths; those in (0, 1] whose largest is exactly 1 are fractions of the longest input
    (deepspeech.pytorch's `input_percentages`), which `.int()` would turn into 0s and 1s."""
    if name == "input_lengths" and bool((tensor > 0).all()) and bool((tensor <= 1).all()) and float(tensor.max()) == 1.0:
        return BatchError(
            f"batch {batch_index}: input_lengths hold fractions of the longest input ({', '.join(f'{v:.3g}' for v in tensor[:4].tolist())}"
            f"{', …' if tensor.numel() > 4 else ''}; the largest is 1.0), as deepspeech.pytorch's input_percentages",
            "Multiply them by the padded inputs' time size in the collate function, e.g. "
            "`input_lengths = (input_percentages * inputs.size(-1)).int()` (`.int()` alone gives 0s and 1s); "
            "docs/protocol.md shows the collate for deepspeech.pytorch.",
        )
    return BatchError(f"batch {batch_index}: {name} holds fractional values",
                      "Lengths are whole numbers of frames / labels: use an integer tensor.")


def is_packed(value: Any) -> bool:
    """A `torch.nn.utils.rnn.PackedSequence` (a named tuple that must not be rebuilt field by field)."""
    from torch.nn.utils.rnn import PackedSequence

    return isinstance(value, PackedSequence)


def tensor_leaves(value: Any, path: str = "inputs") -> Iterator[tuple[str, torch.Tensor]]:
    """Every tensor inside `value` (tuples, lists, named tuples, mappings, a PackedSequence's data),
    with a path naming it as the user wrote it: `inputs[0]`, `inputs['features']`, `inputs.data`."""
    if isinstance(value, torch.Tensor):
        yield path, value
    elif is_packed(value):
        yield f"{path}.data", value.data
    else:
        for item_path, item in nested_items(value, path):
            yield from tensor_leaves(item, item_path)


def _check_devices(index: int, parts: dict[str, Any]) -> None:
    """Tensors on the meta device hold no data: nothing can be measured or run on them (exit 2)."""
    for name, part in parts.items():
        for path, tensor in tensor_leaves(part, name):
            if tensor.device.type == "meta":
                raise BatchError(
                    f"batch {index}: {path} is on the meta device (shape {tuple(tensor.shape)}, no data)",
                    "Make the loader yield real tensors (cpu or cuda): meta tensors come from building under "
                    "torch.device('meta') or from a lazy initialisation that was never materialised.",
                )


def _describe(item: Any) -> str:
    if isinstance(item, torch.Tensor):
        return f"{'a float' if item.is_floating_point() else 'an integer'} tensor {tuple(item.shape)}"
    return f"a {type(item).__name__}"


def wrong_item_count(raw: Sequence[Any], index: int) -> BatchError:
    """A tuple that is not (inputs, targets, input_lengths, target_lengths): what each item is, and for the common
    three (images, targets, target_lengths, with input_lengths left out) how to add the missing one."""
    items = "; ".join(f"[{position}] {_describe(item)}" for position, item in enumerate(raw))
    message = f"batch {index}: the loader yielded a {type(raw).__name__} of {len(raw)} items, not 4: {items}"
    hint = BATCH_HINT
    first = raw[0] if raw else None
    if len(raw) == 3 and isinstance(first, torch.Tensor) and first.is_floating_point() and first.dim() >= 2:
        hint = (f"{BATCH_HINT} Three items usually leave out input_lengths: when every input is as wide as the "
                "batch, that is the full width for each sample, e.g. in the collate function "
                "`torch.full((len(inputs),), inputs.shape[-1])` (the length along the time axis of the inputs, "
                "before the model's downsampling).")
    return BatchError(message, hint)


def normalise_batch(raw: Any, index: int, first_sample: int, batch_axis: int | None = None) -> Batch:
    """Turn one loader item into a `Batch`, or raise `BatchError` naming what is wrong.

    `batch_axis` is `Setup.batch_axis`: None finds it from `input_lengths` (see `find_batch_axis`)."""
    ids: tuple[int, ...] | None = None
    mispaired: tuple[tuple[int, int, int], ...] = ()
    if isinstance(raw, Collated):  # from KeepOrder: number the samples by data set index
        ids, mispaired, raw = raw.ids(first_sample), raw.mispaired, raw.raw
    if isinstance(raw, Mapping):
        missing = [key for key in BATCH_KEYS if key not in raw]
        if missing:
            raise dict_keys_error(raw, missing, index)
        parts = [raw[key] for key in BATCH_KEYS]
    elif isinstance(raw, (tuple, list)):
        if len(raw) != 4:
            raise wrong_item_count(raw, index)
        parts = list(raw)
    else:
        raise BatchError(f"batch {index}: the loader yielded a {type(raw).__name__}, not a batch", BATCH_HINT)
    inputs, targets, input_lengths, target_lengths = parts
    _check_devices(index, dict(zip(BATCH_KEYS, parts)))
    refuse_numpy_inputs(dict(zip(BATCH_KEYS, parts)), index)
    if isinstance(targets, str) or (isinstance(targets, (list, tuple)) and targets and isinstance(targets[0], str)):
        raise BatchError(
            f"batch {index}: targets are text ({targets[0] if not isinstance(targets, str) else targets!r:.40}…), not class indices",
            "Encode each label to class indices in the dataset or collate function "
            "(e.g. [alphabet.index(ch) + 1 for ch in text] with blank 0), and pass target_lengths.",
        )
    try:
        targets = torch.as_tensor(targets)
    except Exception as error:
        raise per_sample_targets(targets, index) or BatchError(
            f"batch {index}: targets are a {type(targets).__name__} that is not a tensor ({error})", BATCH_HINT) from error
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
    if input_lengths.shape[0] == 0:
        raise BatchError(
            f"batch {index} holds no samples (input_lengths and target_lengths are empty)",
            "Make the sampler or collate function skip empty batches (a bucketing sampler with an empty bucket, "
            "a filter that dropped every sample).",
        )
    axis = find_batch_axis(inputs, int(input_lengths.shape[0]), batch_axis, index)
    if targets.dim() == 2 and targets.shape[0] != input_lengths.shape[0]:
        raise BatchError(
            f"batch {index}: padded targets have {targets.shape[0]} rows for {input_lengths.shape[0]} samples",
            "Padded targets are (N, S): one row per sample.",
        )
    if ids is not None and len(ids) != input_lengths.shape[0]:
        ids = None
    return Batch(inputs, targets.detach().to("cpu", torch.long), input_lengths, target_lengths, index, first_sample, raw, axis,
                 ids, mispaired if ids is not None else ())


def main_tensor(inputs: Any) -> torch.Tensor | None:
    """The tensor that decides the batch axis: the inputs themselves, or the first tensor of two or more axes in a
    tuple, list or mapping (a PackedSequence has no batch axis: None)."""
    if is_packed(inputs):
        return None
    if isinstance(inputs, torch.Tensor):
        return inputs if inputs.dim() > 0 else None
    items = list(inputs.values()) if isinstance(inputs, Mapping) else list(inputs) if isinstance(inputs, (tuple, list)) else []
    tensors = [tensor for tensor in (main_tensor(item) for item in items) if tensor is not None]
    return next((tensor for tensor in tensors if tensor.dim() >= 2), tensors[0] if tensors else None)


def find_batch_axis(inputs: Any, size: int, declared: int | None = None, index: int = 0) -> int:
    """Which input axis holds the `size` samples: `declared` (Setup.batch_axis) when given; else 0 when the first
    axis has `size` entries, 1 when only the second has (time-major `(T, N, ...)`, as `nn.LSTM` takes by default).
    Structured inputs are judged by their first tensor of two or more axes. Raises `BatchError` when an input
    tensor has no such axis."""
    tensor = main_tensor(inputs)
    if tensor is None:
        return 0 if declared is None else declared
    shape = tuple(tensor.shape)
    if declared is not None:
        if tensor.dim() <= declared or shape[declared] != size:
            raise BatchError(
                f"batch {index}: Setup.batch_axis is {declared} but inputs {shape} do not have {size} samples on that axis",
                f"Set Setup.batch_axis to the axis of the inputs that has one entry per sample (input_lengths has {size}).",
            )
        return declared
    if shape[0] == size:
        return 0
    if tensor.dim() >= 2 and shape[1] == size:
        return 1
    if not isinstance(inputs, torch.Tensor):
        return 0  # structured inputs: the model may take tensors that are not per sample
    raise BatchError(
        f"batch {index}: inputs have shape {shape}, but input_lengths has {size} samples: no input axis of {size}",
        "Give one input length per sample, and put the batch first (N, ...) or second (T, N, ...) in the inputs.",
    )


def time_axis(inputs: Any, input_lengths: torch.Tensor, batch_axis: int = 0) -> int | None:
    """The input axis that input_lengths measure: the last one as long as the longest sample (never the batch axis;
    for time-major inputs `(T, N, ...)` it is usually axis 0)."""
    if not isinstance(inputs, torch.Tensor) or inputs.dim() < 2 or input_lengths.numel() == 0:
        return None
    longest = int(input_lengths.max())
    axes = [axis for axis in range(inputs.dim()) if axis != batch_axis]
    exact = [axis for axis in axes if inputs.shape[axis] == longest]
    if exact:
        return exact[-1]
    longer = [axis for axis in axes if inputs.shape[axis] > longest]
    return longer[-1] if len(longer) == 1 else None



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
    cache: dict[str, torch.Tensor] = field(default_factory=dict, compare=False, repr=False)
    """`valid_lengths`, `repeats()` and `required_frames()`, computed once (several checks ask)."""
    sample_ids: torch.Tensor | None = None
    """(M,) the sample number of each row when it is not the row: a batch whose collate reordered its items
    (`Batch.sample_id`). Rows stay in the batches' order, which the model's outputs share."""

    def sample_id(self, row: int) -> int:
        """The number findings give the sample of `row`."""
        return int(row) if self.sample_ids is None else int(self.sample_ids[row])

    @property
    def size(self) -> int:
        return int(self.lengths.shape[0])

    @property
    def valid_lengths(self) -> torch.Tensor:
        """Lengths clipped to what the targets actually hold."""
        if "valid" not in self.cache:
            self.cache["valid"] = self.mask.sum(dim=1)
        return self.cache["valid"]

    def repeats(self) -> torch.Tensor:
        """(M,) adjacent equal labels per sample: each needs a blank frame between the two."""
        if "repeats" not in self.cache:
            if self.labels.shape[1] < 2:
                self.cache["repeats"] = torch.zeros(self.size, dtype=torch.long)
            else:
                equal = (self.labels[:, :-1] == self.labels[:, 1:]) & self.mask[:, 1:]
                # A byte view sums several times faster than a bool tensor.
                self.cache["repeats"] = equal.view(torch.uint8).sum(dim=1, dtype=torch.int32).long()
        return self.cache["repeats"]

    def required_frames(self) -> torch.Tensor:
        """(M,) minimum output frames for a CTC alignment: U + adjacent repeats."""
        if "required" not in self.cache:
            self.cache["required"] = self.valid_lengths + self.repeats()
        return self.cache["required"]


def _ids(batch: Batch, positions: torch.Tensor) -> str:
    """"sample 3" / "samples 3, 5": the ids of the batch's samples at `positions`, for a message."""
    ids = [batch.sample_id(int(p)) for p in positions[:10]]
    return f"{'sample' if len(ids) == 1 else 'samples'} {', '.join(map(str, ids))}" + (", …" if len(positions) > 10 else "")


def batch_targets(batch: Batch) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """The one target splitter: (labels (N, S), unmasked past each sample's end; labels kept per sample (N,),
    clipped to what exists; the inconsistencies met) for one batch, padded or concatenated."""
    lengths = batch.target_lengths
    problems: list[str] = []
    negative = (lengths < 0).nonzero().flatten()
    if negative.numel():
        problems.append(f"batch {batch.index}: target_lengths are negative for {_ids(batch, negative)}")
    clipped = lengths.clamp(min=0)
    if batch.concatenated:
        total = int(clipped.sum())
        available = batch.targets.shape[0]
        if total != available:
            problems.append(
                f"batch {batch.index}: target_lengths sum to {total} but the concatenated targets hold {available} labels"
            )
        offsets = torch.cumsum(clipped, 0) - clipped
        # A sample gets the labels that exist: clip at the end of the concatenated targets.
        kept = (available - offsets).clamp(min=0).minimum(clipped)
        width = int(kept.max()) if kept.numel() else 0
        positions = (offsets.unsqueeze(1) + torch.arange(width).unsqueeze(0)).clamp(max=max(available - 1, 0))
        labels = batch.targets[positions] if available else torch.zeros_like(positions)
        return labels, kept, problems
    width_all = batch.targets.shape[1]
    too_long = (lengths > width_all).nonzero().flatten()
    if too_long.numel():
        problems.append(
            f"batch {batch.index}: target_lengths exceed the padded width {width_all} for {_ids(batch, too_long)} "
            f"(longest {int(lengths.max())})"
        )
    kept = clipped.clamp(max=width_all)
    return batch.targets, kept, problems




def split_targets(batch: Batch) -> tuple[list[torch.Tensor], list[str]]:
    """Per-sample label sequences of a batch, clipped to what exists, plus the problems met."""
    labels, kept, problems = batch_targets(batch)
    return [labels[row, :length] for row, length in enumerate(kept.tolist())], problems


@dataclass
class TargetParts:
    """Per-batch pieces of the target table, gathered while the loader runs; masked once at the end."""

    labels: list[torch.Tensor]
    kept: list[torch.Tensor]
    lengths: list[torch.Tensor]
    input_lengths: list[torch.Tensor]
    batch_index: list[torch.Tensor]
    problems: list[str]
    ids: list[torch.Tensor] = field(default_factory=list)
    reordered: bool = False

    @classmethod
    def empty(cls) -> TargetParts:
        return cls([], [], [], [], [], [])

    def add(self, batch: Batch) -> None:
        labels, kept, problems = batch_targets(batch)
        self.labels.append(labels)
        self.kept.append(kept)
        self.lengths.append(batch.target_lengths)
        self.input_lengths.append(batch.input_lengths)
        self.batch_index.append(torch.full((batch.size,), batch.index, dtype=torch.long))
        self.ids.append(torch.tensor([batch.sample_id(position) for position in range(batch.size)], dtype=torch.long))
        self.reordered = self.reordered or batch.ids is not None
        self.problems.extend(problems)

    def table(self) -> TargetTable:
        if not self.labels:
            empty = torch.zeros(0, dtype=torch.long)
            return TargetTable(torch.zeros((0, 0), dtype=torch.long), torch.zeros((0, 0), dtype=torch.bool), empty, empty, empty, ())
        width = max(labels.shape[1] for labels in self.labels)
        kept = torch.cat(self.kept)
        labels = torch.zeros((kept.shape[0], width), dtype=torch.long)
        row = 0
        for part in self.labels:
            labels[row : row + part.shape[0], : part.shape[1]] = part
            row += part.shape[0]
        mask = torch.arange(width).unsqueeze(0) < kept.unsqueeze(1)
        labels.masked_fill_(~mask, 0)
        return TargetTable(labels, mask, torch.cat(self.lengths), torch.cat(self.input_lengths), torch.cat(self.batch_index),
                           tuple(self.problems), {"valid": kept}, torch.cat(self.ids) if self.reordered else None)


def build_target_table(batches: list[Batch]) -> TargetTable:
    parts = TargetParts.empty()
    for batch in batches:
        parts.add(batch)
    return parts.table()


def loader_batch_size(loader: Any) -> int | None:
    """The batch size a loader is configured with (DataLoader's `batch_size`, or its batch sampler's), as training code
    that divides by a fixed `batch_size` reads it; None when the loader does not say (a plain iterable of batches)."""
    for owner in (loader, getattr(loader, "batch_sampler", None)):
        size = getattr(owner, "batch_size", None)
        if isinstance(size, int) and not isinstance(size, bool) and size > 0:
            return size
    return None


def iterate_batches(loader: Iterable[Any], limit: int | None = None, batch_axis: int | None = None) -> Iterator[Batch]:
    """Normalised batches from the loader (in data set order), at most `limit`; a loader that
    raises or yields nothing ends the command with exit 2 (`BatchError`), naming the batch and
    the cause."""
    iterator = iter(in_dataset_order(loader, batch_axis))
    first_sample = 0
    index = 0
    while limit is None or index < limit:
        try:
            with doing(f"reading batch {index} from the loader"):
                raw = next(iterator)
        except StopIteration:
            break
        except Exception as error:
            raise BatchError(
                f"iterating the loader raised {type(error).__name__} at batch {index}: {error}",
                "Fix the dataset or collate function (iterate it once by hand to see the error); use --debug for the traceback.",
            ) from error
        batch = normalise_batch(raw, index, first_sample, batch_axis)
        yield batch
        first_sample += batch.size
        index += 1
    if index == 0:
        raise BatchError("the loader yielded no batches", "Check that the dataset is not empty and drop_last does not drop everything.")


# ---------------------------------------------------------------- data set order


@dataclass(frozen=True)
class Collated:
    """A batch as the user's collate made it (`raw`), with which item of the batch sampler's list each position holds,
    and, where the loader was re-made by `in_dataset_order`, the data set index of each item of that list."""

    raw: Any
    items_at: tuple[int, ...]
    indices: tuple[int, ...] | None = None
    mispaired: tuple[tuple[int, int, int], ...] = ()
    """`Batch.mispaired`: positions whose inputs belong to another item (the collate moved the inputs alone)."""

    def ids(self, first_sample: int) -> tuple[int, ...]:
        """The sample number of each position: its data set index, or `first_sample` + its place in the list."""
        if self.indices is None:
            return tuple(first_sample + item for item in self.items_at)
        return tuple(self.indices[item] for item in self.items_at)


@dataclass(frozen=True)
class _Item:
    index: int
    value: Any


class Numbered(torch.utils.data.Dataset):  # type: ignore[type-arg]
    """The loader's data set, each item carrying its data set index to `KeepOrder`, so that every sample of a batch is
    numbered by that index whatever made the batch: the data set order, a batch_sampler of the user's (bucketing,
    dynamic batching), a subset sampler, a shard's share of the batches."""

    def __init__(self, dataset: Any) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> _Item:
        return _Item(index, self.dataset[index])

    def __getitems__(self, indices: list[int]) -> list[_Item]:
        # DataLoader fetches a whole batch through __getitems__ when the data set has one (Hugging Face datasets do).
        fetch = getattr(self.dataset, "__getitems__", None)
        values = fetch(indices) if fetch else [self.dataset[index] for index in indices]
        return [_Item(index, value) for index, value in zip(indices, values)]


class KeepOrder:
    """The loader's collate_fn, watched for reordering the items of a batch (deepspeech.pytorch's `_collate_fn` sorts
    them by input length, and findings and `scan --drop-list` would then name other samples). The batch stays as the
    collate made it (a model may need that order: `pack_padded_sequence(..., enforce_sorted=True)`); it comes wrapped
    in `Collated` when the items carry their data set indices (`Numbered`) or the collate reordered them, and
    `normalise_batch` unwraps that into `Batch.ids`.

    Whether the collate reorders is found by collating each item alone and matching its labels and input length to a
    position of the batch; once a batch whose items were not already in length order comes back as it went in (or
    after `CHECKED` batches that did), the collate is trusted and costs nothing more. A collate that reorders is
    matched on every batch (one more collate per item). A batch that cannot be matched (items dropped, lengths in
    another unit) passes with its items taken in list order; identical samples match either way, which is harmless."""

    CHECKED = 8

    def __init__(self, collate: Callable[[list[Any]], Any], batch_axis: int | None = None) -> None:
        self.collate, self.batch_axis = collate, batch_axis
        self.state = "unknown"
        """"unknown" (still checking), "keeps" (the collate keeps the order) or "reorders"."""
        self.checked = 0

    def __call__(self, items: list[Any]) -> Any:
        indices = None
        if isinstance(items, list) and items and all(isinstance(item, _Item) for item in items):
            indices, items = tuple(item.index for item in items), [item.value for item in items]
        raw = self.collate(items)
        in_order = tuple(range(len(items))) if isinstance(items, list) else ()
        items_at, mispaired = self._pairing(items, raw)
        items_at = items_at or in_order
        if items_at == in_order and indices is None and not mispaired:
            return raw
        return Collated(raw, items_at, indices, mispaired)

    def _pairing(self, items: list[Any], raw: Any) -> tuple[tuple[int, ...] | None, tuple[tuple[int, int, int], ...]]:
        """(which item each position of the batch holds, when the collate reordered them, else None; the positions whose
        inputs are another item's, see `Batch.mispaired`)."""
        if self.state == "keeps" or not isinstance(items, list) or len(items) < 2:
            return None, ()
        try:
            matched = self._match(items, raw)
        except Exception:  # not a batch normalise_batch reads: the command says so when it normalises it
            matched = None
        if matched is None:  # after CHECKED such batches in a row, stop trying: the batches pass as they are
            self.checked += self.state == "unknown"
            self.state = "keeps" if self.checked >= self.CHECKED else self.state
            return None, ()
        items_at, lengths, mispaired = matched
        if mispaired:  # keep watching: the batches say which samples got other inputs
            return (tuple(items_at) if items_at != list(range(len(items))) else None), mispaired
        if items_at == list(range(len(items))):
            self.checked += 1
            if self.state == "unknown" and (not _monotone(lengths) or self.checked >= self.CHECKED):
                self.state = "keeps"
            return None, ()
        self.state = "reorders"
        return tuple(items_at), ()

    def _match(self, items: list[Any], raw: Any) -> tuple[list[int], list[int], tuple[tuple[int, int, int], ...]] | None:
        """(for each position of the batch, the item it holds; the items' input lengths, in their order; the positions
        whose inputs are another item's), or None.

        Positions are matched to items by labels, the closest input length among equal labels. When the batch holds
        exactly the items' input lengths but some position's length is not its item's, the collate moved inputs without
        their labels (sorted the features and forgot the transcripts): no exact pairing exists, and greedy matching
        finds one wherever it does. Lengths changed by the collate (augmentation, a constant offset) differ as a set,
        and say nothing."""
        batch = normalise_batch(raw, 0, 0, self.batch_axis)
        if batch.size != len(items):
            return None
        sequences, problems = split_targets(batch)
        if problems:
            return None
        in_batch = batch.input_lengths.tolist()
        free: dict[tuple[int, ...], list[tuple[int, int]]] = {}
        for position, (sequence, length) in enumerate(zip(sequences, in_batch)):
            free.setdefault(tuple(sequence.tolist()), []).append((position, length))
        items_at, lengths = [0] * len(items), []
        for item, value in enumerate(items):
            alone = normalise_batch(self.collate([value]), 0, 0, self.batch_axis)
            labels, _ = split_targets(alone)
            length = int(alone.input_lengths[0])
            candidates = free.get(tuple(labels[0].tolist()))
            if not candidates:
                return None
            best = min(range(len(candidates)), key=lambda k: abs(candidates[k][1] - length))  # the first of equals
            items_at[candidates.pop(best)[0]] = item
            lengths.append(length)
        mispaired: tuple[tuple[int, int, int], ...] = ()
        if sorted(in_batch) == sorted(lengths):
            mispaired = tuple((position, in_batch[position], lengths[item]) for position, item in enumerate(items_at)
                              if in_batch[position] != lengths[item])
        return items_at, lengths, mispaired


def _monotone(values: list[int]) -> bool:
    pairs = list(zip(values, values[1:]))
    return all(a >= b for a, b in pairs) or all(a <= b for a, b in pairs)


def indexable(loader: Any) -> bool:
    """A DataLoader over a map-style data set that batches (the collate sees the items of each batch)."""
    from torch.utils.data import DataLoader, IterableDataset

    return isinstance(loader, DataLoader) and not isinstance(loader.dataset, IterableDataset) and loader.batch_sampler is not None


def _reads_each_once(indices: Iterable[Any], total: int) -> bool:
    """Whether `indices` (a sampler's) are 0..total-1, each once (read at most total + 1 of them)."""
    import itertools

    try:
        seen = [int(i) for i in itertools.islice(indices, total + 1)]
    except Exception:
        return False
    return len(seen) == total and sorted(seen) == list(range(total))


def dataset_order_batches(loader: Any) -> Any:
    """A batch sampler over the loader's data set in data set order, batches of its batch size (and its drop_last),
    or None when the loader's batches must stay its own: a `batch_sampler` of the user's (bucketing, dynamic
    batching: batches of another size or mix could exhaust memory the user's never do), or a sampler that does not
    read every item once (a subset, sampling with replacement)."""
    from torch.utils.data import BatchSampler, RandomSampler, SequentialSampler

    if loader.batch_size is None:
        return None
    try:
        total = len(loader.dataset)
    except TypeError:
        return None
    if not isinstance(loader.sampler, (RandomSampler, SequentialSampler)) and not _reads_each_once(iter(loader.sampler), total):
        return None
    return BatchSampler(SequentialSampler(range(total)), loader.batch_size, loader.drop_last)


def in_dataset_order(loader: Iterable[Any], batch_axis: int | None = None) -> Iterable[Any]:
    """A DataLoader over a map-style data set re-made so that sample numbers in findings are data set indices (what
    `overfit --sample N` takes), not positions in one random order: it reads batches of the loader's size in data set
    order when its sampler reads every item once (shuffled or not), its own batches otherwise (a batch_sampler of the
    user's, a subset); either way each item carries its index (`Numbered`) to the collate, wrapped in `KeepOrder`
    (a collate that reorders the items of a batch is matched back to them), and `Batch.ids` holds the indices.
    Anything else is returned as it is: its samples are numbered by position in iteration order (see
    `numbered_by_index`)."""
    from torch.utils.data import DataLoader

    if not indexable(loader) or isinstance(loader.collate_fn, KeepOrder):  # type: ignore[attr-defined]
        return loader
    assert isinstance(loader, DataLoader)
    if type(loader).__iter__ is not DataLoader.__iter__:
        return loader  # a subclass that changes the batches as it yields them: re-made, it would yield others
    ordered = dataset_order_batches(loader)
    workers = loader.num_workers
    return DataLoader(
        Numbered(loader.dataset),
        batch_sampler=ordered if ordered is not None else loader.batch_sampler,
        collate_fn=KeepOrder(loader.collate_fn, batch_axis),
        num_workers=workers,
        worker_init_fn=loader.worker_init_fn,
        multiprocessing_context=loader.multiprocessing_context if workers else None,
        timeout=loader.timeout if workers else 0,
        prefetch_factor=loader.prefetch_factor if workers else None,
        persistent_workers=False,
    )


def numbered_by_index(loader: Any) -> bool:
    """Whether the samples of `in_dataset_order(loader)` are numbered by data set index (else: iteration order)."""
    return isinstance(getattr(in_dataset_order(loader), "dataset", None), Numbered)


def sorted_by_length(batches: Iterable[Batch]) -> bool:
    """The tell-tale of a collate that sorts each batch by input length (deepspeech.pytorch's `_collate_fn` sorts it
    longest first): the input lengths of every batch of two or more samples are in one order, decreasing or increasing,
    not all equal, while the batches one after the other are not (a data set stored in length order, as SortaGrad's
    first epoch reads it, keeps its order across batches too: its positions are its indices)."""
    sizes = [batch.input_lengths.tolist() for batch in batches if batch.size > 1]
    if not sizes or not any(s[0] != s[-1] for s in sizes):
        return False
    joined = [length for s in sizes for length in s]
    for ordered in (lambda a, b: a >= b, lambda a, b: a <= b):
        if all(all(ordered(a, b) for a, b in zip(s, s[1:])) for s in sizes):
            return not all(ordered(a, b) for a, b in zip(joined, joined[1:]))
    return False


def starts_elsewhere(loader: Any, first: Batch) -> bool:
    """Whether a second pass over `loader` starts with another batch than `first` (a class around a shuffling
    DataLoader): its sample numbers are then positions in one random order. Lengths and labels are compared
    (augmentation may change the inputs); a one-pass iterator (`iter(loader) is loader`) is not read again, and a second
    pass that fails says nothing about the order."""
    try:
        again = iter(loader)
        if again is loader:
            return False
        other = normalise_batch(next(again), 0, 0, first.batch_axis)
    except Exception:
        return False
    labels, other_labels = batch_targets(first)[0], batch_targets(other)[0]
    return not (torch.equal(first.input_lengths, other.input_lengths) and torch.equal(labels, other_labels))


def position_numbers(loader: Any, batches: Sequence[Batch]) -> str | None:
    """For the report, when the samples of a loader ctcdoctor cannot index are numbered by positions that are surely
    not data set indices (it shuffles, or sorts each batch by length), what they are and how to get indices; None
    otherwise (data set indices, or positions in an order that holds from pass to pass)."""
    if not batches or numbered_by_index(loader) or isinstance(loader, (list, tuple)):
        return None
    name = type(loader).__name__
    fix = "give Setup.loader the DataLoader itself for data set indices"
    if starts_elsewhere(loader, batches[0]):
        return (f"samples numbered by position in one shuffled pass over {name} (overfit --sample N reads another "
                f"pass): {fix}")
    if sorted_by_length(batches):
        return f"samples numbered by position in {name}'s batches, each sorted by length, not by data set index: {fix}"
    return None


# ---------------------------------------------------------------- taking samples out of inputs

def _index_packed(packed: Any, index: torch.Tensor) -> Any:
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

    padded, lengths = pad_packed_sequence(packed, batch_first=True)  # in the samples' own order
    index = index.to(lengths.device)
    return pack_padded_sequence(padded[index.to(padded.device)], lengths[index], batch_first=True, enforce_sorted=False)


def _index_tensor(tensor: torch.Tensor, index: torch.Tensor, size: int, axis: int) -> torch.Tensor:
    if tensor.dim() > axis and tensor.shape[axis] == size:
        return tensor.index_select(axis, index.to(tensor.device))
    if tensor.dim() > 0 and tensor.shape[0] == size:  # per-sample side inputs (lengths) of time-major inputs
        return tensor[index.to(tensor.device)]
    return tensor


def index_inputs(inputs: Any, index: torch.Tensor, size: int, axis: int = 0) -> Any:
    """The samples `index` of `inputs` (a tensor, a PackedSequence, or tuples/named tuples/lists/dicts of them):
    every tensor with `size` entries on the batch `axis` is indexed on it (a tensor with `size` entries on its
    first axis only, such as lengths beside time-major inputs, on that one); anything else passes through."""
    if isinstance(inputs, torch.Tensor):
        return _index_tensor(inputs, index, size, axis)
    if is_packed(inputs):
        return _index_packed(inputs, index) if int(inputs.batch_sizes[0]) == size else inputs
    if isinstance(inputs, tuple) and hasattr(inputs, "_fields"):  # a named tuple: rebuild field by field
        return type(inputs)(*(index_inputs(item, index, size, axis) for item in inputs))
    if isinstance(inputs, (tuple, list)):
        return type(inputs)(index_inputs(item, index, size, axis) for item in inputs)
    if isinstance(inputs, Mapping):
        return {key: index_inputs(item, index, size, axis) for key, item in inputs.items()}
    return inputs


def resize_batch(inputs: Any, count: int, size: int, axis: int = 0) -> Any:
    """`inputs` cut or repeated to `count` samples (to run the model at another batch size)."""
    repeats = -(-count // max(size, 1))
    index = torch.arange(size).repeat(repeats)[:count]
    return index_inputs(inputs, index, size, axis)


def carries_input_lengths(value: Any, input_lengths: torch.Tensor) -> bool:
    """Whether `value` is an integer tensor holding exactly `input_lengths`: the lengths a `forward(x, lengths)` takes
    beside the inputs (`inputs = (x, lengths)`), which must follow when the inputs are cut or resized."""
    return (isinstance(value, torch.Tensor) and value.dim() == 1 and value.shape == input_lengths.shape
            and not (value.is_floating_point() or value.is_complex() or value.dtype == torch.bool)
            and torch.equal(value.detach().to("cpu", torch.long), input_lengths))


def _resize(sample: torch.Tensor, axis: int, length: int) -> torch.Tensor:
    current = sample.shape[axis]
    if length <= current:
        return sample.narrow(axis, 0, length)
    pad_shape = list(sample.shape)
    pad_shape[axis] = length - current
    return torch.cat([sample, sample.new_zeros(pad_shape)], dim=axis)


def map_tensors(value: Any, function: Callable[[torch.Tensor], torch.Tensor],
                packed: Callable[[Any], Any] | None = None) -> Any:
    """`value` with `function` applied to every tensor inside (tuples, named tuples, lists, mappings).
    A PackedSequence is one value, not a tuple of tensors: `packed` maps it (left as it is without)."""
    if isinstance(value, torch.Tensor):
        return function(value)
    if is_packed(value):
        return value if packed is None else packed(value)
    if isinstance(value, tuple) and hasattr(value, "_fields"):  # a named tuple takes its fields as arguments
        return type(value)(*(map_tensors(item, function, packed) for item in value))
    if isinstance(value, (tuple, list)):
        return type(value)(map_tensors(item, function, packed) for item in value)
    if isinstance(value, Mapping):
        return {key: map_tensors(item, function, packed) for key, item in value.items()}
    return value


def time_width(batch: Batch) -> tuple[int, int] | None:
    """(axis, width) of the input time axis that input_lengths measure, on the main input tensor; None when none is."""
    main = main_tensor(batch.inputs)
    axis = None if main is None else time_axis(main, batch.input_lengths, batch.batch_axis)
    return None if main is None or axis is None else (axis, int(main.shape[axis]))


def sample_resizer(batch: Batch) -> Callable[[int], Any] | None:
    """`length -> the first sample's inputs with their time axis cut or zero-padded to length`, or None when no
    input axis is measured by input_lengths. In structured inputs every tensor whose time axis is as wide as the
    main one's is resized with it (an attention mask beside the audio: padded with zeros, i.e. masked), and the
    input lengths they carry (`(x, lengths)` for a `forward(x, lengths)`) become `length`."""
    found = time_width(batch)
    if found is None:
        return None
    axis, width = found
    sample = index_inputs(batch.inputs, torch.tensor([0]), batch.size, batch.batch_axis)
    follows = not isinstance(batch.inputs, torch.Tensor) and any(
        carries_input_lengths(tensor, batch.input_lengths) for _, tensor in tensor_leaves(batch.inputs))
    own = batch.input_lengths[:1]

    def resize(tensor: torch.Tensor, length: int) -> torch.Tensor:
        if follows and carries_input_lengths(tensor, own):
            return torch.full_like(tensor, length)
        return _resize(tensor, axis, length) if tensor.dim() > axis and tensor.shape[axis] == width else tensor

    return lambda length: map_tensors(sample, lambda tensor: resize(tensor, length))


def select_samples(batch: Batch, indices: list[int]) -> Batch:
    """A sub-batch of the given positions of `batch`, targets and lengths included."""
    index = torch.tensor(indices, dtype=torch.long)
    if batch.concatenated:
        ends = torch.cumsum(batch.target_lengths.clamp_min(0), 0)
        starts = ends - batch.target_lengths.clamp_min(0)
        targets = torch.cat([batch.targets[int(starts[i]):int(ends[i])] for i in indices])
    else:
        targets = batch.targets[index]
    return dataclasses.replace(
        batch, inputs=index_inputs(batch.inputs, index, batch.size, batch.batch_axis), targets=targets,
        input_lengths=batch.input_lengths[index], target_lengths=batch.target_lengths[index], raw=None,
    )


def batch_first(inputs: Any, axis: int) -> Any:
    """`inputs` with the batch axis of every tensor moved first (for statistics per sample); a no-op for axis 0."""
    if axis == 0:
        return inputs
    return map_tensors(inputs, lambda tensor: tensor.movedim(axis, 0) if tensor.dim() > axis else tensor)


def _concat_tensors(items: list[torch.Tensor], axis: int) -> torch.Tensor:
    first = items[0]
    if len(items) == 1:
        return first
    # Single samples have one entry on the batch axis; a per-sample side tensor (lengths) has it on axis 0.
    axis = axis if first.dim() > axis and all(item.shape[axis] == 1 for item in items) else 0
    shape = [max(item.shape[dim] for item in items) for dim in range(first.dim())]
    padded = []
    for item in items:
        pad: list[int] = []
        for dim in reversed(range(item.dim())):
            pad.extend([0, 0 if dim == axis else shape[dim] - item.shape[dim]])
        padded.append(torch.nn.functional.pad(item, pad) if any(pad) else item)
    return torch.cat(padded, dim=axis)


def _concat_packed(items: list[Any]) -> Any:
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

    parts = [pad_packed_sequence(item, batch_first=True) for item in items]
    padded = _concat_tensors([part[0] for part in parts], 0)
    lengths = torch.cat([part[1] for part in parts])
    return pack_padded_sequence(padded, lengths, batch_first=True, enforce_sorted=False)


def concat_inputs(items: list[Any], axis: int = 0) -> Any:
    """Single-sample inputs joined into one batch along the batch `axis`; tensors right-padded with zeros to a
    common shape; PackedSequences re-packed."""
    first = items[0]
    if isinstance(first, torch.Tensor):
        return _concat_tensors(items, axis)
    if is_packed(first):
        return _concat_packed(items)
    if isinstance(first, tuple) and hasattr(first, "_fields"):
        return type(first)(*(concat_inputs([item[k] for item in items], axis) for k in range(len(first))))
    if isinstance(first, (tuple, list)):
        return type(first)(concat_inputs([item[k] for item in items], axis) for k in range(len(first)))
    if isinstance(first, Mapping):
        return {key: concat_inputs([item[key] for item in items], axis) for key in first}
    return first
