"""`ctcdoctor scan`: the length and label checks over a whole data set, vectorised.

The model is not run per batch: output lengths come from `Setup.output_lengths`, from
the full output length when every input has the same length, or from a length model
probed once on the first batch. Targets are gathered per batch with tensor operations
(no per-sample Python), and the existing checks of `checks/lengths.py` and
`checks/labels.py` run on the resulting `TargetTable` and `OutputLengths` unchanged.
No printing here: the command module renders.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

import torch

from ctcdoctor.batches import Batch, TargetTable, iterate_batches
from ctcdoctor.context import Context, Options

#: Codes `scan` runs: lengths and labels, minus CTC004 (it compares with the model per batch) and CTC014.
#: CTC005 says the lengths were estimated by probing the model, as `check` does.
SCAN_CODES = ("CTC001", "CTC002", "CTC003", "CTC005", "CTC010", "CTC011", "CTC012", "CTC013")

#: How each `OutputLengths.source` reads in the status line and the plot title.
LENGTH_SOURCES = {
    "setup": "from Setup.output_lengths",
    "model": "returned by the model",
    "full": "all frames (every input has the same length)",
    "probed": "estimated by probing the model",
    "unknown": "unknown",
}


def lengths_status(source: str, detail: str) -> str:
    """One phrase for the status line: where the output lengths came from, or why they are unknown."""
    if source == "unknown":
        return f"output lengths unknown: probing the model failed ({detail}); the length checks cannot run (see CTC003)"
    if source == "probed":
        return f"output lengths {detail}"
    return f"output lengths {LENGTH_SOURCES.get(source, source)}"


# ---------------------------------------------------------------- targets, vectorised

@dataclass(frozen=True)
class ScanTable(TargetTable):
    """A `TargetTable` that computes `valid_lengths`, `repeats()` and `required_frames()` once (several checks ask)."""

    cache: dict = field(default_factory=dict, compare=False, repr=False)

    @property
    def valid_lengths(self) -> torch.Tensor:
        if "valid" not in self.cache:
            self.cache["valid"] = self.mask.sum(dim=1)
        return self.cache["valid"]

    def repeats(self) -> torch.Tensor:
        if "repeats" not in self.cache:
            if self.labels.shape[1] < 2:
                self.cache["repeats"] = torch.zeros(self.size, dtype=torch.long)
            else:
                equal = (self.labels[:, :-1] == self.labels[:, 1:]) & self.mask[:, 1:]
                # A byte view sums several times faster than a bool tensor.
                self.cache["repeats"] = equal.view(torch.uint8).sum(dim=1, dtype=torch.int32).long()
        return self.cache["repeats"]

    def required_frames(self) -> torch.Tensor:
        if "required" not in self.cache:
            self.cache["required"] = self.valid_lengths + self.repeats()
        return self.cache["required"]


@dataclass
class TargetParts:
    """Per-batch pieces of the target table, gathered while the loader runs; masked once at the end."""

    labels: list[torch.Tensor]
    kept: list[torch.Tensor]
    lengths: list[torch.Tensor]
    input_lengths: list[torch.Tensor]
    batch_index: list[torch.Tensor]
    problems: list[str]

    @classmethod
    def empty(cls) -> "TargetParts":
        return cls([], [], [], [], [], [])

    def add(self, batch: Batch) -> None:
        labels, kept, problems = batch_targets(batch)
        self.labels.append(labels)
        self.kept.append(kept)
        self.lengths.append(batch.target_lengths)
        self.input_lengths.append(batch.input_lengths)
        self.batch_index.append(torch.full((batch.size,), batch.index, dtype=torch.long))
        self.problems.extend(problems)

    def table(self) -> ScanTable:
        if not self.labels:
            empty = torch.zeros(0, dtype=torch.long)
            return ScanTable(torch.zeros((0, 0), dtype=torch.long), torch.zeros((0, 0), dtype=torch.bool), empty, empty, empty, ())
        width = max(labels.shape[1] for labels in self.labels)
        kept = torch.cat(self.kept)
        labels = torch.zeros((kept.shape[0], width), dtype=torch.long)
        row = 0
        for part in self.labels:
            labels[row : row + part.shape[0], : part.shape[1]] = part
            row += part.shape[0]
        mask = torch.arange(width).unsqueeze(0) < kept.unsqueeze(1)
        labels.masked_fill_(~mask, 0)
        return ScanTable(labels, mask, torch.cat(self.lengths), torch.cat(self.input_lengths), torch.cat(self.batch_index),
                         tuple(self.problems), {"valid": kept})


def _ids(batch: Batch, positions: torch.Tensor) -> list[int]:
    return [batch.first_sample + int(p) for p in positions[:10]]


def batch_targets(batch: Batch) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """(labels (N, S) unmasked, labels kept per sample (N,), problems) for one batch, as `split_targets` would give."""
    lengths = batch.target_lengths
    problems: list[str] = []
    negative = (lengths < 0).nonzero().flatten()
    if negative.numel():
        problems.append(f"batch {batch.index}: target_lengths are negative for samples {_ids(batch, negative)}")
    clipped = lengths.clamp(min=0)
    if batch.concatenated:
        total = int(clipped.sum())
        available = batch.targets.shape[0]
        if total != available:
            problems.append(
                f"batch {batch.index}: target_lengths sum to {total} but the concatenated targets hold {available} labels"
            )
        offsets = torch.cumsum(clipped, 0) - clipped
        # A sample gets the labels that exist: clip at the end of the concatenated targets.
        kept = (available - offsets).clamp(min=0).minimum(clipped)
        width = int(kept.max()) if kept.numel() else 0
        positions = (offsets.unsqueeze(1) + torch.arange(width).unsqueeze(0)).clamp(max=max(available - 1, 0))
        labels = batch.targets[positions] if available else torch.zeros_like(positions)
        return labels, kept, problems
    width_all = batch.targets.shape[1]
    too_long = (lengths > width_all).nonzero().flatten()
    if too_long.numel():
        problems.append(
            f"batch {batch.index}: target_lengths exceed the padded width {width_all} for samples {_ids(batch, too_long)} "
            f"(longest {int(lengths.max())})"
        )
    kept = clipped.clamp(max=width_all)
    return batch.targets, kept, problems


# ---------------------------------------------------------------- the scan

@dataclass
class ScanData:
    table: TargetTable
    first: Batch
    batches: int
    seconds: float


def read_all(loader: Iterable, on_batch: Callable[[int], None] | None = None) -> ScanData:
    """Iterate the whole loader once, keeping only targets and lengths (and the first batch, for the model)."""
    parts = TargetParts.empty()
    first: Batch | None = None
    count = 0
    started = time.perf_counter()
    for batch in iterate_batches(loader):
        if first is None:
            first = batch
        parts.add(batch)
        count += 1
        if on_batch is not None:
            on_batch(batch.size)
    return ScanData(parts.table(), first, count, time.perf_counter() - started)


class ScanContext(Context):
    """A check context whose targets and output lengths cover the whole data set; the model runs on the first batch only."""

    def __init__(self, setup, spec: str, data: ScanData) -> None:
        super().__init__(setup, Options(max_batches=1, scan_batches=1), spec)
        self.overrides: dict[str, Any] = {"batches": [data.first], "targets": data.table}
        self.data = data

    def get(self, name: str) -> Any:
        overrides = self.__dict__.get("overrides", {})
        if name in overrides:
            return overrides[name]
        if name == "output_lengths":
            value = whole_output_lengths(self)
            overrides[name] = value
            return value
        return super().get(name)


def whole_output_lengths(context: ScanContext):
    """Output lengths for every sample without running the model per batch."""
    from ctcdoctor.inputs.core import OutputLengths
    from ctcdoctor.probe import call_length_function, probe_lengths

    setup, table, first = context.setup, context.data.table, context.data.first
    input_lengths = table.input_lengths
    unknown = torch.full_like(input_lengths, -1)
    if setup.output_lengths is not None:
        scanned = call_length_function(setup.output_lengths, input_lengths)
        return OutputLengths(scanned, (scanned[: first.size],), "setup", "from Setup.output_lengths")
    run = context.runs[0]
    layout = context.layout.layout
    frames = int(run.output.shape[1] if layout == "NTC" else run.output.shape[0])
    if input_lengths.numel() and int(input_lengths.min()) == int(input_lengths.max()):
        full = torch.full_like(input_lengths, frames)
        return OutputLengths(full, (full[: first.size],), "full", f"every input has the same length, so every sample gets all {frames} frames")
    try:
        model = probe_lengths(context.model, first, layout, input_lengths)
    except Exception as error:
        return OutputLengths(unknown, (unknown[: first.size],), "unknown", str(error))
    scanned = model(input_lengths)
    per_run = run.returned_lengths if run.returned_lengths is not None else scanned[: first.size]
    return OutputLengths(scanned, (per_run,), "probed", f"estimated by probing the model once: {model.describe()}")


# ---------------------------------------------------------------- summaries

def spare_frames(table: TargetTable, lengths: torch.Tensor) -> torch.Tensor:
    """Output frames minus required frames (U + repeats) per sample; negative = infeasible."""
    return lengths - table.required_frames()


def histogram(values: torch.Tensor, bins: int = 12) -> list[dict[str, int]]:
    """Integer-aligned histogram: [{"from", "to", "count"}], `to` inclusive."""
    if values.numel() == 0:
        return []
    low, high = int(values.min()), int(values.max())
    width = max(1, -(-(high - low + 1) // bins))
    edges = list(range(low, high + 1, width))
    counts = torch.bincount(torch.div(values - low, width, rounding_mode="floor"), minlength=len(edges))
    return [{"from": edge, "to": edge + width - 1, "count": int(count)} for edge, count in zip(edges, counts.tolist())]


def worst_samples(table: TargetTable, lengths: torch.Tensor, count: int = 10) -> list[dict[str, int]]:
    known = (lengths >= 0).nonzero().flatten()
    if known.numel() == 0:
        return []
    spare = spare_frames(table, lengths)[known]
    order = known[torch.argsort(spare, stable=True)[:count]]
    required, repeats, labels = table.required_frames(), table.repeats(), table.valid_lengths
    return [
        {"sample": int(i), "frames": int(lengths[i]), "labels": int(labels[i]), "repeats": int(repeats[i]),
         "needed": int(required[i]), "spare": int(lengths[i] - required[i])}
        for i in order
    ]


def summary(table: TargetTable, lengths: torch.Tensor) -> dict[str, Any]:
    known = lengths >= 0
    spare = spare_frames(table, lengths)[known]
    if spare.numel() == 0:
        return {"known": 0}
    ordered = spare.sort().values.double()

    def quantile(q: float) -> float:
        return float(ordered[min(len(ordered) - 1, int(q * (len(ordered) - 1)))])

    return {
        "known": int(known.sum()),
        "infeasible": int((spare < 0).sum()),
        "min": int(spare.min()),
        "p1": quantile(0.01),
        "p5": quantile(0.05),
        "median": quantile(0.5),
        "max": int(spare.max()),
        "histogram": histogram(spare),
    }


# ---------------------------------------------------------------- the per-sample loop (benchmark baseline)

def per_sample_scan(batches: Iterable[Any], num_classes: int, blank: int, output_lengths: Callable) -> dict[str, int]:
    """The same length and label tests written as a per-sample Python loop, for `benchmarks/scan.py`."""
    counts = {"infeasible": 0, "tight": 0, "out_of_range": 0, "blank": 0, "empty": 0, "samples": 0}
    for inputs, targets, input_lengths, target_lengths in batches:
        frames = output_lengths(input_lengths)
        for n in range(len(target_lengths)):
            length = int(target_lengths[n])
            labels = targets[n, :length].tolist() if targets.dim() == 2 else None
            if labels is None:
                start = int(target_lengths[:n].sum())
                labels = targets[start:start + length].tolist()
            repeats = sum(1 for a, b in zip(labels, labels[1:]) if a == b)
            needed = len(labels) + repeats
            available = int(frames[n])
            counts["samples"] += 1
            counts["infeasible"] += available < needed
            counts["tight"] += needed <= available < 1.25 * needed
            counts["out_of_range"] += any(label < 0 or label >= num_classes for label in labels)
            counts["blank"] += blank in labels
            counts["empty"] += length == 0
    return counts


def vectorised_counts(table: TargetTable, lengths: torch.Tensor, num_classes: int, blank: int) -> dict[str, int]:
    """`per_sample_scan`'s counts from the vectorised table (the benchmark checks both agree)."""
    required = table.required_frames()
    values, mask = table.labels, table.mask
    return {
        "infeasible": int((lengths < required).sum()),
        "tight": int(((lengths >= required) & (lengths.double() < 1.25 * required.double())).sum()),
        "out_of_range": int((mask & ((values < 0) | (values >= num_classes))).any(dim=1).sum()),
        "blank": int((mask & (values == blank)).any(dim=1).sum()),
        "empty": int((table.lengths == 0).sum()),
        "samples": table.size,
    }
