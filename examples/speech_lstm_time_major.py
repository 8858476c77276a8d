"""A healthy time-major speech CTC model: an `nn.LSTM` with its default `batch_first=False`.

Run:  ctcdoctor check examples/speech_lstm_time_major.py
      ctcdoctor overfit examples/speech_lstm_time_major.py --sample 0

Data: the toy log-mel utterances of `examples/speech_ctc.py` (20 phones, 40 bins, normalised per
utterance), collated time-major as `nn.LSTM` takes them by default: inputs `(T, N, F)`,
zero-padded in time, with `input_lengths` in frames.

Model: a two-layer bidirectional LSTM (`batch_first=False`), a linear layer to 21 classes (blank
= 0) and `log_softmax` over the classes. No subsampling: each sample gets as many output frames as
it has input frames. The output is `(T, N, C)`, exactly what `F.ctc_loss` takes.

Nothing tells ctcdoctor that the inputs are time-major: the batch axis is the one with one entry
per input length (axis 1 here), and `overfit --sample 0` cuts sample 0 out along it. Set
`Setup.batch_axis = 1` only when `T == N` makes the axes indistinguishable.

Expected finding: none
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from ctcdoctor import Setup
from ctcdoctor.toydata import N_MELS, PHONES, SpeechDataset, collate_speech

NUM_CLASSES = len(PHONES) + 1  # + 1 for the blank at index 0


class TimeMajorLSTM(nn.Module):
    """(T, N, F) features -> (T, N, C) log-probabilities."""

    def __init__(self, n_mels: int = N_MELS, num_classes: int = NUM_CLASSES, hidden: int = 64) -> None:
        super().__init__()
        self.rnn = nn.LSTM(n_mels, hidden, num_layers=2, bidirectional=True)  # batch_first=False: (T, N, F)
        self.fc = nn.Linear(2 * hidden, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, _ = self.rnn(x)
        return F.log_softmax(self.fc(h), dim=-1)


def collate_time_major(items):
    """The speech collate, then features (N, F, T) -> (T, N, F) for the LSTM."""
    inputs, targets, input_lengths, target_lengths = collate_speech(items)
    return inputs.permute(2, 0, 1).contiguous(), targets, input_lengths, target_lengths


def criterion(output: torch.Tensor, batch) -> torch.Tensor:
    """The training loss: the output is already (T, N, C) and has one frame per input frame."""
    _, targets, input_lengths, target_lengths = batch
    return F.ctc_loss(output, targets, input_lengths, target_lengths, blank=0)


def build() -> Setup:
    torch.manual_seed(0)
    data = SpeechDataset(n=64, seed=0)
    loader = DataLoader(data, batch_size=16, shuffle=False, collate_fn=collate_time_major)
    return Setup(
        model=TimeMajorLSTM(),
        loader=loader,
        blank=0,
        alphabet=list(PHONES),
        criterion=criterion,
        output_lengths=lambda input_lengths: input_lengths,  # no subsampling
        optimizer=lambda params: torch.optim.Adam(params, lr=3e-3),
    )
