"""Train the bundled OCR example (examples/ocr_crnn.py) in a plain PyTorch loop with the ctcdoctor monitor.

Run:  python examples/train_with_monitor.py                      # healthy: ends with no error verdict
      python examples/train_with_monitor.py --lr-mistake         # peak lr 2.0 (meant 2e-3): stopped on an error
      python examples/train_with_monitor.py --out runs/demo --every 25 --steps 600

The loop is the one you already have; the monitor needs one call per step:

    if monitor.update(step, loss, log_probs=out, targets=targets, target_lengths=lengths,
                      output_lengths=frames, lr=lr, grad_norm=grad_norm):
        break

Every `--every` steps it greedy-decodes the batch, prints CER, the blank ratio and a few decodes
next to their targets, runs the curve and output rules on the run so far, and writes
`metrics.jsonl` (which `ctcdoctor logs OUT` reads), `report.json` (the JSON report of every
ctcdoctor command, `command: "monitor"`) and, at the end, `monitor.png`.

The healthy run (Adam 2e-3, 30 warm-up steps, cosine decay, 600 steps of batch 16, about 1.5
minutes on one CPU core) passes the early blank plateau around step 150 and ends with CER near
0.01. With `--lr-mistake` the peak learning rate is 2.0: the loss blows up during the warm-up
and the monitor stops the run at its first evaluation that sees it (step 25) with its verdict
(CTC203, the loss diverged).
"""
from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

sys.path.insert(0, str(Path(__file__).resolve().parent))  # examples/: ocr_crnn

from ocr_crnn import CRNN, output_lengths

from ctcdoctor.toydata import ALPHABET, WordImageDataset
from ctcdoctor.training.monitor import Monitor

HEALTHY_LR = 2e-3
MISTAKE_LR = 2.0
"""Meant 2e-3 (a lost `e-3`): Adam at 2.0 makes the loss blow up within the 30 warm-up steps. (At 1.0 the run
is on the edge: it blew up on one CPU and fell into the blank plateau on another, from rounding alone.)"""


def learning_rate(step: int, peak: float, steps: int, warmup: int = 30) -> float:
    """Linear warm-up, then cosine decay to 2% of the peak."""
    if step <= warmup:
        return peak * step / warmup
    progress = (step - warmup) / max(1, steps - warmup)
    return peak * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * progress)))


def train(peak: float, steps: int, monitor: Monitor, seed: int = 0) -> int:
    """A plain loop; returns the number of steps run (fewer when the monitor stops it)."""
    torch.manual_seed(seed)
    data = WordImageDataset(n=2048, seed=1)
    loader = DataLoader(data, batch_size=16, shuffle=True, collate_fn=data.collate,
                        generator=torch.Generator().manual_seed(seed))
    model = CRNN()
    optimizer = torch.optim.Adam(model.parameters(), lr=learning_rate(1, peak, steps))
    monitor.use_optimizer(optimizer)  # learning-rate advice fits Adam
    step = 0
    while step < steps:
        for images, targets, widths, lengths in loader:
            step += 1
            lr = learning_rate(step, peak, steps)
            for group in optimizer.param_groups:
                group["lr"] = lr
            out = model(images)  # (T, N, C) log-probabilities
            frames = output_lengths(widths)
            loss = F.ctc_loss(out, targets, frames, lengths)
            optimizer.zero_grad()
            loss.backward()
            grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), float("inf"))
            optimizer.step()
            if monitor.update(step, loss, log_probs=out, targets=targets, target_lengths=lengths,
                              output_lengths=frames, lr=lr, grad_norm=grad_norm):
                return step
            if step >= steps:
                break
    return step


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lr-mistake", action="store_true", help=f"train at lr {MISTAKE_LR} instead of {HEALTHY_LR}")
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--every", type=int, default=25, help="steps between evaluations (the monitor's default is 100)")
    parser.add_argument("--patience", type=int, default=300, help="steps the blank phase may last before it is an error")
    parser.add_argument("--out", type=Path, default=Path("monitor_run"), help="folder for metrics.jsonl, report.json, monitor.png")
    parser.add_argument("--live", action="store_true", help="a Rich live table instead of lines")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    monitor = Monitor(every=args.every, blank=0, alphabet=ALPHABET, reduction="mean", patience=args.patience,
                      metrics_path=args.out / "metrics.jsonl", report_path=args.out / "report.json",
                      plot_path=args.out / "monitor.png", live=args.live,
                      name="train_with_monitor.py" + (" --lr-mistake" if args.lr_mistake else ""))
    ran = train(MISTAKE_LR if args.lr_mistake else HEALTHY_LR, args.steps, monitor)
    report = monitor.close()
    print(f"ran {ran} of {args.steps} steps; files in {args.out}/")
    return 1 if any(found.severity.value == "error" for found in report.findings) else 0


if __name__ == "__main__":
    raise SystemExit(main())
