"""`ctcdoctor scan`: the length and label checks over a whole data set, streamed.

The model runs on the data set's first batch only (for the class count, the layout and, when
needed, a probed length model); every sample's targets and lengths are read chunk by chunk
(from the loader, or from `Setup.sample_labels` without decoding inputs) into a mergeable
`Summary` whose size does not grow with the data set. No printing here: the command renders.
"""
from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ctcdoctor.engine import run_checks
from ctcdoctor.errors import UserInputError
from ctcdoctor.load.batches import Batch, batch_targets, in_dataset_order, iterate_batches, numbered_by_index
from ctcdoctor.load.limits import doing
from ctcdoctor.measure.downsampling import measure_downsampling
from ctcdoctor.measure.lengths import declared_stride, probe_failed_for_the_rest
from ctcdoctor.protocol import Setup
from ctcdoctor.registry import select_checks
from ctcdoctor.scan.frames import (
    DECLARED_BY,
    FramesRule,
    ModelFacts,
    choose_rule,
    first_batch_lengths,
    measured_rule,
    model_facts,
    overcount_rule,
)
from ctcdoctor.scan.sources import (
    ReadStatus,
    Shard,
    loader_chunks,
    refuse_iteration_order,
    sample_label_chunks,
    shard_batches,
)
from ctcdoctor.scan.state import SCAN_CODES, ScanState
from ctcdoctor.scan.summary import Chunk, Summary

#: Torch threads while scanning (benchmarks/scan.py --threads measures 1 against 2).
SCAN_THREADS = 1
#: Samples a loader without a length may yield before `scan` calls it endless (see --max-samples).
ENDLESS = 20_000_000

#: How each `OutputLengths.source` reads in the status line.
LENGTH_SOURCES = {
    "setup": "from Setup.output_lengths",
    "model": "returned by the model",
    "full": "all frames (every input has the same length)",
    "probed": "estimated by probing the model",
    "measured": "measured by probing the model",
    "unknown": "unknown",
    "manifest": "from the manifest",
}


def lengths_status(source: str, detail: str, rejected: str | None = None) -> str:
    """One phrase for the status line: where the output lengths came from, or why they are unknown. `rejected`: who
    declared the lengths CTC003 found wrong (the scan then reads measured ones, or none)."""
    if source == "unknown" and rejected:
        return (f"output lengths unknown: {rejected} disagree with the model's output (CTC003) and probing the model "
                f"failed ({detail}); no spare frames, tightest samples or infeasible samples to drop without them")
    if source == "unknown":
        return f"output lengths unknown: probing the model failed ({detail}); the length checks cannot run (see CTC003)"
    if source == "unavailable":
        return f"output lengths unknown: the model failed on the first batch ({detail})"
    if source in ("probed", "measured", "manifest"):
        return f"output lengths {detail}"
    return f"output lengths {LENGTH_SOURCES.get(source, source)}"


@dataclass
class ScanOptions:
    shard: Shard = field(default_factory=Shard)
    worst: int = 10
    max_samples: int | None = None
    """Stop after this many samples (a bounded look at an endless loader)."""
    device: str | None = None
    workers: int | None = None
    """Worker processes for a DataLoader over a map-style data set (None: the loader's own)."""
    labels_only: bool = True
    """Use `Setup.sample_labels` when the set-up has it."""
    on_samples: Callable[[int], None] | None = None
    on_chunk: Callable[[Chunk, np.ndarray, int | None, int], None] | None = None
    """Called with each chunk and its output frames (the drop-list writer listens here)."""
    indices_only: bool = False
    """Sample numbers must be data set indices (a drop-list is written, with or without --drop-anyway): refuse a loader
    whose numbers are positions in an order that is not the data set's (`sources.refuse_iteration_order`)."""


@contextlib.contextmanager
def isolated(seed: int | None, threads: int | None = None) -> Iterator[None]:
    """Seeded torch, numpy and random while the block runs, the caller's generators and thread count restored after.

    One thread: the scan's work is many small array operations, and on a shared machine a second
    OpenMP thread costs more than it brings (benchmarks/scan.py --threads: 0.39 s against 0.31 s
    at 100,000 samples, 4.90 s against 4.23 s at 1,000,000).
    """
    from ctcdoctor.load.state import seeded, torch_threads

    with seeded(seed), torch_threads(threads or SCAN_THREADS):
        yield


def _length(loader: Any) -> int | None:
    try:
        return len(loader.dataset)
    except Exception:
        return None


def _first_batch(setup: Setup, held: list[Batch]) -> Batch:
    """The data set's first batch: from the shard's own stream when it reads batch 0, else read once."""
    if held:
        return held[0]
    with doing("reading the first batch of the loader"):
        return next(iterate_batches(setup.loader, 1, getattr(setup, "batch_axis", None)))


def _check_sample_labels(setup: Setup, first: Batch) -> None:
    """Setup.sample_labels must describe the loader's samples: compare on the first batch."""
    labels, kept, _ = batch_targets(first)
    for row in range(first.size):
        length, given = setup.sample_labels(first.sample_id(row))  # type: ignore[misc]
        expected = labels[row, : int(kept[row])].tolist()
        given = given.tolist() if hasattr(given, "tolist") else list(given)
        if int(length) != int(first.input_lengths[row]) or given != expected:
            raise UserInputError(
                f"Setup.sample_labels({first.sample_id(row)}) gives input length {int(length)} and labels {given[:12]}, but "
                f"the loader's first batch has {int(first.input_lengths[row])} and {expected[:12]} for sample {first.sample_id(row)}",
                "Make sample_labels(i) return what the loader yields for data set item i: (input length, label indices).",
            )


def _refuse_endless(loader: Any, options: ScanOptions) -> None:
    """itertools.cycle and repeat never end: say so before reading (other endless loaders meet the ENDLESS cap)."""
    import itertools

    if options.max_samples is None and isinstance(loader, (itertools.cycle, itertools.repeat)):
        raise UserInputError(
            f"the loader is an itertools.{type(loader).__name__}: it never ends, so a whole-data-set scan cannot finish",
            "Pass the underlying finite loader (one epoch), or scan a bounded part with --max-samples N.",
        )


def _chunks(setup: Setup, options: ScanOptions, held: list[Batch], status: ReadStatus) -> Iterator[Chunk]:
    _refuse_endless(setup.loader, options)
    total = _length(setup.loader)
    hook = getattr(setup, "sample_labels", None)
    if hook is not None and options.labels_only:
        if total is None:
            raise UserInputError("Setup.sample_labels is set but the loader's data set has no len()",
                                 "Use a DataLoader over a map-style data set, or leave sample_labels unset.")
        block = getattr(setup.loader, "batch_size", None) or 256
        end = total if options.max_samples is None else min(total, options.max_samples)
        if end < total:
            status.capped = (end, 0)
        yield from sample_label_chunks(hook, end, block, options.shard, options.on_samples)
        return
    limit = options.max_samples if options.max_samples is not None else (None if total is not None else ENDLESS)

    def seen(batch: Batch) -> None:
        if batch.index == 0:
            held.append(batch)
        if options.on_samples is not None:
            options.on_samples(batch.size)

    axis = getattr(setup, "batch_axis", None)
    loader = in_dataset_order(setup.loader, axis)
    batches = shard_batches(loader, options.shard, limit, status, options.workers, axis)
    if options.indices_only and not numbered_by_index(loader):
        batches = refuse_iteration_order(loader, batches)
    yield from loader_chunks(batches, seen)


def _ctc003(facts: ModelFacts, rule: FramesRule, source: str, detail: str) -> list[dict[str, Any]] | None:
    """The real CTC003 on the first batch, under the final rule."""
    if facts.failure is not None:
        return None
    facts.context.put("output_lengths", lambda: first_batch_lengths(rule, source, detail))
    findings, _ = run_checks(facts.context, [info for info in select_checks(["CTC003"]) if info.code == "CTC003"])
    return [item.to_dict() for item in findings]


def _declared_ctc003(facts: ModelFacts, rule: FramesRule) -> list[dict[str, Any]] | None:
    """CTC003 on the first batch for lengths the set-up declares (Setup.output_lengths, or returned by the model),
    before any sample is read: when it finds them wrong, the scan reads measured lengths instead. None otherwise."""
    if rule.source not in DECLARED_BY:
        return None
    return _ctc003(facts, rule, rule.source, rule.detail) or None


def _lengths_wrong(found: list[dict[str, Any]] | None) -> bool:
    """CTC003 found the declared lengths themselves wrong (too long, negative, not one per sample), not the output's
    layout (no batch axis: its evidence is the layout's `detail`), which no measured length would mend."""
    return any("detail" not in (item.get("evidence") or {}) for item in found or ())


def scan_setup(setup: Setup, spec: str, options: ScanOptions) -> ScanState:
    """Scan the set-up's data (or the options' shard of it) into a mergeable state."""
    with doing(f"reading the data of {spec} (use --max-samples N for a bounded part)"):
        return _scan_setup(setup, spec, options)


def _scan_setup(setup: Setup, spec: str, options: ScanOptions) -> ScanState:
    started = time.perf_counter()
    held: list[Batch] = []
    status = ReadStatus()
    chunks = _chunks(setup, options, held, status)
    summary = Summary(worst_count=max(options.worst, 10))
    pending = next(chunks, None)  # reads batch 0 first when this shard owns it: the model runs on it
    first = _first_batch(setup, held)
    labels_only = getattr(setup, "sample_labels", None) is not None and options.labels_only
    if labels_only:
        _check_sample_labels(setup, first)
    with doing("running the model on the first batch"):
        facts = model_facts(setup, first, options.device)
    rule = choose_rule(setup, facts)
    declared = _declared_ctc003(facts, rule)
    rejected = DECLARED_BY[rule.source] if _lengths_wrong(declared) else None
    # Declared lengths CTC003 found wrong: the measured ones; returned ones that only count frames past the end of
    # padded samples (CTC007): the frames each sample gets on its own, as `check` judges them.
    rule = measured_rule(facts, rule) if rejected else (overcount_rule(facts, rule) or rule)
    while pending is not None:
        _digest(summary, pending, rule, facts, setup.blank, options)
        pending = next(chunks, None)
    source, detail = rule.final()
    return ScanState(
        spec, summary, source, detail, blank=setup.blank, alphabet=setup.alphabet, num_classes=facts.num_classes,
        failure=facts.failure, ctc003=declared or _ctc003(facts, rule, source, detail),
        shard=(options.shard.index, options.shard.count),
        reader="sample_labels" if labels_only else "loader", seconds=time.perf_counter() - started,
        stopped=_stopped(status, options), **_downsampling(summary, facts),
        stride=_declared_stride(rule, source, summary), framework=_framework(setup), rejected=rejected,
        uncovered=_uncovered(rule, source),
    )


def _uncovered(rule: FramesRule, source: str) -> str | None:
    """Why the samples past the first batch lack output lengths, when the model returns its own (for that batch only)
    and probing it for the rest failed: as `check` says it (`measure.lengths.probe_failed_for_the_rest`)."""
    facts = rule.facts
    if source != "model" or rule.setup_lengths is not None or facts is None or facts._probe_error is None:
        return None
    return probe_failed_for_the_rest(facts._probe_error)


def _framework(setup: Setup) -> str | None:
    from ctcdoctor.frameworks.hf_model import HFCTCModel

    return "transformers" if isinstance(setup.model, HFCTCModel) else None


def _declared_stride(rule: FramesRule, source: str, summary: Summary) -> int | None:
    """The `s` of a `floor((L + k) / s)` Setup.output_lengths over the lengths scanned, stated by CTC001 as `check` does;
    for measured lengths, the probed rule's."""
    if source == "measured" and rule.facts is not None and rule.facts.probe() is not None:
        return rule.facts.probe().stride  # type: ignore[union-attr]
    values, _ = summary.input_lengths.items()
    if source != "setup" or rule.setup_lengths is None or not values:
        return None
    return declared_stride(rule.setup_lengths, torch.tensor([min(values), max(values)]))


def _downsampling(summary: Summary, facts: ModelFacts) -> dict[str, Any]:
    """What sets the output's time length, for CTC001's fix, measured on the first batch (two more forward passes)
    only when some sample cannot be aligned: `time_strides`, the layers that downsample time (`TimeStride` fields),
    and `fixed_length`, a resampling to one size whatever the input (`FixedLength.to_json`); empty when no sample is
    infeasible or the model cannot be probed."""
    # Either count may be the one judged: whether the lengths count the padding is known once every shard is read.
    infeasible = summary.infeasible or (summary.unpadded is not None and summary.unpadded.infeasible)
    if not infeasible or facts.failure is not None:
        return {"time_strides": [], "fixed_length": None}
    try:
        measured = measure_downsampling(facts.context.model, facts.first)
    except Exception:  # a model that will not run at other lengths: the fix stays generic, as in `check`
        return {"time_strides": [], "fixed_length": None}
    return {"time_strides": [vars(item) for item in measured.layers],
            "fixed_length": measured.fixed.to_json() if measured.fixed is not None else None}


def _digest(summary: Summary, chunk: Chunk, rule: FramesRule, facts: ModelFacts, blank: int, options: ScanOptions) -> None:
    frames = rule.frames(chunk.ids if chunk.positions is None else chunk.positions, chunk.input_lengths)
    summary.add(chunk, frames, facts.num_classes, blank)
    if options.on_chunk is not None:
        options.on_chunk(chunk, frames, facts.num_classes, blank)


def _stopped(status: ReadStatus, options: ScanOptions) -> str | None:
    if status.capped is None:
        return None
    samples, batches = status.capped
    if options.max_samples is not None:
        return f"stopped after {samples:,} samples (--max-samples {options.max_samples:,})"
    raise UserInputError(
        f"the loader yielded {samples:,} samples in {batches:,} {'batch' if batches == 1 else 'batches'} and has not ended; "
        "it has no len(), "
        "so it may be endless (itertools.cycle, an IterableDataset that repeats)",
        "Scan a bounded part with --max-samples N, give the loader's data set a __len__, or make one pass end.",
    )


__all__ = ["SCAN_CODES", "ScanOptions", "isolated", "lengths_status", "scan_setup"]
