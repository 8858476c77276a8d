"""Broken (Hugging Face): SpecAugment's time masks are longer than the shortest clips.

The bug: ``mask_time_length=30`` (frames, i.e. 0.6 s) was set "to mask longer spans" for a
data set that also holds short commands ("no", "sent": 0.5-0.8 s, 24-40 frames).

In real training: ``_compute_mask_indices`` raises ``ValueError: mask_length has to be
smaller than sequence_length`` on the first training batch whose longest clip has fewer than 30
frames (a batch of short clips with group_by_length, or batch size 1), hours into the run. Clips
just above 30 frames have two 30-frame masks (``mask_time_min_masks=2``) over most of their
length at every step.

Fix: drop clips shorter than the masks, or keep ``mask_time_length`` at 10 (the default).

Expected finding: CTC106
"""
from __future__ import annotations

import torch
from _hf_base import hf

TEXTS = hf.TEXTS[:12] + ("no", "sent", "a rose", "hot")


def build():
    torch.manual_seed(0)
    processor = hf.make_processor()
    model = hf.make_model(processor, mask_time_length=30)  # BUG: longer than the short clips
    data = hf.SpeechDataset(processor, texts=TEXTS)
    return model, hf.make_loader(processor, data)
