"""Set-ups of the third fresh-eyes trial: losses divided by a batch size (tests/test_trial3_divisors.py).

A per-frame MLP that emits raw logits (the criterion applies log_softmax, as georgeretsi/HTR-best-practices does), a
DataLoader of batch size 4 over 10 samples (the last batch holds 2), and criteria as public code writes them:

- HTR-best-practices: ``CTCLoss(reduction='sum')(log_softmax(y), ...) / batch_size`` with batch_size the loader's
  fixed number, not the batch's N;
- a port of crnn.pytorch from warp-ctc to ``torch.nn.CTCLoss()`` that keeps train.py's ``/ batch_size`` and forgets
  log_softmax: two mistakes at once.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from ctcdoctor import Setup

BATCH_SIZE = 4


class LogitMLP(nn.Module):
    def __init__(self, features: int = 8, classes: int = 6) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(features, 32), nn.Tanh())
        self.head = nn.Linear(32, classes)

    def forward(self, x):  # (N, T, F) -> (T, N, C) raw logits
        return self.head(self.body(x)).transpose(0, 1)


def collate(items):
    xs, ys = zip(*items)
    return torch.stack(xs), torch.stack(ys), torch.full((len(xs),), xs[0].shape[0]), torch.tensor([3, 4] * (len(ys) // 2) + [3] * (len(ys) % 2))


def loader(n: int = 10) -> DataLoader:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 16, 8, generator=g)
    y = torch.randint(1, 6, (n, 4), generator=g)
    y[:, 1] = y[:, 0] % 5 + 1
    y[:, 2] = y[:, 1] % 5 + 1
    y[:, 3] = y[:, 2] % 5 + 1
    return DataLoader(TensorDataset(x, y), batch_size=BATCH_SIZE, collate_fn=collate)


def htr_criterion(output, batch):
    _, targets, input_lengths, target_lengths = batch
    return nn.CTCLoss(reduction="sum", zero_infinity=True)(F.log_softmax(output, dim=2), targets, input_lengths,
                                                            target_lengths) / BATCH_SIZE


def ported_criterion(output, batch):
    images, targets, input_lengths, target_lengths = batch
    return nn.CTCLoss()(output, targets, input_lengths, target_lengths) / images.size(0)


def double_mean_criterion(output, batch):
    images, targets, input_lengths, target_lengths = batch
    return nn.CTCLoss()(output.log_softmax(2), targets, input_lengths, target_lengths) / images.size(0)


def _setup(criterion, optimizer=None) -> Setup:
    torch.manual_seed(0)
    return Setup(model=LogitMLP(), loader=loader(), alphabet="abcde", criterion=criterion, optimizer=optimizer)


def build_htr() -> Setup:
    return _setup(htr_criterion, lambda p: torch.optim.Adam(p, lr=1e-2))


def build_htr_sgd() -> Setup:
    return _setup(htr_criterion, lambda p: torch.optim.SGD(p, lr=0.1))


def build_ported() -> Setup:
    return _setup(ported_criterion, lambda p: torch.optim.Adam(p, lr=1e-2))


def build_double_mean() -> Setup:
    return _setup(double_mean_criterion, lambda p: torch.optim.Adam(p, lr=1e-2))
