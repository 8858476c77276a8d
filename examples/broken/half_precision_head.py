"""Broken: the output is cast to float16 before it reaches the CTC loss.

The bug: to save memory on long sequences the head returns ``.half()``
log-probabilities; the criterion casts back with ``.float()`` because the CPU CTC
kernel refuses Half, but the precision is already gone. float16 has a 10-bit
mantissa: log-probabilities near -20 (common once a model is confident) are
rounded to steps of 0.016, and CTC sums one per frame along every path.

In real training: the loss and gradients carry rounding noise; it is small here at
init (about 0.003 per sample) and grows with sequence length and with the
confidence of a trained model. The same habit on GPU usually comes with
``log_softmax`` under autocast, where long inputs turn the loss inf or NaN. The
standard advice is to compute CTC in float32.

Fix: keep the head and the loss in float32 (``output.float()`` *before*
``log_softmax``, or exclude the CTC loss from autocast).

Expected finding: CTC025
"""
from __future__ import annotations

import _base
import torch
import torch.nn.functional as F

from ctcdoctor import Setup
from ctcdoctor.toydata import ALPHABET, WordImageDataset


class CRNN(_base.CRNN):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.log_softmax(self.logits(x), dim=-1).half()  # BUG: "halves the memory"


def criterion(output: torch.Tensor, batch) -> torch.Tensor:
    # ctc_loss_cpu is not implemented for Half, so the author upcast here: too late.
    return _base.ocr_criterion(output.float(), batch)


def build() -> Setup:
    data = WordImageDataset(n=128, seed=0)
    return Setup(
        model=CRNN(),
        loader=_base.loader(data),
        blank=0,
        alphabet=ALPHABET,
        criterion=criterion,
        output_lengths=_base.ocr_output_lengths,
    )
