"""Per-step cost of `ctcdoctor overfit`'s trainer against a plain PyTorch loop, same run.

Run: python benchmarks/overfit_overhead.py [SPEC] [--sample 0] [--steps 60] [--rounds 5]

Both contenders train a fresh copy of the same model on the same sample, round by round,
interleaved (so drift and other processes hit both alike), on one CPU thread (what
`overfit` uses by default; see OverfitOptions.threads):

- plain: `model(x)` -> `F.ctc_loss` -> `zero_grad` / `backward` / `Adam.step`, nothing else;
- overfit: `ctcdoctor.overfit.run_overfit` with its defaults (the spec's own criterion when it
  has one, else `ctcdoctor.ctc.ctc_loss` on log_softmax of the (T, N, C) view; gradient
  clipping at 5; every 10 steps an eval-mode forward and greedy decode, which judges the fit,
  and the training step's own decode), with the stopping rule disabled so both run the same
  number of steps. Its clock (`OverfitResult.seconds`) covers the training loop from the first
  forward to the last step, not loading, the static checks or the final eval-mode pass.

Works on (T, N, C) and (N, T, C) models (the plain loop transposes batch-first outputs for
F.ctc_loss, as a user's loop does) and on models that return `(output, lengths)`.

Prints the median milliseconds per step of each and the ratio (target: <= 1.2).
"""
from __future__ import annotations

import argparse
import copy
import dataclasses
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing
from ctcdoctor.engine import Context, Options  # noqa: E402
from ctcdoctor.load.batches import normalise_batch  # noqa: E402
from ctcdoctor.load.samples import pick_samples  # noqa: E402
from ctcdoctor.load.spec import load_setup  # noqa: E402
from ctcdoctor.overfit.result import OverfitOptions  # noqa: E402
from ctcdoctor.overfit.train import run_overfit  # noqa: E402

DEFAULT_SPEC = str(Path(__file__).resolve().parents[1] / "examples" / "ocr_crnn.py")


def plain_loop(setup, batch, lengths, layout: str | None, steps: int, lr: float) -> float:
    """Seconds per step of the textbook loop on a fresh copy of the model."""
    torch.manual_seed(0)
    model = copy.deepcopy(setup.model)
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    started = time.perf_counter()
    for _ in range(steps):
        output = model(batch.inputs)
        if isinstance(output, (tuple, list)):
            output, lengths = output[0], torch.as_tensor(output[1])
        log_probs = output.transpose(0, 1) if layout == "NTC" else output
        loss = F.ctc_loss(log_probs, batch.targets, lengths, batch.target_lengths, blank=setup.blank)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return (time.perf_counter() - started) / steps


def overfit_loop(setup, sample: int, steps: int) -> tuple[float, str]:
    """Seconds per step of `run_overfit`, and the loss it trained."""
    # patience above the number of evaluations: never stops early, so the step counts match
    options = OverfitOptions(samples=(sample,), steps=steps, patience=steps + 1, static_checks=False)
    _, _, result = run_overfit(setup, "bench", options)
    assert result.steps_run == steps, (result.steps_run, result.diagnosis, result.notes)
    return result.seconds / result.steps_run, result.loss_function


def layout_and_lengths(setup, raw, batch) -> tuple[str | None, torch.Tensor]:
    """The output layout and lengths as `check` measures them (declared, read off the shape, or probed)."""
    context = Context(dataclasses.replace(setup, loader=[raw]), Options(max_batches=1, scan_batches=1))
    if not context.output_lengths.known:
        sys.exit("this benchmark needs known output lengths (Setup.output_lengths, returned lengths or equal input lengths)")
    return context.layout.layout, context.output_lengths.per_run[0]


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
    layout, lengths = layout_and_lengths(setup, raw, batch)
    torch.set_num_threads(1)
    # warm-up, not timed
    plain_loop(setup, batch, lengths, layout, 5, 1e-3)
    _, trained = overfit_loop(setup, args.sample, 10)

    plain, ours = [], []
    for _ in range(args.rounds):
        plain.append(plain_loop(setup, batch, lengths, layout, args.steps, 1e-3))
        ours.append(overfit_loop(setup, args.sample, args.steps)[0])
    p, o = statistics.median(plain), statistics.median(ours)
    print(f"spec {Path(args.spec).name} sample {args.sample}: {args.rounds} rounds x {args.steps} steps, interleaved, 1 thread")
    print(f"  layout {layout or 'TNC'}; overfit trained {trained}")
    print(f"  plain PyTorch loop (F.ctc_loss, Adam)       {1e3 * p:8.2f} ms/step   rounds: {', '.join(f'{1e3 * x:.2f}' for x in plain)}")
    print(f"  ctcdoctor overfit trainer (clip, eval /10)  {1e3 * o:8.2f} ms/step   rounds: {', '.join(f'{1e3 * x:.2f}' for x in ours)}")
    print(f"  ratio overfit / plain: {o / p:.3f}  (target <= 1.2)")


if __name__ == "__main__":
    main()
