"""Broken (Hugging Face): padded audio without attention_mask for a model that takes one.

The bug: the feature extractor was created with ``return_attention_mask=False`` (the setting
of wav2vec2-base's preprocessor), but the model has a layer-norm feature encoder
(``feat_extract_norm="layer"``, as wav2vec2-large-lv60, XLS-R and MMS), which is trained with
the mask. The collator pads the audio with zeros and returns no mask.

In real training: the model attends to the zeros as if they were audio, and its loss counts
every sample as the full padded length, so CTC aligns each short transcript over the padded
silence as well; the model learns to stretch words over silence that is not there at test time.

Fix: ``Wav2Vec2FeatureExtractor(..., return_attention_mask=True)`` and pass the mask with the
batch (the guides' ``DataCollatorCTCWithPadding`` does once the feature extractor returns it).

Expected finding: CTC105
"""
from __future__ import annotations

import torch
from _hf_base import hf

from ctcdoctor import Setup


def build():
    torch.manual_seed(0)
    processor = hf.make_processor(return_attention_mask=False)  # BUG: this model takes a mask
    return Setup(model=hf.make_model(processor), loader=hf.make_loader(processor), processor=processor)
