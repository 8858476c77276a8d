"""Broken (overfit): a far too small learning rate on a head that starts all-blank.

The bug: ``Setup.optimizer`` builds ``Adam(lr=1e-6)``, the learning rate of the last
stage of a fine-tuning recipe, for a model trained from scratch. The head's blank bias
is initialised at +8 nats, a known trick to start CTC in its all-blank phase, which
only works when the learning rate is large enough to leave that phase (Adam 1e-3
leaves it in a few dozen steps). At 1e-6 every step moves each weight by about 1e-6,
so after the whole budget of 1000 steps every frame is still blank and the decode is
empty.

Nothing is wrong with the shapes, lengths, labels or output format: ``ctcdoctor check``
passes. Only training shows it, which is what ``ctcdoctor overfit`` is for.

In real training: the loss falls a little and flattens, greedy decoding returns empty
strings for every sample ("my CTC model only predicts blanks").

Fix: use Adam at about 1e-3 (``ctcdoctor overfit ... --lr 1e-3`` fits in ~150 steps;
``--lr-probe`` shows 1e-5 too slow as well), or drop the blank-bias initialisation.
At 1e-5 the model is still leaving the blank phase after 1000 steps (the first label
appears near step 980): CTC070 "still leaving the all-blank phase", naming the same causes.

Expected overfit finding: CTC071
"""
from __future__ import annotations

import _base
import torch

from ctcdoctor import Setup
from ctcdoctor.toydata import ALPHABET, WordImageDataset

BLANK_BIAS = 8.0


def build() -> Setup:
    torch.manual_seed(0)
    model = _base.CRNN()
    with torch.no_grad():
        model.fc.bias[0] = BLANK_BIAS  # start in the all-blank phase (fine at a normal lr)
    data = WordImageDataset(n=32, seed=0)
    return Setup(
        model=model,
        loader=_base.loader(data),
        blank=0,
        alphabet=ALPHABET,
        criterion=_base.ocr_criterion,
        output_lengths=_base.ocr_output_lengths,
        optimizer=lambda params: torch.optim.Adam(params, lr=1e-6),  # BUG: a fine-tuning lr, from scratch
    )
