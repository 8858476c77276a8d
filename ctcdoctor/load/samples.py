"""Pick single samples out of a user's loader, as one batch (used by `overfit`).

Index the DataLoader's data set and reuse its collate function when there is one (the
batch then looks exactly like training's); otherwise walk the loader and unbatch.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ctcdoctor.errors import UserInputError

UNBATCH_LIMIT = 10_000
"""Most samples read from a loader that cannot be indexed (not a map-style DataLoader) while looking
for the chosen ones: an infinite loader must not make `--sample 10**9` run for ever."""


def parse_samples(text: str | None, default: Sequence[int] = (0,), limit: int | None = None) -> tuple[int, ...]:
    """`"0,3,7"` -> (0, 3, 7); ranges `"0-3"` too. Raises UserInputError on junk, and when the ranges name
    more than `limit` samples (counted before any range is expanded: `0-100000000` costs nothing)."""
    if text is None or not str(text).strip():
        return tuple(default)
    spans: list[tuple[int, int]] = []
    for part in str(text).replace(" ", "").split(","):
        if not part:
            continue
        try:
            low, _, high = part.partition("-") if "-" in part else (part, "", part)
            spans.append((int(low), int(high)))
        except ValueError:
            raise UserInputError(f"--samples {text!r}: {part!r} is not a sample index", "Write indices like 0 or 0,3,7 or 0-3.") from None
    if any(low < 0 for low, _ in spans):
        raise UserInputError(f"--samples {text!r}: sample indices start at 0", "Use non-negative indices.")
    count = sum(max(high - low + 1, 0) for low, high in spans)
    if limit is not None and count > limit:
        raise UserInputError(f"--samples {text!r} names {count:,} samples; at most {limit} can be trained together",
                             "Pick a small batch, e.g. --samples 0-7.")
    picked = [index for low, high in spans for index in range(low, high + 1)]
    if not picked:
        raise UserInputError(f"--samples {text!r} names no sample", "Write indices like 0 or 0,3,7.")
    return tuple(dict.fromkeys(picked))


def pick_samples(loader: Any, indices: Sequence[int], batch_axis: int | None = None) -> tuple[Any, str]:
    """One raw batch holding exactly the chosen samples, and how it was obtained (`samples_in_batch_order`)."""
    raw, source, _ = samples_in_batch_order(loader, indices, batch_axis)
    return raw, source


def samples_in_batch_order(loader: Any, indices: Sequence[int], batch_axis: int | None = None) -> tuple[Any, str, tuple[int, ...]]:
    """One raw batch holding exactly the chosen samples, how it was obtained, and the chosen index at each position of
    the batch: `indices` in their order, unless the loader's collate reorders its items (deepspeech.pytorch's sorts
    them by input length; `KeepOrder` finds the order it made).

    A DataLoader over a map-style data set: `collate_fn([dataset[i] for i in indices])`, so
    sample i is `dataset[i]` whatever the loader's shuffling. Anything else: iterate the
    loader and cut the samples out of their batches (inputs sliced on their batch axis, `batch_axis`
    or found from the input lengths; samples from different batches are right-padded with zeros to a
    common shape).
    """
    from ctcdoctor.load.batches import Collated, KeepOrder, indexable

    if indexable(loader):  # its own batch_sampler too (bucketing): check numbers its samples by data set index as well
        dataset = loader.dataset
        size: int | None
        try:
            size = len(dataset)  # type: ignore[arg-type]
        except TypeError:
            size = None
        if size == 0:
            raise _empty("the loader's data set is empty (len(dataset) == 0)")
        outside = [i for i in indices if size is not None and i >= size]
        if outside:
            raise UserInputError(
                f"sample {outside[0]} does not exist: the loader's data set has {size} samples",
                f"Pick --sample between 0 and {(size or 1) - 1}.",
            )
        try:
            items = [dataset[i] for i in indices]
            raw = KeepOrder(loader.collate_fn, batch_axis=batch_axis)(items)
        except Exception as error:
            raise UserInputError(
                f"taking samples {list(indices)} from the loader's data set raised {type(error).__name__}: {error}",
                "Make dataset[i] and the loader's collate_fn work on a list of items (try it by hand); use --debug for the traceback.",
            ) from error
        if isinstance(raw, Collated):
            return raw.raw, "dataset[i] + loader.collate_fn", tuple(indices[item] for item in raw.items_at)
        return raw, "dataset[i] + loader.collate_fn", tuple(indices)
    return _unbatch(loader, indices, batch_axis), "cut from the loader's batches", tuple(indices)


def _unbatch(loader: Any, indices: Sequence[int], batch_axis: int | None = None) -> tuple[Any, ...]:
    import torch

    from ctcdoctor.load.batches import concat_inputs, index_inputs, normalise_batch, split_targets

    wanted = set(indices)
    found: dict[int, tuple[Any, torch.Tensor, int, int]] = {}
    seen = 0
    axis = 0
    try:
        for position, raw in enumerate(loader):
            batch = normalise_batch(raw, position, seen, batch_axis)
            axis = batch.batch_axis
            sequences, _ = split_targets(batch)
            for offset in range(batch.size):
                index = seen + offset
                if index in wanted:
                    found[index] = (
                        index_inputs(batch.inputs, torch.tensor([offset]), batch.size, batch.batch_axis),
                        sequences[offset],
                        int(batch.input_lengths[offset]),
                        int(batch.target_lengths[offset]),
                    )
            seen += batch.size
            if len(found) == len(wanted):
                break
            if seen >= UNBATCH_LIMIT:
                missing = sorted(wanted - set(found))
                raise UserInputError(
                    f"sample {missing[0]} is not among the first {seen:,} samples the loader yields; ctcdoctor reads at most "
                    f"{UNBATCH_LIMIT:,} from a loader it cannot index",
                    f"Pick a sample below {seen:,}, or give a DataLoader over a map-style data set (dataset[i] is read directly).",
                )
    except UserInputError:
        raise
    except Exception as error:
        raise UserInputError(
            f"iterating the loader raised {type(error).__name__}: {error}",
            "Fix the data set or collate function (iterate it once by hand); use --debug for the traceback.",
        ) from error
    if seen == 0:
        raise _empty("the loader yields no samples")
    missing = [i for i in indices if i not in found]
    if missing:
        raise UserInputError(
            f"sample {missing[0]} does not exist: the loader yields {seen} samples",
            f"Pick --sample between 0 and {max(seen - 1, 0)}.",
        )
    parts = [found[i] for i in indices]
    inputs = concat_inputs([part[0] for part in parts], axis)
    width = max((len(part[1]) for part in parts), default=0)
    targets = torch.zeros(len(parts), width, dtype=torch.long)
    for row, part in enumerate(parts):
        targets[row, : len(part[1])] = part[1]
    input_lengths = torch.tensor([part[2] for part in parts], dtype=torch.long)
    target_lengths = torch.tensor([min(part[3], len(part[1])) for part in parts], dtype=torch.long)
    return inputs, targets, input_lengths, target_lengths


def _empty(what: str) -> UserInputError:
    return UserInputError(
        f"{what}: there is no sample to overfit",
        "Check the data path and filters in build() (list the files it reads), then run again.",
    )
