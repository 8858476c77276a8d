"""My set-up 4: variable-width CRNN (width pooled by 4) whose training script computes the
CTC input lengths as width // 8 (the author counted three width poolings, there are two) and
uses zero_infinity=True "because the loss went inf". Padded images, batch-first output + permute.
"""
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader

from ctcdoctor import Setup
from ctcdoctor.toydata import ALPHABET, WordImageDataset


class CRNN(nn.Module):
    def __init__(self, n_class=len(ALPHABET) + 1):  # noqa: B008 - the user's code, as written
        super().__init__()
        def block(i, o, pool):
            return nn.Sequential(nn.Conv2d(i, o, 3, padding=1), nn.BatchNorm2d(o), nn.ReLU(), nn.MaxPool2d(pool))
        self.features = nn.Sequential(block(1, 32, (2, 2)), block(32, 64, (2, 2)), block(64, 128, (2, 1)),
                                      block(128, 128, (4, 1)))
        self.gru = nn.GRU(128, 128, batch_first=True, bidirectional=True)
        self.head = nn.Linear(256, n_class)

    def forward(self, x):
        f = self.features(x).squeeze(2).transpose(1, 2)  # (N, W/4, 128)
        h, _ = self.gru(f)
        return self.head(h).log_softmax(-1)              # (N, T, C)


def input_lengths(widths):
    return widths // 8  # BUG: the model downsamples the width by 4


def criterion(out, batch):
    _, targets, widths, target_lengths = batch
    return F.ctc_loss(out.permute(1, 0, 2), targets, input_lengths(widths), target_lengths, zero_infinity=True)


def build():
    data = WordImageDataset(n=96, seed=5)
    loader = DataLoader(data, batch_size=32, shuffle=True, collate_fn=data.collate)
    return Setup(model=CRNN(), loader=loader, blank=0, alphabet=ALPHABET, criterion=criterion,
                 output_lengths=input_lengths)
