"""What the training monitor adds to a training step: the same loop with and without it, side by side.

    python benchmarks/monitor_overhead.py [--examples ocr_crnn,speech_ctc] [--steps 300] [--every 100] [--rounds 3]

For each bundled example (`examples/ocr_crnn.py`, `examples/speech_ctc.py`) both contenders
train a fresh copy of the same model on the same batches (read once, before timing), round by
round, interleaved, the order alternating (so drift and other processes hit both alike), on one
CPU thread:

- plain: `model(inputs)` -> the example's criterion -> `zero_grad` / `backward` /
  `clip_grad_norm_` / `Adam.step`;
- monitored: the same, plus `Monitor.update(step, loss, outputs=..., targets=..., ...)` every
  step with `every=--every`, writing its metrics JSONL and JSON report to a temporary folder
  (as `examples/train_with_monitor.py` does). `close()` (the final verdict and the plot) is
  end-of-run work and is not timed.

Prints the median milliseconds per step of each, the median over rounds of the ratio
monitored / plain (target at every=100: <= 1.02), and the monitor's own clock per step
(`Monitor.seconds`, wall time, which covers every `update()` call) as a share of the plain
step: on a shared machine the ratio carries a few percent of noise either way, the
monitor's own clock does not.
Times are this process's CPU time by default (`--clock process`): the loop runs on one
thread, and on a shared machine other processes' load does not count; `--clock wall` for
wall time.
"""
from __future__ import annotations

import argparse
import copy
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing
from ctcdoctor.load.batches import Batch, normalise_batch  # noqa: E402
from ctcdoctor.load.spec import load_setup  # noqa: E402
from ctcdoctor.measure.lengths import call_length_function  # noqa: E402
from ctcdoctor.training.monitor import Monitor  # noqa: E402

CLOCKS = {"process": time.process_time, "wall": time.perf_counter}


def train(setup, batches: list[Batch], steps: int, monitor: Monitor | None, layout: str, clock=time.process_time) -> float:
    """Seconds per step on a fresh copy of the model."""
    torch.manual_seed(0)
    model = copy.deepcopy(setup.model)
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    started = clock()
    for step in range(1, steps + 1):
        batch = batches[(step - 1) % len(batches)]
        output = model(batch.inputs)
        loss = setup.criterion(output, batch.raw)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        optimizer.step()
        if monitor is not None:
            frames = call_length_function(setup.output_lengths, batch.input_lengths)
            monitor.update(step, loss, outputs=output, layout=layout, targets=batch.targets,
                           target_lengths=batch.target_lengths, output_lengths=frames, lr=1e-3, grad_norm=grad_norm)
    return (clock() - started) / steps


def measure(example: str, steps: int, every: int, rounds: int, clock=time.process_time) -> dict[str, float]:
    setup = load_setup(str(ROOT / "examples" / f"{example}.py"))
    batches = [normalise_batch(raw, index, 0) for index, raw in enumerate(setup.loader)]
    with torch.no_grad():
        probe = setup.model(batches[0].inputs)
    layout = setup.layout or ("NTC" if probe.shape[0] == batches[0].size else "TNC")
    plain, monitored, own = [], [], []
    with tempfile.TemporaryDirectory() as folder:
        for round_ in range(rounds):
            for contender in (("plain", "monitored") if round_ % 2 == 0 else ("monitored", "plain")):
                if contender == "plain":
                    plain.append(train(setup, batches, steps, None, layout, clock))
                    continue
                monitor = Monitor(every=every, echo=False, blank=setup.blank, alphabet=setup.alphabet,
                                  metrics_path=Path(folder) / f"{round_}.jsonl", report_path=Path(folder) / f"{round_}.json")
                monitored.append(train(setup, batches, steps, monitor, layout, clock))
                own.append(monitor.seconds / steps)
                monitor.close()
    return {"plain": statistics.median(plain), "monitored": statistics.median(monitored), "own": statistics.median(own),
            "ratios": statistics.median(m / p for m, p in zip(monitored, plain))}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", default="ocr_crnn,speech_ctc")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--every", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--clock", choices=sorted(CLOCKS), default="process",
                        help="process: CPU time of this process (other tenants of a shared machine do not count); wall")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    print(f"{args.steps} steps per run, every={args.every}; medians of {args.rounds} interleaved rounds, one CPU thread, "
          f"{args.clock} clock")
    print(f"{'example':<12} {'plain ms/step':>14} {'monitored ms/step':>18} {'ratio monitored / plain':>24} "
          f"{'monitor own ms/step':>20} {'own / plain':>12}")
    for example in args.examples.split(","):
        found = measure(example, args.steps, args.every, args.rounds, CLOCKS[args.clock])
        print(f"{example:<12} {1000 * found['plain']:>14.2f} {1000 * found['monitored']:>18.2f} {found['ratios']:>24.3f} "
              f"{1000 * found['own']:>20.3f} {found['own'] / found['plain']:>12.2%}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
