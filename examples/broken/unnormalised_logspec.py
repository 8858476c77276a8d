"""Broken: a speech model fed raw, unnormalised log-spectrograms (values around -45).

The bug: the features are ``log(power + 1e-30)`` straight from the feature
extractor, with no mean/variance normalisation: every value lies between about
-60 and -20, mean about -45, while the network's default init expects inputs of
order 1. (This is the classic Keras report where the CTC loss went 2000 -> 180 ->
430 and never settled.)

In real training: nothing warns. The loss at init even looks normal (9.3, against
9.4 for uniform outputs: the GRU's tanh bounds what the head sees), but the
convolution's outputs are tens of times too large, the GRU's gates saturate and
pass almost no gradient, so the model only learns the label prior. On this data,
25 epochs of Adam (lr 1e-3) leave the loss stuck at 3.2 with 97% of frames blank;
the same model on normalised features reaches 0.07.

Fix: normalise the features (per utterance or with training-set statistics), e.g.
``(x - x.mean()) / x.std()``; see ``ctcdoctor.toydata.speech_features``.

Expected finding: CTC041
"""
from __future__ import annotations

import _base
import torch
import torch.nn.functional as F
from torch import nn

from ctcdoctor import Setup
from ctcdoctor.toydata import N_MELS, PHONES, SpeechDataset, collate_speech


class SpeechModel(nn.Module):
    """Conv1d subsampling x2 -> BiGRU -> log_softmax, batch first (a Keras-style port)."""

    def __init__(self, n_mels: int = N_MELS, num_classes: int = len(PHONES) + 1, hidden: int = 96) -> None:
        super().__init__()
        self.conv = nn.Conv1d(n_mels, 128, kernel_size=5, stride=2, padding=2)
        self.rnn = nn.GRU(128, hidden, batch_first=True, bidirectional=True)
        self.fc = nn.Linear(2 * hidden, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.conv(x)).transpose(1, 2)
        h, _ = self.rnn(h)
        return F.log_softmax(self.fc(h), dim=-1)


def build() -> Setup:
    data = SpeechDataset(n=128, normalize=False, seed=0)  # BUG: raw log power, mean ~ -45
    return Setup(
        model=SpeechModel(),
        loader=_base.loader(data, collate_fn=collate_speech),
        blank=0,
        alphabet=list(PHONES),
        criterion=_base.speech_criterion,
        output_lengths=_base.speech_output_lengths,
    )
