"""`--lr-probe`: the same samples at lr/10, lr and 10·lr, turned into a verdict on the learning rate.

"Fits at 0.01 in 150 steps, not at 0.001: the learning rate is too low" answers the question users
ask first. The run at lr is the main run; the two others train fresh copies of the model, seeded the
same way. They run one after the other in this process, or in separate processes where the machine
has cores to spare: on the 2-core CI machine three spawned processes took 1.5-2.2x the time of
the runs in sequence (each process imports torch and builds the spec again, and the cores were
busy), so processes are used only with at least PARALLEL_CORES usable cores and a spec to load.
"""
from __future__ import annotations

import contextlib
import dataclasses
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ctcdoctor.overfit.result import PROBE_FACTORS, OverfitOptions

if TYPE_CHECKING:  # pragma: no cover
    from ctcdoctor.overfit.result import OverfitResult

PARALLEL_CORES = 4
"""Usable cores needed before the probe's extra runs go to separate processes."""


@dataclass(frozen=True)
class ProbeRun:
    """One learning rate's run, as the probe reports it."""

    lr: float
    fitted: bool
    steps_to_fit: int | None
    seconds_to_fit: float | None
    steps: int
    seconds: float
    verdict: str
    """"fitted", or the failure's code and kind ("CTC072 diverged")."""
    best_loss: float | None
    curve: tuple[tuple[int, float], ...] = ()
    """(step, loss) of the run, thinned to at most CURVE_POINTS points (every step's loss for short runs), for the plot."""

    def words(self) -> str:
        return f"{self.lr:g} in {self.steps_to_fit} steps" if self.fitted else f"{self.lr:g} ({self.verdict})"


CURVE_POINTS = 400
"""The most (step, loss) points kept of a probe run's curve: enough for a figure, small in the JSON."""


def thin(losses: Sequence[float], points: int = CURVE_POINTS) -> tuple[tuple[int, float], ...]:
    """(step, loss) pairs, steps from 1, evenly thinned to at most `points`, keeping the last step."""
    every = max(1, -(-len(losses) // points))
    kept = [(step, float(value)) for step, value in enumerate(losses, 1) if (step - 1) % every == 0]
    if losses and kept[-1][0] != len(losses):
        kept.append((len(losses), float(losses[-1])))
    return tuple(kept)


def probe_run(result: OverfitResult, verdict: str | None) -> ProbeRun:
    summary = result.loss_summary()
    return ProbeRun(float(result.lr or 0.0), result.fitted, result.steps_to_fit, result.seconds_to_fit,
                    result.steps_run, result.seconds, "fitted" if result.fitted else (verdict or "did not fit"),
                    summary["best"], thin(result.losses))


def probe_jobs(requested: int | None, spec_loadable: bool) -> int:
    """Processes for the two extra runs: `requested`, else 2 with PARALLEL_CORES usable cores and a loadable spec, else 1."""
    if requested is not None:
        return max(1, requested) if spec_loadable else 1
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return 2 if spec_loadable and cores >= PARALLEL_CORES else 1


TREND_GAIN = 0.9
"""With no run fitting, the best losses "fall as the learning rate grows" when each is below this share of the last."""


def _trend(runs: Sequence[ProbeRun]) -> dict[str, Any]:
    """No run fitted: does the best loss move steadily with the learning rate? Then the rate is still too low (high)."""
    rates = ", ".join(f"{run.lr:g}" for run in runs)
    bests = [run.best_loss for run in runs]
    losses = ", ".join(f"{run.best_loss:.3g} at {run.lr:g}" for run in runs if run.best_loss is not None)
    if all(best is not None for best in bests):
        values = [float(best) for best in bests if best is not None]
        if all(b <= TREND_GAIN * a for a, b in zip(values, values[1:])):
            return {"verdict": "too_low", "suggested_lr": float(f"{runs[-1].lr * 10:.12g}"), "fitted_at_suggested": False,
                    "conclusion": f"the probe fits at none of {rates}, but the best loss falls as the learning rate grows "
                                  f"({losses}): the learning rate is too low"}
        if all(a <= TREND_GAIN * b for a, b in zip(values, values[1:])):
            return {"verdict": "too_high", "suggested_lr": float(f"{runs[0].lr / 10:.12g}"), "fitted_at_suggested": False,
                    "conclusion": f"the probe fits at none of {rates}, but the best loss falls as the learning rate "
                                  f"shrinks ({losses}): the learning rate is too high"}
    return {"verdict": "not_lr", "suggested_lr": None, "fitted_at_suggested": False,
            "conclusion": f"the probe fits at none of {rates} and the best loss does not follow the learning rate "
                          f"({losses}): the learning rate is not the cause"}


def conclude(runs: Sequence[ProbeRun], base_lr: float) -> dict[str, Any]:
    """The verdict on the learning rate: "fine", "too_low", "too_high", "not_lr" or "mixed", in words with the numbers.

    `runs` are sorted by learning rate. When none fits, the best losses decide: falling steadily as the rate
    grows means it is still too low (and the other way round); otherwise the learning rate is not the cause.
    """
    fits = [run for run in runs if run.fitted]
    base = next(run for run in runs if run.lr == base_lr)
    fastest = min(fits, key=lambda run: (run.steps_to_fit or 0, run.lr)) if fits else None
    if fastest is None:
        return _trend(runs)
    if base.fitted:
        words = f"the probe fits at {base.words()}: the learning rate is fine"
        if fastest is not base and (fastest.steps_to_fit or 0) * 2 <= (base.steps_to_fit or 0):
            words += f" (fastest at {fastest.words()})"
        return {"verdict": "fine", "suggested_lr": base.lr, "fitted_at_suggested": True, "conclusion": words}
    higher = [run for run in fits if run.lr > base_lr]
    lower = [run for run in fits if run.lr < base_lr]
    if higher and not lower:
        verdict, why = "too_low", "the learning rate is too low"
    elif lower and not higher:
        verdict, why = "too_high", "the learning rate is too high"
    else:
        verdict, why = "mixed", "a run-to-run difference rather than the learning rate"
    return {"verdict": verdict, "suggested_lr": fastest.lr, "fitted_at_suggested": True,
            "conclusion": f"the probe fits at {fastest.words()}, not at {base.words()}: {why}"}


def probe_child(spec: str, options: OverfitOptions) -> ProbeRun:
    """One probe run in a fresh process: load the spec, take the samples, train (no static checks)."""
    import torch

    from ctcdoctor.load.spec import load_setup
    from ctcdoctor.load.state import seeded
    from ctcdoctor.overfit.train import train_alone

    if options.threads:
        torch.set_num_threads(options.threads)
    # Seeded before build() as the command was: the same initial model as the main run. The parent's stdout
    # may carry the JSON report: the user's prints go to stderr.
    with seeded(options.seed), contextlib.redirect_stdout(sys.stderr):
        result, verdict = train_alone(load_setup(spec), options)
    return probe_run(result, verdict)


def _in_processes(spec: str, options: Sequence[OverfitOptions], jobs: int) -> list[ProbeRun]:
    import multiprocessing

    context = multiprocessing.get_context("spawn")  # fork after torch has started its threads can hang
    with context.Pool(jobs) as pool:  # leaving the block terminates the workers, on a timeout too
        pending = [pool.apply_async(probe_child, (spec, item)) for item in options]
        return [item.get() for item in pending]


def run_probe(base: OverfitResult, base_verdict: str | None, options: OverfitOptions, spec: str | None,
              train_in_process: Callable[[OverfitOptions], ProbeRun], phase: Callable[[str], None]) -> dict[str, Any]:
    """The probe around the main run `base`: the result's `lr_probe` dictionary."""
    base_lr = float(base.lr or 0.0)
    others = [dataclasses.replace(options, lr=float(f"{base_lr * factor:.12g}"), static_checks=False, lr_probe=False, alone_check=False)
              for factor in PROBE_FACTORS if factor != 1.0]
    jobs = probe_jobs(options.probe_jobs, spec is not None)
    phase(f"LR probe: {', '.join(f'{item.lr:g}' for item in others)}" + (f" in {jobs} processes" if jobs > 1 else ""))
    if jobs > 1 and spec is not None:
        runs = _in_processes(spec, others, jobs)
    else:
        runs = []
        for item in others:
            phase(f"LR probe: training at lr {item.lr:g}")
            runs.append(train_in_process(item))
    every = sorted([probe_run(base, base_verdict), *runs], key=lambda run: run.lr)
    return {"base_lr": base_lr, "how": f"in {jobs} processes" if jobs > 1 else "in sequence, in this process",
            "runs": [dataclasses.asdict(run) for run in every], **conclude(every, base_lr)}
