"""Overfit with your own loss: a softmax head whose loss takes the log (Keras's recipe).

The captcha OCR example of Keras, ported to PyTorch as users do: the model ends with
``softmax`` (Keras's ``ctc_batch_cost`` wants probabilities), and the criterion takes
``log(probs + 1e-7)`` before ``F.ctc_loss``, as ``ctc_batch_cost`` does. The pair is
consistent: trained with its own criterion, the model fits.

``ctcdoctor overfit`` trains ``Setup.criterion`` when there is one, so it judges the
set-up as written: fitted. (Training ctcdoctor's own loss, it used to train ``log_softmax(softmax(x))`` and
reported a blank collapse, CTC071.) The output is still probabilities, which ``check``
and overfit's static checks report as CTC020: ``log`` of a softmax underflows for
confident outputs (the ``1e-7`` caps the damage here), so the exit code is 1 while the
verdict is "fitted".

Fix (for CTC020): end the model with ``log_softmax`` and pass its output to
``F.ctc_loss`` as it is.

Expected finding: CTC020
Expected overfit verdict: fitted
"""
from __future__ import annotations

import _base
import torch
import torch.nn.functional as F

from ctcdoctor import Setup
from ctcdoctor.toydata import ALPHABET, WordImageDataset

EPSILON = 1e-7
"""Keras's backend epsilon, added before the log in ctc_batch_cost."""


class SoftmaxCRNN(_base.CRNN):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits(x).softmax(dim=-1)  # probabilities, as Keras's ctc_batch_cost expects


def criterion(output: torch.Tensor, batch) -> torch.Tensor:
    """Keras's ctc_batch_cost in PyTorch: log of the probabilities (plus epsilon), then CTC."""
    _, targets, widths, target_lengths = batch
    log_probs = torch.log(output + EPSILON)
    return F.ctc_loss(log_probs, targets, _base.ocr_output_lengths(widths), target_lengths, blank=0)


def build():
    torch.manual_seed(0)
    data = WordImageDataset(n=32, seed=0)
    return Setup(
        model=SoftmaxCRNN(),
        loader=_base.loader(data),
        blank=0,
        alphabet=ALPHABET,
        criterion=criterion,
        output_lengths=_base.ocr_output_lengths,
    )
