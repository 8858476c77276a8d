"""A tiny CTC task that trains in seconds on a CPU, for the framework callbacks' tests.

Each sample is 3 labels out of 5 (classes 1..5, blank 0), each held for 4 frames of a noisy
one-hot feature: (N, 6, 12) inputs, one output frame per input frame. A per-frame linear
model learns it in about a hundred Adam steps.
"""
from __future__ import annotations

import torch
from torch import nn

CLASSES = 6
ALPHABET = "abcde"
LABELS, HOLD = 3, 4


def make_data(n: int = 64, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    targets = torch.randint(1, CLASSES, (n, LABELS), generator=generator)
    frames = targets.repeat_interleave(HOLD, dim=1)  # (N, T)
    inputs = torch.nn.functional.one_hot(frames, CLASSES).float().transpose(1, 2) * 3.0
    inputs = inputs + 0.3 * torch.randn(inputs.shape, generator=generator)
    return inputs, targets


class Batches(torch.utils.data.Dataset):
    """Items (input (6, 12), target (3,)); `collate` gives the build() protocol's batch."""

    def __init__(self, n: int = 64, seed: int = 0) -> None:
        self.inputs, self.targets = make_data(n, seed)

    def __len__(self) -> int:
        return self.inputs.shape[0]

    def __getitem__(self, index: int):
        return self.inputs[index], self.targets[index]

    @staticmethod
    def collate(items):
        inputs = torch.stack([item[0] for item in items])
        targets = torch.stack([item[1] for item in items])
        n = len(items)
        return inputs, targets, torch.full((n,), LABELS * HOLD), torch.full((n,), LABELS)


class FrameModel(nn.Module):
    """(N, 6, T) -> (N, T, C) log-probabilities."""

    def __init__(self) -> None:
        super().__init__()
        self.hidden = nn.Conv1d(CLASSES, 16, kernel_size=1)
        self.head = nn.Linear(16, CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.tanh(self.hidden(x)).transpose(1, 2)).log_softmax(-1)


def loader(n: int = 64, batch_size: int = 8, seed: int = 0) -> torch.utils.data.DataLoader:
    data = Batches(n, seed)
    return torch.utils.data.DataLoader(data, batch_size=batch_size, shuffle=True, collate_fn=Batches.collate,
                                       generator=torch.Generator().manual_seed(seed))
