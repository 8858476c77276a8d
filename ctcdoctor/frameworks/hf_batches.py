"""Hugging Face collator batches turned into ctcdoctor's `(inputs, targets, input_lengths, target_lengths)`.

A CTC collator (`DataCollatorCTCWithPadding` in the fine-tuning guides) yields a mapping:
`input_values` (or `input_features`), maybe `attention_mask` (`padding_mask` for a model whose `forward` takes
that, as OmniASR), and `labels` padded with -100.
The converted batch is a dict with ctcdoctor's four keys plus `hf`, the model's inputs and the
labels as the collator gave them (for the model's own loss and the Hugging Face checks):

- inputs: the main tensor alone when it is all the model takes (no attention mask), so that the
  input checks and the length probe see a tensor; else a dict of the model's keyword arguments;
- input_lengths: `attention_mask.sum(-1)`, or the full length of the time axis without a mask, as the model's loss;
- targets / target_lengths: the labels the model's loss trains on (see `LabelRule`), left-aligned.
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import torch

from ctcdoctor.errors import BatchError
from ctcdoctor.frameworks.hf_model import HF_KEY, MASK_KEYS, LabelRule, mask_key, time_axis

HINT = (
    "Yield mappings as a Hugging Face CTC data collator makes them: {input!r} (padded), {mask!r} (optional) "
    "and 'labels' padded with -100."
)


class BatchConverter:
    """One collator batch -> one ctcdoctor batch (a dict)."""

    def __init__(self, input_name: str, keys: tuple[str, ...], blank: int, rule: LabelRule) -> None:
        self.input_name = input_name
        self.keys = keys
        self.blank = blank
        self.rule = rule
        self.mask_name = mask_key(keys)

    def __call__(self, raw: Any) -> dict[str, Any]:
        hint = HINT.format(input=self.input_name, mask=self.mask_name)
        if isinstance(raw, Mapping) and HF_KEY in raw and "inputs" in raw:
            return dict(raw)  # already converted (a loader wrapped twice)
        if not isinstance(raw, Mapping):
            raise BatchError(f"the loader yielded a {type(raw).__name__}, not a mapping of tensors", hint)
        missing = [key for key in (self.input_name, "labels") if key not in raw]
        if missing:
            raise BatchError(f"the batch has keys {sorted(map(str, raw))} but lacks {missing}", hint)
        values = _tensor(raw[self.input_name], self.input_name, hint)
        labels = _tensor(raw["labels"], "labels", hint)
        if labels.dim() == 1 and values.dim() >= 1 and values.shape[0] == 1:
            labels = labels[None]
        if labels.dim() != 2 or labels.is_floating_point():
            raise BatchError(
                f"labels have shape {tuple(labels.shape)} and dtype {labels.dtype}; they must be (N, S) integer ids",
                hint,
            )
        self._check_mask_name(raw, hint)
        mask = raw.get(self.mask_name)
        mask = None if mask is None else _tensor(mask, self.mask_name, hint)
        if mask is not None:
            input_lengths = mask.to(torch.long).sum(-1)
        else:
            # The model's loss: torch.ones_like(input_values).sum(-1), or input_features.shape[:2] for features.
            axis = time_axis(values, self.input_name)
            input_lengths = torch.full((values.shape[0],), values.shape[axis], dtype=torch.long)
        labels = labels.to(torch.long)
        keep = self.rule.keep(labels, self.blank)
        target_lengths = keep.sum(-1)
        targets = torch.zeros(labels.shape[0], int(target_lengths.max()) if labels.numel() else 0, dtype=torch.long)
        for row in range(labels.shape[0]):
            kept = labels[row][keep[row]]
            targets[row, : kept.numel()] = kept
        model_inputs = {key: raw[key] for key in self.keys if key in raw and raw[key] is not None}
        model_inputs[self.input_name] = values
        if mask is not None:
            model_inputs[self.mask_name] = mask
        inputs: Any = values if set(model_inputs) == {self.input_name} else dict(model_inputs)
        return {
            "inputs": inputs,
            "targets": targets,
            "input_lengths": input_lengths,
            "target_lengths": target_lengths,
            HF_KEY: {**model_inputs, "labels": labels},
        }


    def _check_mask_name(self, raw: Mapping[str, Any], hint: str) -> None:
        """A mask under the other name (`attention_mask` for OmniASR, which takes `padding_mask`) never reaches the
        model's `forward`: the model would attend to the padding, and its loss fails without the mask."""
        if self.mask_name in raw:
            return
        other = next((key for key in MASK_KEYS if key != self.mask_name and key in raw), None)
        if other is not None and other not in self.keys:
            # The fix goes in the message too: a loader that raises is reported with a generic hint of its own.
            fix = (f"name it {self.mask_name!r} in the collator, as the model's feature extractor returns it (1 on the "
                   "input, 0 on the padding)")
            raise BatchError(
                f"the batch holds the mask as {other!r}, but the model's forward takes {self.mask_name!r} (and no "
                f"{other!r}), so the model never sees it: {fix}",
                f"{fix[0].upper()}{fix[1:]}.",
            )


def _tensor(value: Any, name: str, hint: str) -> torch.Tensor:
    try:
        return torch.as_tensor(value)
    except Exception as error:
        raise BatchError(
            f"{name} is a {type(value).__name__} that is not a tensor ({error}); pad it in the collator", hint
        ) from error


class ConvertingCollate:
    """The loader's own collate function followed by the conversion (picklable for worker processes)."""

    def __init__(self, collate_fn: Any, convert: BatchConverter) -> None:
        self.collate_fn = collate_fn
        self.convert = convert

    def __call__(self, items: list[Any]) -> dict[str, Any]:
        return self.convert(self.collate_fn(items))


class ConvertedLoader:
    """Any iterable of collator batches, converted one by one."""

    def __init__(self, loader: Iterable[Any], convert: BatchConverter) -> None:
        self.loader = loader
        self.convert = convert

    def __iter__(self) -> Iterator[dict[str, Any]]:
        for raw in self.loader:
            yield self.convert(raw)

    def __len__(self) -> int:
        return len(self.loader)  # type: ignore[arg-type]


def convert_loader(loader: Iterable[Any], convert: BatchConverter) -> Iterable[Any]:
    """The same batches in ctcdoctor's form.

    A DataLoader stays a DataLoader over the same data set and sampler with the conversion appended to
    its collate function, so that `overfit --sample N` still takes `dataset[N]` through the collator and
    a shuffling loader is still read in data set order; anything else is converted while iterated.
    """
    from torch.utils.data import DataLoader, IterableDataset

    if not isinstance(loader, DataLoader) or loader.batch_size is None:
        return ConvertedLoader(loader, convert)
    kwargs: dict[str, Any] = dict(
        batch_size=loader.batch_size,
        drop_last=loader.drop_last,
        collate_fn=ConvertingCollate(loader.collate_fn, convert),
        num_workers=loader.num_workers,
        pin_memory=loader.pin_memory,
        timeout=loader.timeout,
        worker_init_fn=loader.worker_init_fn,
        generator=loader.generator,
    )
    if loader.num_workers:
        kwargs.update(multiprocessing_context=loader.multiprocessing_context,
                      persistent_workers=loader.persistent_workers, prefetch_factor=loader.prefetch_factor)
    if not isinstance(loader.dataset, IterableDataset):
        kwargs["sampler"] = loader.sampler
    return DataLoader(loader.dataset, **kwargs)
