"""Set-ups from a fresh-eyes user trial (trial2), shrunk to trial-a's per-frame MLP on random features: label
encodings whose fix one sample cannot tell (see tests/test_overfit_trial2.py)."""
import torch
from torch.utils.data import DataLoader
from trial_a import FrameMLP, Items, adam, collate

from ctcdoctor import Setup


def build_off_by_one():
    # BUG: labels alphabet.index(ch) + 1 (1..5) but the model has len(alphabet) = 5 classes, no blank slot. Sample 0 uses
    # neither 0 nor 5, so alone it looks like an alphabet that lists the blank ('0', a real digit, at index 0).
    torch.manual_seed(0)
    items = Items(high=4, top_label_at=3)
    return Setup(model=FrameMLP(classes=5), loader=DataLoader(items, batch_size=4, collate_fn=collate),
                 alphabet="0abcd", optimizer=adam(1e-2))


def build_blank_clash():
    # BUG: labels alphabet.index(ch) (0..4) with blank 0; sample 0 only uses 0 and 1, the loader's labels run 0..4.
    torch.manual_seed(0)
    items = Items(low=0, high=4)
    items.y[0] = torch.tensor([0, 1])
    items.y[1][0] = 4
    return Setup(model=FrameMLP(classes=6), loader=DataLoader(items, batch_size=4, collate_fn=collate),
                 alphabet="abcde", optimizer=adam(1e-2))


def build_blank_clash_late():
    # BUG: only sample 39 holds the blank 0 as a label, past the 32 batches of one that check reads.
    torch.manual_seed(0)
    items = Items(n=40)
    items.y[39] = torch.tensor([0, 1, 2])
    return Setup(model=FrameMLP(), loader=DataLoader(items, batch_size=1, collate_fn=collate),
                 alphabet="abcde", optimizer=adam(1e-2))
