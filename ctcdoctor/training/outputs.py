"""What the training monitor measures on one batch of model outputs (every `every` steps).

`measure_outputs(outputs, targets, target_lengths, output_lengths, ...) -> OutputStats` is a
pure function of tensors: greedy decodes next to their targets, CER (and WER when the alphabet
has a word delimiter), the argmax and soft blank ratios, the mean frame entropy, the share of
non-blank frames against the share of frames the labels need (U/T), the share of empty
decodes, the samples CTC cannot align (fewer frames than labels plus adjacent repeats: counted
from the lengths, so they show even when `zero_infinity=True` zeroes their loss), non-finite
output frames, and the CER of decoding with the other usual blank index (0 <-> C-1), which
tells a blank-index mismatch between the loss and the decoder.

Numbers go to the monitor's JSONL under the keys of `OutputStats.record()`; the output rules
(`ctcdoctor.training.rules.outputs`) judge those numbers, so `ctcdoctor logs` can judge the
JSONL again without the model.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ctcdoctor.ctc import edit_distance, greedy_decode, spikiness
from ctcdoctor.load.batches import Batch, TargetParts

KINDS = ("log_probs", "logits", "probs", "auto")


@dataclass(frozen=True)
class OutputStats:
    """One evaluation of a batch of outputs; rates are fractions in [0, 1]."""

    evaluated: int
    """Samples decoded (the first `max_samples` of the batch)."""
    classes: int
    cer: float
    """Corpus CER over the evaluated samples: total edit distance / total target labels."""
    wer: float | None
    """Corpus WER when the alphabet holds the word delimiter; None otherwise. Rates are over the samples
    whose outputs are finite (NaN when there are none)."""
    blank_ratio: float
    """Share of valid frames whose argmax is blank."""
    blank_prob: float
    """Mean soft blank probability over valid frames."""
    entropy: float
    """Mean frame entropy, nats (ln C for uniform outputs)."""
    nonblank: float
    """1 - blank_ratio: the share of frames that emit a label."""
    label_density: float
    """Target labels / valid frames (sum U / sum T): the least non-blank share a perfect model shows."""
    empty_rate: float
    """Share of decodes that are empty (for samples whose target is not)."""
    infeasible: int
    """Samples whose frames are fewer than labels + adjacent repeats (CTC cannot align them)."""
    infeasible_samples: tuple[int, ...]
    """Their positions in the batch (first 10)."""
    nonfinite_outputs: int
    """Valid frames with a NaN or inf output."""
    alt_blank: int | None
    """The other usual blank index (C-1 when blank is 0, else 0)."""
    alt_decode_rate: float | None
    """CER when decoding with `alt_blank` instead: low here and high in `cer` means the loss uses that blank."""
    blank_in_targets: int
    """Target labels equal to the blank index (the loss would read them as blank)."""
    label_length: float
    """Mean target length U of the evaluated samples."""
    examples: tuple[tuple[str, str], ...] = field(default=())
    """(target, decoded) of the first few samples."""
    norm_gaps: dict[str, float] = field(default_factory=dict)
    """For outputs given as log-probabilities: the median |logsumexp| over the classes, the time axis and
    the batch axis (`class_norm_gap`, `time_norm_gap`, `batch_norm_gap`, nats; 0 where exp sums to 1 over
    that axis), and `prob_like` (1.0 when the values are probabilities: in [0, 1], summing to 1 over the
    classes). Empty for logits and probabilities given as such."""

    def record(self) -> dict[str, float]:
        """The values written to the monitor's JSONL at this step (monitor_format keys first)."""
        values: dict[str, float] = {"cer": self.cer}
        if self.wer is not None:
            values["wer"] = self.wer
        values.update(
            blank_ratio=self.blank_ratio, blank_prob=self.blank_prob, empty_rate=self.empty_rate,
            infeasible=float(self.infeasible), evaluated=float(self.evaluated), entropy=self.entropy,
            nonblank=self.nonblank, label_density=self.label_density,
            nonfinite_outputs=float(self.nonfinite_outputs),
        )
        if self.alt_decode_rate is not None:
            values["alt_decode_rate"] = self.alt_decode_rate
        values.update(self.norm_gaps)
        return {key: round(value, 6) if math.isfinite(value) else value for key, value in values.items()}


def as_tnc_log_probs(outputs: Any, kind: str, layout: str, max_samples: int) -> torch.Tensor:
    """(T, N', C) float32 log-probabilities of the first `max_samples` samples.

    log_softmax is idempotent on log-probabilities, so "log_probs" and "logits" take the same path
    (a head that forgot log_softmax is still decoded right); "probs" are logged; "auto" takes
    non-negative outputs whose classes sum to one as probabilities, anything else as logits."""
    if kind not in KINDS:
        raise ValueError(f"kind={kind!r}: expected one of {', '.join(KINDS)}")
    x = _as_tnc(outputs, layout)[:, :max_samples].float()
    if kind == "auto":
        sums = x.sum(-1)
        kind = "probs" if bool((x >= 0).all()) and bool(torch.allclose(sums, torch.ones_like(sums), atol=1e-3)) else "logits"
    if kind == "probs":
        return x.clamp_min(1e-30).log()
    return torch.log_softmax(x, dim=-1)


def _as_tnc(outputs: Any, layout: str) -> torch.Tensor:
    """The outputs, detached, as (T, N, C)."""
    if layout not in ("TNC", "NTC"):
        raise ValueError(f"layout={layout!r}: expected 'TNC' or 'NTC'")
    x = torch.as_tensor(outputs).detach()
    if x.dim() != 3:
        raise ValueError(f"outputs have shape {tuple(x.shape)}: expected 3 axes, (T, N, C) or (N, T, C)")
    return x.transpose(0, 1) if layout == "NTC" else x


def normalisation_gaps(outputs: Any, layout: str) -> dict[str, float]:
    """How far the given log-probabilities are from normalised over each axis (median |logsumexp|, nats):
    log_softmax over the classes gives class_norm_gap 0; over time (dim 0 of (T, N, C)) time_norm_gap 0;
    over the batch batch_norm_gap 0. `prob_like` is 1.0 for probabilities (softmax output) given instead."""
    x = _as_tnc(outputs, layout).float()
    if x.numel() == 0 or not bool(torch.isfinite(x).all()):
        return {}
    gaps = {"class_norm_gap": float(torch.logsumexp(x, 2).abs().median()),
            "time_norm_gap": float(torch.logsumexp(x, 0).abs().median()) if x.shape[0] > 1 else math.nan,
            "batch_norm_gap": float(torch.logsumexp(x, 1).abs().median()) if x.shape[1] > 1 else math.nan}
    sums = x.sum(-1)
    gaps["prob_like"] = float(bool((x >= 0).all()) and bool(torch.allclose(sums, torch.ones_like(sums), atol=1e-3)))
    return gaps


def _lengths(value: Any, count: int, default: int) -> torch.Tensor:
    if value is None:
        return torch.full((count,), default, dtype=torch.long)
    return torch.as_tensor(value).detach().to("cpu").reshape(-1).long()[:count]


def check_batch(outputs: Any, targets: Any, target_lengths: Any, output_lengths: Any, layout: str) -> None:
    """Raise a ValueError that names the argument and the fix when the lengths or the targets do not hold one entry
    per sample of the outputs (the batch axis of `layout`)."""
    shape = tuple(torch.as_tensor(outputs).shape)
    if len(shape) != 3:
        raise ValueError(f"outputs have shape {shape}: expected 3 axes, (T, N, C) or (N, T, C)")
    batch_axis = 1 if layout == "TNC" else 0
    samples, other = shape[batch_axis], shape[1 - batch_axis]
    read = f"the outputs {shape} read as layout={layout!r}"

    def swap_hint(count: int) -> str:
        swapped = "NTC" if layout == "TNC" else "TNC"
        return (f"; axis {1 - batch_axis} has {count}: for {'(N, T, C)' if swapped == 'NTC' else '(T, N, C)'} outputs "
                f"pass layout={swapped!r}") if other == count and other != samples else ""

    for name, value in (("target_lengths", target_lengths), ("output_lengths", output_lengths)):
        if value is None:
            continue
        count = int(torch.as_tensor(value).numel())
        if count != samples:
            raise ValueError(f"{name} has {count} entries for {samples} samples ({read}): pass one length per sample"
                             + swap_hint(count))
    labels = torch.as_tensor(targets)
    lengths = torch.as_tensor(target_lengths).reshape(-1).long()
    if labels.dim() == 2 and labels.shape[0] != samples:
        raise ValueError(f"targets has {labels.shape[0]} rows for {samples} samples ({read}): pass the padded targets "
                         "(N, S) of this batch, one row per sample" + swap_hint(int(labels.shape[0])))
    if labels.dim() == 1 and int(lengths.clamp(min=0).sum()) > labels.numel():
        raise ValueError(f"targets holds {labels.numel()} labels but target_lengths add up to "
                         f"{int(lengths.clamp(min=0).sum())}: pass the concatenated labels of this batch with their lengths")
    if labels.dim() not in (1, 2):
        raise ValueError(f"targets have shape {tuple(labels.shape)}: expected padded (N, S) or concatenated labels")


def _targets(targets: Any, target_lengths: Any, frames: torch.Tensor, count: int) -> tuple[list[list[int]], torch.Tensor]:
    """Per-sample label lists and the frames each needs (U + repeats), by the one target splitter."""
    labels = torch.as_tensor(targets).detach().to("cpu").long()
    lengths = torch.as_tensor(target_lengths).detach().to("cpu").reshape(-1).long()
    if labels.dim() == 2:
        labels, lengths = labels[:count], lengths[:count]
    else:  # concatenated: keep the labels of the first `count` samples
        lengths = lengths[:count]
        labels = labels[: int(lengths.clamp(min=0).sum())]
    parts = TargetParts.empty()
    parts.add(Batch(None, labels, frames, lengths, 0, 0, None))
    table = parts.table()
    rows = [row[:length].tolist() for row, length in zip(table.labels, table.valid_lengths.tolist())]
    return rows, table.required_frames()


def _text(sequence: Sequence[int], alphabet: Sequence[str] | None, blank: int) -> str:
    if alphabet is None:
        return " ".join(map(str, sequence))
    # the blank is no symbol: a target that holds it shows '�' there, as a class the alphabet lacks does
    return "".join(alphabet[c - (c > blank)] if c != blank and 0 <= c - (c > blank) < len(alphabet) else "�"
                   for c in sequence)


def _corpus_rate(hyps: Sequence[Sequence[Any]], refs: Sequence[Sequence[Any]]) -> float:
    total = sum(len(ref) for ref in refs)
    edits = sum(edit_distance(hyp, ref) for hyp, ref in zip(hyps, refs))
    return edits / total if total else float(sum(len(hyp) for hyp in hyps) > 0)


def _wer(hyps: list[list[int]], refs: list[list[int]], alphabet: Sequence[str] | None, blank: int,
         delimiter: str | None) -> float | None:
    if alphabet is None or not delimiter or delimiter not in alphabet:
        return None
    hyp_words = [_text(hyp, alphabet, blank).split(delimiter) for hyp in hyps]
    ref_words = [_text(ref, alphabet, blank).split(delimiter) for ref in refs]
    return _corpus_rate([[w for w in h if w] for h in hyp_words], [[w for w in r if w] for r in ref_words])


def measure_outputs(
    outputs: Any,
    targets: Any,
    target_lengths: Any,
    output_lengths: Any = None,
    *,
    kind: str = "log_probs",
    layout: str = "TNC",
    blank: int = 0,
    alphabet: Sequence[str] | None = None,
    word_delimiter: str | None = " ",
    max_samples: int = 64,
    examples: int = 3,
) -> OutputStats:
    """Decode and measure one batch of outputs against its targets (see the module docstring)."""
    log_probs = as_tnc_log_probs(outputs, kind, layout, max_samples)
    frames_total, count, classes = log_probs.shape
    if not 0 <= blank < classes:
        raise ValueError(f"blank={blank} is out of range for outputs with C={classes} classes: pass the blank index "
                         "your loss uses (F.ctc_loss's default: blank=0)")
    check_batch(outputs, targets, target_lengths, output_lengths, layout)
    frames = _lengths(output_lengths, count, frames_total).clamp(0, frames_total)
    refs, required = _targets(targets, target_lengths, frames, count)
    valid = torch.arange(frames_total)[:, None] < frames[None, :]
    bad_frames = valid & ~torch.isfinite(log_probs).all(-1).cpu()
    # A sample with a NaN/inf output has no decode worth reading: measured without it, counted apart.
    kept = (~bad_frames.any(0)).nonzero().flatten()
    decoded = _decode(log_probs[:, kept.to(log_probs.device)], frames[kept], [refs[i] for i in kept.tolist()], blank)
    infeasible = (frames < required).nonzero().flatten().tolist()
    hyps, kept_refs = decoded.pop("hyps"), [refs[i] for i in kept.tolist()]
    return OutputStats(
        evaluated=count,
        classes=classes,
        wer=_wer(hyps, kept_refs, alphabet, blank, word_delimiter) if hyps else None,
        label_density=sum(len(ref) for ref in refs) / max(int(frames.sum()), 1),
        infeasible=len(infeasible),
        infeasible_samples=tuple(infeasible[:10]),
        nonfinite_outputs=int(bad_frames.sum()),
        alt_blank=(classes - 1 if blank == 0 else 0) if classes > 2 else None,
        blank_in_targets=sum(ref.count(blank) for ref in refs),
        label_length=float(np.mean([len(ref) for ref in refs])) if refs else math.nan,
        examples=tuple((_text(ref, alphabet, blank), _text(hyp, alphabet, blank)) for ref, hyp in zip(kept_refs[:examples], hyps)),
        norm_gaps=normalisation_gaps(outputs, layout) if kind == "log_probs" else {},
        **decoded,
    )


def _decode(log_probs: torch.Tensor, frames: torch.Tensor, refs: list[list[int]], blank: int) -> dict[str, Any]:
    """Greedy decodes and the rates of finite outputs (NaN rates when no sample is left)."""
    classes = log_probs.shape[-1]
    alt = classes - 1 if blank == 0 else 0
    if not refs:
        nan = math.nan
        return {"hyps": [], "cer": nan, "blank_ratio": nan, "blank_prob": nan, "entropy": nan, "nonblank": nan,
                "empty_rate": nan, "alt_decode_rate": nan if classes > 2 else None}
    hyps: list[list[int]] = greedy_decode(log_probs, frames, blank=blank)  # type: ignore[assignment] # indices
    shape = spikiness(log_probs, frames, blank=blank)
    with_labels = [hyp for hyp, ref in zip(hyps, refs) if ref]
    return {
        "hyps": hyps,
        "cer": _corpus_rate(hyps, refs),
        "blank_ratio": shape.blank_ratio,
        "blank_prob": 1.0 - shape.nonblank_mass,
        "entropy": shape.entropy,
        "nonblank": 1.0 - shape.blank_ratio,
        "empty_rate": sum(1 for hyp in with_labels if not hyp) / len(with_labels) if with_labels else 0.0,
        "alt_decode_rate": _corpus_rate(greedy_decode(log_probs, frames, blank=alt), refs) if classes > 2 else None,
    }
