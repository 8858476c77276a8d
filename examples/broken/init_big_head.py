"""Broken: the output layer is initialised far too large, so the model starts saturated.

The bug: the author re-initialises the weights of every ``nn.Linear`` and ``nn.LSTM``
with ``nn.init.normal_(w, std=1.0)`` (a habit from tiny MLPs). With fan-ins of 96-384
the LSTM gates saturate and the head's logits have a standard deviation around 10:
every frame is confidently some random class before training starts, and the
gradients reaching the convolutions are huge.

In real training: the first loss is several times the usual ~3.3 nats per letter, the
gradients flow to the winning classes only, and the model needs hundreds of steps
just to undo the initialisation (or collapses to blank).

Fix: keep PyTorch's default ``nn.Linear`` init (or ``std = 1 / sqrt(fan_in)``).

Expected finding: CTC051
Expected finding: CTC062
"""
from __future__ import annotations

import _base
import torch
from torch import nn

from ctcdoctor import Setup
from ctcdoctor.toydata import ALPHABET, WordImageDataset


def build() -> Setup:
    torch.manual_seed(0)
    model = _base.CRNN()
    for module in model.modules():
        if isinstance(module, (nn.Linear, nn.LSTM)):
            for name, weight in module.named_parameters():
                if "weight" in name:
                    nn.init.normal_(weight, std=1.0)  # <- far too large for fan_in 96-192
    data = WordImageDataset(n=64, seed=0)
    return Setup(
        model=model,
        loader=_base.loader(data),
        blank=0,
        alphabet=ALPHABET,
        criterion=_base.ocr_criterion,
        output_lengths=_base.ocr_output_lengths,
    )
