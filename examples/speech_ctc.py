"""A healthy small speech-style CTC model on toy log-mel features.

Run:  ctcdoctor check examples/speech_ctc.py

Data: toy utterances of 3-10 "phones" (20 symbols, given as a list of strings), each
held for 4-8 frames as a fixed spectral pattern over 40 mel-like bins, with silence
at both ends and noise. Features are normalised per utterance (mean 0, std 1) and
zero-padded in time; inputs are (N, F=40, T).

Model: a stride-2 Conv1d (time subsampling x2) and a second Conv1d, a bidirectional
GRU, a linear layer to 21 classes (blank = 0) and log_softmax over the classes. The
output is batch-first, (N, T', C) with T' = ceil(T / 2); `Setup.layout` is left unset
on purpose so that ctcdoctor infers the layout by probing.
Every utterance keeps more than twice the frames its labels need (T' >= 2U + 3).

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


class SpeechCTC(nn.Module):
    """Conv1d subsampling -> BiGRU -> per-frame class log-probabilities, batch first."""

    def __init__(self, n_mels: int = N_MELS, num_classes: int = NUM_CLASSES, hidden: int = 96) -> None:
        super().__init__()
        self.subsample = nn.Sequential(
            nn.Conv1d(n_mels, 128, kernel_size=5, stride=2, padding=2), nn.BatchNorm1d(128), nn.ReLU(),
            nn.Conv1d(128, 128, kernel_size=3, padding=1), nn.BatchNorm1d(128), nn.ReLU(),
        )
        self.rnn = nn.GRU(128, hidden, batch_first=True, bidirectional=True)
        self.fc = nn.Linear(2 * hidden, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.subsample(x).transpose(1, 2)  # (N, F, T) -> (N, T', 128)
        h, _ = self.rnn(h)
        return F.log_softmax(self.fc(h), dim=-1)  # (N, T', C)


def output_lengths(frames: torch.Tensor) -> torch.Tensor:
    """Frames after the stride-2 conv: floor((T + 2*2 - 5) / 2) + 1 == ceil(T / 2)."""
    return torch.div(frames - 1, 2, rounding_mode="floor") + 1


def criterion(output: torch.Tensor, batch) -> torch.Tensor:
    """CTC on the batch-first output: F.ctc_loss wants (T, N, C)."""
    _, targets, input_lengths, target_lengths = batch
    return F.ctc_loss(output.transpose(0, 1), targets, output_lengths(input_lengths), target_lengths, blank=0)


def build() -> Setup:
    torch.manual_seed(0)
    data = SpeechDataset(n=128, seed=0)
    loader = DataLoader(data, batch_size=16, shuffle=False, collate_fn=collate_speech)
    return Setup(
        model=SpeechCTC(),
        loader=loader,
        blank=0,
        alphabet=list(PHONES),
        criterion=criterion,
        output_lengths=output_lengths,
        layout=None,  # inferred: the model returns (N, T, C)
    )
