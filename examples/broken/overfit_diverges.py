"""Broken (overfit): an SGD learning rate pasted into Adam, so the loss diverges.

The bug: the recipe's ``SGD(lr=1.0)`` became ``Adam(lr=1.0)`` when the optimizer was
switched. Adam normalises the gradient, so each step moves every weight by about the
learning rate: 1.0 per step throws the BiLSTM into saturation within a few steps. The
loss jumps from about 10 to over a hundred, and then bounces without settling; gradient
clipping cannot help, because Adam's step size does not depend on the gradient's norm.

``ctcdoctor check`` passes: nothing is wrong before the first update.

In real training: the loss explodes in the first steps, sometimes to NaN, then wanders;
the decodes are random letters or all blank.

Fix: Adam at about 1e-3 (``ctcdoctor overfit ... --lr 1e-3``).

Expected overfit finding: CTC072
"""
from __future__ import annotations

import _base
import torch

from ctcdoctor import Setup
from ctcdoctor.toydata import ALPHABET, WordImageDataset


def build() -> Setup:
    torch.manual_seed(0)
    data = WordImageDataset(n=128, seed=0)
    return Setup(
        model=_base.CRNN(),
        loader=_base.loader(data),
        blank=0,
        alphabet=ALPHABET,
        criterion=_base.ocr_criterion,
        output_lengths=_base.ocr_output_lengths,
        optimizer=lambda params: torch.optim.Adam(params, lr=1.0),  # BUG: an SGD learning rate
    )
