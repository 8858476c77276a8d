"""`ctcdoctor logs`: the time to read a run's log and the time to diagnose it, side by side.

    python benchmarks/logs.py [--points 1000000] [--rounds 3] [--formats jsonl,csv,tensorboard]

Writes one synthetic run of `--points` logged steps per format (a CTC-shaped loss with noise,
spikes and a divergence at the end, plus learning rate, gradient norm and an eval loss every
1,000 steps) to a temporary folder, then, interleaved over `--rounds`, reads it
(`ctcdoctor.training.readers.read_run`) and diagnoses it (`names.resolve` +
`ctcdoctor.training.rules.diagnose`). Prints the median of each and the ratio
diagnose / read: the rules must cost no more than reading (ratio <= 1). TensorBoard is only
written and read when asked for (`--formats ...,tensorboard`): its Python record reader
takes about a minute for 10^6 points.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "training"))  # the synthetic CTC curves of the tests

from logcurves import cosine_lr, ctc_level, noisy

from ctcdoctor.training import monitor_format
from ctcdoctor.training.names import resolve
from ctcdoctor.training.readers import read_run
from ctcdoctor.training.rules import diagnose


def make_run(points: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    level = ctc_level(points, floor=0.1)
    level[int(0.9 * points):] *= np.linspace(1, 6, points - int(0.9 * points))  # diverges at the end
    return {"loss": noisy(level, rng, sigma=0.1, spikes=0.01), "lr": cosine_lr(points),
            "grad_norm": np.abs(rng.normal(1.0, 0.3, points)), "level": level}


def write_jsonl(run: dict, path: Path) -> None:
    with path.open("w", encoding="utf-8") as handle:
        handle.write(monitor_format.header(classes=30, label_length=20.0) + "\n")
        for step, (loss, lr, grad) in enumerate(zip(run["loss"], run["lr"], run["grad_norm"])):
            extra = {"eval_loss": 1.2 * run["level"][step]} if step % 1000 == 0 else {}
            handle.write(monitor_format.record(step, float(loss), lr=float(lr), grad_norm=float(grad), **extra) + "\n")


def write_csv(run: dict, path: Path) -> None:
    steps = np.arange(run["loss"].size)
    table = np.column_stack([steps, run["loss"], run["lr"], run["grad_norm"]])
    np.savetxt(path, table, delimiter=",", header="step,loss,lr,grad_norm", comments="", fmt=["%d", "%.6g", "%.6g", "%.6g"])


def write_tensorboard(run: dict, folder: Path) -> None:
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(log_dir=str(folder))
    for step, loss in enumerate(run["loss"]):
        writer.add_scalar("train/loss", float(loss), step)
    writer.close()


def measure(path: Path, rounds: int) -> tuple[float, float, int, list[str]]:
    reads, diagnoses, codes = [], [], []
    for _ in range(rounds):  # interleaved: read, diagnose, read, diagnose, ...
        started = time.perf_counter()
        run = read_run(path)
        reads.append(time.perf_counter() - started)
        started = time.perf_counter()
        curves, _ = resolve(run)
        findings = diagnose(curves)
        diagnoses.append(time.perf_counter() - started)
        codes = sorted({finding.code for finding in findings})
    return statistics.median(reads), statistics.median(diagnoses), len(run.scalars[curves.loss.tag]), codes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--points", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--formats", default="jsonl,csv")
    args = parser.parse_args(argv)
    run = make_run(args.points)
    print(f"{args.points:,} logged points per run; medians of {args.rounds} interleaved rounds")
    print(f"{'format':<12} {'read s':>9} {'diagnose s':>11} {'ratio diagnose / read':>22}  findings")
    with tempfile.TemporaryDirectory() as folder:
        for name in args.formats.split(","):
            target = Path(folder) / name
            target.mkdir()
            if name == "jsonl":
                write_jsonl(run, target / "metrics.jsonl")
            elif name == "csv":
                write_csv(run, target / "log.csv")
            elif name == "tensorboard":
                write_tensorboard(run, target)
            else:
                parser.error(f"unknown format {name!r}: use jsonl, csv, tensorboard")
            read_s, diagnose_s, points, codes = measure(target, args.rounds)
            assert points == args.points, (points, args.points)
            print(f"{name:<12} {read_s:>9.3f} {diagnose_s:>11.4f} {diagnose_s / read_s:>22.3f}  {', '.join(codes)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
