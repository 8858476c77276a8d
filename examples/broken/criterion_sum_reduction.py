"""A deliberate choice, not a bug: the loss sums over the batch (reduction="sum").

The set-up: ``F.ctc_loss(..., reduction="sum")``, as some recipes (e.g. wav2vec2-style
fine-tuning) do on purpose. The value differs from the default ``mean`` (which divides
each sample's loss by its target length and averages), so ctcdoctor reports it, but
only as a note (info): the gradient is about ``batch size x mean label length`` times
larger, so the learning rate must be scaled to match.

In real training: with a learning rate tuned for ``mean``, the first steps overshoot;
with a matched learning rate, nothing is wrong.

Expected finding: CTC030
Expected mistake: reduction
Expected exit: 0 (an info note does not fail the check, even with fail-on = "warning")
"""
from __future__ import annotations

import _base
import torch
import torch.nn.functional as F

from ctcdoctor import Setup
from ctcdoctor.toydata import ALPHABET, WordImageDataset


def criterion(output, batch):
    _, targets, widths, target_lengths = batch
    return F.ctc_loss(output, targets, _base.ocr_output_lengths(widths), target_lengths, blank=0, reduction="sum")


def build() -> Setup:
    torch.manual_seed(0)
    data = WordImageDataset(n=64, seed=0)
    return Setup(
        model=_base.CRNN(),
        loader=_base.loader(data),
        blank=0,
        alphabet=ALPHABET,
        criterion=criterion,
        output_lengths=_base.ocr_output_lengths,
    )
