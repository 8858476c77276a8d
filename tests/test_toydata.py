"""Tests for the synthetic data behind the examples (ctcdoctor.toydata)."""
from __future__ import annotations

import time

import numpy as np
import pytest
import torch

from ctcdoctor import toydata as td


def test_glyphs_differ_between_letters_and_share_a_baseline():
    table = td.glyphs("DejaVu Sans")
    assert set(table) == set(td.ALPHABET)
    for ch, g in table.items():
        assert g.dtype == np.float32 and g.shape[0] == td.GLYPH_HEIGHT
        assert g.min() >= 0.0 and g.max() <= 1.0 and g.sum() > 5, ch  # real ink, not a blank cell
    # Every pair of letters renders differently (compare on a common width).
    w = max(g.shape[1] for g in table.values())
    padded = {ch: np.pad(g, ((0, 0), (0, w - g.shape[1]))) for ch, g in table.items()}
    letters = list(td.ALPHABET)
    for i, a in enumerate(letters):
        for b in letters[i + 1 :]:
            assert np.abs(padded[a] - padded[b]).sum() > 1.0, (a, b)
    # Descenders go below the x-height letters' bottom row; ascenders above their top.
    def rows(ch: str) -> np.ndarray:
        return np.nonzero(table[ch].max(axis=1) > 0.5)[0]
    assert rows("g").max() > rows("a").max()
    assert rows("l").min() < rows("a").min()


def test_fonts_differ():
    assert np.abs(td.glyphs("DejaVu Sans")["a"].sum() - td.glyphs("DejaVu Serif")["a"].sum()) > 1.0 or (
        td.glyphs("DejaVu Sans")["a"].shape != td.glyphs("DejaVu Serif")["a"].shape
    )


def test_render_word_width_rules():
    img = td.render_word("coffee", margin=(3, 5), min_width=0, multiple=1)
    glyph_w = sum(td.glyphs("DejaVu Sans")[c].shape[1] for c in "coffee") + 5  # spacing 1
    assert img.shape == (32, 3 + glyph_w + 5)
    assert img[:, :3].max() == 0 and img[:, -5:].max() == 0  # margins stay blank
    assert td.render_word("ill", min_width=64, multiple=4).shape[1] == 64
    assert td.render_word("elephant", multiple=4).shape[1] % 4 == 0


def test_word_dataset_shapes_normalisation_and_determinism():
    ds = td.WordImageDataset(n=64, seed=3)
    x, y = ds[0]
    assert x.shape[:2] == (1, 32) and x.dtype == torch.float32
    assert y.dtype == torch.long and y.min() >= 1 and y.max() <= len(td.ALPHABET)
    assert td.decode(y.tolist()) == list(ds.texts[0])
    pixels = torch.cat([ds[i][0].flatten() for i in range(len(ds))])
    assert abs(pixels.mean().item()) < 1e-3 and abs(pixels.std().item() - 1) < 1e-2
    again = td.WordImageDataset(n=64, seed=3)
    assert again.texts == ds.texts and all(torch.equal(again[i][0], ds[i][0]) for i in range(64))
    other = td.WordImageDataset(n=64, seed=4)
    assert other.texts != ds.texts


def test_word_dataset_raw_pixels_and_fixed_width():
    raw = td.WordImageDataset(n=16, normalize=False, scale=255.0, seed=0)
    pixels = torch.cat([raw[i][0].flatten() for i in range(len(raw))])
    assert pixels.min() >= 0 and pixels.max() > 200 and pixels.max() <= 255
    fixed = td.WordImageDataset(n=16, width=128, seed=0)
    assert {fixed[i][0].shape[-1] for i in range(16)} == {128}


def test_word_dataset_builds_fast():
    td.glyphs("DejaVu Sans"), td.glyphs("DejaVu Serif")  # warm the glyph cache (imports matplotlib)
    t = time.perf_counter()
    td.WordImageDataset(n=200, seed=0)
    assert time.perf_counter() - t < 1.0


def test_collate_images_pads_with_background_and_lengths():
    ds = td.WordImageDataset(texts=["cat", "elephant"], seed=0)
    inputs, targets, input_lengths, target_lengths = ds.collate([ds[0], ds[1]])
    w0, w1 = ds[0][0].shape[-1], ds[1][0].shape[-1]
    assert inputs.shape == (2, 1, 32, max(w0, w1))
    assert input_lengths.tolist() == [w0, w1] and target_lengths.tolist() == [3, 8]
    assert targets.shape == (2, 8) and targets[0, :3].tolist() == td.encode("cat")
    if w0 < w1:
        assert torch.allclose(inputs[0, ..., w0:], torch.tensor(ds.pad_value))


def test_encode_offset_and_repeats():
    assert td.encode("abz") == [1, 2, 26]
    assert td.encode("abz", offset=0) == [0, 1, 25]
    assert td.count_repeats("bookkeeper") == 3 and td.count_repeats("cat") == 0
    assert all(3 <= len(w) <= 8 for w in td.WORDS)
    assert sum(td.count_repeats(w) > 0 for w in td.WORDS) >= len(td.WORDS) // 4


def test_speech_features_normalised_vs_raw_very_negative():
    labels = [1, 5, 9, 2]
    raw = td.raw_log_spectrogram(labels, seed=1)
    feats = td.speech_features(labels, seed=1)
    assert raw.shape == feats.shape and raw.shape[0] == td.N_MELS
    assert raw.shape[1] >= 4 * len(labels)  # every symbol held for at least 4 frames
    assert raw.max() < -15 and raw.min() > -70 and raw.mean() < -35
    assert abs(feats.mean()) < 1e-4 and abs(feats.std() - 1) < 1e-3
    np.testing.assert_array_equal(raw, td.raw_log_spectrogram(labels, seed=1))


def test_speech_symbols_have_distinct_patterns():
    # Same seed, same durations and noise: only the held pattern differs, so the
    # time-averaged spectra differ by several log units in some bin for every pair.
    spectra = [td.raw_log_spectrogram([k], seed=0, hold=(8, 8)).mean(axis=1) for k in range(1, len(td.PHONES) + 1)]
    for i in range(len(spectra)):
        for j in range(i + 1, len(spectra)):
            assert np.abs(spectra[i] - spectra[j]).max() > 2.0, (td.PHONES[i], td.PHONES[j])


def test_speech_dataset_and_collate():
    ds = td.SpeechDataset(n=32, seed=0)
    x, y = ds[0]
    assert x.shape[0] == td.N_MELS and y.dtype == torch.long
    for lab in ds.labels:
        assert 3 <= len(lab) <= 10 and td.count_repeats(lab) == 0
        assert min(lab) >= 1 and max(lab) <= len(td.PHONES)
    inputs, targets, input_lengths, target_lengths = td.collate_speech([ds[i] for i in range(4)])
    assert inputs.shape == (4, td.N_MELS, int(input_lengths.max()))
    assert target_lengths.tolist() == [len(ds.labels[i]) for i in range(4)]
    raw = td.SpeechDataset(n=8, normalize=False, seed=0)
    assert all(raw[i][0].mean() < -35 for i in range(8))
    again = td.SpeechDataset(n=32, seed=0)
    assert all(torch.equal(again[i][0], ds[i][0]) for i in range(32))


@pytest.mark.parametrize("normalize", [True, False])
def test_speech_transform_overrides_normalisation(normalize):
    ds = td.SpeechDataset(n=4, normalize=normalize, transform=lambda s: s * 0 + 7, seed=0)
    assert torch.all(ds[0][0] == 7)
