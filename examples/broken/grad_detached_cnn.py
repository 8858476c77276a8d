"""Broken: the CNN features are detached, so the convolutions never train.

The bug: to save memory while debugging, the author computed the CNN features under
``.detach()`` and forgot to remove it: ``f = self.cnn(x).detach()``. Only the LSTM and
the head receive gradients; the convolutions keep their random initialisation.

In real training: the loss falls (the LSTM can do a lot with random features) and
then plateaus well above what the model should reach; nothing crashes.

Fix: remove the ``.detach()`` (or freeze the CNN on purpose with
``model.cnn.requires_grad_(False)``, which ctcdoctor does not report).

Expected finding: CTC063
"""
from __future__ import annotations

import _base
import torch
import torch.nn.functional as F

from ctcdoctor import Setup
from ctcdoctor.toydata import ALPHABET, WordImageDataset


class DetachedCRNN(_base.CRNN):
    def logits(self, x):
        f = self.cnn(x).detach()  # <- "temporary", to save memory
        n, c, h, w = f.shape
        f, _ = self.rnn(f.reshape(n, c * h, w).permute(2, 0, 1))
        return self.fc(f)

    def forward(self, x):
        return F.log_softmax(self.logits(x), dim=-1)


def build() -> Setup:
    torch.manual_seed(0)
    data = WordImageDataset(n=64, seed=0)
    return Setup(
        model=DetachedCRNN(),
        loader=_base.loader(data),
        blank=0,
        alphabet=ALPHABET,
        criterion=_base.ocr_criterion,
        output_lengths=_base.ocr_output_lengths,
    )
