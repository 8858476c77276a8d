"""CPU timings of ctcdoctor.ctc against F.ctc_loss, measured interleaved in the same run.

Run: python benchmarks/ctc_cpu.py [--reps 30] [--threads N]. Prints median milliseconds and
the ratio to F.ctc_loss forward+backward (reduction="mean") for each shape. Interleaving the
contenders rep by rep keeps drift (thermal, other processes) from favouring one of them.
Defaults to one thread: on a shared machine every OpenMP region can stall for a scheduler
tick (~8 ms measured on a busy 2-core box), which swamps the ratios; pass --threads 0 for
torch's own choice.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing
from ctcdoctor.ctc import ctc_loss, posterior  # noqa: E402

SHAPES = [  # (T, N, C, U)
    (100, 32, 37, 20),
    (400, 16, 30, 80),
    (150, 8, 5000, 40),
]


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

    return {
        "F.ctc_loss fwd+bwd": f_ctc,
        "ctc_loss fwd+bwd": ours_plain,
        "ctc_loss a=0.5 g=1": ours_mod,
        "posterior()": occ,
    }


def bench(reps: int) -> list[tuple[tuple[int, int, int, int], dict[str, float]]]:
    rows = []
    for shape in SHAPES:
        lp, tg, il, tl = make_batch(*shape)
        fns = contenders(lp, tg, il, tl)
        times = {k: [] for k in fns}
        for fn in fns.values():  # warm-up: allocator, first-call dispatch
            for _ in range(3):
                fn()
                lp.grad = None
        for _ in range(reps):
            for name, fn in fns.items():
                t0 = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - t0)
                lp.grad = None
        rows.append((shape, {k: statistics.median(v) * 1e3 for k, v in times.items()}))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=30)
    ap.add_argument("--threads", type=int, default=1, help="torch.set_num_threads; 0 keeps torch's choice")
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, median of {a.reps} interleaved reps")
    rows = bench(a.reps)
    names = list(rows[0][1])
    head = f"{'T':>4} {'N':>3} {'C':>5} {'U':>3} | " + " | ".join(f"{n:>20}" for n in names)
    print(head)
    print("-" * len(head))
    for (T, N, C, U), ms in rows:
        base = ms[names[0]]
        cells = [f"{ms[n]:8.2f} ms" + (f" {ms[n] / base:5.2f}x" if n != names[0] else "       ") for n in names]
        print(f"{T:>4} {N:>3} {C:>5} {U:>3} | " + " | ".join(f"{c:>20}" for c in cells))


if __name__ == "__main__":
    main()
