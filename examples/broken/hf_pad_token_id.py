"""Broken (Hugging Face): the CTC blank (config.pad_token_id) is a letter, not the tokenizer's [PAD].

The bug: the model was created without ``pad_token_id=processor.tokenizer.pad_token_id``, so
it keeps ``Wav2Vec2Config``'s default ``pad_token_id=0``, which is the letter "a" in this
vocabulary; the tokenizer's "[PAD]" is id 14.

In real training: the loss uses "a" as its blank. transformers 5 drops every "a" from the
targets (its loss masks labels equal to the blank), transformers 4 trains them as blank targets;
either way the model never learns "a", and ``processor.batch_decode``, which removes "[PAD]",
prints a string full of "a" for the blank frames.

Fix: ``Wav2Vec2ForCTC.from_pretrained(..., pad_token_id=processor.tokenizer.pad_token_id)``.

Expected finding: CTC101
Expected finding: CTC107
"""
from __future__ import annotations

import torch
from _hf_base import hf

from ctcdoctor import Setup


def build():
    torch.manual_seed(0)
    processor = hf.make_processor()
    model = hf.make_model(processor, pad_token_id=0)  # BUG: Wav2Vec2Config's default, the letter "a" here
    return Setup(model=model, loader=hf.make_loader(processor), processor=processor)
