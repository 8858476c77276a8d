"""Time ctcdoctor's CTC (the fused Triton kernel behind the public ctc_loss) against PyTorch's on one GPU.

    python benchmarks/ctc_gpu.py [--rounds 7] [--reps 5]            # needs CUDA
    python benchmarks/ctc_gpu.py --dry-run                          # CPU: Triton interpreter, tiny shapes

Every contender is the public call a user makes, forward and backward through autograd:
  - triton:   ctcdoctor.ctc.ctc_loss(...).backward() on CUDA tensors (the Triton kernel), plain and with
              alpha=0.5, gamma=1; and ctcdoctor.ctc.posterior(...) (no backward);
  - native:   F.ctc_loss(...).backward() with cuDNN disabled (PyTorch's own CUDA kernels);
  - cudnn:    F.ctc_loss(...).backward() with the arguments cuDNN takes (blank 0, concatenated int32
              targets on the CPU, every input length T, float32, labels <= 256), where they apply.
Targets and lengths are passed on the CPU, as cuDNN wants them (ctcdoctor copies them without a
host sync). Each round runs every contender once, interleaved in a rotating order, timed with CUDA
events; the table shows medians over rounds and the ratios native/triton and cudnn/triton (> 1:
the kernel is faster), plus the peak memory each call allocates and the largest gradient
difference against native. `gpu_suite.py` runs this over the shapes the issue names.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

if "--dry-run" in sys.argv:
    os.environ["TRITON_INTERPRET"] = "1"  # before triton decorates the kernels
# The "triton" contenders must be the kernel: fail loudly rather than time a fallback.
os.environ["CTCDOCTOR_KERNEL"] = "triton"

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing
from ctcdoctor.ctc import ctc_loss, posterior  # noqa: E402

SHAPES = [  # (name, T, N, C, U): OCR and speech shapes
    ("ocr-latin", 64, 64, 100, 20),
    ("ocr-long-line", 200, 32, 200, 60),
    ("ocr-cjk", 100, 32, 6000, 20),
    ("speech-chars", 500, 32, 32, 120),
    ("speech-bpe", 400, 16, 1024, 60),
]
DRY_SHAPES = [("tiny", 5, 2, 5, 2)]


class Batch:
    """One batch in every form a contender wants."""

    def __init__(self, T: int, N: int, C: int, U: int, device: torch.device, seed: int = 0):
        g = torch.Generator().manual_seed(seed)
        self.lp = torch.randn(T, N, C, generator=g).log_softmax(-1).to(device).requires_grad_()
        # U labels per sample, no blank (0), capped where cuDNN stops; every sample feasible.
        U = min(U, 256, (T - 1) // 2)
        self.U = U
        self.targets = torch.randint(1, C, (N, U), generator=g)  # padded, int64, CPU
        self.input_lengths = torch.full((N,), T, dtype=torch.int64)
        self.target_lengths = torch.full((N,), U, dtype=torch.int64)
        self.flat_int32 = self.targets.reshape(-1).to(torch.int32)
        self.device = device
        self.targets_dev = self.targets.to(device)


def contenders(b: Batch, cuda: bool) -> dict:
    """name -> (kind, peer, fn). Each fn runs one forward (and backward) and leaves b.lp.grad set."""

    def ours(**kw):
        def run():
            ctc_loss(b.lp, b.targets, b.input_lengths, b.target_lengths, **kw).backward()
        return run

    def occ():
        posterior(b.lp.detach(), b.targets, b.input_lengths, b.target_lengths)

    def native():
        if cuda:
            with torch.backends.cudnn.flags(enabled=False):
                F.ctc_loss(b.lp, b.targets_dev, b.input_lengths, b.target_lengths).backward()
        else:
            F.ctc_loss(b.lp, b.targets, b.input_lengths, b.target_lengths).backward()

    def cudnn():
        F.ctc_loss(b.lp, b.flat_int32, b.input_lengths.to(torch.int32), b.target_lengths.to(torch.int32)).backward()

    out = {
        "triton plain": ours(),
        "triton alpha/gamma": ours(alpha=0.5, gamma=1.0),
        "triton posterior": occ,
        "native": native,
    }
    if cuda and torch.backends.cudnn.is_available() and b.U <= 256:
        out["cudnn"] = cudnn
    return out


def _sync(cuda: bool) -> None:
    if cuda:
        torch.cuda.synchronize()


def time_contenders(fns: dict, b: Batch, rounds: int, reps: int, warmup: int, cuda: bool) -> dict:
    """Median seconds per call of each contender over `rounds` rounds (interleaved, rotating order)."""
    names = list(fns)
    for _ in range(warmup):  # the first calls compile the Triton kernels for this shape
        for fn in fns.values():
            fn()
            b.lp.grad = None
    _sync(cuda)
    per_round: dict[str, list[float]] = {k: [] for k in names}
    for r in range(rounds):
        order = names[r % len(names):] + names[: r % len(names)]
        times: dict[str, list[float]] = {k: [] for k in names}
        for _ in range(reps):
            for name in order:
                if cuda:
                    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                    start.record()
                    fns[name]()
                    end.record()
                    torch.cuda.synchronize()
                    times[name].append(start.elapsed_time(end) / 1e3)
                else:
                    t0 = time.perf_counter()
                    fns[name]()
                    times[name].append(time.perf_counter() - t0)
                b.lp.grad = None
        for k in names:
            per_round[k].append(statistics.median(times[k]))
    return {k: statistics.median(v) for k, v in per_round.items()}


def peak_bytes(fn, b: Batch, cuda: bool) -> float:
    """Device memory one call allocates at its peak, beyond what existed before (CUDA only)."""
    if not cuda:
        return float("nan")
    b.lp.grad = None
    torch.cuda.synchronize()
    base = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    fn()
    torch.cuda.synchronize()
    peak = torch.cuda.max_memory_allocated() - base
    b.lp.grad = None
    return float(peak)


def grad_difference(fns: dict, b: Batch) -> float:
    """max |d loss / d log_probs|, Triton plain against native (reduction mean)."""
    fns["triton plain"]()
    ours = b.lp.grad.clone()
    b.lp.grad = None
    fns["native"]()
    diff = float((ours - b.lp.grad).abs().max())
    b.lp.grad = None
    return diff


def measure(shapes, rounds: int, reps: int, warmup: int, cuda: bool, deadline: float | None = None) -> list[dict]:
    """One row per (shape, kind): ms of triton, native and cudnn, the ratios, memory, gradient check."""
    device = torch.device("cuda" if cuda else "cpu")
    rows = []
    for name, T, N, C, U in shapes:
        if deadline is not None and time.monotonic() > deadline:
            rows.append({"shape": name, "T": T, "N": N, "C": C, "U": U, "skipped": "time budget spent"})
            continue
        b = Batch(T, N, C, U, device)
        fns = contenders(b, cuda)
        sec = time_contenders(fns, b, rounds, reps, warmup, cuda)
        mem = {k: peak_bytes(fn, b, cuda) for k, fn in fns.items()}
        diff = grad_difference(fns, b)
        for kind in ("plain", "alpha/gamma", "posterior"):
            tri = sec[f"triton {kind}"]
            row = {"shape": name, "T": T, "N": N, "C": C, "U": b.U, "kind": kind,
                   "triton_ms": tri * 1e3, "native_ms": sec["native"] * 1e3,
                   "cudnn_ms": sec["cudnn"] * 1e3 if "cudnn" in sec else None,
                   "native_over_triton": sec["native"] / tri,
                   "cudnn_over_triton": sec["cudnn"] / tri if "cudnn" in sec else None,
                   "triton_mib": mem[f"triton {kind}"] / 2**20, "native_mib": mem["native"] / 2**20,
                   "max_grad_diff": diff if kind == "plain" else None}
            rows.append(row)
    return rows


def format_table(rows: list[dict]) -> str:
    head = (f"{'shape':14} {'T':>5} {'N':>3} {'C':>5} {'U':>3} {'kind':12} {'triton ms':>9} {'native ms':>9} "
            f"{'cudnn ms':>9} {'nat/tri':>7} {'cud/tri':>7} {'MiB tri':>8} {'MiB nat':>8} {'max|dg|':>8}")
    lines = [head, "-" * len(head)]

    def f(x, fmt):
        return format(x, fmt) if x is not None and x == x else "-"

    for r in rows:
        if "skipped" in r:
            lines.append(f"{r['shape']:14} {r['T']:5} {r['N']:3} {r['C']:5} {r['U']:3} skipped: {r['skipped']}")
            continue
        lines.append(
            f"{r['shape']:14} {r['T']:5} {r['N']:3} {r['C']:5} {r['U']:3} {r['kind']:12} "
            f"{r['triton_ms']:9.3f} {r['native_ms']:9.3f} {f(r['cudnn_ms'], '9.3f'):>9} "
            f"{r['native_over_triton']:7.2f} {f(r['cudnn_over_triton'], '7.2f'):>7} "
            f"{f(r['triton_mib'], '8.1f'):>8} {f(r['native_mib'], '8.1f'):>8} {f(r['max_grad_diff'], '8.1e'):>8}")
    lines.append("ratios > 1: the Triton kernel is faster. native and cudnn are F.ctc_loss forward+backward (plain "
                 "CTC) in every row: alpha/gamma and posterior have no PyTorch counterpart, so the row shows what "
                 "they cost next to plain CTC. max|dg|: Triton plain against native, reduction mean.")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--dry-run", action="store_true", help="CPU only: Triton interpreter, tiny shapes, one round")
    a = ap.parse_args(argv)
    cuda = torch.cuda.is_available() and not a.dry_run
    if not cuda and not a.dry_run:
        print("benchmarks/ctc_gpu.py needs a CUDA device; none found, nothing measured (--dry-run runs it on the CPU).")
        return 0
    if cuda:
        print(f"device: {torch.cuda.get_device_name()}  torch {torch.__version__}")
        rows = measure(SHAPES, a.rounds, a.reps, warmup=2, cuda=True)
    else:
        print("dry run on the CPU (Triton interpreter, tiny shapes): the numbers mean nothing")
        rows = measure(DRY_SHAPES, rounds=1, reps=1, warmup=0, cuda=False)
    print(format_table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
