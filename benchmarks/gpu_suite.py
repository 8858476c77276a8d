"""One-shot GPU check of ctcdoctor's Triton CTC kernel: run it the first time a CUDA machine is available.

The command (from the repository root, on a machine with CUDA, where the README's set-up has run:
torch with CUDA, `pip install -e ".[dev]"`, which brings triton; this script installs nothing):

    python3 benchmarks/gpu_suite.py --out gpu_suite.json

It takes under 5 minutes (it stops starting new shapes at --budget seconds, 270 by default) and
prints, then writes to --out as JSON:
1. the device and the versions of torch, triton, CUDA and cuDNN;
2. the CUDA kernel tests (tests/kernels/test_triton_ctc_cuda.py: the compiled kernel against
   F.ctc_loss and the CPU path at realistic sizes, and no host sync in ctc_loss's Triton path),
   the first run that can see races and out-of-bounds accesses the interpreter cannot;
3. one table: forward+backward of the public ctc_loss on the Triton kernel (plain, alpha=0.5 gamma=1,
   and posterior) against PyTorch's native CUDA CTC and cuDNN where cuDNN applies, at the shapes
   users train, (T, N, C, U) = (150, 32, 28, 40), (400, 16, 30, 80), (1000, 8, 5000, 100),
   (200, 64, 1000, 40); medians of 7 interleaved rounds, ratios > 1 where the kernel is faster
   (benchmarks/ctc_gpu.py does the timing).
Record the table in docs/kernels.md with the device name.

    python3 benchmarks/gpu_suite.py --dry-run     # no GPU: interpreter, tiny shape (CI runs this)
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

if "--dry-run" in sys.argv:
    os.environ["TRITON_INTERPRET"] = "1"  # before triton decorates the kernels

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
import ctc_gpu  # noqa: E402  (sets CTCDOCTOR_KERNEL=triton: the kernel or a loud failure, never a fallback)
import torch  # noqa: E402

SHAPES = [  # (name, T, N, C, U)
    ("ocr", 150, 32, 28, 40),
    ("speech-chars", 400, 16, 30, 80),
    ("large-vocab", 1000, 8, 5000, 100),
    ("bpe", 200, 64, 1000, 40),
]
CUDA_TESTS = ["tests/kernels/test_triton_ctc_cuda.py"]


def environment() -> dict:
    import triton

    info = {"python": platform.python_version(), "torch": torch.__version__, "triton": triton.__version__,
            "cuda_available": torch.cuda.is_available()}
    if torch.cuda.is_available():
        capability = ".".join(map(str, torch.cuda.get_device_capability()))
        info.update(device=torch.cuda.get_device_name(), capability=capability, cuda=torch.version.cuda,
                    cudnn=torch.backends.cudnn.version())
    return info


def run_tests(timeout: float) -> dict:
    """The CUDA kernel tests in a subprocess (its own CUDA context); their verdict and output tail."""
    env = dict(os.environ)
    env.pop("CTCDOCTOR_KERNEL", None)
    cmd = [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", *CUDA_TESTS]
    try:
        done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"returncode": None, "summary": f"timed out after {timeout:.0f} s"}
    lines = [x for x in done.stdout.strip().splitlines() if x.strip()]
    return {"returncode": done.returncode, "summary": lines[-1] if lines else "(no output)",
            "tail": "\n".join((done.stdout + done.stderr).strip().splitlines()[-40:])}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", help="write the environment, test verdict and table here as JSON")
    ap.add_argument("--dry-run", action="store_true", help="CPU only: Triton interpreter, a tiny shape, one round")
    ap.add_argument("--budget", type=float, default=270.0, help="seconds after which no new shape starts")
    ap.add_argument("--skip-tests", action="store_true")
    a = ap.parse_args(argv)
    start = time.monotonic()
    cuda = torch.cuda.is_available() and not a.dry_run
    if not cuda and not a.dry_run:
        print("gpu_suite.py needs a CUDA device; none found (--dry-run checks the script on the CPU).")
        return 2
    env = environment()
    print("environment: " + ", ".join(f"{k} {v}" for k, v in env.items()))
    report: dict = {"environment": env, "dry_run": not cuda}
    if not a.skip_tests:
        print(f"1/2 CUDA kernel tests: {' '.join(CUDA_TESTS)}")
        report["tests"] = run_tests(timeout=max(30.0, a.budget / 3))
        print(f"    {report['tests']['summary']}")
        if report["tests"]["returncode"] not in (0, None):
            print(report["tests"].get("tail", ""))
    print("2/2 forward+backward timings" + (" (dry run: interpreter, tiny shape; the numbers mean nothing)"
                                            if not cuda else ""))
    if cuda:
        rows = ctc_gpu.measure(SHAPES, rounds=7, reps=3, warmup=2, cuda=True, deadline=start + a.budget)
    else:
        rows = ctc_gpu.measure(ctc_gpu.DRY_SHAPES, rounds=1, reps=1, warmup=0, cuda=False)
    report["rows"] = rows
    print(ctc_gpu.format_table(rows))
    report["seconds"] = round(time.monotonic() - start, 1)
    print(f"total {report['seconds']} s")
    if a.out:
        Path(a.out).write_text(json.dumps(report, indent=1, default=str))
        print(f"wrote {a.out}")
    tests_ok = a.skip_tests or report["tests"]["returncode"] in (0, 5)  # 5: nothing collected
    return 0 if tests_ok else 1


if __name__ == "__main__":
    sys.exit(main())
