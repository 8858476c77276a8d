"""Batches that are common in training code but not the protocol's, named in the user's terms.

`normalise_batch` accepts `(inputs, targets, input_lengths, target_lengths)` or a mapping with those
keys. Hand-written collates often give something close: the labels as a list of per-sample tensors,
numpy arrays, or a dict with their own key names. Each becomes a `BatchError` (exit 2) that says
what the batch holds and the one change that makes it fit, instead of a torch exception's text.
"""
from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

from ctcdoctor.errors import BatchError

BATCH_KEYS = ("inputs", "targets", "input_lengths", "target_lengths")

# Words that a key naming labels, or inputs, is usually made of; lengths are told apart by a length word.
_LABEL_WORDS = {"label", "labels", "target", "targets", "tgt", "text", "texts", "token", "tokens", "transcript",
                "transcripts", "transcription", "y", "ys", "char", "chars", "seq", "seqs"}
_INPUT_WORDS = {"image", "images", "img", "imgs", "x", "xs", "input", "inputs", "feature", "features", "feat", "feats",
                "audio", "audios", "wave", "waves", "waveform", "waveforms", "wav", "wavs", "spec", "specs", "spectrogram",
                "spectrograms", "mel", "mels", "fbank", "fbanks", "pixel", "pixels", "signal", "signals", "src", "data",
                "values", "speech", "sound", "batch"}
_LENGTH_WORDS = {"len", "lens", "length", "lengths", "width", "widths", "size", "sizes", "frames", "nframes", "count", "counts"}
_LENGTH_SUFFIXES = ("lengths", "length", "lens", "len")


def is_numpy(value: Any) -> bool:
    """A numpy array (numpy is imported only when something may be one)."""
    if type(value).__module__ != "numpy":
        return False
    import numpy

    return isinstance(value, numpy.ndarray)


def nested_items(value: Any, path: str) -> Iterator[tuple[str, Any]]:
    """The items of a named tuple, tuple, list or mapping, each with a path naming it as the user wrote it
    (`inputs.name`, `inputs[0]`, `inputs['features']`); nothing for anything else."""
    if isinstance(value, tuple) and hasattr(value, "_fields"):
        yield from ((f"{path}.{name}", item) for name, item in zip(value._fields, value))
    elif isinstance(value, (tuple, list)):
        yield from ((f"{path}[{position}]", item) for position, item in enumerate(value))
    elif isinstance(value, Mapping):
        yield from ((f"{path}[{key!r}]", item) for key, item in value.items())


def _numpy_leaves(value: Any, path: str) -> Iterator[tuple[str, Any]]:
    """Every numpy array inside `value`, with its path (see `nested_items`)."""
    if is_numpy(value):
        yield path, value
    for item_path, item in nested_items(value, path):
        yield from _numpy_leaves(item, item_path)


def refuse_numpy_inputs(parts: dict[str, Any], index: int) -> None:
    """numpy inputs: the model (and ctcdoctor's cutting of samples) needs tensors, so they are refused, not converted —
    the training loop would fail on the same batch. Targets and lengths alone are converted, as Python lists are."""
    found = list(_numpy_leaves(parts["inputs"], "inputs"))
    if not found:
        return
    path, array = found[0]
    others = [name for name, part in parts.items() if name != "inputs" and is_numpy(part)]
    also = f"; so are {_and(others)}" if others else ""
    verb = "are" if path == "inputs" else "is"
    raise BatchError(
        f"batch {index}: {path} {verb} a numpy.ndarray ({array.dtype}, shape {tuple(array.shape)}), not a torch tensor{also}",
        "Convert with torch.from_numpy in the collate_fn (return torch.from_numpy(x), ... for every array): "
        "the model and F.ctc_loss take tensors.",
    )


def _and(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + f" and {names[-1]}"


def per_sample_targets(targets: Any, index: int) -> BatchError | None:
    """Targets given as one label sequence per sample (a list of 1-D tensors, of lists, of arrays): what to do with
    them, or None when they are something else."""
    if not isinstance(targets, (list, tuple)) or not targets:
        return None
    kinds = {type(item).__name__ for item in targets}
    sequences = all(hasattr(item, "shape") and len(item.shape) >= 1 or isinstance(item, (list, tuple)) for item in targets)
    if not sequences:
        return None
    what = "tensors" if kinds == {"Tensor"} else "lists" if kinds <= {"list", "tuple"} else "arrays" if kinds == {"ndarray"} else "sequences"
    convert = "" if what == "tensors" else "make each a tensor (torch.as_tensor(label, dtype=torch.long)), then "
    return BatchError(
        f"batch {index}: targets are a {type(targets).__name__} of {len(targets)} {what} (one label sequence per "
        "sample), not one tensor",
        f"In the collate_fn, {convert}concatenate them (torch.cat(labels)) with target_lengths, or pad them "
        "(torch.nn.utils.rnn.pad_sequence(labels, batch_first=True)): the two forms F.ctc_loss takes targets in.",
    )


def _words(key: str) -> list[str]:
    return re.findall(r"[a-z]+", re.sub(r"([a-z])([A-Z])", r"\1_\2", key).lower())


def key_role(key: str) -> str | None:
    """Which of the four batch parts a key of the user's own looks like ('labels' -> targets, 'widths' ->
    input_lengths, 'label_lengths' -> target_lengths), or None when its name does not say."""
    words = _words(key)
    rest: list[str] = []
    is_length = False
    for word in words:
        if word in _LENGTH_WORDS:
            is_length = True
            continue
        stem = next((word[: -len(suffix)] for suffix in _LENGTH_SUFFIXES if word.endswith(suffix) and word != suffix), None)
        if stem:  # ylen, xlens, seqlen
            is_length = True
            word = stem
        rest.append(word)
    if is_length:
        return "target_lengths" if any(word in _LABEL_WORDS for word in rest) else "input_lengths"
    if any(word in _LABEL_WORDS for word in rest):
        return "targets"
    if any(word in _INPUT_WORDS for word in rest):
        return "inputs"
    return None


def key_guesses(keys: list[str], missing: list[str]) -> dict[str, str]:
    """missing protocol key -> the one user key that looks like it (a key named ambiguously is left out)."""
    roles: dict[str, list[str]] = {}
    for key in keys:
        role = key_role(key) if key not in BATCH_KEYS else None
        if role in missing:
            roles.setdefault(role, []).append(key)
    return {role: found[0] for role, found in roles.items() if len(found) == 1}


def dict_keys_error(raw: Mapping, missing: list[str], index: int) -> BatchError:
    """A mapping batch without the protocol's keys: which of its keys looks like which, and how to rename them."""
    keys = [str(key) for key in raw]
    guesses = key_guesses(keys, missing)
    message = f"batch {index}: the dict has keys {sorted(keys)} but lacks {missing}"
    if guesses:
        message += "; by their names: " + ", ".join(f"{key!r} looks like {role}" for role, key in guesses.items())
    mapping = ", ".join(f"{role!r}: {guesses.get(role, '...' if role in missing else role)}" for role in BATCH_KEYS)
    return BatchError(
        message,
        f"Use the keys {list(BATCH_KEYS)}: rename them where the batch is built (the collate_fn returns "
        f"{{{mapping}}}), or give Setup a loader that renames each batch (docs/protocol.md, Batches); the criterion "
        "then receives the renamed batch.",
    )
