"""Broken: the collate function gives every sample the padded width as its target length.

The bug: the targets are padded with 0 (the blank) to the longest label of the batch, and
``target_lengths = torch.full((N,), targets.shape[1])``, a line from a fixed-length recipe
(every captcha has 5 characters) kept when the labels became variable-length. Every short
label's length counts its padding.

In real training: no error. ``F.ctc_loss`` reads each sample's padding zeros as labels, so
the model is asked to spell the blank as a letter after every short transcript. Those
targets are unreachable (CTC drops blanks when it collapses a path), their padded lengths
plus the runs of equal zeros need more frames than some utterances have, and the loss
stays high on exactly the short utterances.

Fix: count the labels before the padding:
``target_lengths = torch.tensor([len(label) for label in labels])`` (``collate_speech``
does). ``ctcdoctor check`` and ``ctcdoctor scan`` both report CTC012 (not CTC011: the
blanks are padding, not labels) and count the frames each sample needs with its true length.

Expected finding: CTC012
"""
from __future__ import annotations

import _base
import torch

from ctcdoctor import Setup
from ctcdoctor.toydata import PHONES, SpeechDataset, collate_speech


def collate(batch):
    inputs, targets, frames, _ = collate_speech(batch)
    target_lengths = torch.full((targets.shape[0],), targets.shape[1])  # BUG: the padded width, not the label lengths
    return inputs, targets, frames, target_lengths


def build() -> Setup:
    torch.manual_seed(0)
    data = SpeechDataset(n=128, seed=0)
    return Setup(
        model=_base.SpeechCTC(),
        loader=_base.loader(data, collate_fn=collate),
        blank=0,
        alphabet=list(PHONES),
        criterion=_base.speech_criterion,
        output_lengths=_base.speech_output_lengths,
    )
