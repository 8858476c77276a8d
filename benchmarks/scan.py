"""`ctcdoctor scan` end to end against the loops a user would write, and the manifest tier against numpy.

    python benchmarks/scan.py [--samples 100000 1000000] [--rounds 3] [--lines 8900000] [--threads]

1. Loader tier. A lazy map-style data set of cheap samples (a zero input of L steps and 0-30
   labels made from the index, so the data set itself takes no memory) behind a DataLoader with
   a padding collate. Timed in the same process, interleaved, median of `--rounds`:
   - the loop a user writes per item: `x, y = dataset[i]`, then frames, repeats, blank,
     range and empty tests in Python;
   - the loop a user writes per batch: the DataLoader (collate included), `.tolist()`, the same tests;
   - `ctcdoctor scan` (the command's `main`, spec loading, model run and report included) with
     `Setup.sample_labels` (labels only), and through the loader (its collate included).
   The counts of the loops and of the scan's findings must agree. Then the peak memory (max RSS)
   of `ctcdoctor scan` in a fresh process at each size: flat in the data set's size.
2. Manifest tier (`--lines`, 0 to skip). A synthetic OCR label file `path<TAB>width<TAB>word`;
   `ctcdoctor scan --manifest` against a plain vectorised numpy parse of the same file doing the
   same arithmetic (labels per line, repeats, infeasible count), interleaved; prints lines/s and the ratio.
`--threads` also times the scan with 1 and 2 torch threads (the scan runs with 1).
"""
from __future__ import annotations

import argparse
import contextlib
import io
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
NUM_CLASSES, BLANK, STRIDE = 80, 0, 4


# ---------------------------------------------------------------- the user's data set


def item_labels(index: int) -> list[int]:
    size = (index * 7919) % 31
    return [(index * 31 + k * k * 17) % (NUM_CLASSES - 1) + 1 - (k == 5 and index % 997 == 0) for k in range(size)]


def item_length(index: int) -> int:
    return 40 + (index * 13) % 160


class Cheap(torch.utils.data.Dataset):
    """Items made from their index: nothing stored, so memory measures the scan alone."""

    def __init__(self, size: int) -> None:
        self.size = size

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.zeros(item_length(index)), torch.tensor(item_labels(index), dtype=torch.long)

    def sample_labels(self, index: int) -> tuple[int, list[int]]:
        return item_length(index), item_labels(index)


def collate(items: list[tuple[torch.Tensor, torch.Tensor]]) -> tuple:
    inputs = torch.nn.utils.rnn.pad_sequence([x for x, _ in items], batch_first=True)
    targets = torch.nn.utils.rnn.pad_sequence([y for _, y in items], batch_first=True)
    return inputs, targets, torch.tensor([len(x) for x, _ in items]), torch.tensor([len(y) for _, y in items])


class Model(torch.nn.Module):
    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return torch.zeros(inputs.shape[1] // STRIDE, inputs.shape[0], NUM_CLASSES).log_softmax(-1)


def output_lengths(lengths: torch.Tensor) -> torch.Tensor:
    return torch.div(lengths, STRIDE, rounding_mode="floor")


def build(labels_only: bool = True):  # noqa: ANN201 - a ctcdoctor.Setup
    from ctcdoctor import Setup

    data = Cheap(int(os.environ.get("CTCDOCTOR_BENCH_SAMPLES", "1000")))
    loader = torch.utils.data.DataLoader(data, batch_size=256, collate_fn=collate)
    return Setup(model=Model(), loader=loader, output_lengths=output_lengths,
                 sample_labels=data.sample_labels if labels_only else None)


def build_loader():  # noqa: ANN201 - a ctcdoctor.Setup
    return build(labels_only=False)


# ---------------------------------------------------------------- the loops a user writes


def tally(counts: dict[str, int], labels: list[int], frames: int) -> None:
    repeats = sum(1 for a, b in zip(labels, labels[1:]) if a == b)
    counts["infeasible"] += frames < len(labels) + repeats
    counts["out_of_range"] += any(label < 0 or label >= NUM_CLASSES for label in labels)
    counts["blank"] += BLANK in labels
    counts["empty"] += not labels


def per_item_loop(size: int) -> dict[str, int]:
    data, counts = Cheap(size), dict.fromkeys(("infeasible", "out_of_range", "blank", "empty"), 0)
    for index in range(len(data)):
        inputs, labels = data[index]
        tally(counts, labels.tolist(), len(inputs) // STRIDE)
    return counts


def per_batch_loop(size: int) -> dict[str, int]:
    loader = torch.utils.data.DataLoader(Cheap(size), batch_size=256, collate_fn=collate)
    counts = dict.fromkeys(("infeasible", "out_of_range", "blank", "empty"), 0)
    for _, targets, input_lengths, target_lengths in loader:
        frames = output_lengths(input_lengths).tolist()
        for row, length, available in zip(targets.tolist(), target_lengths.tolist(), frames):
            tally(counts, row[:length], available)
    return counts


def ctcdoctor_scan(size: int, function: str = "build", *extra: str) -> dict[str, int]:
    """`ctcdoctor scan benchmarks/scan.py:FUNCTION --format json`, in this process; the counts of its findings."""
    import json

    from ctcdoctor.cli import main

    os.environ["CTCDOCTOR_BENCH_SAMPLES"] = str(size)
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(io.StringIO()):
        code = main(["scan", f"{ROOT / 'benchmarks' / 'scan.py'}:{function}", "--format", "json", *extra])
    assert code in (0, 1), code
    summary = json.loads(stdout.getvalue())["result"]["state"]["summary"]
    return {"infeasible": summary["infeasible"], "out_of_range": summary["out_of_range"]["count"],
            "blank": summary["blank"]["count"], "empty": summary["empty"]["count"]}


def seconds(function: Callable[[], object]) -> float:
    started = time.perf_counter()
    function()
    return time.perf_counter() - started


def median(values: list[float]) -> float:
    return sorted(values)[len(values) // 2]


PEAK = """
import contextlib, io, sys
from ctcdoctor.cli import main
with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
    main(["scan", sys.argv[1], "--format", "json"])
print(next(line.split()[1] for line in open("/proc/self/status") if line.startswith("VmHWM")))
"""


def peak_memory_mb(size: int, function: str = "build") -> float:
    """Peak RSS of `ctcdoctor scan` in a fresh process (MB): VmHWM of the process's own memory after exec
    (ru_maxrss would include the forked image of this, much larger, parent)."""
    env = {**os.environ, "CTCDOCTOR_BENCH_SAMPLES": str(size)}
    done = subprocess.run([sys.executable, "-c", PEAK, f"{ROOT / 'benchmarks' / 'scan.py'}:{function}"], env=env, cwd=ROOT,
                          capture_output=True, text=True, check=True)
    return int(done.stdout.split()[-1]) / 1024


def two_threads(size: int) -> None:
    import ctcdoctor.scan.run as run

    run.SCAN_THREADS = 2
    try:
        ctcdoctor_scan(size)
    finally:
        run.SCAN_THREADS = 1


def loader_tier(sizes: list[int], rounds: int, threads: bool) -> None:
    for size in sizes:
        expected = per_item_loop(size)
        assert per_batch_loop(size) == expected == ctcdoctor_scan(size) == ctcdoctor_scan(size, "build_loader"), expected
        sides: dict[str, Callable[[], object]] = {
            "per-item loop (dataset[i], Python tests)": lambda size=size: per_item_loop(size),
            "per-batch loop (DataLoader, .tolist())": lambda size=size: per_batch_loop(size),
            "ctcdoctor scan, Setup.sample_labels": lambda size=size: ctcdoctor_scan(size),
            "ctcdoctor scan, through the loader": lambda size=size: ctcdoctor_scan(size, "build_loader"),
            "ctcdoctor scan, through the loader, --workers 2": lambda size=size: ctcdoctor_scan(size, "build_loader", "--workers", "2"),
        }
        if threads:
            sides["ctcdoctor scan, sample_labels, 2 threads"] = lambda size=size: two_threads(size)
        times: dict[str, list[float]] = {name: [] for name in sides}
        for _ in range(rounds):  # interleaved: the machine's load hits every side alike
            for name, side in sides.items():
                times[name].append(seconds(side))
        medians = {name: median(values) for name, values in times.items()}
        print(f"\n{size:,} samples, batches of 256, median of {rounds} interleaved rounds; counts agree: {expected}")
        for name, value in medians.items():
            print(f"  {name:45s} {value:8.2f} s  ({size / value:>12,.0f} samples/s)")
        scan_time = medians["ctcdoctor scan, Setup.sample_labels"]
        loop, batch = medians["per-item loop (dataset[i], Python tests)"], medians["per-batch loop (DataLoader, .tolist())"]
        print(f"  ratio loop / vectorised (sample_labels): per-item {loop / scan_time:.1f}x, per-batch {batch / scan_time:.1f}x; "
              f"through the loader: per-item {loop / medians['ctcdoctor scan, through the loader']:.1f}x, "
              f"per-batch {batch / medians['ctcdoctor scan, through the loader']:.1f}x")
    memory = {(size, function): peak_memory_mb(size, function) for size in sizes for function in ("build", "build_loader")}
    print("\npeak memory (max RSS) of `ctcdoctor scan` in a fresh process:")
    for (size, function), value in memory.items():
        print(f"  {size:>10,} samples, {'sample_labels' if function == 'build' else 'loader':13s} {value:8.1f} MB")


# ---------------------------------------------------------------- the manifest tier


WORDS = np.array(["cat", "dog", "house", "river", "coffee", "balloon", "bookkeeper", "window", "quiz", "letter", "a"])


def write_label_file(path: Path, lines: int, seed: int = 0) -> None:
    """`img/NNNNNNNN.jpg<TAB>width<TAB>word` lines, written a million at a time."""
    rng = np.random.default_rng(seed)
    with open(path, "w", encoding="utf-8") as handle:
        for start in range(0, lines, 1_000_000):
            count = min(1_000_000, lines - start)
            words = WORDS[rng.integers(0, len(WORDS), count)]
            widths = rng.integers(16, 200, count)
            handle.write("".join(f"img/{start + i:08d}.jpg\t{w}\t{word}\n" for i, (w, word) in enumerate(zip(widths.tolist(), words.tolist()))))


def numpy_block(data: bytes) -> int:
    """The peer's work on one block of whole lines: parse widths and words, count repeats, count infeasible lines."""
    cps = np.frombuffer(data.decode("utf-8").encode("utf-32-le"), dtype=np.uint32)
    ends = np.flatnonzero(cps == 10)
    tabs = np.flatnonzero(cps == 9).reshape(-1, 2)  # two tabs per line
    width = np.zeros(ends.shape[0], dtype=np.int64)
    lengths = tabs[:, 1] - tabs[:, 0] - 1
    for k in range(int(lengths.max())):
        active = lengths > k
        width[active] = width[active] * 10 + cps[tabs[active, 0] + 1 + k].astype(np.int64) - 48
    starts = tabs[:, 1] + 1
    sizes = ends - starts
    text = cps[np.arange(int(sizes.sum())) + np.repeat(starts - (np.cumsum(sizes) - sizes), sizes)]
    owner = np.repeat(np.arange(ends.shape[0]), sizes)
    repeats = np.bincount(owner[1:][(text[1:] == text[:-1]) & (owner[1:] == owner[:-1])], minlength=ends.shape[0])
    return int((width // STRIDE < sizes + repeats).sum())


def numpy_parse(path: Path, block: int = 4 << 20) -> int:
    """The peer: a plain vectorised numpy parse of the same file, a block of whole lines at a time; the infeasible count."""
    infeasible, rest = 0, b""
    with open(path, "rb") as handle:
        while data := handle.read(block):
            data = rest + data
            cut = data.rfind(b"\n") + 1
            rest = data[cut:]
            infeasible += numpy_block(data[:cut])
    return infeasible


def manifest_scan(path: Path) -> int:
    import json

    from ctcdoctor.cli import main

    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(io.StringIO()):
        code = main(["scan", "--manifest", str(path), "--alphabet", "abcdefghijklmnopqrstuvwxyz", "--frames", f"L // {STRIDE}",
                     "--format", "json"])
    assert code in (0, 1), code
    return int(json.loads(stdout.getvalue())["result"]["state"]["summary"]["infeasible"])


def manifest_tier(lines: int, rounds: int) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "labels.tsv"
        write_label_file(path, lines)
        assert manifest_scan(path) == numpy_parse(path)
        times: dict[str, list[float]] = {"numpy": [], "ctcdoctor": []}
        for _ in range(rounds):
            times["numpy"].append(seconds(lambda: numpy_parse(path)))
            times["ctcdoctor"].append(seconds(lambda: manifest_scan(path)))
        peer, ours = median(times["numpy"]), median(times["ctcdoctor"])
        size = path.stat().st_size / 1e6
        print(f"\nlabel file: {lines:,} lines ({size:,.0f} MB), median of {rounds} interleaved rounds")
        print(f"  plain vectorised numpy parse      {peer:8.2f} s  ({lines / peer:>12,.0f} lines/s)")
        print(f"  ctcdoctor scan --manifest         {ours:8.2f} s  ({lines / ours:>12,.0f} labels/s)")
        print(f"  ratio ctcdoctor / numpy: {ours / peer:.2f}x (must stay under 2x)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--lines", type=int, default=None,
                        help="label-file lines for the manifest tier (0: skip) [default: 8.9 per sample of the largest "
                        "--samples: MJSynth's 8.9M with the default sizes]")
    parser.add_argument("--threads", action="store_true", help="also time the scan with 2 torch threads")
    parser.add_argument("--loop-threads", type=int, default=1,
                        help="torch threads for the user's loops (default 1, as the scan uses; 0: torch's default)")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    if args.loop_threads:
        torch.set_num_threads(args.loop_threads)  # the scan sets (and restores) its own
    print(f"torch threads for the loops: {torch.get_num_threads()}; for the scan: 1")
    loader_tier(args.samples, args.rounds, args.threads)
    lines = args.lines if args.lines is not None else round(8.9 * max(args.samples))
    if lines:
        manifest_tier(lines, args.rounds)


if __name__ == "__main__":
    main()
