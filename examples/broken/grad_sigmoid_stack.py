"""Broken: a deep stack of sigmoid layers starves the front end of gradient.

The bug: before the recurrent layer, the author added a "feature projection" of eight
``Linear + Sigmoid`` layers with no normalisation. Each sigmoid passes at most 1/4 of
the gradient back, so the first layers of the projection (and the convolutions
before them) receive a gradient thousands of times smaller than the head.

In real training: the loss falls slowly at first (the head learns label priors) and
then plateaus; the front end barely changes from its initialisation.

Fix: ReLU/GELU instead of sigmoid, LayerNorm between layers, residual connections,
or simply a shallower projection.

Expected finding: CTC061
"""
from __future__ import annotations

import _base
import torch
from torch import nn

from ctcdoctor import Setup
from ctcdoctor.toydata import N_MELS, PHONES, SpeechDataset, collate_speech

DEPTH = 8


class SigmoidProjectionCTC(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        layers = []
        for _ in range(DEPTH):
            layers += [nn.Linear(N_MELS, N_MELS), nn.Sigmoid()]
        self.proj = nn.Sequential(*layers)
        self.body = _base.SpeechCTC()

    def forward(self, x):
        h = self.proj(x.transpose(1, 2)).transpose(1, 2)  # per frame: (N, F, T) -> (N, F, T)
        return self.body(h)


def build() -> Setup:
    torch.manual_seed(0)
    data = SpeechDataset(n=64, seed=0)
    return Setup(
        model=SigmoidProjectionCTC(),
        loader=_base.loader(data, collate_fn=collate_speech),
        blank=0,
        alphabet=list(PHONES),
        criterion=_base.speech_criterion,
        output_lengths=_base.speech_output_lengths,
    )
