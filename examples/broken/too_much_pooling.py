"""Broken: the CNN pools the width as much as the height, leaving too few frames.

The bug: every conv block ends in a square ``MaxPool2d(2)``, as in an image
classifier. That shrinks the height 32 -> 2 as intended, but also the width by 16,
so a 100 px word of 7 letters gets 6 frames. CTC cannot emit 7 labels in 6 frames.

In real training: ``F.ctc_loss`` returns ``inf`` for those samples (or, with
``zero_infinity=True``, silently 0), the mean loss is inf or dominated by the short
words, and the model never learns long words; decoding truncates them.

Fix: pool the height only after the first two blocks (``MaxPool2d((2, 1))``), as in
``examples/ocr_crnn.py``, so frames = width / 4.

Expected finding: CTC001
"""
from __future__ import annotations

import _base
import torch.nn.functional as F

from ctcdoctor import Setup
from ctcdoctor.toydata import ALPHABET, WordImageDataset

# BUG: square pooling everywhere; the width is divided by 2 * 2 * 2 * 2 = 16.
POOLS = ((2, 2), (2, 2), (2, 2), (2, 2))


def output_lengths(widths):
    return _base.ocr_output_lengths(widths, POOLS)  # width // 16, correct for this model


def criterion(output, batch):
    _, targets, widths, target_lengths = batch
    return F.ctc_loss(output, targets, output_lengths(widths), target_lengths, blank=0)


def build() -> Setup:
    data = WordImageDataset(n=128, seed=0)
    return Setup(
        model=_base.CRNN(pools=POOLS),
        loader=_base.loader(data),
        blank=0,
        alphabet=ALPHABET,
        criterion=criterion,
        output_lengths=output_lengths,
    )
