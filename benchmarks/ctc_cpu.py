"""CPU time and peak memory of ctcdoctor.ctc against F.ctc_loss, measured side by side in one run.

Run: python benchmarks/ctc_cpu.py [--rounds 7] [--reps 5] [--threads 1,2] [--shapes T,N,C,U ...]

For each shape and thread count it prints, against F.ctc_loss forward+backward (reduction="mean"):
- time: each round runs every contender `reps` times, interleaved call by call in a rotating
  order (drift and other processes then hit all of them alike); a contender's ratio in a round is
  its median over the peer's median in that round; the table shows the median over rounds;
- peak memory: the rise of the process's peak resident set (VmHWM, reset through
  /proc/self/clear_refs after malloc_trim) during one call, median of 5; Linux only;
- aten ops: how many ops one call dispatches (all / not counting views and other metadata-only
  ops), counted with a TorchDispatchMode.
The machine may be shared: say what else ran when quoting these numbers.
"""
from __future__ import annotations

import argparse
import collections
import ctypes
import gc
import os
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing
from ctcdoctor.ctc import ctc_loss, posterior  # noqa: E402

SHAPES = [  # (T, N, C, U)
    (100, 32, 37, 20),
    (400, 16, 30, 80),
    (150, 8, 5000, 40),
]
PEER = "F.ctc_loss fwd+bwd"
# Ops that only make views or move metadata: no OpenMP region, no pass over data.
METADATA = {"view", "detach", "lift_fresh", "unsqueeze", "squeeze", "expand", "permute", "alias",
            "_local_scalar_dense", "t", "transpose", "select", "slice", "as_strided", "_unsafe_view"}


def make_batch(T: int, N: int, C: int, U: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    lp = torch.randn(T, N, C, generator=g).log_softmax(-1).requires_grad_()
    targets = torch.randint(1, C, (N, U), generator=g)
    # Ragged lengths, as in real batches; every sample stays feasible.
    input_lengths = torch.randint(T * 3 // 4, T + 1, (N,), generator=g)
    input_lengths[0] = T
    target_lengths = torch.randint(U * 3 // 4, U + 1, (N,), generator=g)
    return lp, targets, input_lengths, target_lengths


def contenders(lp, tg, il, tl):
    def f_ctc():
        F.ctc_loss(lp, tg, il, tl).backward()

    def ours_plain():
        ctc_loss(lp, tg, il, tl).backward()

    def ours_mod():
        ctc_loss(lp, tg, il, tl, alpha=0.5, gamma=1.0).backward()

    def occ():
        posterior(lp, tg, il, tl)

    return {PEER: f_ctc, "ctc_loss fwd+bwd": ours_plain, "ctc_loss a=0.5 g=1": ours_mod, "posterior()": occ}


def time_ratios(fns: dict, lp: torch.Tensor, rounds: int, reps: int) -> tuple[dict, dict]:
    """Median ms per contender, and the median over rounds of each round's ratio to the peer."""
    names = list(fns)
    for fn in fns.values():  # warm-up: allocator, first-call dispatch
        for _ in range(2):
            fn()
            lp.grad = None
    per_round: dict[str, list[float]] = {k: [] for k in names}
    ratios: dict[str, list[float]] = {k: [] for k in names}
    for r in range(rounds):
        order = names[r % len(names):] + names[: r % len(names)]
        times: dict[str, list[float]] = {k: [] for k in names}
        for _ in range(reps):
            for name in order:
                t0 = time.perf_counter()
                fns[name]()
                times[name].append(time.perf_counter() - t0)
                lp.grad = None
        med = {k: statistics.median(v) for k, v in times.items()}
        for k in names:
            per_round[k].append(med[k])
            ratios[k].append(med[k] / med[PEER])
    ms = {k: statistics.median(v) * 1e3 for k, v in per_round.items()}
    return ms, {k: statistics.median(v) for k, v in ratios.items()}


_LIBC = None


def _peak_probe_available() -> bool:
    global _LIBC
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        _LIBC = ctypes.CDLL("libc.so.6")
        return True
    except OSError:
        return False


def _status_kb(key: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise KeyError(key)


def peak_kb(fn, lp: torch.Tensor, repeats: int = 5) -> float:
    """Median rise of the peak resident set during one call, KiB."""
    rises = []
    for _ in range(repeats):
        lp.grad = None
        gc.collect()
        _LIBC.malloc_trim(0)  # hand freed heap pages back, so that the call must fault its own in
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")  # reset VmHWM to the current resident set
        base = _status_kb("VmRSS")
        fn()
        rises.append(_status_kb("VmHWM") - base)
    lp.grad = None
    return statistics.median(rises)


class _CountOps(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.counts: collections.Counter = collections.Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.counts[func.overloadpacket.__name__] += 1
        return func(*args, **(kwargs or {}))


def op_counts(fn, lp: torch.Tensor) -> tuple[int, int]:
    """(all aten ops, ops that touch data) one call dispatches."""
    with _CountOps() as counter:
        fn()
    lp.grad = None
    total = sum(counter.counts.values())
    return total, total - sum(v for k, v in counter.counts.items() if k in METADATA)


def _row(shape, cells):
    T, N, C, U = shape
    return f"{T:>4} {N:>3} {C:>5} {U:>3} | " + " | ".join(f"{c:>22}" for c in cells)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=7, help="rounds; each contributes one ratio per contender")
    ap.add_argument("--reps", type=int, default=5, help="calls of each contender per round (median taken)")
    ap.add_argument("--threads", default="1,2", help="comma-separated torch.set_num_threads values")
    ap.add_argument("--shapes", nargs="+", metavar="T,N,C,U", default=[",".join(map(str, shape)) for shape in SHAPES],
                    help="batch shapes to time (default: the three of SHAPES; the tests pass tiny ones)")
    a = ap.parse_args(argv)
    shapes = [tuple(int(x) for x in shape.split(",")) for shape in a.shapes]
    threads = [int(x) for x in a.threads.split(",")]
    memory = _peak_probe_available()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"torch {torch.__version__}, {os.cpu_count()} CPUs, load average {load:.2f} at start; "
          f"time: median over {a.rounds} rounds of {a.reps} interleaved calls each")
    for n_threads in threads:
        torch.set_num_threads(n_threads)
        mem_rows, op_rows = [], []
        print(f"\n{n_threads} thread(s): median ms (ratio to {PEER})")
        header = None
        for shape in shapes:
            lp, tg, il, tl = make_batch(*shape)
            fns = contenders(lp, tg, il, tl)
            if header is None:
                header = _row(("T", "N", "C", "U"), list(fns))
                print(header)
                print("-" * len(header))
            ms, ratio = time_ratios(fns, lp, a.rounds, a.reps)
            print(_row(shape, [f"{ms[k]:8.2f} ms" + (f" {ratio[k]:5.2f}x" if k != PEER else "       ") for k in fns]))
            if memory:
                kb = {k: peak_kb(fn, lp) for k, fn in fns.items()}
                mem_rows.append(_row(shape, [f"{kb[k] / 1024:7.2f} MiB" + (
                    f" {kb[k] / kb[PEER]:5.2f}x" if k != PEER else "       ") for k in fns]))
            if n_threads == threads[0]:
                counts = {k: op_counts(fn, lp) for k, fn in fns.items()}
                op_rows.append(_row(shape, [f"{c[1]:4d} ({c[0]:3d} all)" for c in counts.values()]))
        if mem_rows:
            print(f"\n{n_threads} thread(s): peak resident memory rise during one call (ratio to {PEER})")
            print(header)
            print("\n".join(mem_rows))
        if op_rows:
            print("\naten ops per call: touching data (all, views and metadata included)")
            print(header)
            print("\n".join(op_rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
