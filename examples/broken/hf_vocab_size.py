"""Broken (Hugging Face): the CTC head has more classes than the tokenizer has tokens.

The bug: ``vocab_size=32`` was copied from the English checkpoint's config, while this
tokenizer (12 letters, "|", "[UNK]", "[PAD]", "<s>", "</s>") has 17 tokens.

In real training: classes 17-31 belong to no token, so no label ever uses them; the head
spends its first steps learning to avoid them, and ``processor.batch_decode`` turns any that
win a frame into "[UNK]". Usually it means the head (or config) was made for another
vocabulary. The opposite mistake, fewer classes than tokens, is an error: a label without a
row raises ``Label values must be <= vocab_size``.

Fix: ``Wav2Vec2ForCTC.from_pretrained(..., vocab_size=len(processor.tokenizer))``.

Expected finding: CTC100
"""
from __future__ import annotations

import torch
from _hf_base import hf

from ctcdoctor import Setup


def build():
    torch.manual_seed(0)
    processor = hf.make_processor()
    model = hf.make_model(processor, vocab_size=32)  # BUG: another vocabulary's size
    return Setup(model=model, loader=hf.make_loader(processor), processor=processor)
