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
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import torch

from ctcdoctor.config import Settings
from ctcdoctor.engine import Context, Options, run_checks
from ctcdoctor.findings import CheckResult, Finding
from ctcdoctor.load.batches import Batch, TargetParts, TargetTable, iterate_batches
from ctcdoctor.measure.lengths import resolve_output_lengths
from ctcdoctor.protocol import Setup
from ctcdoctor.registry import apply_ignore, select_checks, sort_findings

#: Codes `scan` runs: lengths and labels, minus CTC004 (it compares with the model per batch) and CTC014.
#: CTC005 says the lengths were estimated by probing the model, as `check` does.
SCAN_CODES = ("CTC001", "CTC002", "CTC003", "CTC005", "CTC010", "CTC011", "CTC012", "CTC013")

#: How each `OutputLengths.source` reads in the status line.
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
    assert first is not None  # iterate_batches raises BatchError on a loader that yields nothing
    return ScanData(parts.table(), first, count, time.perf_counter() - started)


def scan_context(setup: Setup, data: ScanData) -> Context:
    """A check context whose targets and output lengths cover the whole data set; the model runs on
    the first batch only (for the layout, the class count and, when needed, a probed length model)."""
    context = Context(setup, Options(max_batches=1, scan_batches=1), {"batches": [data.first], "targets": data.table})
    context.put("output_lengths", lambda: resolve_output_lengths(
        setup.output_lengths, context.runs, data.table.input_lengths, context.layout.layout,
        lambda: context.length_model, probe_uncovered=True,
    ))
    return context


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


def scan_findings(
    setup: Setup, data: ScanData, settings: Settings, worst: int = 10,
) -> tuple[list[Finding], list[CheckResult], dict[str, Any]]:
    """Run the scan's checks over the whole data set; (findings, check results, the JSON `result`)."""
    context = scan_context(setup, data)
    chosen = [info for info in select_checks(settings.select or SCAN_CODES, settings.ignore) if info.code in SCAN_CODES]
    findings, results = run_checks(context, chosen)
    findings = apply_ignore(findings, settings.ignore)
    lengths = context.get("output_lengths")
    table = data.table
    result = {
        "samples": table.size,
        "batches": data.batches,
        "seconds": round(data.seconds, 4),
        "samples_per_second": round(table.size / data.seconds, 1) if data.seconds > 0 else None,
        "lengths_source": lengths.source,
        "lengths_detail": lengths.detail,
        "spare_frames": summary(table, lengths.scanned),
        "worst": worst_samples(table, lengths.scanned, worst),
        "max_target_length": int(table.valid_lengths.max()) if table.size else 0,
    }
    return list(sort_findings(findings)), results, result
