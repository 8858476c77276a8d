"""Broken: the loss uses blank = C - 1 while the targets reserve 0 for the blank.

The bug: the labels are encoded ``'a' -> 1 ... 'z' -> 26`` with 0 kept free for the
blank (``Setup.blank = 0``), but the loss was copied from a code base that puts the
blank last: ``F.ctc_loss(..., blank=NUM_CLASSES - 1)``. Class 26 ('z') is now the
blank, and class 0 an ordinary symbol that no target uses.

In real training: no error; the loss falls; the model decodes every 'z' as nothing
and, at inference with blank 0, merges repeated letters wrongly. Words with 'z'
("zebra", "quiz") never come out right.

Fix: ``blank=0`` in the loss (the same index as ``Setup.blank`` and the encoder).

Expected finding: CTC030
Expected mistake: wrong_blank
"""
from __future__ import annotations

import _base
import torch
import torch.nn.functional as F

from ctcdoctor import Setup
from ctcdoctor.toydata import ALPHABET, WordImageDataset

NUM_CLASSES = len(ALPHABET) + 1


def criterion(output, batch):
    _, targets, widths, target_lengths = batch
    return F.ctc_loss(output, targets, _base.ocr_output_lengths(widths), target_lengths, blank=NUM_CLASSES - 1)  # <- 0


def build() -> Setup:
    torch.manual_seed(0)
    data = WordImageDataset(n=64, seed=0)
    return Setup(
        model=_base.CRNN(),
        loader=_base.loader(data),
        blank=0,
        alphabet=ALPHABET,
        criterion=criterion,
        output_lengths=_base.ocr_output_lengths,
    )
