"""Broken: the label encoder gives the letter 'a' index 0, which is also the blank.

The bug: ``{c: i for i, c in enumerate(alphabet)}`` maps 'a' -> 0 ... 'z' -> 25,
while ``F.ctc_loss(..., blank=0)`` treats class 0 as the blank. Every 'a' in a
target is read as "no symbol"; class 26 of the 27-way output is never used.

In real training: no error and a loss that goes down. A 0 inside a target is
satisfied by emitting the blank, so the model learns that 'a' means "nothing":
"cat" (encoded [2, 0, 19]) is learned as "ct", and no amount of training brings
the 'a' back.

Fix: reserve 0 for the blank and encode symbols as ``i + 1``
(``ctcdoctor.toydata.encode``), or pass ``blank=len(alphabet)``.

Expected finding: CTC011
"""
from __future__ import annotations

import _base

from ctcdoctor import Setup
from ctcdoctor.toydata import ALPHABET, WordImageDataset

# BUG: 0-based encoding collides with the blank at index 0.
CHAR_TO_INDEX = {c: i for i, c in enumerate(ALPHABET)}


def encode(text: str) -> list[int]:
    return [CHAR_TO_INDEX[c] for c in text]


def build() -> Setup:
    data = WordImageDataset(n=128, encoder=encode, seed=0)
    return Setup(
        model=_base.CRNN(num_classes=len(ALPHABET) + 1),
        loader=_base.loader(data),
        blank=0,
        alphabet=ALPHABET,
        criterion=_base.ocr_criterion,
        output_lengths=_base.ocr_output_lengths,
    )
