"""Broken: per-frame normalisation divides by zero on digitally silent frames -> NaN inputs.

The bug: features are normalised per frame over frequency, ``(x - mean) / std``
with no epsilon. Some clips start with a few frames of digital silence (exact zeros
from the recorder), whose log power is the same floor (-70) in every bin; their
std is 0, and 0 / 0 = NaN.

In real training: the first batch that holds such a clip makes the loss NaN, the
NaN gradients poison every weight in one optimizer step, and from then on the model
outputs NaN for everything (or, with ``zero_infinity=True`` and NaN-skipping, the
run silently trains on fewer clips).

Fix: add an epsilon (``std.clamp_min(1e-5)``), or normalise per utterance.

Expected finding: CTC040
"""
from __future__ import annotations

import _base
import torch

from ctcdoctor import Setup
from ctcdoctor.toydata import PHONES, SpeechDataset, collate_speech

LOG_FLOOR = -70.0  # the extractor floors log power at -70 (~ log 4e-31): what digital silence becomes


def normalise_frames(spec: torch.Tensor) -> torch.Tensor:
    """Per-frame mean/variance normalisation over the mel bins."""
    return (spec - spec.mean(dim=0)) / spec.std(dim=0)  # BUG: std is 0 on a constant frame


class Clips(SpeechDataset):
    """Toy utterances as the recorder delivered them, then normalised."""

    def __init__(self, n: int, seed: int = 0) -> None:
        super().__init__(n=n, normalize=False, seed=seed)
        for i, spec in enumerate(self.features):
            if i % 8 == 3:  # every 8th clip starts with 3 frames of digital silence
                spec[:, :3] = LOG_FLOOR
            self.features[i] = normalise_frames(spec)


def build() -> Setup:
    data = Clips(n=128, seed=0)
    return Setup(
        model=_base.SpeechCTC(),
        loader=_base.loader(data, collate_fn=collate_speech),
        blank=0,
        alphabet=list(PHONES),
        criterion=_base.speech_criterion,
        output_lengths=_base.speech_output_lengths,
    )
