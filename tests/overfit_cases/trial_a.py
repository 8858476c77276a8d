"""Set-ups from a fresh-eyes user trial (trial-a), shrunk to a per-frame MLP on random features that fits one sample
in about 100 Adam steps: one planted problem per build (see tests/test_overfit_trial_a.py)."""
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from ctcdoctor import Setup

CLASSES = 6  # blank 0 and labels 1..5, unless a build says otherwise


class FrameMLP(nn.Module):
    def __init__(self, classes=CLASSES, hidden=32):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(8, hidden), nn.Tanh())
        self.head = nn.Linear(hidden, classes)

    def forward(self, x):  # (N, T, F) -> (N, T, C) log-probabilities
        return self.head(self.body(x)).log_softmax(-1)


class Items(torch.utils.data.Dataset):
    """Random features with targets of different lengths (2 to 5 labels), as (x, y) items."""

    def __init__(self, n=8, low=1, high=CLASSES - 1, scale=1.0, shift=0.0, top_label_at=None):
        g = torch.Generator().manual_seed(0)
        self.x = [torch.randn(16, 8, generator=g) * scale + shift for _ in range(n)]
        self.y = [torch.randint(low, high + 1, (2 + i % 4,), generator=g) for i in range(n)]
        for y in self.y:
            y[1] = low + (y[0] - low + 1) % (high - low + 1)  # no repeat in the first two labels
        if top_label_at is not None:
            self.y[top_label_at][-1] = high + 1  # BUG planted: one label past the model's classes

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return self.x[i], self.y[i]


def collate(items, lengths_include_padding=False):
    xs, ys = zip(*items)
    width = max(len(y) for y in ys)
    targets = torch.zeros(len(ys), width, dtype=torch.long)  # padded with 0, the blank
    for row, y in enumerate(ys):
        targets[row, : len(y)] = y
    lengths = torch.full((len(ys),), width) if lengths_include_padding else torch.tensor([len(y) for y in ys])
    return torch.stack(xs), targets, torch.full((len(xs),), xs[0].shape[0]), lengths


def adam(lr):
    return lambda params: torch.optim.Adam(params, lr=lr)


def build_label_past_head():
    # BUG: sample 3 (in the loader's first batch, not sample 0) has label 6 and the model has 6 classes.
    torch.manual_seed(0)
    return Setup(model=FrameMLP(), loader=DataLoader(Items(top_label_at=3), batch_size=4, collate_fn=collate),
                 optimizer=adam(1e-2))


def build_lengths_count_padding():
    # BUG: target_lengths are the padded width; sample 0 collated alone has no padding, its batch has.
    torch.manual_seed(0)
    loader = DataLoader(Items(), batch_size=4, collate_fn=lambda items: collate(items, lengths_include_padding=True))
    return Setup(model=FrameMLP(), loader=loader, optimizer=adam(1e-2))


def build_raw_features():
    # BUG: features as power_to_db gives them (around -60, spread 20), never standardised.
    torch.manual_seed(0)
    loader = DataLoader(Items(scale=20.0, shift=-60.0), batch_size=4, collate_fn=collate)
    return Setup(model=FrameMLP(), loader=loader, optimizer=adam(1e-3))


def loss_default_blank(output, batch):
    _, targets, input_lengths, target_lengths = batch
    return F.ctc_loss(output.transpose(0, 1), targets, input_lengths, target_lengths)  # BUG: blank=0, the default


def build_blank_last_loss_default():
    # Labels 0..4 with the blank meant last (Setup.blank=5), but the loss keeps F.ctc_loss's default blank=0.
    torch.manual_seed(0)
    items = Items(low=0, high=CLASSES - 2)
    items.y[0][0] = 0  # sample 0 uses label 0 ('a'), the loss's blank
    loader = DataLoader(items, batch_size=4, collate_fn=collate)
    return Setup(model=FrameMLP(), loader=loader, blank=CLASSES - 1, optimizer=adam(1e-2), criterion=loss_default_blank)


def build_slow(lr=1e-4):
    # Healthy, only slow: a small learning rate for this model (as a 2-layer unidirectional LSTM at Adam's 1e-3).
    torch.manual_seed(0)
    return Setup(model=FrameMLP(), loader=DataLoader(Items(), batch_size=4, collate_fn=collate), optimizer=adam(lr))
