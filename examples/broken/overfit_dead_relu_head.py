"""Broken (overfit): a ReLU after the output layer, on scores that all start below 0: a dead head.

The bug: the head is built with the same helper as the hidden layers, which puts a
``ReLU`` after every ``Linear``, the output layer included (torchaudio's Wav2Letter
ends the same way). Its bias is initialised with the log of the class priors, a common
trick, so every class score starts around -3.3. The ReLU cuts them all to 0: every
frame's output is uniform, and a clipped score gets no gradient, so nothing reaches
any weight of the model. The gradient norm is exactly 0 from the first step.

``ctcdoctor check`` reports it before any training: CTC027 (the last layer before
log_softmax is fc.1, a ReLU; every frame has all its scores equal). ``ctcdoctor overfit``
shows the consequence and stops early: nothing moved in 100 steps, so more steps cannot
help (CTC070, "no gradient reaches the weights").

Even with a zero bias, a ReLU on the output is a bug: CTC pushes every label's score down
at the start of training, and a label whose score falls below 0 on every frame never
comes back (overfit then names the labels missing from the decode).

Fix: no activation after the output layer: ``self.fc = nn.Linear(192, 27)`` and
``log_softmax`` on its output.

Expected finding: CTC027
Expected overfit finding: CTC070
"""
from __future__ import annotations

import math

import _base
import torch
from torch import nn

from ctcdoctor import Setup
from ctcdoctor.toydata import ALPHABET, WordImageDataset

NUM_CLASSES = len(ALPHABET) + 1


def layer(inputs: int, outputs: int) -> nn.Sequential:
    """The project's layer helper: Linear then ReLU."""
    return nn.Sequential(nn.Linear(inputs, outputs), nn.ReLU())


class CRNN(_base.CRNN):
    def __init__(self) -> None:
        super().__init__()
        self.fc = layer(2 * 96, NUM_CLASSES)  # BUG: the output layer gets a ReLU too
        with torch.no_grad():
            self.fc[0].bias.fill_(math.log(1 / NUM_CLASSES))  # log class priors: every score starts near -3.3


def build() -> Setup:
    torch.manual_seed(0)
    data = WordImageDataset(n=32, seed=0)
    return Setup(
        model=CRNN(),
        loader=_base.loader(data),
        blank=0,
        alphabet=ALPHABET,
        criterion=_base.ocr_criterion,
        output_lengths=_base.ocr_output_lengths,
    )
