"""Small synthetic CTC data sets for the examples and the tests (no downloads).

Two kinds of data:

* **Word images** (OCR): lowercase words rendered with matplotlib's bundled DejaVu
  fonts. Each glyph is rasterised once per font and cached; a word is composed by
  pasting glyph bitmaps side by side, so building hundreds of images takes
  milliseconds. Images are grayscale float32 ``(H, W)`` arrays with ink = 1 and
  background = 0 before normalisation.
* **Toy speech** (ASR): an "utterance" is a sequence of symbols, each held for a few
  frames as a fixed spectral pattern (a few formant-like bumps over the mel bins),
  with silence at both ends and noise everywhere. :func:`raw_log_spectrogram` gives
  the unnormalised log power (values around -60 to -20, like ``log(power + 1e-30)``
  straight from a feature extractor); :func:`speech_features` gives the
  mean/variance-normalised version a healthy pipeline would feed the model.

:class:`WordImageDataset` and :class:`SpeechDataset` are ``torch.utils.data.Dataset``
objects yielding ``(input, target)``; :func:`collate_images` and
:func:`collate_speech` turn a list of them into the batch ctcdoctor expects,
``(inputs, targets, input_lengths, target_lengths)`` with zero-padded inputs and
2-D padded targets. Everything is deterministic given ``seed``.

Class indices follow the usual convention: blank = 0, symbol ``i`` of the alphabet =
``i + 1`` (see :func:`encode`).
"""
from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

__all__ = [
    "ALPHABET",
    "WORDS",
    "DOUBLED_WORDS",
    "FONTS",
    "PHONES",
    "encode",
    "decode",
    "count_repeats",
    "glyphs",
    "render_word",
    "random_words",
    "raw_log_spectrogram",
    "speech_features",
    "WordImageDataset",
    "SpeechDataset",
    "collate_images",
    "collate_speech",
]

ALPHABET = "abcdefghijklmnopqrstuvwxyz"
"""The OCR alphabet: 26 lowercase letters (classes 1..26; 0 is the blank)."""

# A small built-in vocabulary of 3-8 letter words. About a third contain doubled
# letters, because adjacent repeats are exactly what makes CTC need extra frames
# (a blank must separate the two 'l's of "hello").
WORDS: tuple[str, ...] = (
    "cat", "dog", "sun", "map", "red", "box", "key", "owl", "jam", "fox",
    "bird", "fish", "milk", "rain", "star", "wind", "jump", "quiz", "gold", "lamp",
    "house", "river", "plant", "chair", "table", "cloud", "music", "zebra", "night", "ocean",
    "garden", "window", "pencil", "forest", "bridge", "yellow", "jacket", "silver", "market", "violin",
    "kitchen", "blanket", "monster", "picture", "journey", "rainbow", "village", "quarter", "dolphin", "harvest",
    "elephant", "painting", "mountain", "sandwich", "question", "keyboard", "umbrella", "calendar",
    "book", "tree", "door", "moon", "wall", "hill", "egg", "add", "all", "see",
    "apple", "happy", "sleep", "green", "sheep", "dress", "grass", "berry", "funny", "spoon",
    "letter", "coffee", "summer", "dinner", "pepper", "rabbit", "kitten", "puzzle", "button", "bottle",
    "balloon", "address", "success", "bubbles", "sheriff", "football", "cheerful", "goodness",
)

# Words whose adjacent repeats are the point: used by examples/broken/doubled_letters.py.
DOUBLED_WORDS: tuple[str, ...] = (
    "balloon", "address", "succeed", "football", "goodness", "coffee", "bookkeeper",
    "committee", "assess", "toffee", "keep", "butter", "little",
)

FONTS: tuple[str, ...] = ("DejaVu Sans", "DejaVu Serif")
"""Font families bundled with matplotlib (always available, no downloads)."""

# Toy "phones" for the speech data; a list of multi-character symbols on purpose, so
# that alphabets given as sequences of strings are exercised too.
PHONES: tuple[str, ...] = (
    "aa", "ae", "b", "d", "eh", "f", "g", "ih", "k", "l",
    "m", "n", "ow", "p", "r", "s", "t", "uw", "v", "z",
)


def encode(text: str | Sequence[str], alphabet: str | Sequence[str] = ALPHABET, offset: int = 1) -> list[int]:
    """Map symbols to class indices: ``alphabet[i] -> i + offset``.

    ``offset=1`` keeps class 0 free for the CTC blank (the healthy convention).
    """
    index = {s: i + offset for i, s in enumerate(alphabet)}
    return [index[s] for s in text]


def decode(indices: Sequence[int], alphabet: str | Sequence[str] = ALPHABET, offset: int = 1) -> list[str]:
    """Inverse of :func:`encode` (no CTC collapsing: pass already-collapsed indices)."""
    return [alphabet[int(i) - offset] for i in indices]


def count_repeats(labels: Sequence) -> int:
    """Number of adjacent equal labels; CTC needs ``len(labels) + count_repeats(labels)`` frames."""
    return sum(1 for a, b in zip(labels, labels[1:]) if a == b)


# --------------------------------------------------------------------------- glyphs

GLYPH_HEIGHT = 32
"""Height of every glyph bitmap (and of the word images) in pixels."""
_FONT_SIZE = 22.0  # px at dpi 72: ascenders reach row ~7, descenders row ~28 of 32
_BASELINE = 8  # px above the bottom edge, leaving room for descenders (g, j, p, q, y)


@functools.cache
def glyphs(font: str = "DejaVu Sans", alphabet: str = ALPHABET) -> dict[str, np.ndarray]:
    """Rasterise each symbol of ``alphabet`` once in ``font``; cached per (font, alphabet).

    Returns ``{symbol: float32 array (32, w)}`` with ink coverage in [0, 1] and the
    baseline at the same row for every glyph, so glyphs can be pasted side by side.
    The matplotlib imports live here so that importing this module stays cheap.
    """
    from matplotlib.backends.backend_agg import RendererAgg
    from matplotlib.font_manager import FontProperties
    from matplotlib.textpath import TextPath
    from matplotlib.transforms import Affine2D

    prop = FontProperties(family=font)
    out: dict[str, np.ndarray] = {}
    for ch in alphabet:
        path = TextPath((0, 0), ch, size=_FONT_SIZE, prop=prop)
        ext = path.get_extents()
        width = int(np.ceil(ext.x1 - ext.x0)) + 2  # 1 px of air on each side
        # dpi 72 makes one point one pixel; Agg's origin is bottom-left.
        renderer = RendererAgg(width, GLYPH_HEIGHT, 72)
        renderer.draw_path(renderer.new_gc(), path, Affine2D().translate(1 - ext.x0, _BASELINE), rgbFace=(0, 0, 0))
        # The alpha channel of a transparent canvas is exactly the anti-aliased coverage.
        out[ch] = np.asarray(renderer.buffer_rgba())[..., 3].astype(np.float32) / 255.0
    return out


def render_word(
    word: str,
    font: str = "DejaVu Sans",
    spacing: int = 1,
    margin: tuple[int, int] = (4, 4),
    min_width: int = 0,
    multiple: int = 1,
) -> np.ndarray:
    """Compose ``word`` from cached glyph bitmaps; returns float32 ``(32, W)``, ink = 1.

    ``margin`` is (left, right) blank space. The width is raised to ``min_width`` and
    then rounded up to a multiple of ``multiple`` (so pooling divides it exactly).
    Extra width goes to the right margin, as when a text-line crop is padded.
    """
    table = glyphs(font)
    parts = [table[ch] for ch in word]
    ink = sum(p.shape[1] for p in parts) + spacing * max(len(parts) - 1, 0)
    width = max(margin[0] + ink + margin[1], min_width)
    width = -(-width // multiple) * multiple
    image = np.zeros((GLYPH_HEIGHT, width), dtype=np.float32)
    x = margin[0]
    for p in parts:
        w = p.shape[1]
        # max rather than sum: neighbouring glyph cells overlap by their 1 px of air.
        np.maximum(image[:, x : x + w], p, out=image[:, x : x + w])
        x += w + spacing
    return image


def random_words(n: int, rng: np.random.Generator, words: Sequence[str] = WORDS) -> list[str]:
    """``n`` words drawn with replacement from ``words``."""
    return [words[i] for i in rng.integers(0, len(words), size=n)]


class WordImageDataset(Dataset):
    """Synthetic word images for OCR; items are ``(image (1, 32, W), target (U,))``.

    All images are rendered in ``__init__`` (well under a second for a few hundred),
    so ``__getitem__`` is a lookup and the data are identical on every epoch.

    Args:
        n: number of samples.
        words: vocabulary to draw from (default :data:`WORDS`); or pass ``texts`` to fix them.
        texts: explicit list of words (overrides ``n`` and ``words``).
        width: fixed image width (words are left-aligned with a random margin and
            the rest padded), or None for variable widths that follow the word.
        min_width, multiple: see :func:`render_word` (only for variable widths).
        fonts: font families chosen at random per sample.
        noise: std of Gaussian pixel noise added to the [0, 1] image.
        normalize: standardise with the data set's own pixel mean and std, so the
            model sees mean ~0, std ~1 (background about -0.5, ink about +2).
            When False the image stays in [0, 1] (times ``scale``).
        scale: multiply the un-normalised image (``scale=255`` gives raw 0-255 pixels).
        encoder: text -> list of class indices (default :func:`encode`, blank = 0).
        seed: controls words, fonts, margins and noise.
    """

    def __init__(
        self,
        n: int = 128,
        words: Sequence[str] = WORDS,
        texts: Sequence[str] | None = None,
        width: int | None = None,
        min_width: int = 64,
        multiple: int = 4,
        fonts: Sequence[str] = FONTS,
        noise: float = 0.05,
        normalize: bool = True,
        scale: float = 1.0,
        encoder: Callable[[str], list[int]] = encode,
        seed: int = 0,
    ) -> None:
        rng = np.random.default_rng(seed)
        self.texts: list[str] = list(texts) if texts is not None else random_words(n, rng, words)
        self.images: list[np.ndarray] = []
        for text in self.texts:
            font = fonts[int(rng.integers(len(fonts)))]
            left = int(rng.integers(2, 9))
            if width is None:
                img = render_word(text, font, margin=(left, int(rng.integers(2, 9))), min_width=min_width, multiple=multiple)
            else:
                img = render_word(text, font, margin=(left, 0), min_width=width)
                if img.shape[1] > width:  # squeeze overlong words horizontally, like a resize would
                    cols = np.linspace(0, img.shape[1] - 1, width).round().astype(int)
                    img = img[:, cols]
                img = img[:, :width]
            img = img + rng.normal(0.0, noise, img.shape).astype(np.float32)
            self.images.append(np.clip(img, 0.0, 1.0))
        if normalize:
            # Data-set statistics over real pixels only (not padding), as one would
            # compute them on a training set once.
            flat = np.concatenate([im.ravel() for im in self.images])
            self.mean, self.std = float(flat.mean()), float(flat.std())
            self.images = [(im - self.mean) / self.std for im in self.images]
        else:
            self.mean, self.std = 0.0, 1.0
            self.images = [im * scale for im in self.images]
        # Padding value equal to the background, so padded columns look like margin.
        self.pad_value = float((0.0 - self.mean) / self.std) if normalize else 0.0
        self.targets = [torch.tensor(encoder(t), dtype=torch.long) for t in self.texts]

    def __len__(self) -> int:
        return len(self.texts)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.from_numpy(self.images[i]).unsqueeze(0), self.targets[i]

    def collate(self, batch: Sequence[tuple[torch.Tensor, torch.Tensor]]) -> tuple[torch.Tensor, ...]:
        """:func:`collate_images` with this data set's background as the padding value."""
        return collate_images(batch, pad_value=self.pad_value)


def _pad_targets(targets: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    lengths = torch.tensor([len(t) for t in targets], dtype=torch.long)
    # Pad with 0: F.ctc_loss ignores entries past target_lengths, whatever their value.
    padded = torch.zeros(len(targets), int(lengths.max()) if len(targets) else 0, dtype=torch.long)
    for i, t in enumerate(targets):
        padded[i, : len(t)] = t
    return padded, lengths


def collate_images(
    batch: Sequence[tuple[torch.Tensor, torch.Tensor]], pad_value: float = 0.0
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Batch ``(image (C, H, W), target)`` pairs: images right-padded to the widest.

    Returns ``(inputs (N, C, H, W_max), targets (N, S_max), input_lengths = widths (N,),
    target_lengths (N,))``.
    """
    images, targets = zip(*batch)
    widths = torch.tensor([im.shape[-1] for im in images], dtype=torch.long)
    c, h = images[0].shape[:2]
    inputs = torch.full((len(images), c, h, int(widths.max())), pad_value, dtype=images[0].dtype)
    for i, im in enumerate(images):
        inputs[i, :, :, : im.shape[-1]] = im
    padded, target_lengths = _pad_targets(targets)
    return inputs, padded, widths, target_lengths


# --------------------------------------------------------------------------- speech

N_MELS = 40
"""Number of mel-like frequency bins of the toy speech features."""


@functools.cache
def _phone_patterns(n_symbols: int, n_mels: int) -> np.ndarray:
    """One spectral envelope per symbol, in [0, 1]; fixed (seed-independent) so that a
    symbol sounds the same in every data set built with any seed."""
    rng = np.random.default_rng(12345)
    bins = np.arange(n_mels)[None, :]
    patterns = np.zeros((n_symbols, n_mels))
    for k in range(n_symbols):
        # Two or three formant-like bumps at symbol-specific positions.
        for _ in range(int(rng.integers(2, 4))):
            centre, width, height = rng.uniform(0, n_mels), rng.uniform(1.5, 4.0), rng.uniform(0.5, 1.0)
            patterns[k] += height * np.exp(-0.5 * ((bins[0] - centre) / width) ** 2)
    return (patterns / patterns.max(axis=1, keepdims=True)).astype(np.float32)


def _utterance(
    labels: Sequence[int], rng: np.random.Generator, n_symbols: int, n_mels: int, hold: tuple[int, int]
) -> np.ndarray:
    """Raw log power ``(n_mels, T)`` for class indices ``labels`` (1-based, blank = 0)."""
    patterns = _phone_patterns(n_symbols, n_mels)
    frames: list[np.ndarray] = []
    silence_level = -55.0  # log power of background hiss, i.e. about e^-55 ~ 1e-24
    speech_level, depth = -45.0, 18.0  # voiced frames reach about -27 at formant peaks

    def silence(n: int) -> None:
        frames.extend([np.full(n_mels, silence_level)] * n)

    silence(int(rng.integers(3, 9)))
    for lab in labels:
        env = speech_level + depth * patterns[int(lab) - 1]
        frames.extend([env] * int(rng.integers(hold[0], hold[1] + 1)))
    silence(int(rng.integers(3, 9)))
    spec = np.stack(frames, axis=1)
    gain = rng.normal(0.0, 3.0)  # per-utterance loudness, which normalisation removes
    return (spec + gain + rng.normal(0.0, 1.5, spec.shape)).astype(np.float32)


def _random_labels(rng: np.random.Generator, n_symbols: int, length: int) -> list[int]:
    # No adjacent repeats: two identical patterns back to back would be acoustically
    # one long symbol, which no model could split; real speech has a transition there.
    labels: list[int] = []
    while len(labels) < length:
        lab = int(rng.integers(1, n_symbols + 1))
        if not labels or lab != labels[-1]:
            labels.append(lab)
    return labels


def raw_log_spectrogram(
    labels: Sequence[int],
    seed: int = 0,
    n_symbols: int = len(PHONES),
    n_mels: int = N_MELS,
    hold: tuple[int, int] = (4, 8),
) -> np.ndarray:
    """Unnormalised log power ``(F, T)`` of a toy utterance: values roughly -60 to -20.

    This is what ``np.log(power + 1e-30)`` gives straight from a feature extractor,
    with no mean/variance normalisation: the input of the broken speech example.
    """
    return _utterance(labels, np.random.default_rng(seed), n_symbols, n_mels, hold)


def normalize_features(spec: np.ndarray) -> np.ndarray:
    """Per-utterance mean/variance normalisation (CMVN) over all frames and bins."""
    return ((spec - spec.mean()) / max(float(spec.std()), 1e-5)).astype(np.float32)


def speech_features(
    labels: Sequence[int],
    seed: int = 0,
    n_symbols: int = len(PHONES),
    n_mels: int = N_MELS,
    hold: tuple[int, int] = (4, 8),
) -> np.ndarray:
    """Normalised log-mel-like features ``(F, T)`` (mean 0, std 1) of a toy utterance."""
    return normalize_features(raw_log_spectrogram(labels, seed, n_symbols, n_mels, hold))


class SpeechDataset(Dataset):
    """Toy utterances; items are ``(features (F, T), target (U,))``.

    Args:
        n: number of utterances.
        min_len, max_len: label-sequence length range (inclusive).
        alphabet: the symbols (default :data:`PHONES`); labels are 1..len(alphabet).
        n_mels: number of frequency bins F.
        hold: each symbol lasts between hold[0] and hold[1] frames.
        normalize: per-utterance CMVN (healthy); False gives raw log power around -45.
        transform: optional function applied to each raw ``(F, T)`` tensor instead
            of the built-in normalisation (for examples with their own pipeline).
        seed: controls labels, durations, gain and noise.
    """

    def __init__(
        self,
        n: int = 128,
        min_len: int = 3,
        max_len: int = 10,
        alphabet: Sequence[str] = PHONES,
        n_mels: int = N_MELS,
        hold: tuple[int, int] = (4, 8),
        normalize: bool = True,
        transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
        seed: int = 0,
    ) -> None:
        rng = np.random.default_rng(seed)
        self.alphabet = list(alphabet)
        self.labels: list[list[int]] = []
        self.features: list[torch.Tensor] = []
        for _ in range(n):
            labels = _random_labels(rng, len(alphabet), int(rng.integers(min_len, max_len + 1)))
            spec = torch.from_numpy(_utterance(labels, rng, len(alphabet), n_mels, hold))
            if transform is not None:
                spec = transform(spec)
            elif normalize:
                spec = torch.from_numpy(normalize_features(spec.numpy()))
            self.labels.append(labels)
            self.features.append(spec)
        self.targets = [torch.tensor(lab, dtype=torch.long) for lab in self.labels]

    def __len__(self) -> int:
        return len(self.features)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.features[i], self.targets[i]


def collate_speech(
    batch: Sequence[tuple[torch.Tensor, torch.Tensor]], pad_value: float = 0.0
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Batch ``(features (F, T), target)`` pairs, padding time with ``pad_value``.

    Returns ``(inputs (N, F, T_max), targets (N, S_max), input_lengths (N,), target_lengths (N,))``.
    0 is the mean of normalised features, so zero padding looks like average speech;
    for raw log power it is far above anything real (what a Keras ``pad_sequences``
    pipeline would produce), which CTC ignores past ``input_lengths``.
    """
    feats, targets = zip(*batch)
    lengths = torch.tensor([f.shape[-1] for f in feats], dtype=torch.long)
    inputs = torch.full((len(feats), feats[0].shape[0], int(lengths.max())), pad_value, dtype=feats[0].dtype)
    for i, f in enumerate(feats):
        inputs[i, :, : f.shape[-1]] = f
    padded, target_lengths = _pad_targets(targets)
    return inputs, padded, lengths, target_lengths
