"""Broken: ``log_softmax`` over the time axis of a (T, N, C) output.

The bug: ``F.log_softmax(logits, dim=0)`` normalises each class over time (dim 0
is T in the (T, N, C) layout) instead of over the classes at each frame. The code
was copied from a model with class-first output, or the layout was changed later.

In real training: the values are valid-looking negative numbers and the loss at
init is even plausible (11.0 here), but each frame's classes no longer form a
distribution (here they sum to 27/28, by coincidence close to 1): the classes
compete across time instead of within a frame, so the loss can be lowered
without learning which class each frame holds, and greedy decoding reads numbers
that are not per-frame probabilities.

Fix: ``F.log_softmax(logits, dim=-1)`` (the class axis).

Expected finding: CTC024
"""
from __future__ import annotations

import _base
import torch
import torch.nn.functional as F

from ctcdoctor import Setup
from ctcdoctor.toydata import ALPHABET, WordImageDataset


class CRNN(_base.CRNN):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.log_softmax(self.logits(x), dim=0)  # BUG: dim 0 is time in (T, N, C)


def build() -> Setup:
    data = WordImageDataset(n=128, seed=0)
    return Setup(
        model=CRNN(),
        loader=_base.loader(data),
        blank=0,
        alphabet=ALPHABET,
        criterion=_base.ocr_criterion,
        output_lengths=_base.ocr_output_lengths,
    )
