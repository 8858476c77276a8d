"""Broken (Hugging Face): raw int16 audio reaches the model (no normalisation).

The bug: the clips are read as 16-bit integers (``scipy.io.wavfile.read`` returns int16) and the
feature extractor was created with ``do_normalize=False``, so the model gets values up to
±32767. The model is a wav2vec2-base-like one (group-norm feature encoder, no attention mask),
so the inputs reach it as one tensor.

In real training: the first conv layer's activations are thousands of times larger than in
pre-training; the normalisation layers absorb part of it, but the loss starts far off and
fine-tuning a pre-trained checkpoint mostly destroys what it learned.

Fix: ``Wav2Vec2FeatureExtractor(..., do_normalize=True)`` (zero mean, unit variance per
utterance), or divide int16 audio by 32768 when reading it.

Expected finding: CTC041
"""
from __future__ import annotations

import numpy as np
import torch
from _hf_base import hf

from ctcdoctor import Setup


def build():
    torch.manual_seed(0)
    processor = hf.make_processor(do_normalize=False, return_attention_mask=False)  # BUG: no normalisation
    data = hf.SpeechDataset(processor)
    for item in data.items:
        item["input_values"] = np.round(item["input_values"] * 32767).astype(np.float32)  # int16 samples as floats
    model = hf.make_model(processor, feat_extract_norm="group", do_stable_layer_norm=False)
    return Setup(model=model, loader=hf.make_loader(processor, data), processor=processor)
