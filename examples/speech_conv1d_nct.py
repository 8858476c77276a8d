"""A healthy fully convolutional speech CTC model whose head returns `(N, C, T)`, like torchaudio's Wav2Letter.

Run:  ctcdoctor check examples/speech_conv1d_nct.py
      ctcdoctor overfit examples/speech_conv1d_nct.py --sample 0

Data: the toy log-mel utterances of `examples/speech_ctc.py` (20 phones, 40 bins, normalised per
utterance), inputs `(N, F=40, T)`.

Model: Conv1d layers only (a stride-2 one, then two more), ending in a kernel-1 `Conv1d` to 21
classes (blank = 0) and `log_softmax(dim=1)`: the class axis of a Conv1d output is the middle one,
so the output is `(N, C, T')` with `T' = ceil(T / 2)`. Wav2Letter (torchaudio.models.Wav2Letter)
ends the same way. The training loss permutes it to `(T, N, C)` for `F.ctc_loss`.

`Setup.layout` is left unset: ctcdoctor runs the model on a shorter input, sees that the last
axis follows the input's length, and reads the output as `(N, C, T)` ("NCT").

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


class ConvCTC(nn.Module):
    """(N, F, T) features -> (N, C, T') log-probabilities over the middle (class) axis."""

    def __init__(self, n_mels: int = N_MELS, num_classes: int = NUM_CLASSES, hidden: int = 128) -> None:
        super().__init__()
        self.acoustic = nn.Sequential(
            nn.Conv1d(n_mels, hidden, kernel_size=5, stride=2, padding=2), nn.BatchNorm1d(hidden), nn.ReLU(),
            nn.Conv1d(hidden, hidden, kernel_size=5, padding=2), nn.BatchNorm1d(hidden), nn.ReLU(),
            nn.Conv1d(hidden, hidden, kernel_size=5, padding=2), nn.BatchNorm1d(hidden), nn.ReLU(),
            nn.Conv1d(hidden, num_classes, kernel_size=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.log_softmax(self.acoustic(x), dim=1)  # classes are axis 1 of (N, C, T')


def output_lengths(frames: torch.Tensor) -> torch.Tensor:
    """Frames after the stride-2 conv: floor((T + 2*2 - 5) / 2) + 1 == ceil(T / 2)."""
    return torch.div(frames - 1, 2, rounding_mode="floor") + 1


def criterion(output: torch.Tensor, batch) -> torch.Tensor:
    """The training loss: (N, C, T) -> (T, N, C) for F.ctc_loss."""
    _, targets, input_lengths, target_lengths = batch
    return F.ctc_loss(output.permute(2, 0, 1), targets, output_lengths(input_lengths), target_lengths, blank=0)


def build() -> Setup:
    torch.manual_seed(0)
    data = SpeechDataset(n=64, seed=0)
    loader = DataLoader(data, batch_size=16, shuffle=False, collate_fn=collate_speech)
    return Setup(
        model=ConvCTC(),
        loader=loader,
        blank=0,
        alphabet=list(PHONES),
        criterion=criterion,
        output_lengths=output_lengths,
    )
