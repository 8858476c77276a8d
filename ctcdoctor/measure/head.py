"""CTC027: are the class scores clipped or squashed before log_softmax?

Two measurements, so that a functional `F.relu` is caught as well as an `nn.ReLU` module:

- by value: within a frame, scores clipped at a floor (or a ceiling) are exactly equal. A linear
  head never produces exact ties, so the share of scores tied at their frame's minimum (maximum)
  shows a clip; `log_softmax` and `softmax` keep ties, so this works on any output kind;
- by structure: the last leaf module to run whose output has as many values as the model's output
  (dropout, identity and the final (log_)softmax skipped) is the head's activation, if it is one
  that clips (ReLU, ReLU6, Hardtanh, ...) or bounds (Sigmoid, Tanh, ...) the scores.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from ctcdoctor.engine import Context, provides
from ctcdoctor.load.batches import resize_batch
from ctcdoctor.measure.model import call_model, evaluating

#: Activations with a hard floor (or ceiling): scores beyond it are cut and get no gradient.
CLIPPING = ("ReLU", "ReLU6", "Hardtanh", "Threshold", "Hardsigmoid")
#: Activations that squash the scores into a bounded range: the output's confidence is capped.
BOUNDED = ("Sigmoid", "Tanh", "Softsign", "Hardtanh", "ReLU6", "Hardsigmoid")
#: Width of each activation's output range (None: unbounded above).
RANGE = {"ReLU": None, "Threshold": None, "ReLU6": 6.0, "Hardtanh": 2.0, "Hardsigmoid": 1.0, "Sigmoid": 1.0,
         "Tanh": 2.0, "Softsign": 2.0}
#: Modules that pass the scores on unchanged in value (or only normalise them) after the head.
TRANSPARENT = ("Dropout", "Dropout1d", "Dropout2d", "Dropout3d", "AlphaDropout", "FeatureAlphaDropout", "Identity",
               "LogSoftmax", "Softmax", "Flatten", "Unflatten")
#: A clip by value: at least this share of the scores sit exactly at their frame's minimum or maximum.
TIE_SHARE = 0.25


@dataclass(frozen=True)
class LogitClipping:
    """How the class scores of the scanned outputs look before log_softmax."""

    frames: int
    """Frames judged (within the output lengths when known)."""
    classes: int
    floor_share: float
    """Share of the scores tied at their frame's minimum (one score per frame is the minimum itself: not counted)."""
    ceiling_share: float
    all_tied_share: float
    """Share of frames whose scores are all equal: those frames carry no information (uniform output)."""
    final_module: str | None = None
    """The last leaf module that shaped the scores (see the module docstring), when it could be traced."""
    final_activation: str | None = None
    """Its class name when it clips or bounds the scores (ReLU, Tanh, ...), else None."""
    value_range: float | None = None
    """Width of the activation's output range in nats of logit (None: unbounded)."""

    @property
    def clipped_by_value(self) -> bool:
        return self.floor_share >= TIE_SHARE or self.ceiling_share >= TIE_SHARE

    @property
    def clipped(self) -> bool:
        return self.clipped_by_value or self.final_activation is not None

    def confidence_cap(self) -> float | None:
        """The highest probability a frame can give one class when every score lies in a range this wide."""
        if self.value_range is None:
            return None
        return math.exp(self.value_range) / (math.exp(self.value_range) + self.classes - 1)


def score_ties(output: torch.Tensor, lengths: torch.Tensor | None = None) -> tuple[int, float, float, float]:
    """(frames, floor share, ceiling share, all-tied share) of a (T, N, C) output, frames past `lengths` left out."""
    values = output.detach().float()
    frames, size, classes = values.shape
    valid = torch.ones(frames, size, dtype=torch.bool, device=values.device)
    if lengths is not None and lengths.numel() == size:
        valid = torch.arange(frames, device=values.device)[:, None] < lengths.to(values.device)[None, :]
    rows = values[valid & torch.isfinite(values).all(-1)]
    if rows.shape[0] == 0 or classes < 2:
        return 0, 0.0, 0.0, 0.0
    low, high = rows.min(-1, keepdim=True).values, rows.max(-1, keepdim=True).values
    scale = 1e-6 * torch.clamp(high.abs().maximum(low.abs()), min=1.0)  # a last-bit difference is still a tie
    floor = ((rows <= low + scale).sum(-1) - 1).sum().item()
    ceiling = ((rows >= high - scale).sum(-1) - 1).sum().item()
    tied = ((high - low) <= scale).float().mean().item()
    judged = rows.shape[0] * (classes - 1)
    return rows.shape[0], floor / judged, ceiling / judged, tied


def final_activation(model: torch.nn.Module, inputs: Any, output_numel: int) -> tuple[str | None, str | None]:
    """(module name, class name) of the last leaf module to produce as many values as the output, or (None, None)."""
    names = {id(module): name for name, module in model.named_modules()}
    last: list[tuple[str, str]] = []

    def record(module: torch.nn.Module, _inputs: Any, value: Any) -> None:
        kind = type(module).__name__
        if isinstance(value, torch.Tensor) and value.numel() == output_numel and kind not in TRANSPARENT:
            last.append((names.get(id(module), ""), kind))

    leaves = [module for module in model.modules() if next(module.children(), None) is None]
    hooks = [module.register_forward_hook(record) for module in leaves]
    try:
        with evaluating(model):
            call_model(model, inputs)
    finally:
        for hook in hooks:
            hook.remove()
    return last[-1] if last else (None, None)


def _traced_head(context: Context) -> tuple[str | None, str | None]:
    """The head's activation on one sample of the first batch (cheap), or on the whole batch if one sample fails."""
    run = context.runs[0]
    size = run.batch.size
    for count in (1, size):
        try:
            inputs = resize_batch(run.batch.inputs, count, size)
            return final_activation(context.model, inputs, run.output.numel() // size * count)
        except Exception:
            continue
    return None, None


@provides("logit_clipping")
def _logit_clipping(context: Context) -> LogitClipping:
    try:
        per_run = context.output_lengths.per_run if context.output_lengths.known else None
    except Exception:
        per_run = None
    totals = [0, 0.0, 0.0, 0.0]
    for index, output in enumerate(context.outputs):
        lengths = per_run[index] if per_run is not None else None
        frames, floor, ceiling, tied = score_ties(output, lengths)
        totals = [totals[0] + frames, totals[1] + floor * frames, totals[2] + ceiling * frames, totals[3] + tied * frames]
    frames = int(totals[0])
    share = [value / frames if frames else 0.0 for value in totals[1:]]
    module, kind = _traced_head(context)
    activation = kind if kind in CLIPPING or kind in BOUNDED else None
    return LogitClipping(frames, int(context.num_classes), share[0], share[1], share[2], module, activation,
                         RANGE.get(activation) if activation else None)
