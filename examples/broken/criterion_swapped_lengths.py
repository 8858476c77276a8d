"""Broken: the loss call swaps input (frame) lengths and target lengths.

The bug: ``F.ctc_loss(output, targets, target_lengths, frame_lengths, ...)``: the third
and fourth arguments are swapped. Targets are padded to a fixed 32 labels (as in
Keras-style ``pad_sequences(maxlen=32)`` pipelines), so PyTorch does not raise; every
sample now "has" 3-8 frames for 16-40 labels, which is impossible, and because the
author set ``zero_infinity=True`` "to get rid of the occasional inf", every sample's
loss is silently 0.

In real training: the loss is exactly 0.0 from the first step, gradients are 0, the
model never changes. People then suspect the optimiser or the learning rate.

Fix: ``F.ctc_loss(output, targets, frame_lengths, target_lengths, blank=0)`` (and keep
``zero_infinity=False`` so an impossible sample shows up as ``inf``).

Expected finding: CTC030
Expected mistake: swapped_lengths
"""
from __future__ import annotations

import _base
import torch
import torch.nn.functional as F

from ctcdoctor import Setup
from ctcdoctor.toydata import ALPHABET, WordImageDataset, collate_images

MAX_LABEL = 32


def collate(batch):
    inputs, targets, widths, target_lengths = collate_images(batch, pad_value=PAD)
    padded = torch.zeros(len(batch), MAX_LABEL, dtype=torch.long)
    padded[:, : targets.shape[1]] = targets
    return inputs, padded, widths, target_lengths


def criterion(output, batch):
    _, targets, widths, target_lengths = batch
    frames = _base.ocr_output_lengths(widths)
    return F.ctc_loss(output, targets, target_lengths, frames, blank=0, zero_infinity=True)  # <- swapped


data = WordImageDataset(n=64, seed=0)
PAD = data.pad_value


def build() -> Setup:
    torch.manual_seed(0)
    return Setup(
        model=_base.CRNN(),
        loader=_base.loader(data, collate_fn=collate),
        blank=0,
        alphabet=ALPHABET,
        criterion=criterion,
        output_lengths=_base.ocr_output_lengths,
    )
