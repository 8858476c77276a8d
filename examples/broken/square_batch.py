"""Broken: T == N and a model that only runs at batch size 16, so the layout is unknowable.

The bug: images are padded to 64 px, so the CNN gives 16 frames, and the batch size
is also 16: every output is (16, 16, 27) and its shape cannot tell (T, N, C) from
(N, T, C). Probing the model with another batch size would settle it, but this model
cannot be probed: its reshape was copied from a notebook with the shapes hard-coded
(``view(16, 96, 16)``), so any other batch size (or width) raises. ``Setup.layout``
is not set either.

In real training: nothing fails while the batch size stays 16. The risk is the
code around it: a criterion, decoder or tool that guesses the layout from the shape
may transpose time and batch and silently train on scrambled alignments; and the
model breaks on the last, smaller batch of an epoch (hidden here by
``drop_last=True``) or at inference with batch size 1.

Fix: set ``Setup.layout = "TNC"``, and reshape with the runtime shape
(``f.reshape(n, c * h, w)``) instead of constants.

Expected finding: CTC022
"""
from __future__ import annotations

import _base
import torch

from ctcdoctor import Setup
from ctcdoctor.toydata import ALPHABET, WORDS, WordImageDataset

BATCH_SIZE = 16
WIDTH = 64  # -> WIDTH // 4 = 16 frames, the same as BATCH_SIZE
FRAMES = WIDTH // 4
SHORT_WORDS = tuple(w for w in WORDS if len(w) <= 4)  # fit comfortably in 16 frames


class CRNN(_base.CRNN):
    def logits(self, x: torch.Tensor) -> torch.Tensor:
        f = self.cnn(x)  # (16, 96, 1, 16)
        f = f.view(BATCH_SIZE, 96, FRAMES).permute(2, 0, 1)  # BUG: shapes hard-coded from a notebook
        f, _ = self.rnn(f)
        return self.fc(f)


def build() -> Setup:
    data = WordImageDataset(n=8 * BATCH_SIZE, words=SHORT_WORDS, width=WIDTH, seed=0)
    return Setup(
        model=CRNN(),
        loader=_base.loader(data, batch_size=BATCH_SIZE, drop_last=True),
        blank=0,
        alphabet=ALPHABET,
        criterion=_base.ocr_criterion,
        output_lengths=_base.ocr_output_lengths,
        # layout not set: with T == N == 16 it can only be guessed
    )
