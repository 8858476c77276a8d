"""A healthy Hugging Face CTC fine-tuning set-up: Wav2Vec2ForCTC, a Wav2Vec2Processor and the
collator of the fine-tuning guides, all tiny and random (no download).

Run:  ctcdoctor check examples/hf_wav2vec2.py
      ctcdoctor overfit examples/hf_wav2vec2.py --sample 0

`build()` returns the model and loader exactly as a training script has them, with the processor,
in a `ctcdoctor.Setup`: no adapter code. ctcdoctor recognises the transformers `*ForCTC` model and
reads the blank, the class count, the lengths and the loss from it. `build_plain()` returns the
bare `(model, loader)` pair, which works too (without the tokenizer's alphabet).

Model: a 2-layer Wav2Vec2 with hidden size 32 and a 3-layer conv feature encoder of total stride
320 (50 frames a second of 16 kHz audio, as the real models), layer-norm feature encoder (as
XLS-R and MMS: it takes an attention_mask), loaded with the settings of the XLS-R fine-tuning
guide: ctc_loss_reduction="mean", pad_token_id and vocab_size from the tokenizer, layerdrop 0.

Tokenizer: a Wav2Vec2CTCTokenizer over a vocab.json written to a temporary folder, built as the
guides build it: the letters, "|" for the space, then "[UNK]" and "[PAD]" (the blank).

Data: 16 synthetic utterances of 0.6-1.7 s. Each letter is a 120 ms tone with a frequency of its
own, a space is 80 ms of near-silence, so the transcript can be learned from the audio. Each
utterance is normalised by the feature extractor (do_normalize) before padding; the collator
pads the audio with its attention_mask and the labels with -100 (DataCollatorCTCWithPadding).

Expected finding: none
"""
from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from transformers import (
    Wav2Vec2Config,
    Wav2Vec2CTCTokenizer,
    Wav2Vec2FeatureExtractor,
    Wav2Vec2ForCTC,
    Wav2Vec2Processor,
)

from ctcdoctor import Setup

RATE = 16000
LETTERS = "abcdehlnorst"
TEXTS = (
    "the cat sat", "a red hat", "the rose", "cold tea", "hot sand", "the seal", "store", "a lost cat",
    "the dean sat", "no death", "ten rats", "a loan", "the shore", "sent", "a stole", "an old hen",
)


def make_processor(
    letters: str = LETTERS, do_normalize: bool = True, return_attention_mask: bool = True
) -> Wav2Vec2Processor:
    """The guides' tokenizer (letters, "|", "[UNK]", "[PAD]") and feature extractor, in one processor."""
    vocab = {letter: index for index, letter in enumerate(sorted(letters))}
    vocab["|"] = len(vocab)
    vocab["[UNK]"] = len(vocab)
    vocab["[PAD]"] = len(vocab)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "vocab.json"
        path.write_text(json.dumps(vocab), encoding="utf-8")
        tokenizer = Wav2Vec2CTCTokenizer(str(path), unk_token="[UNK]", pad_token="[PAD]", word_delimiter_token="|")
    feature_extractor = Wav2Vec2FeatureExtractor(
        feature_size=1, sampling_rate=RATE, padding_value=0.0, do_normalize=do_normalize,
        return_attention_mask=return_attention_mask,
    )
    return Wav2Vec2Processor(feature_extractor=feature_extractor, tokenizer=tokenizer)


def make_model(processor: Wav2Vec2Processor, **overrides) -> Wav2Vec2ForCTC:
    """A tiny random Wav2Vec2ForCTC, configured as the XLS-R fine-tuning guide loads the real one."""
    settings = dict(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
        conv_dim=(32, 32, 32), conv_kernel=(10, 8, 4), conv_stride=(5, 8, 8), conv_bias=True,
        num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4,
        feat_extract_norm="layer", do_stable_layer_norm=True,
        attention_dropout=0.0, hidden_dropout=0.0, feat_proj_dropout=0.0, layerdrop=0.0,
        mask_time_prob=0.05, ctc_loss_reduction="mean",
        pad_token_id=processor.tokenizer.pad_token_id, vocab_size=len(processor.tokenizer),
    )
    settings.update(overrides)
    return Wav2Vec2ForCTC(Wav2Vec2Config(**settings))


def synthesize(text: str, rng: np.random.Generator, letters: str = LETTERS) -> np.ndarray:
    """Audio for a transcript: a tone per letter (frequency by letter), quiet noise for a space."""
    pieces = [0.002 * rng.standard_normal(int(0.1 * RATE))]
    for char in text:
        if char == " ":
            pieces.append(0.002 * rng.standard_normal(int(0.08 * RATE)))
            continue
        index = letters.find(char.lower())
        frequency = 250.0 + 180.0 * max(index, 0)
        t = np.arange(int(0.12 * RATE)) / RATE
        envelope = np.hanning(t.size)
        pieces.append(0.5 * envelope * np.sin(2 * np.pi * frequency * t) + 0.002 * rng.standard_normal(t.size))
        pieces.append(0.002 * rng.standard_normal(int(0.02 * RATE)))
    pieces.append(0.002 * rng.standard_normal(int(0.1 * RATE)))
    return np.concatenate(pieces).astype(np.float32)


class SpeechDataset(Dataset):
    """Items as `datasets.map(prepare_dataset)` makes them in the guides: normalised audio and label ids."""

    def __init__(self, processor: Wav2Vec2Processor, texts=TEXTS, seed: int = 0, scale: float = 1.0,
                 transcripts=None) -> None:
        rng = np.random.default_rng(seed)
        self.items = []
        for index, text in enumerate(texts):
            audio = synthesize(text, rng) * scale
            values = processor.feature_extractor(audio, sampling_rate=RATE).input_values[0]
            label_text = text if transcripts is None else transcripts[index]
            self.items.append({"input_values": values, "labels": processor.tokenizer(label_text).input_ids})

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict:
        return self.items[index]


class DataCollatorCTCWithPadding:
    """The collator of the Hugging Face CTC fine-tuning guides: pad audio and labels, labels with -100."""

    def __init__(self, processor: Wav2Vec2Processor, padding: bool | str = True) -> None:
        self.processor = processor
        self.padding = padding

    def __call__(self, features: list[dict]) -> dict[str, torch.Tensor]:
        input_features = [{"input_values": feature["input_values"]} for feature in features]
        label_features = [{"input_ids": feature["labels"]} for feature in features]
        batch = self.processor.feature_extractor.pad(input_features, padding=self.padding, return_tensors="pt")
        labels_batch = self.processor.tokenizer.pad(label_features, padding=self.padding, return_tensors="pt")
        # Replace padding with -100 so that the loss ignores it.
        batch["labels"] = labels_batch["input_ids"].masked_fill(labels_batch.attention_mask.ne(1), -100)
        return batch


def make_loader(
    processor: Wav2Vec2Processor, dataset: Dataset | None = None, collator=None, batch_size: int = 8
) -> DataLoader:
    return DataLoader(dataset if dataset is not None else SpeechDataset(processor), batch_size=batch_size,
                      shuffle=True, collate_fn=collator or DataCollatorCTCWithPadding(processor))


def build():
    """What a training script has: the model, the train loader (the Trainer's own DataLoader is the same) and the
    processor. ctcdoctor recognises the Wav2Vec2ForCTC and reads the blank, the class count, the lengths and the
    loss from it; the processor gives the alphabet and the vocabulary checks."""
    torch.manual_seed(0)
    processor = make_processor()
    return Setup(model=make_model(processor), loader=make_loader(processor), processor=processor)


def build_plain():
    """The least a user can hand over: `(model, loader)`, no tokenizer (no alphabet, no vocabulary checks)."""
    torch.manual_seed(0)
    processor = make_processor()
    return make_model(processor), make_loader(processor)
