"""Does the model normalise its own input? (CTC041 does not warn about raw inputs the model's first layer normalises.)

The model runs on one sample with a hook on every leaf module; the first one to run, if it takes a tensor as
large as the input (the input itself, or a transposed/reshaped view of it) and is a normalisation layer
(LayerNorm, BatchNorm*, InstanceNorm*, GroupNorm, RMSNorm, or any class whose name ends in "Norm"), normalises
the input before anything else sees it.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from ctcdoctor.engine import Context, provides
from ctcdoctor.load.batches import Batch, index_inputs, main_tensor
from ctcdoctor.measure.model import call_model, evaluating

NORMALISERS = ("LayerNorm", "GroupNorm", "RMSNorm", "LocalResponseNorm")


@dataclass(frozen=True)
class InputNormaliser:
    """The normalisation layer that first receives the input."""

    module: str
    kind: str

    def describe(self) -> str:
        return f"{self.kind} at {self.module!r}"


def is_normaliser(module: torch.nn.Module) -> bool:
    kind = type(module).__name__
    return kind in NORMALISERS or kind.startswith(("BatchNorm", "InstanceNorm")) or kind.endswith("Norm")


def first_layer(model: torch.nn.Module, batch: Batch) -> tuple[str, torch.nn.Module, int] | None:
    """(name, module, numel of its input) of the first leaf module the model runs on its first sample."""
    sample = index_inputs(batch.inputs, torch.tensor([0]), batch.size, batch.batch_axis)
    seen: list[tuple[str, torch.nn.Module, int]] = []

    def hook(name: str):  # noqa: ANN202 - a forward pre-hook
        def record(module: torch.nn.Module, args: tuple[Any, ...]) -> None:
            if not seen and args and isinstance(args[0], torch.Tensor):
                seen.append((name, module, args[0].numel()))
        return record

    handles = [module.register_forward_pre_hook(hook(name)) for name, module in model.named_modules()
               if name and next(module.children(), None) is None]
    try:
        with evaluating(model):
            call_model(model, sample)
    finally:
        for handle in handles:
            handle.remove()
    return seen[0] if seen else None


def input_normaliser(model: torch.nn.Module, batch: Batch) -> InputNormaliser | None:
    main = main_tensor(batch.inputs)
    if main is None:
        return None
    first = first_layer(model, batch)
    if first is None:
        return None
    name, module, numel = first
    if not is_normaliser(module) or numel != main.numel() // max(batch.size, 1):
        return None
    return InputNormaliser(name, type(module).__name__)


class FirstLayer:
    """The input's normalisation layer, looked for on first use only (one extra forward pass on one sample: CTC041
    needs it only when the inputs look unnormalised). None when the model cannot be run on one sample."""

    def __init__(self, find: Callable[[], InputNormaliser | None]) -> None:
        self._find = find
        self._done = False
        self._found: InputNormaliser | None = None

    def normaliser(self) -> InputNormaliser | None:
        if not self._done:
            self._done = True
            try:
                self._found = self._find()
            except Exception:
                self._found = None
        return self._found


@provides("input_normaliser")
def _input_normaliser(context: Context) -> FirstLayer:
    return FirstLayer(lambda: input_normaliser(context.model, context.runs[0].batch))
