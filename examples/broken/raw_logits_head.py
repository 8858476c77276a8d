"""Broken: raw logits reach the CTC loss; no ``log_softmax`` anywhere.

The bug: the author removed ``log_softmax`` from the model "because the loss does
it", as ``nn.CrossEntropyLoss`` would. ``F.ctc_loss`` does not: it takes the
logits as log-probabilities of a distribution that does not sum to one.

In real training: the loss is already negative at init (-2.9 here, where a
correct head gives about +11) and can fall without bound by inflating logits,
since nothing makes the classes compete; the loss curve looks great while the
decodes stay garbage.

Fix: ``F.log_softmax(logits, dim=-1)`` at the head (or in the criterion).

Expected finding: CTC021
"""
from __future__ import annotations

import _base
import torch

from ctcdoctor import Setup
from ctcdoctor.toydata import ALPHABET, WordImageDataset


class CRNN(_base.CRNN):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits(x)  # BUG: "the loss applies the softmax" -- CTC's does not


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
