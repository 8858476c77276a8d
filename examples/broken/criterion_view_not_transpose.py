"""Broken: the batch-first output is reshaped, not transposed, before the loss.

The bug: the speech model returns ``(N, T, C)``; ``F.ctc_loss`` wants ``(T, N, C)``, and
the author wrote ``output.view(T, N, C)`` instead of ``output.transpose(0, 1)``. The
shapes are right, so nothing raises, but the memory is reinterpreted: "frame" t of
"sample" n is now a mix of frames from different utterances.

In real training: the loss falls a little (the model learns label priors) and then
plateaus; decodes are the same few phones for every utterance.

Fix: ``F.ctc_loss(output.transpose(0, 1), ...)`` — never ``view``/``reshape`` to swap axes.

Expected finding: CTC030
Expected mistake: layout
"""
from __future__ import annotations

import _base
import torch
import torch.nn.functional as F

from ctcdoctor import Setup
from ctcdoctor.toydata import PHONES, SpeechDataset, collate_speech


def criterion(output, batch):
    _, targets, frames, target_lengths = batch
    n, t, c = output.shape
    log_probs = output.reshape(t, n, c)  # <- should be output.transpose(0, 1)
    return F.ctc_loss(log_probs, targets, _base.speech_output_lengths(frames), target_lengths, blank=0)


def build() -> Setup:
    torch.manual_seed(0)
    data = SpeechDataset(n=64, seed=0)
    return Setup(
        model=_base.SpeechCTC(),
        loader=_base.loader(data, collate_fn=collate_speech),
        blank=0,
        alphabet=list(PHONES),
        criterion=criterion,
        output_lengths=_base.speech_output_lengths,
    )
