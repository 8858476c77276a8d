"""Broken: the head masks the "unknown" class with -inf, but some targets use it.

The bug: the alphabet was built from a first data shard without 'q', 'x' and 'z';
every other character is encoded as UNK, the last class. So that the recogniser never
*outputs* UNK, the author masks it in ``forward``:
``logits[..., UNK] = float("-inf")`` — in training too. Words such as "quiz", "fox",
"zebra" have UNK in their targets, and a path through a class of probability 0 does
not exist: their loss is ``inf`` from the first step.

In real training: the loss is ``inf`` on any batch with such a word, and the CTC
gradient at a ``-inf`` log-probability is NaN even for the other words (CTC060); with
``zero_infinity=True`` the loss looks fine while the weights turn NaN.

Fix: mask UNK only at decoding time (or not at all), and build the alphabet from the
whole data set.

Expected finding: CTC050
Expected finding: CTC023
Expected finding: CTC060
"""
from __future__ import annotations

import _base
import torch
import torch.nn.functional as F

from ctcdoctor import Setup
from ctcdoctor.toydata import ALPHABET, WordImageDataset

SYMBOLS = "".join(ch for ch in ALPHABET if ch not in "qxz") + "?"  # '?' = UNK, the last class
UNK = len(SYMBOLS)  # class index (blank = 0, symbols 1..len)
INDEX = {ch: i + 1 for i, ch in enumerate(SYMBOLS)}
# The full data: most words fit the reduced alphabet, some ("quiz", "fox", "zebra") do not.
WORDS = ("quiz", "fox", "zebra", "cat", "house", "river", "garden", "music", "apple", "window", "box", "sun")


def encode(text):
    return [INDEX.get(ch, UNK) for ch in text]


class MaskedCRNN(_base.CRNN):
    def forward(self, x):
        logits = self.logits(x)
        logits[..., UNK] = float("-inf")  # "never predict UNK"
        return F.log_softmax(logits, dim=-1)


def output_lengths(widths):
    return _base.ocr_output_lengths(widths)


def build() -> Setup:
    torch.manual_seed(0)
    data = WordImageDataset(n=64, words=WORDS, encoder=encode, seed=0)
    return Setup(
        model=MaskedCRNN(num_classes=len(SYMBOLS) + 1),
        loader=_base.loader(data),
        blank=0,
        alphabet=SYMBOLS,
        output_lengths=output_lengths,
    )
