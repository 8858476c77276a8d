"""`ctcdoctor scan` logic against a per-sample Python loop, measured in the same run.

    python benchmarks/scan.py [--samples 100000] [--batch 256]

Both sides get the same in-memory batches (a loader's own cost is the user's and is
the same for both): the vectorised side reads them with `ctcdoctor.scan.read_all`
(normalise each batch, gather targets with tensor ops), computes the output lengths
and runs the real CTC001-CTC002 and CTC010-CTC013 check functions; the loop side runs
the same tests one sample at a time (`per_sample_scan` below). The counts of
both must agree; the script prints the ratio.
"""
from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from ctcdoctor.load.batches import TargetTable


def per_sample_scan(batches: Iterable[Any], num_classes: int, blank: int, output_lengths: Callable) -> dict[str, int]:
    """The same length and label tests written as a per-sample Python loop, the baseline."""
    counts = {"infeasible": 0, "tight": 0, "out_of_range": 0, "blank": 0, "empty": 0, "samples": 0}
    for _inputs, targets, input_lengths, target_lengths in batches:
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


def make_batches(samples: int, batch: int, num_classes: int = 80, seed: int = 0) -> list[tuple]:
    generator = torch.Generator().manual_seed(seed)
    batches = []
    for start in range(0, samples, batch):
        size = min(batch, samples - start)
        target_lengths = torch.randint(0, 31, (size,), generator=generator)
        targets = torch.randint(1, num_classes, (size, int(target_lengths.max()) if size else 0), generator=generator)
        input_lengths = torch.randint(40, 200, (size,), generator=generator)
        batches.append((torch.zeros(size, 1), targets, input_lengths, target_lengths))
    return batches


def output_lengths(input_lengths):
    return torch.div(input_lengths, 4, rounding_mode="floor")


def counts_only(batches, num_classes, blank):
    """Exactly the loop's work: read the batches into the table and count."""
    from ctcdoctor.scan.run import read_all

    data = read_all(batches)
    return vectorised_counts(data.table, output_lengths(data.table.input_lengths), num_classes, blank)


def vectorised(batches, num_classes, blank):
    """What `ctcdoctor scan` does: read the batches into one table, then run the real checks on it."""
    from checks.labels import blank_in_targets, empty_targets, label_out_of_range, target_lengths_inconsistent
    from checks.lengths import infeasible_alignment, tight_length_budget
    from ctcdoctor.measure.lengths import OutputLengths
    from ctcdoctor.scan.run import read_all

    data = read_all(batches)
    lengths = output_lengths(data.table.input_lengths)
    known = OutputLengths(lengths, (lengths[: data.first.size],), "setup", "benchmark")
    return (infeasible_alignment(data.table, known) + tight_length_budget(data.table, known)
            + label_out_of_range(data.table, num_classes) + blank_in_targets(data.table, blank, None)
            + target_lengths_inconsistent(data.table) + empty_targets(data.table))


def median_time(function, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return sorted(times)[len(times) // 2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # `checks` as a top-level package too

    # Small, memory-bound tensor ops: one thread is faster than two fighting over a busy machine,
    # and the loop side is single-threaded anyway (`ctcdoctor scan` does the same).
    torch.set_num_threads(1)
    num_classes, blank = 80, 0
    batches = make_batches(args.samples, args.batch, num_classes)
    vectorised(batches[:2], num_classes, blank)  # warm-up (imports)
    counts = counts_only(batches, num_classes, blank)
    reference = per_sample_scan(batches, num_classes, blank, output_lengths)
    assert counts == reference, (counts, reference)
    findings = vectorised(batches, num_classes, blank)
    infeasible = next(finding for finding in findings if finding.code == "CTC001").evidence["count"]
    assert infeasible == reference["infeasible"], (infeasible, reference)
    # Interleaved rounds, median of each: the machine's load hits all three alike.
    rounds = {"loop": [], "counts": [], "scan": []}
    for _ in range(args.rounds):
        rounds["loop"].append(median_time(lambda: per_sample_scan(batches, num_classes, blank, output_lengths), 1))
        rounds["counts"].append(median_time(lambda: counts_only(batches, num_classes, blank), 1))
        rounds["scan"].append(median_time(lambda: vectorised(batches, num_classes, blank), 1))
    slow, counting, fast = (sorted(values)[len(values) // 2] for values in rounds.values())
    print(f"samples: {args.samples:,} in batches of {args.batch} (torch threads: 1, median of {args.rounds} interleaved rounds)")
    print(f"counts agree: {counts}; findings: {sorted({finding.code for finding in findings})}")
    print(f"per-sample loop (counts only):           {slow:8.3f} s  ({args.samples / slow:,.0f} samples/s)")
    print(f"vectorised, the same counts:             {counting:8.3f} s  ({args.samples / counting:,.0f} samples/s)")
    print(f"vectorised scan (read + check findings): {fast:8.3f} s  ({args.samples / fast:,.0f} samples/s)")
    print(f"ratio loop / vectorised counts: {slow / counting:.1f}x; loop / full vectorised scan: {slow / fast:.1f}x")


if __name__ == "__main__":
    main()
