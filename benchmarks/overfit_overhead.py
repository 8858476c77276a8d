"""Per-step cost of `ctcdoctor overfit`'s trainer against a plain PyTorch loop, same run.

Run: python benchmarks/overfit_overhead.py [SPEC] [--sample 0] [--steps 60] [--rounds 5]

Both contenders train a fresh copy of the same model on the same sample, round by round,
interleaved (so drift and other processes hit both alike), on one CPU thread (what
`overfit` uses by default; see OverfitOptions.threads):

- plain: `model(x)` -> `F.ctc_loss` -> `zero_grad` / `backward` / `Adam.step`, nothing else;
- overfit: `ctcdoctor.overfit.run_overfit` with its defaults (log_softmax of the (T, N, C)
  view, `ctcdoctor.ctc.ctc_loss`, gradient clipping at 5, a greedy decode and edit distance
  every 10 steps), with the stopping rule disabled so both run the same number of steps.
  Its clock (`OverfitResult.seconds`) covers the training loop from the first forward to
  the last step, not loading, the static checks or the final eval-mode pass.

Prints the median milliseconds per step of each and the ratio (target: <= 1.2).
"""
from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing
from ctcdoctor.load.batches import normalise_batch  # noqa: E402
from ctcdoctor.load.samples import pick_samples  # noqa: E402
from ctcdoctor.load.spec import load_setup  # noqa: E402
from ctcdoctor.measure.lengths import call_length_function  # noqa: E402
from ctcdoctor.measure.model import split_output  # noqa: E402
from ctcdoctor.overfit.result import OverfitOptions  # noqa: E402
from ctcdoctor.overfit.train import run_overfit  # noqa: E402

DEFAULT_SPEC = str(Path(__file__).resolve().parents[1] / "examples" / "ocr_crnn.py")


def plain_loop(setup, batch, lengths, steps: int, lr: float) -> float:
    """Seconds per step of the textbook loop on a fresh copy of the model."""
    torch.manual_seed(0)
    model = copy.deepcopy(setup.model)
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    started = time.perf_counter()
    for _ in range(steps):
        log_probs = model(batch.inputs)
        loss = F.ctc_loss(log_probs, batch.targets, lengths, batch.target_lengths, blank=setup.blank)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return (time.perf_counter() - started) / steps


def overfit_loop(setup, sample: int, steps: int) -> float:
    # patience above the number of evaluations: never stops early, so the step counts match
    options = OverfitOptions(samples=(sample,), steps=steps, patience=steps + 1, static_checks=False)
    _, _, result = run_overfit(setup, "bench", options)
    assert result.steps_run == steps, (result.steps_run, result.diagnosis, result.notes)
    return result.seconds / result.steps_run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("spec", nargs="?", default=DEFAULT_SPEC)
    parser.add_argument("--sample", type=int, default=0)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    setup = load_setup(args.spec)
    raw, _ = pick_samples(setup.loader, (args.sample,))
    batch = normalise_batch(raw, 0, 0)
    with torch.no_grad():
        output, returned = split_output(setup.model(batch.inputs))
    if returned is not None or setup.output_lengths is None or (setup.layout or "TNC") != "TNC":
        sys.exit("this benchmark expects a TNC log-softmax model with Setup.output_lengths (like examples/ocr_crnn.py)")
    lengths = call_length_function(setup.output_lengths, batch.input_lengths)
    torch.set_num_threads(1)
    # warm-up, not timed
    plain_loop(setup, batch, lengths, 5, 1e-3)
    overfit_loop(setup, args.sample, 10)

    plain, ours = [], []
    for _ in range(args.rounds):
        plain.append(plain_loop(setup, batch, lengths, args.steps, 1e-3))
        ours.append(overfit_loop(setup, args.sample, args.steps))
    p, o = statistics.median(plain), statistics.median(ours)
    print(f"spec {Path(args.spec).name} sample {args.sample}: {args.rounds} rounds x {args.steps} steps, interleaved, 1 thread")
    print(f"  plain PyTorch loop (F.ctc_loss, Adam)       {1e3 * p:8.2f} ms/step   rounds: {', '.join(f'{1e3 * x:.2f}' for x in plain)}")
    print(f"  ctcdoctor overfit trainer (clip, eval /10)  {1e3 * o:8.2f} ms/step   rounds: {', '.join(f'{1e3 * x:.2f}' for x in ours)}")
    print(f"  ratio overfit / plain: {o / p:.3f}  (target <= 1.2)")


if __name__ == "__main__":
    main()
