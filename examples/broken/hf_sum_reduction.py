"""Broken (Hugging Face): the loss is summed (Wav2Vec2Config's default) with a learning rate tuned for 'mean'.

The bug: the model was created without ``ctc_loss_reduction="mean"``; ``Wav2Vec2Config``
defaults to ``"sum"`` (so do Hubert, Data2VecAudio, Wav2Vec2-Conformer and Wav2Vec2-BERT).
The learning rate (3e-4) comes from a guide that uses ``"mean"``.

In real training: the loss and its gradient are the sum over the batch of each sample's
negative log-likelihood, about batch size × transcript length times the "mean" value; the
optimizer's steps are that much larger than intended. Adam partly absorbs the scale, plain SGD
does not; either way the logged loss is not comparable with the guide's.

Fix: ``Wav2Vec2ForCTC.from_pretrained(..., ctc_loss_reduction="mean")``, or keep ``"sum"`` on
purpose and scale the learning rate.

Expected finding: CTC103
Expected exit: 0
"""
from __future__ import annotations

import torch
from _hf_base import hf

from ctcdoctor import Setup


def build():
    torch.manual_seed(0)
    processor = hf.make_processor()
    model = hf.make_model(processor, ctc_loss_reduction="sum")  # BUG: the default of Wav2Vec2Config
    return Setup(model=model, loader=hf.make_loader(processor), processor=processor,
                 optimizer=lambda params: torch.optim.AdamW(params, lr=3e-4))
