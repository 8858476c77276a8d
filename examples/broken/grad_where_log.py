"""Broken: a "safe" log with torch.where sends NaN gradients backwards.

The bug: the speech front end learns a projection (a bias-free 1x1 Conv1d), squares
it into a "power" and log-compresses that. To avoid ``log(0) = -inf`` on the
zero-padded frames the author wrote
``torch.where(power > 0, torch.log(power), torch.zeros_like(power))``. The forward
pass is finite, but autograd differentiates *both* branches: at ``power == 0`` (every
padded frame) the unused ``log`` branch has gradient ``0 / 0 = nan``, and it flows
into everything before it.

In real training: the first loss is a normal number; after the first optimiser step
every filterbank weight is NaN and the loss is NaN from then on.

Fix: make the unused branch safe too: ``torch.log(torch.where(power > 0, power, 1.0))``,
or simply ``torch.log(power.clamp_min(1e-6))``.

Expected finding: CTC060
"""
from __future__ import annotations

import _base
import torch
from torch import nn

from ctcdoctor import Setup
from ctcdoctor.toydata import N_MELS, PHONES, SpeechDataset, collate_speech


class LogFilterbankCTC(_base.SpeechCTC):
    def __init__(self) -> None:
        super().__init__()
        self.projection = nn.Conv1d(N_MELS, N_MELS, kernel_size=1, bias=False)

    def forward(self, x):
        power = self.projection(x).pow(2)
        h = torch.where(power > 0, torch.log(power), torch.zeros_like(power))  # <- NaN gradient at power == 0
        return super().forward(h)


def build() -> Setup:
    torch.manual_seed(0)
    data = SpeechDataset(n=64, seed=0)
    return Setup(
        model=LogFilterbankCTC(),
        loader=_base.loader(data, collate_fn=collate_speech),
        blank=0,
        alphabet=list(PHONES),
        criterion=_base.speech_criterion,
        output_lengths=_base.speech_output_lengths,
    )
