"""The `build()` protocol: what a user's module hands to ctcdoctor.

Kept free of torch imports so that `ctcdoctor --help` and `explain` start fast.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    import torch

Alphabet = str | Sequence[str] | None
"""The symbols of the non-blank classes, in class order (blank skipped), or None when unknown."""


@dataclass
class Setup:
    """Everything ctcdoctor needs to examine a CTC training set-up.

    A user's `build()` returns one of these (or a plain `(model, loader)` tuple).
    """

    model: torch.nn.Module
    """The network; `model(inputs)` returns `(T, N, C)` / `(N, T, C)` / `(N, C, T)`, or `(output, output_lengths)`
    (more items may follow, a second head or a state: the first item is the output checked), or a framework's output
    object with `.logits` (a transformers `*ForCTC` model is recognised as it is). A forward that needs several
    positional arguments, `forward(x, lengths)`, is called as `model(*inputs)` with `inputs = (x, lengths)`."""
    loader: Iterable[Any]
    """A DataLoader or any iterable of batches `(inputs, targets, input_lengths, target_lengths)`."""
    blank: int = 0
    """Index of the CTC blank class in the model output."""
    alphabet: str | Sequence[str] | None = None
    """Symbols of the non-blank classes, in class order, blank skipped."""
    criterion: Callable[..., Any] | None = None
    """The user's own loss: `criterion(model_output, batch) -> scalar tensor`, called with exactly what
    `model(inputs)` returned and the batch as the loader yielded it (see docs/protocol.md)."""
    output_lengths: Callable[..., Any] | None = None
    """`input_lengths -> output lengths` (frames after downsampling)."""
    layout: str | None = None
    """`"TNC"`, `"NTC"` or `"NCT"` (classes in the middle, as a Conv1d head gives); inferred when None."""
    optimizer: Callable[..., Any] | None = None
    """`params -> torch.optim.Optimizer`, used by `overfit` (default Adam, lr 1e-3)."""
    sample_labels: Callable[[int], tuple[int, Sequence[int]]] | None = None
    """`index -> (input length, label indices)` of data set item `index`, without decoding its input: `scan`
    then reads labels only (no collate, no inputs), for a DataLoader over a map-style data set."""
    batch_axis: int | None = None
    """The axis of the input tensors that holds the samples: 0 (batch first) or 1 (time-major `(T, N, ...)`,
    as `nn.LSTM` takes by default); found from `input_lengths` when None."""
    tokenizer: Any = None
    """A Hugging Face tokenizer (or any object with `get_vocab()` and `pad_token_id`): the alphabet, and advice
    in its tokens' names. Optional."""
    processor: Any = None
    """A Hugging Face processor (tokenizer + feature extractor) or feature extractor. Optional."""
