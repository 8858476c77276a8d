"""Broken: the loss receives raw logits; log_softmax was moved out of the model and forgotten.

The bug: ``log_softmax`` was removed from ``forward`` so that an exported model could
return logits, with a note to "apply it in the loss", which never happened: the
criterion passes the logits straight to ``F.ctc_loss``.

In real training: the loss can go negative and keeps falling, because pushing all
logits up lowers it; the outputs never form a distribution and decodes are garbage.

Fix: ``F.ctc_loss(output.log_softmax(-1), ...)``.

Expected finding: CTC030
Expected finding: CTC021
Expected mistake: raw_logits
"""
from __future__ import annotations

import _base
import torch
import torch.nn.functional as F

from ctcdoctor import Setup
from ctcdoctor.toydata import ALPHABET, WordImageDataset


class ExportableCRNN(_base.CRNN):
    def forward(self, x):
        return self.logits(x)  # log_softmax "is applied in the loss"


def criterion(output, batch):
    _, targets, widths, target_lengths = batch
    return F.ctc_loss(output, targets, _base.ocr_output_lengths(widths), target_lengths, blank=0)  # <- no log_softmax


def build() -> Setup:
    torch.manual_seed(0)
    data = WordImageDataset(n=64, seed=0)
    return Setup(
        model=ExportableCRNN(),
        loader=_base.loader(data),
        blank=0,
        alphabet=ALPHABET,
        criterion=criterion,
        output_lengths=_base.ocr_output_lengths,
    )
