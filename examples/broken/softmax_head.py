"""Broken: the head applies ``softmax`` where CTC needs ``log_softmax``.

The bug: the model returns probabilities in [0, 1] and ``F.ctc_loss`` reads them as
log-probabilities, i.e. as if every class had probability ``exp(p)`` between 1 and
e. Nothing raises.

In real training: the loss is negative from the first step (-3.2 here at init,
where a correct head gives about +11), because every "log-probability" is >= 0.
Its value and gradient no longer measure how well the labels are explained, so a
falling loss says nothing and the decodes do not improve.

Fix: ``F.log_softmax(logits, dim=-1)`` (and ``.exp()`` it where you want
probabilities for display).

Expected finding: CTC020
"""
from __future__ import annotations

import _base
import torch

from ctcdoctor import Setup
from ctcdoctor.toydata import ALPHABET, WordImageDataset


class CRNN(_base.CRNN):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits(x).softmax(dim=-1)  # BUG: probabilities, not log-probabilities


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
