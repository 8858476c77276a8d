"""Broken: the frame budget fits every word's letters but not its doubled letters.

The bug: the images are padded to a fixed width of 128 px and the CNN pools the
width by 16, giving exactly 8 frames. The author checked that the longest word has 8
letters and concluded 8 frames suffice. But CTC must put a blank between two equal
adjacent labels ("ba-l-l-oo-n"), so a word needs ``letters + adjacent repeats``
frames: "balloon" needs 7 + 2 = 9, "football" 8 + 2 = 10. Every word here has at
most 8 letters, so the set-up only fails because of the repeats.

In real training: the loss of the doubled-letter words is ``inf`` (or silently 0
with ``zero_infinity=True``); the model learns the other words and decodes
"balloon" as "balon", and the error looks like a data-quality problem.

Fix: keep more width (pool the width by 4, as in ``examples/ocr_crnn.py``), or
budget ``T >= U + repeats`` (better, about 2x that) when choosing the pooling.

Expected finding: CTC001
"""
from __future__ import annotations

import _base
import torch.nn.functional as F

from ctcdoctor import Setup
from ctcdoctor.toydata import ALPHABET, WordImageDataset

WIDTH = 128
POOLS = ((2, 2), (2, 2), (2, 2), (4, 2))  # width / 16 -> 8 frames: "enough for 8 letters"

# Words of at most 8 letters: some with doubled letters that need more than 8 frames.
WORDS = (
    "balloon", "football", "goodness", "address", "succeed", "coffee", "kitten",
    "letter", "garden", "house", "rainbow", "elephant", "music", "zebra", "quarter", "cat",
)


def output_lengths(widths):
    return _base.ocr_output_lengths(widths, POOLS)


def criterion(output, batch):
    _, targets, widths, target_lengths = batch
    return F.ctc_loss(output, targets, output_lengths(widths), target_lengths, blank=0)


def build() -> Setup:
    data = WordImageDataset(texts=WORDS * 4, width=WIDTH, seed=0)
    return Setup(
        model=_base.CRNN(pools=POOLS),
        loader=_base.loader(data),
        blank=0,
        alphabet=ALPHABET,
        criterion=criterion,
        output_lengths=output_lengths,
    )
