"""Broken: zero_infinity=True hides words that cannot be aligned.

The bug: word images are squeezed to a fixed 96 px and the CNN pools the width by 8,
leaving 12 frames; long words with doubled letters ("bookkeeper": 10 letters + 3
repeats = 13 frames) cannot be aligned. The loss of those samples is ``inf``, and the
author "fixed" the resulting ``inf`` loss with ``zero_infinity=True``.

In real training: the loss looks healthy and falls; the long words simply never
train (their loss and gradient are 0), and the model fails on them at test time.

Fix: keep more frames (pool the width by 4, as in ``examples/ocr_crnn.py``), then
set ``zero_infinity=False`` so that any new impossible sample shows up.

Expected finding: CTC031
Expected finding: CTC001
"""
from __future__ import annotations

import _base
import torch
import torch.nn.functional as F

from ctcdoctor import Setup
from ctcdoctor.toydata import ALPHABET, WordImageDataset

WIDTH = 96
POOLS = ((2, 2), (2, 2), (2, 2), (4, 1))  # width / 8 -> 12 frames
WORDS = ("bookkeeper", "committee", "cat", "house", "balloon", "sun", "coffee", "dog")


def output_lengths(widths):
    return _base.ocr_output_lengths(widths, POOLS)


def criterion(output, batch):
    _, targets, widths, target_lengths = batch
    return F.ctc_loss(output, targets, output_lengths(widths), target_lengths, blank=0, zero_infinity=True)


def build() -> Setup:
    torch.manual_seed(0)
    data = WordImageDataset(texts=WORDS * 8, width=WIDTH, seed=0)
    return Setup(
        model=_base.CRNN(pools=POOLS),
        loader=_base.loader(data),
        blank=0,
        alphabet=ALPHABET,
        criterion=criterion,
        output_lengths=output_lengths,
    )
