"""Broken: the collate function never copies the images; every input is all zeros.

The bug: the custom collate function allocates a zero batch and "copies" each
image with ``Tensor.add``, which is out of place: the sum is computed and thrown
away, and the batch stays zeros. (``add_`` or plain assignment was meant.) Targets
and lengths are still right, so nothing looks wrong in the shapes.

In real training: the model cannot see anything, so the best it can do is the
label prior: the loss drops a little at the start (learning the blank ratio and
common letters), then flattens; the output collapses to blanks or to the most
frequent letters, for every image alike.

Fix: ``inputs[i, :, :, :w] = image`` (or ``.copy_(image)``).

Expected finding: CTC042
"""
from __future__ import annotations

import _base
import torch

from ctcdoctor import Setup
from ctcdoctor.toydata import ALPHABET, WordImageDataset


def collate(batch):
    images, targets = zip(*batch)
    widths = torch.tensor([im.shape[-1] for im in images])
    inputs = torch.zeros(len(images), 1, 32, int(widths.max()))
    for i, im in enumerate(images):
        inputs[i, :, :, : im.shape[-1]].add(im)  # BUG: out-of-place add, result discarded
    target_lengths = torch.tensor([len(t) for t in targets])
    padded = torch.nn.utils.rnn.pad_sequence(targets, batch_first=True)
    return inputs, padded, widths, target_lengths


def build() -> Setup:
    data = WordImageDataset(n=128, seed=0)
    return Setup(
        model=_base.CRNN(),
        loader=_base.loader(data, collate_fn=collate),
        blank=0,
        alphabet=ALPHABET,
        criterion=_base.ocr_criterion,
        output_lengths=_base.ocr_output_lengths,
    )
