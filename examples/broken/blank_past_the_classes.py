"""Broken: the blank is meant to be the last class, but the model has no class for it.

The bug: the labels are encoded ``'a' -> 0 ... 'z' -> 25`` and the blank is put last,
``BLANK = len(ALPHABET)`` (26), as some code bases do; but the head was sized from the
alphabet alone, ``nn.Linear(..., len(ALPHABET))``: 26 outputs, indices 0 to 25. The
blank index 26 is not a class of the model at all.

In real training: ``F.ctc_loss(..., blank=26)`` raises "blank must be in label range"
on the first step (on some backends it reads past the class axis instead). Before this
was a finding, ``ctcdoctor check`` said "no problems found" for a blank out of range.

Fix: ``nn.Linear(..., len(ALPHABET) + 1)`` (a class for the blank), keeping
``blank=len(ALPHABET)`` in the loss and in ``Setup.blank``.

Expected finding: CTC015
Expected finding: CTC014
"""
from __future__ import annotations

import _base

from ctcdoctor import Setup
from ctcdoctor.toydata import ALPHABET, WordImageDataset

BLANK = len(ALPHABET)  # blank last: 26


class ZeroBased(WordImageDataset):
    """The toy data set encodes 'a' as 1; this code base encodes it as 0 (the blank goes last)."""

    def collate(self, batch):
        inputs, targets, widths, target_lengths = super().collate(batch)
        return inputs, (targets - 1).clamp_min(0), widths, target_lengths  # padding past the lengths stays unread


def build() -> Setup:
    data = ZeroBased(n=64, seed=0)
    return Setup(
        model=_base.CRNN(num_classes=len(ALPHABET)),  # BUG: no class for the blank (needs + 1)
        loader=_base.loader(data),
        blank=BLANK,
        alphabet=ALPHABET,
        output_lengths=_base.ocr_output_lengths,
    )
