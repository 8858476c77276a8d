"""Broken: the ``output_lengths`` helper returns raw image widths, not frame counts.

The bug: the helper that maps image widths to output frames forgets the CNN's x4
width pooling: a 112 px image has 28 output frames, the helper says 112. The
training loss computes ``widths // 4`` inline and is fine, but the helper feeds the
decoder and the evaluation (and is what this module hands to ctcdoctor).

In real training: nothing raises. The loss goes down, but evaluation decodes each
image over ``length`` frames of the padded batch, i.e. including the padding
frames of every image narrower than the widest one; the model was never trained
on those frames, so spurious letters appear at word ends and the validation CER
stays high while the training loss looks fine. (Had the helper also fed
``F.ctc_loss``, PyTorch would have raised "Expected input_lengths to have value at
most 28, but got value 112".)

Fix: map widths through the pooling: ``widths // 4`` here (``output_lengths`` in
``examples/ocr_crnn.py``).

Expected finding: CTC004
"""
from __future__ import annotations

import _base
import torch

from ctcdoctor import Setup
from ctcdoctor.toydata import ALPHABET, WordImageDataset


def output_lengths(widths: torch.Tensor) -> torch.Tensor:
    return widths  # BUG: raw widths, not widths after the x4 pooling


def greedy_decode(output: torch.Tensor, widths: torch.Tensor) -> list[list[int]]:
    """The evaluation decoder that uses the helper: collapse repeats, drop blanks."""
    best = output.argmax(-1).T  # (N, T)
    decoded = []
    for ids, n in zip(best.tolist(), output_lengths(widths).tolist()):
        ids = ids[:n]  # with raw widths this keeps every padded frame
        decoded.append([k for j, k in enumerate(ids) if k != 0 and (j == 0 or k != ids[j - 1])])
    return decoded


def build() -> Setup:
    data = WordImageDataset(n=128, seed=0)
    return Setup(
        model=_base.CRNN(),
        loader=_base.loader(data),
        blank=0,
        alphabet=ALPHABET,
        criterion=_base.ocr_criterion,  # correct: uses widths // 4
        output_lengths=output_lengths,
    )
