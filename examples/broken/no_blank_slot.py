"""Broken: the output layer has one class per letter and no slot for the blank.

The bug: ``nn.Linear(..., len(alphabet))`` gives 26 outputs, while the labels are
encoded 1..26 to keep 0 for the blank. So class 0 is both the blank and 'a' in the
model's output, and label 26 ('z') points one past the last class.

In real training: on CPU ``F.ctc_loss`` does not check the range and reads past the
class axis, returning a finite but meaningless loss for words with a 'z' (on CUDA it
may raise a device-side assert); the model can never output 'z', and its 'a' is the
blank.

Fix: ``num_classes = len(alphabet) + 1``.

Expected finding: CTC014
Expected finding: CTC010
"""
from __future__ import annotations

import _base

from ctcdoctor import Setup
from ctcdoctor.toydata import ALPHABET, WordImageDataset

# A small vocabulary; "zebra", "quiz" and "puzzle" carry the out-of-range label 26.
WORDS = ("zebra", "cat", "quiz", "house", "apple", "puzzle", "river", "moon")


def build() -> Setup:
    data = WordImageDataset(n=128, words=WORDS, seed=0)
    return Setup(
        model=_base.CRNN(num_classes=len(ALPHABET)),  # BUG: no + 1 for the blank
        loader=_base.loader(data),
        blank=0,
        alphabet=ALPHABET,
        criterion=_base.ocr_criterion,
        output_lengths=_base.ocr_output_lengths,
    )
