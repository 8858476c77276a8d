"""Broken (Hugging Face): upper-case transcripts against a lower-case vocabulary become [UNK].

The bug: the vocabulary was built from lower-cased text, but the transcripts are fed as they
come (upper case, as in LibriSpeech). ``Wav2Vec2CTCTokenizer`` maps every unknown character to
"[UNK]" without a word.

In real training: almost every label is "[UNK]"; the model learns to output "[UNK]" for speech
and never learns the words. Nothing raises.

Fix: normalise the transcripts as the vocabulary was built (``text.lower()``) before
tokenizing; for an upper-case vocabulary, ``Wav2Vec2CTCTokenizer(..., do_lower_case=True)``
upper-cases the text.

Expected finding: CTC102
"""
from __future__ import annotations

import torch
from _hf_base import hf

from ctcdoctor import Setup


def build():
    torch.manual_seed(0)
    processor = hf.make_processor()
    transcripts = [text.upper() for text in hf.TEXTS]  # BUG: the vocabulary is lower case
    data = hf.SpeechDataset(processor, transcripts=transcripts)
    return Setup(model=hf.make_model(processor), loader=hf.make_loader(processor, data), processor=processor)
