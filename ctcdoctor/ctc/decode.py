"""Greedy (best-path) decoding and edit-distance metrics."""
from __future__ import annotations

from collections.abc import Sequence

import editdistance
import torch

from ctcdoctor.ctc._args import Lengths, check_log_probs, checked_output_lengths
from ctcdoctor.ctc._eager import eager_under_compile

Symbols = str | Sequence[str]


def _to_tnc(log_probs: torch.Tensor, layout: str) -> torch.Tensor:
    if layout not in ("TNC", "NTC"):
        raise ValueError(f"layout={layout!r} must be 'TNC' or 'NTC'")
    if log_probs.dim() == 2:  # one unbatched (T, C) sample
        return log_probs.unsqueeze(1)
    return log_probs.transpose(0, 1) if layout == "NTC" else log_probs


@eager_under_compile
def greedy_decode(
    log_probs: torch.Tensor,
    output_lengths: Lengths | None = None,
    blank: int = 0,
    alphabet: Symbols | None = None,
    layout: str = "TNC",
) -> list[list[int]] | list[str]:
    """Best-path decode: per frame argmax, collapse repeats, then drop blanks.

    Works on log-probabilities, probabilities or logits alike (argmax is the same). Returns one
    list of class indices per sample, or one string per sample when `alphabet` (the symbols of
    the non-blank classes in class order, blank skipped: C - 1 of them) is given: class c maps to
    alphabet[c - (c > blank)]. A 2-D (T, C) input is one sample and gives a one-item list.
    output_lengths are checked as ctc_loss checks input_lengths: one per sample, in [0, T].
    """
    blank = check_log_probs(log_probs, blank)
    x = _to_tnc(log_probs, layout)
    T, N, C = x.shape
    if alphabet is not None:
        _check_alphabet(alphabet, C)
    best = x.detach().argmax(-1)  # (T, N)
    # Collapse first, then drop blanks: "a blank a" stays "aa", "a a" becomes "a".
    keep = best != blank
    keep[1:] &= best[1:] != best[:-1]
    if output_lengths is not None:
        other = "NTC" if layout == "TNC" else "TNC"
        swapped = f"log_probs {tuple(log_probs.shape)} looks like {other}; pass layout={other!r}"
        lens = checked_output_lengths(output_lengths, T, N, T if log_probs.dim() == 3 else None, swapped)
        keep &= torch.arange(T, device=best.device)[:, None] < lens.to(best.device)[None, :]
    best_t, keep_t = best.t().tolist(), keep.t().tolist()
    seqs = [[c for c, k in zip(row, krow, strict=True) if k] for row, krow in zip(best_t, keep_t, strict=True)]
    if alphabet is None:
        return seqs
    return [_to_text(s, alphabet, blank) for s in seqs]


def _check_alphabet(alphabet: Symbols, C: int) -> None:
    """One symbol per non-blank class: with one more, every letter after the blank's slot would
    shift by one; with fewer, the last classes would have none."""
    if len(alphabet) != C - 1:
        fix = "leave the blank out" if len(alphabet) == C else "give one symbol per non-blank class, in class order"
        raise ValueError(
            f"alphabet has {len(alphabet)} symbol{'s' * (len(alphabet) != 1)} for {C - 1} non-blank classes "
            f"(C={C} with the blank); {fix}"
        )


def _to_text(seq: Sequence[int], alphabet: Symbols, blank: int) -> str:
    return "".join(alphabet[c - (c > blank)] for c in seq)


def edit_distance(a: Sequence, b: Sequence) -> int:
    """Levenshtein distance between two sequences (strings, lists of ints or of words)."""
    return int(editdistance.eval(list(a) if not isinstance(a, str) else a, list(b) if not isinstance(b, str) else b))


def cer(hyp: Sequence, ref: Sequence) -> float:
    """Character (symbol) error rate: edit distance / len(ref); len(hyp) errors if ref is empty."""
    return edit_distance(hyp, ref) / max(len(ref), 1)


def wer(hyp: str | Sequence[str], ref: str | Sequence[str]) -> float:
    """Word error rate; strings are split on whitespace, sequences are taken as word lists."""
    h = hyp.split() if isinstance(hyp, str) else list(hyp)
    r = ref.split() if isinstance(ref, str) else list(ref)
    return edit_distance(h, r) / max(len(r), 1)
