"""Broken (Hugging Face): some clips are too short for their transcripts, and ctc_zero_infinity is False.

The bug: four clips were cut to their first 0.2 s (a trimming step applied to the audio, not
to the transcript), so 10 output frames carry transcripts of up to 12 labels (letters and
"|"); ``config.ctc_zero_infinity`` keeps its default, ``False``.

In real training: those samples have no CTC alignment; their loss is ``inf`` and the
gradients ``NaN``. The first step on a batch holding one turns every weight into NaN, and the
Trainer logs ``loss: nan`` from then on.

Fix: drop (or fix) the clips whose transcripts need more frames than their audio gives
(CTC001 lists them); ``ctc_zero_infinity=True`` only hides them (then CTC104 warns). The cut
clips are also too short for SpecAugment's two 10-frame masks (CTC106).

Expected finding: CTC104
Expected finding: CTC001
Expected finding: CTC106
"""
from __future__ import annotations

import torch
from _hf_base import hf


def build():
    torch.manual_seed(0)
    processor = hf.make_processor()
    data = hf.SpeechDataset(processor)
    for item in data.items[::4]:
        # BUG: the audio is cut, the transcript is not
        item["input_values"] = item["input_values"][: int(0.2 * hf.RATE)]
    return hf.make_model(processor), hf.make_loader(processor, data)
