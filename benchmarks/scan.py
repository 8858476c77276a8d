"""`ctcdoctor scan` logic against a per-sample Python loop, measured in the same run.

    python benchmarks/scan.py [--samples 100000] [--batch 256]

Both sides get the same in-memory batches (a loader's own cost is the user's and is
the same for both): the vectorised side reads them with `ctcdoctor.scan.read_all`
(normalise each batch, gather targets with tensor ops), computes the output lengths
and runs the real CTC001-CTC002 and CTC010-CTC013 check functions; the loop side runs
the same tests one sample at a time (`ctcdoctor.scan.per_sample_scan`). The counts of
both must agree; the script prints the ratio.
"""
from __future__ import annotations

import argparse
import time

import torch


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
    from ctcdoctor.scan import read_all, vectorised_counts

    data = read_all(batches)
    return vectorised_counts(data.table, output_lengths(data.table.input_lengths), num_classes, blank)


def vectorised(batches, num_classes, blank):
    from checks.labels import blank_in_targets, empty_targets, label_out_of_range, target_lengths_inconsistent
    from checks.lengths import infeasible_alignment, tight_length_budget
    from ctcdoctor.inputs.core import OutputLengths
    from ctcdoctor.scan import read_all, vectorised_counts

    data = read_all(batches)
    lengths = output_lengths(data.table.input_lengths)
    known = OutputLengths(lengths, (lengths[: data.first.size],), "setup", "benchmark")
    findings = (infeasible_alignment(data.table, known) + tight_length_budget(data.table, known)
                + label_out_of_range(data.table, num_classes) + blank_in_targets(data.table, blank)
                + target_lengths_inconsistent(data.table) + empty_targets(data.table))
    return vectorised_counts(data.table, lengths, num_classes, blank), findings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=256)
    args = parser.parse_args()
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # `checks` as a top-level package too
    from ctcdoctor.scan import per_sample_scan

    # Small, memory-bound tensor ops: one thread is faster than two fighting over a busy machine,
    # and the loop side is single-threaded anyway (`ctcdoctor scan` does the same).
    torch.set_num_threads(1)
    num_classes, blank = 80, 0
    batches = make_batches(args.samples, args.batch, num_classes)
    vectorised(batches[:2], num_classes, blank)  # warm-up (imports)
    started = time.perf_counter()
    counts, findings = vectorised(batches, num_classes, blank)
    fast = time.perf_counter() - started
    started = time.perf_counter()
    same_work = counts_only(batches, num_classes, blank)
    counting = time.perf_counter() - started
    assert same_work == counts
    started = time.perf_counter()
    reference = per_sample_scan(batches, num_classes, blank, output_lengths)
    slow = time.perf_counter() - started
    assert counts == reference, (counts, reference)
    print(f"samples: {args.samples:,} in batches of {args.batch} (torch threads: 1); counts agree: {counts}")
    print(f"findings: {sorted({finding.code for finding in findings})}")
    print(f"per-sample loop:                     {slow:8.3f} s  ({args.samples / slow:,.0f} samples/s)")
    print(f"vectorised, the loop's work:         {counting:8.3f} s  ({args.samples / counting:,.0f} samples/s)")
    print(f"vectorised, full scan with findings: {fast:8.3f} s  ({args.samples / fast:,.0f} samples/s)")
    print(f"ratio (same work): {slow / counting:.1f}x faster; full scan incl. findings: {slow / fast:.1f}x faster")


if __name__ == "__main__":
    main()
