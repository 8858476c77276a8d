"""Broken: a Conv1d head (N, C, T) with `log_softmax` over the last axis, which is time.

The bug: the model is `examples/speech_conv1d_nct.py`'s, whose final `Conv1d` gives
`(N, C, T')`, but its forward ends with the habit of `(N, T, C)` models:
`F.log_softmax(x, dim=-1)`. For a Conv1d output the last axis is time, so each class becomes a
distribution over the frames.

In real training: the loss is finite and falls a little, since CTC still sums over
alignments, but no frame holds a distribution over the classes: decoding is meaningless, and
the model cannot learn which symbol each frame shows.

Fix: `F.log_softmax(x, dim=1)` for `(N, C, T)` (the class axis of a Conv1d output).

Expected finding: CTC024
"""
from __future__ import annotations

import _base
import torch
import torch.nn.functional as F

from ctcdoctor import Setup
from ctcdoctor.toydata import PHONES, SpeechDataset, collate_speech

conv = _base._load_example("speech_conv1d_nct")


class SoftmaxOverTime(conv.ConvCTC):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.log_softmax(self.acoustic(x), dim=-1)  # BUG: the last axis of (N, C, T') is time


def build():
    torch.manual_seed(0)
    data = SpeechDataset(n=64, seed=0)
    return Setup(model=SoftmaxOverTime(), loader=_base.loader(data, collate_fn=collate_speech), blank=0,
                 alphabet=list(PHONES), criterion=conv.criterion, output_lengths=conv.output_lengths)
