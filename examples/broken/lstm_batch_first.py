"""Broken: batch-first features fed to an `nn.LSTM` left at its default `batch_first=False`.

The bug: the collate function returns features `(N, T, F)`, as most models in the project
take them, but the LSTM was created as `nn.LSTM(40, 64, num_layers=2, bidirectional=True)`:
with `batch_first=False` it reads `(T, N, F)`, so it takes the 16 samples for 16 time steps
and the frames for the batch.

In real training: nothing fails. The output has the shape `(N, T, C)` the loss expects, and
the loss even falls, but each sample's frames are computed from the samples before it in the
batch (the LSTM's state runs across samples), never from the frames before them in time. The
model cannot learn the sequences, and at batch size 1 it has no recurrence at all.

Fix: `nn.LSTM(..., batch_first=True)`, or feed the LSTM `x.transpose(0, 1)`.

Expected finding: CTC028
"""
from __future__ import annotations

import _base
import torch
import torch.nn.functional as F
from torch import nn

from ctcdoctor import Setup
from ctcdoctor.toydata import N_MELS, PHONES, SpeechDataset, collate_speech


class BatchFirstLSTM(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.rnn = nn.LSTM(N_MELS, 64, num_layers=2, bidirectional=True)  # BUG: batch_first=False
        self.fc = nn.Linear(128, len(PHONES) + 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (N, T, F)
        h, _ = self.rnn(x)
        return F.log_softmax(self.fc(h), dim=-1)  # (N, T, C)


def collate_batch_first(items):
    inputs, targets, input_lengths, target_lengths = collate_speech(items)
    return inputs.transpose(1, 2).contiguous(), targets, input_lengths, target_lengths  # (N, F, T) -> (N, T, F)


def criterion(output, batch):
    _, targets, input_lengths, target_lengths = batch
    return F.ctc_loss(output.transpose(0, 1), targets, input_lengths, target_lengths, blank=0)


def build():
    torch.manual_seed(0)
    data = SpeechDataset(n=64, seed=0)
    return Setup(model=BatchFirstLSTM(), loader=_base.loader(data, collate_fn=collate_batch_first), blank=0,
                 alphabet=list(PHONES), criterion=criterion, output_lengths=lambda input_lengths: input_lengths)
