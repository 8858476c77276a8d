"""Tiny set-ups of the CTC models that transformers 5 added with a convention of their own (a module of its own:
see tests/ctchelpers.py): ParakeetForCTC, LasrForCTC and GraniteSpeech5ForCTC take `input_features`; OmniASRForCTC
takes `input_values` of shape (N, 1, L) with a `padding_mask` and names its blank `config.blank_token_id`. None has
`_get_feat_extract_output_lengths`: their output lengths come from `_get_subsampling_output_length`.

Every model is random and small (hidden size 32, 1 layer), built from its config: no download. The audio is the
synthetic speech of examples/hf_wav2vec2.py; the features are made by the feature extractor transformers ships for
the model (GraniteSpeech5's needs torchaudio, so its features are made here as it makes them: log-mel frames with
their deltas, two frames stacked). Labels come from a character tokenizer and are padded with -100.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import transformers
from hfkit import example
from torch.utils.data import DataLoader

#: The transcripts' symbols; "▁" is the word separator, as in the models' sentencepiece vocabularies.
SYMBOLS = [*sorted(example.LETTERS), "▁", "<unk>"]
TEXTS = example.TEXTS[:8]
BATCH = 4


def char_tokenizer(blank_first: bool) -> Any:
    """A character tokenizer of the kind these checkpoints ship (a `tokenizers` backend); the blank is `<pad>`, last
    (Parakeet: pad_token_id = vocab_size - 1) or first (OmniASR: blank_token_id = 0, pad_token_id = 1)."""
    from tokenizers import Tokenizer, models, pre_tokenizers

    names = (["<blank>", "<pad>"] if blank_first else []) + SYMBOLS + ([] if blank_first else ["<pad>"])
    backend = Tokenizer(models.WordLevel({name: index for index, name in enumerate(names)}, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Split("", "isolated")
    cls = getattr(transformers, "ParakeetTokenizer", transformers.PreTrainedTokenizerFast)
    return cls(tokenizer_object=backend, pad_token="<pad>", unk_token="<unk>")


def encode(tokenizer: Any, text: str) -> list[int]:
    return list(tokenizer(text.replace(" ", "▁")).input_ids)


def pad_labels(rows: list[list[int]]) -> torch.Tensor:
    width = max(len(row) for row in rows)
    return torch.tensor([row + [-100] * (width - len(row)) for row in rows])


def audio(seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [example.synthesize(text, rng).astype(np.float32) for text in TEXTS]


# ---------------------------------------------------------------------------------------------- features
def granite_features(clips: list[np.ndarray]) -> dict[str, torch.Tensor]:
    """GraniteSpeech5FeatureExtractor's output without torchaudio: 80 log-mel bins every 10 ms, each with its delta,
    two frames stacked (320 features at 50 frames a second), and an attention_mask of ceil(mel frames / 2)."""
    from transformers.audio_utils import mel_filter_bank

    mel = torch.tensor(mel_filter_bank(num_frequency_bins=257, num_mel_filters=80, min_frequency=0.0,
                                       max_frequency=8000.0, sampling_rate=16000), dtype=torch.float32)
    rows, counts = [], []
    for clip in clips:
        wave = torch.from_numpy(clip)
        spec = torch.stft(wave, n_fft=512, hop_length=160, win_length=400, window=torch.hann_window(400),
                          return_complex=True).abs().pow(2)[:, : len(clip) // 160]
        logmel = (spec.T @ mel).clamp(min=1e-10).log10()
        logmel = torch.maximum(logmel, logmel.max() - 8.0) / 4 + 1  # its floor of 8 dB below the peak, scaled
        delta = torch.cat([logmel[1:2] - logmel[:1], (logmel[2:] - logmel[:-2]) / 2, logmel[-1:] - logmel[-2:-1]])
        frames = torch.cat([logmel, delta], -1)
        if frames.shape[0] % 2:
            frames = torch.cat([frames, frames[-1:]])
        rows.append(frames.reshape(frames.shape[0] // 2, -1))
        counts.append(-(-(len(clip) // 160) // 2))
    width = max(row.shape[0] for row in rows)
    features = torch.zeros(len(rows), width, rows[0].shape[1])
    for index, row in enumerate(rows):
        features[index, : row.shape[0]] = row
    mask = (torch.arange(width)[None] < torch.tensor(counts)[:, None]).long()
    return {"input_features": features, "attention_mask": mask}


def extractor_features(name: str, **settings: Any) -> Callable[[list[np.ndarray]], dict[str, torch.Tensor]]:
    """The model's own feature extractor, called as its processor calls it (padding, attention/padding mask), with
    `settings` of the call."""
    extractor = getattr(transformers, name)()

    def features(clips: list[np.ndarray]) -> dict[str, torch.Tensor]:
        return dict(extractor(clips, sampling_rate=16000, padding=True, return_attention_mask=True,
                              return_tensors="pt", **settings))

    return features


def standardised(
    features: Callable[[list[np.ndarray]], dict[str, torch.Tensor]],
) -> Callable[[list[np.ndarray]], dict[str, torch.Tensor]]:
    """Features standardised per utterance over its valid frames: LasrFeatureExtractor's log-mels sit near -7 on this
    audio (its do_normalize scales the waveform, not the features), which CTC041 reports for a model trained from
    scratch."""

    def made(clips: list[np.ndarray]) -> dict[str, torch.Tensor]:
        batch = features(clips)
        values, mask = batch["input_features"].clone(), batch["attention_mask"].bool()
        for row in range(values.shape[0]):
            valid = values[row, mask[row]]
            values[row, mask[row]] = (valid - valid.mean()) / (valid.std() + 1e-5)
            values[row, ~mask[row]] = 0.0
        return {**batch, "input_features": values}

    return made


# ---------------------------------------------------------------------------------------------- models
@dataclass(frozen=True)
class Kind:
    """One model class: its tiny config and how its inputs are made."""

    model: str
    config: Callable[[Any], Any]
    features: Callable[[], Callable[[list[np.ndarray]], dict[str, torch.Tensor]]]
    blank_first: bool = False


def _conformer(config_name: str, tokenizer: Any, **encoder: Any) -> Any:
    # initializer_range 0.1, not 0.02: at hidden size 32 the subsampling's output barely varies at 0.02 and the layer
    # norm after it multiplies the gradients (3.9e3 for Parakeet, CTC062); trained checkpoints do not start there.
    settings = dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
                    subsampling_conv_channels=8, conv_kernel_size=3, dropout=0.0, layerdrop=0.0,
                    activation_dropout=0.0, attention_dropout=0.0, initializer_range=0.1, **encoder)
    return getattr(transformers, config_name)(
        vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id, ctc_loss_reduction="mean",
        encoder_config=settings, initializer_range=0.1)


def parakeet_config(tokenizer: Any, **overrides: Any) -> Any:
    # subsampling_factor 4 (the checkpoints use 8): 25 frames a second leave the short test words room to align.
    config = _conformer("ParakeetCTCConfig", tokenizer, subsampling_factor=4, num_mel_bins=80)
    return _with(config, overrides)


def lasr_config(tokenizer: Any, **overrides: Any) -> Any:
    return _with(_conformer("LasrCTCConfig", tokenizer, num_mel_bins=128, subsampling_conv_kernel_size=3), overrides)


def granite_config(tokenizer: Any, **overrides: Any) -> Any:
    encoder = dict(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                   num_attention_heads=2, head_dim=16, num_mel_bins=80, context_size=16, conv_kernel_size=3,
                   subsample_layers=[0])
    config = transformers.GraniteSpeech5CTCConfig(
        vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id, ctc_loss_reduction="mean",
        encoder_config=encoder)
    return _with(config, overrides)


def omniasr_config(tokenizer: Any, **overrides: Any) -> Any:
    # The conv encoder has the checkpoints' total stride, 320 (50 frames a second).
    audio_config = dict(hidden_size=32, conv_dim=(32, 32, 32), conv_kernel=(10, 8, 4), conv_stride=(5, 8, 8),
                        num_attention_heads=2, num_hidden_layers=1, num_conv_pos_embeddings=16,
                        num_conv_pos_embedding_groups=4, intermediate_size=64, hidden_dropout=0.0, layerdrop=0.0,
                        activation_dropout=0.0)
    vocab = tokenizer.get_vocab()
    config = transformers.OmniASRCTCConfig(
        vocab_size=len(tokenizer), blank_token_id=vocab["<blank>"], pad_token_id=tokenizer.pad_token_id,
        ctc_loss_reduction="mean", audio_config=audio_config)
    return _with(config, overrides)


def _with(config: Any, overrides: dict[str, Any]) -> Any:
    for key, value in overrides.items():
        setattr(config, key, value)
    return config


KINDS: dict[str, Kind] = {
    "ParakeetForCTC": Kind("ParakeetForCTC", parakeet_config, lambda: extractor_features("ParakeetFeatureExtractor")),
    "LasrForCTC": Kind("LasrForCTC", lasr_config, lambda: standardised(extractor_features("LasrFeatureExtractor"))),
    "OmniASRForCTC": Kind("OmniASRForCTC", omniasr_config, lambda: extractor_features("OmniASRFeatureExtractor"),
                          blank_first=True),
    "GraniteSpeech5ForCTC": Kind("GraniteSpeech5ForCTC", granite_config, lambda: granite_features),
}


def model_class(name: str) -> Any:
    """The class, or a clean skip where the installed transformers lacks it."""
    import pytest

    cls = getattr(transformers, name, None)
    if cls is None:
        pytest.skip(f"transformers {transformers.__version__} has no {name}")
    return cls


def build_model(name: str, tokenizer: Any, seed: int = 0, **overrides: Any) -> torch.nn.Module:
    cls = model_class(name)
    config = KINDS[name].config(tokenizer, **overrides)
    torch.manual_seed(seed)
    return cls(config)


def batches(name: str, tokenizer: Any, seed: int = 0) -> list[dict[str, torch.Tensor]]:
    """Collated batches: the feature extractor's padded inputs and mask, labels padded with -100."""
    clips = audio(seed)
    features = KINDS[name].features()
    out = []
    for start in range(0, len(clips), BATCH):
        batch = features(clips[start : start + BATCH])
        batch["labels"] = pad_labels([encode(tokenizer, text) for text in TEXTS[start : start + BATCH]])
        out.append(batch)
    return out


def loader(name: str, tokenizer: Any, seed: int = 0) -> DataLoader:
    """A DataLoader over per-utterance items whose collator pads them, as a training script has it."""
    clips = audio(seed)
    items = [{"audio": clip, "labels": encode(tokenizer, text)} for clip, text in zip(clips, TEXTS)]
    features = KINDS[name].features()

    def collate(rows: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        batch = features([row["audio"] for row in rows])
        batch["labels"] = pad_labels([row["labels"] for row in rows])
        return batch

    return DataLoader(items, batch_size=BATCH, collate_fn=collate)
