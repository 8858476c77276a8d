"""Broken: the loss applies softmax where CTC needs log_softmax.

The bug: the model returns raw logits (so that decoding can take an argmax), and the
criterion normalises them with ``F.softmax`` instead of ``F.log_softmax`` before
``F.ctc_loss``. CTC then treats probabilities in [0, 1] as log-probabilities.

In real training: the loss is a number, it even decreases a little, but it measures
nothing: the model drifts to all-blank or random output. A classic forum question
("CTC loss decreases but predictions are empty").

Fix: ``F.ctc_loss(output.log_softmax(-1), ...)``.

Expected finding: CTC030
Expected finding: CTC021
Expected mistake: probabilities
"""
from __future__ import annotations

import _base
import torch
import torch.nn.functional as F

from ctcdoctor import Setup
from ctcdoctor.toydata import ALPHABET, WordImageDataset


class LogitsCRNN(_base.CRNN):
    def forward(self, x):
        return self.logits(x)


def criterion(output, batch):
    _, targets, widths, target_lengths = batch
    probs = F.softmax(output, dim=-1)  # <- should be log_softmax
    return F.ctc_loss(probs, targets, _base.ocr_output_lengths(widths), target_lengths, blank=0)


def build() -> Setup:
    torch.manual_seed(0)
    data = WordImageDataset(n=64, seed=0)
    return Setup(
        model=LogitsCRNN(),
        loader=_base.loader(data),
        blank=0,
        alphabet=ALPHABET,
        criterion=criterion,
        output_lengths=_base.ocr_output_lengths,
    )
