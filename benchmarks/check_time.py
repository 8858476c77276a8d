"""Where `ctcdoctor check SPEC` spends its time, and how many torch threads it should use.

Run: python benchmarks/check_time.py [SPEC ...] [--rounds 5]

1. Threads: `check_spec` in one process on each spec with 1 and with 2 intra-op threads
   (`ctcdoctor.load.state.CHECK_THREADS`), interleaved round by round; median seconds of each
   and the ratio 2 threads / 1 thread (above 1: one thread is faster).
2. Start to finish: per round, in fresh processes, `import torch` alone, and a timed run of the
   phases of `check` (importing the command line, importing torch, loading the spec, which is
   the user's module and build(), then the checks); median of each phase, the slowest checks,
   and ctcdoctor's own share (everything but torch's import and the user's loading) over
   torch's import time (target: below 1).
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing
DEFAULT_SPECS = [str(ROOT / "examples" / "ocr_crnn.py"), str(ROOT / "examples" / "speech_ctc.py")]

PHASES = r"""
import json, sys, time
started = time.perf_counter()
import ctcdoctor.cli  # noqa: F401 - the command line, as `ctcdoctor check` imports it
cli = time.perf_counter()
import torch  # noqa: F401
imported = time.perf_counter()
from ctcdoctor.config import Settings
from ctcdoctor.engine import check_setup
from ctcdoctor.load.spec import load_setup
from ctcdoctor.load.state import seeded
engine = time.perf_counter()
with seeded(0):
    setup = load_setup(sys.argv[1])
    loaded = time.perf_counter()
    report = check_setup(setup, Settings(), sys.argv[1])  # on CHECK_THREADS threads, as `check` runs
done = time.perf_counter()
print(json.dumps({"cli": cli - started, "torch": imported - cli, "engine": engine - imported, "load": loaded - engine,
                  "checks": done - loaded, "total": done - started,
                  "per_check": {item.code: item.seconds for item in report.checks}}))
"""


def thread_rounds(specs: list[str], rounds: int) -> None:
    import ctcdoctor.load.state as state
    from ctcdoctor.config import Settings
    from ctcdoctor.engine import check_spec

    times: dict[tuple[str, int], list[float]] = {}
    for spec in specs:
        check_spec(spec, Settings())  # warm-up: first imports, allocator
    for _ in range(rounds):
        for spec in specs:
            for threads in (1, 2):
                state.CHECK_THREADS = threads
                started = time.perf_counter()
                check_spec(spec, Settings())
                times.setdefault((spec, threads), []).append(time.perf_counter() - started)
    print(f"threads: check_spec, median of {rounds} interleaved rounds")
    for spec in specs:
        one, two = statistics.median(times[(spec, 1)]), statistics.median(times[(spec, 2)])
        print(f"  {Path(spec).name:<16} 1 thread {one:6.3f} s   2 threads {two:6.3f} s   ratio 2 threads / 1 thread {two / one:5.2f}")


def _seconds(command: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True, cwd=ROOT)
    return time.perf_counter() - started


def phase_rounds(specs: list[str], rounds: int) -> None:
    for spec in specs:
        torch_alone, phases = [], []
        for _ in range(rounds):
            torch_alone.append(_seconds([sys.executable, "-c", "import torch"]))
            done = subprocess.run([sys.executable, "-c", PHASES, spec], check=True, capture_output=True, text=True, cwd=ROOT)
            phases.append(json.loads(done.stdout.strip().splitlines()[-1]))
        median = {key: statistics.median(item[key] for item in phases) for key in ("cli", "torch", "engine", "load", "checks", "total")}
        per_check = {code: statistics.median(item["per_check"][code] for item in phases) for code in phases[0]["per_check"]}
        own = median["total"] - median["torch"] - median["load"]
        torch_import = statistics.median(torch_alone)
        print(f"\n{Path(spec).name}: median of {rounds} fresh processes")
        print(f"  import torch alone           {torch_import:6.3f} s")
        print(f"  ctcdoctor check, by phase:   command line {median['cli']:.3f} s, torch {median['torch']:.3f} s, engine "
              f"{median['engine']:.3f} s, loading the spec {median['load']:.3f} s, checks {median['checks']:.3f} s, "
              f"total {median['total']:.3f} s")
        slowest = sorted(per_check.items(), key=lambda item: -item[1])[:5]
        print("  slowest checks (each includes the inputs it computes first): "
              + ", ".join(f"{code} {seconds:.3f} s" for code, seconds in slowest))
        print(f"  ratio ctcdoctor's own share / torch import {own / torch_import:5.2f}  (own share {own:.3f} s: "
              "command line, engine and checks; without torch's import and the user's loading)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("specs", nargs="*", default=DEFAULT_SPECS)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--skip-threads", action="store_true")
    args = parser.parse_args()
    if not args.skip_threads:
        thread_rounds(args.specs, args.rounds)
    phase_rounds(args.specs, args.rounds)


if __name__ == "__main__":
    main()
