"""Broken: raw 0-255 pixel values are fed to the model.

The bug: the images are converted to float but never scaled or standardised, so the
network sees values from 0 to 255 (mean ~35, std ~77) where its default init
expects inputs of order 1.

In real training: how much it hurts depends on what follows the input. Here the
first convolution is followed by BatchNorm, which absorbs the scale in training
mode (on this data the 12-epoch loss curves of raw and standardised inputs agree
to 0.01), so the warning flags a fragility rather than a crash: without such a
layer, or with a pretrained first layer that expects [0, 1] inputs, activations
are 255x too large, the LSTM gates saturate and training stalls at the blank
plateau; and any change of pipeline (a normalised validation set, an exported
model) silently feeds a different input range.

Fix: divide by 255 (or standardise with the data set's mean and std).

Expected finding: CTC041
"""
from __future__ import annotations

import _base

from ctcdoctor import Setup
from ctcdoctor.toydata import ALPHABET, WordImageDataset


def build() -> Setup:
    # BUG: normalize=False, scale=255 -> float images straight from uint8 PNGs.
    data = WordImageDataset(n=128, normalize=False, scale=255.0, seed=0)
    return Setup(
        model=_base.CRNN(),
        loader=_base.loader(data),
        blank=0,
        alphabet=ALPHABET,
        criterion=_base.ocr_criterion,
        output_lengths=_base.ocr_output_lengths,
    )
