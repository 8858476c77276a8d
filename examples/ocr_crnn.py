"""A healthy CRNN for word recognition on synthetic word images.

Run:  ctcdoctor check examples/ocr_crnn.py
      ctcdoctor overfit examples/ocr_crnn.py --sample 0

Data: lowercase words of 3-8 letters (about a third with doubled letters such as
"coffee"), rendered with matplotlib's DejaVu fonts at height 32 with variable widths
(a multiple of 4, at least 64 px). Pixels are standardised with the data set's own
mean and std, so the model sees mean ~0 and std ~1 (background about -0.56).

Model: four 3x3 convolutions (each with BatchNorm and ReLU) with pooling that
halves the width twice (W -> W/4) and collapses the height 32 -> 1, a bidirectional
LSTM over the W/4 columns, a linear layer to 27 classes (blank = 0, 'a'..'z' = 1..26) and log_softmax over the classes.
The output is (T, N, C) with T = W // 4, which gives every word at least twice the
frames it needs (letters + adjacent repeats): ~15 px per letter is ~3.7 frames.

Expected finding: none
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from ctcdoctor import Setup
from ctcdoctor.toydata import ALPHABET, WordImageDataset

NUM_CLASSES = len(ALPHABET) + 1  # + 1 for the blank at index 0


# (height, width) pooling after each conv block. The height may shrink freely
# (32 -> 1), but every halving of the width halves the frames CTC has for the
# letters, so the width is pooled only twice (x4).
POOLS: tuple[tuple[int, int], ...] = ((2, 2), (2, 2), (2, 1), (4, 1))
CHANNELS: tuple[int, ...] = (32, 64, 96, 96)


class CRNN(nn.Module):
    """Conv feature extractor -> BiLSTM -> per-column class log-probabilities."""

    def __init__(
        self,
        num_classes: int = NUM_CLASSES,
        pools: tuple[tuple[int, int], ...] = POOLS,
        height: int = 32,
        hidden: int = 96,
        batch_norm: bool = True,
    ) -> None:
        super().__init__()
        blocks, c_in = [], 1
        for c_out, pool in zip(CHANNELS, pools):
            # BatchNorm: without it a single sample takes ~8x more Adam steps to
            # leave the all-blank plateau.
            norm = nn.BatchNorm2d(c_out) if batch_norm else nn.Identity()
            blocks.append(nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1), norm, nn.ReLU(), nn.MaxPool2d(pool)))
            c_in, height = c_out, height // pool[0]
        self.cnn = nn.Sequential(*blocks)
        self.rnn = nn.LSTM(c_in * height, hidden, bidirectional=True)
        self.fc = nn.Linear(2 * hidden, num_classes)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Unnormalised scores (T, N, C) for images (N, 1, 32, W)."""
        f = self.cnn(x)                                    # (N, 96, H', W')
        n, c, h, w = f.shape
        f = f.reshape(n, c * h, w).permute(2, 0, 1)        # (T = W', N, 96 * H'): one frame per column
        f, _ = self.rnn(f)
        return self.fc(f)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.log_softmax(self.logits(x), dim=-1)


def output_lengths(widths: torch.Tensor, pools: tuple[tuple[int, int], ...] = POOLS) -> torch.Tensor:
    """Frames per image: each MaxPool2d floors the width by its stride (convs keep size)."""
    for _, pool_w in pools:
        widths = torch.div(widths, pool_w, rounding_mode="floor")
    return widths


def criterion(output: torch.Tensor, batch) -> torch.Tensor:
    """Standard CTC on (T, N, C) log-probabilities."""
    _, targets, input_lengths, target_lengths = batch
    return F.ctc_loss(output, targets, output_lengths(input_lengths), target_lengths, blank=0, reduction="mean")


def build() -> Setup:
    torch.manual_seed(0)
    data = WordImageDataset(n=128, seed=0)
    loader = DataLoader(data, batch_size=16, shuffle=False, collate_fn=data.collate)
    return Setup(
        model=CRNN(),
        loader=loader,
        blank=0,
        alphabet=ALPHABET,
        criterion=criterion,
        output_lengths=output_lengths,
    )
