"""`ctcdoctor overfit SPEC --sample N`: make a copy of the model memorise one sample, or say why it cannot."""

from __future__ import annotations

import sys
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer

import ctcdoctor.cli.options as opt
from ctcdoctor.cli.output import Emit, emit, guarded, json_errors_for, stderr_console
from ctcdoctor.overfit.extend import EXTEND_TO
from ctcdoctor.overfit.result import (
    DEFAULT_CLIP,
    DEFAULT_EVAL_EVERY,
    DEFAULT_PATIENCE,
    DEFAULT_STEPS,
    MAX_SAMPLES,
    PROGRESS_EVERY,
    PROGRESS_SECONDS,
)


class LossChoice(str, Enum):
    auto = "auto"
    criterion = "criterion"
    ctc = "ctc"


def overfit(
    spec: opt.Spec,
    sample: Annotated[int, typer.Option("--sample", min=0, help="Index of the sample to memorise (dataset[i] for a DataLoader).")] = 0,
    samples: Annotated[
        str | None,
        typer.Option("--samples", help=f"A small batch at once: 0,3,7 or 0-7, at most {MAX_SAMPLES} (overrides --sample).",
                     show_default=False),
    ] = None,
    steps: Annotated[
        int | None, typer.Option("--steps", min=1, show_default=False,
                                 help=f"Step budget; fitting stops early. Small models fit one sample in 150-600. [default: "
                                      f"{DEFAULT_STEPS}, extended up to {EXTEND_TO} while the run is still learning]")
    ] = None,
    lr: Annotated[
        float | None, typer.Option("--lr", help="Learning rate (overrides Setup.optimizer's) [default: Adam 1e-3].", show_default=False)
    ] = None,
    lr_probe: Annotated[bool, typer.Option("--lr-probe", help="Also train at lr/10 and 10*lr and say which fits.")] = False,
    loss: Annotated[
        LossChoice, typer.Option("--loss", metavar="auto|criterion|ctc",
                                 help="Loss to train: auto = Setup.criterion when given, else ctcdoctor's ctc_loss.")
    ] = LossChoice.auto,
    alpha: Annotated[
        float | None, typer.Option("--alpha", help="Modified CTC: non-blank proportion of the pseudo ground truth, in (0, 1).", show_default=False)
    ] = None,
    gamma: Annotated[float, typer.Option("--gamma", min=0.0, help="Modified CTC: key-frame weighting exponent (0 = plain CTC).")] = 0.0,
    freeze_except_head: Annotated[bool, typer.Option("--freeze-except-head", help="Train only the final layer with parameters.")] = False,
    seed: opt.Seed = None,
    device: opt.Device = None,
    timeout: opt.OverfitTimeout = None,
    clip: Annotated[float, typer.Option("--clip", min=0.0, help="Gradient clipping max norm (0 turns clipping off).")] = DEFAULT_CLIP,
    eval_every: Annotated[int, typer.Option("--eval-every", min=1, help="Decode and check every this many steps.")] = DEFAULT_EVAL_EVERY,
    patience: Annotated[
        int, typer.Option("--patience", min=1, help="Fitted = decode equals target at this many checks in a row.")
    ] = DEFAULT_PATIENCE,
    threads: Annotated[
        int, typer.Option("--threads", min=0, help="CPU threads while training (0 = torch's default); one sample trains fastest on one.")
    ] = 1,
    probe_jobs: Annotated[
        int | None, typer.Option("--probe-jobs", min=1, help="Processes for --lr-probe's extra runs [default: 2 with 4+ cores, else 1].",
                                 show_default=False)
    ] = None,
    progress_every: Annotated[
        int, typer.Option("--progress-every", min=1, help="When stderr is not a terminal (CI logs): a progress line every N steps.")
    ] = PROGRESS_EVERY,
    plot: opt.Plot = None,
    output_format: opt.Format = opt.OutputFormat.text,
    output: opt.Output = None,
    junit_xml: opt.JunitXml = None,
    sarif: opt.Sarif = None,
    no_github: opt.NoGithub = False,
    select: opt.Select = [],  # noqa: B006 - typer reads the default, never mutates it
    ignore: opt.Ignore = [],  # noqa: B006
    fail_on: opt.FailOnOption = None,
    verbose: opt.Verbose = False,
    debug: opt.Debug = False,
) -> None:
    """Train a copy of the model on one sample until it decodes it exactly; diagnose it when it cannot.

    Runs the length, label and output checks on the sample first (an infeasible length
    is reported as CTC001 and training is skipped). The fit is judged in eval mode.

    Exit 0: fitted. Exit 1: CTC070 (did not fit in the budget), CTC071 (collapsed to
    blanks), CTC072 (diverged, oscillated or NaN), CTC073 (a small batch did not fit),
    CTC074 (the loss went negative: it is not given log-probabilities), or a static error. Exit 2: a usage error, or
    --timeout ran out before training (loading, the static checks). A --timeout that lands in training cuts it there:
    the run is reported, judged on the steps run and saying so, with exit 0 or 1 by its findings.
    """
    flags = dict(sample=sample, samples=samples, steps=steps, lr=lr, lr_probe=lr_probe, loss=loss.value, alpha=alpha,
                 gamma=gamma, freeze_except_head=freeze_except_head, clip=clip, eval_every=eval_every, patience=patience,
                 threads=threads, probe_jobs=probe_jobs)

    def work() -> int:
        how = Emit(output_format, output, verbose, junit_xml=junit_xml, sarif=sarif, no_github=no_github)
        from ctcdoctor.config import resolve_settings, spec_folder
        from ctcdoctor.load.limits import deadline

        settings = resolve_settings(spec_folder(spec), fail_on=fail_on, select=select, ignore=ignore, device=device,
                                    timeout=timeout, seed=seed)
        options = _options(flags, settings)
        opt.ensure_plot_path(plot)  # before training: a failed write must not throw the run away
        how.check_paths()
        with deadline(settings.timeout):
            report = _overfit_report(spec, options, settings, plot, _progress_mode(progress_every))
        return emit(report, how, settings.fail_on)

    guarded(debug, work, json_errors_for("overfit", spec, output_format))


def _options(flags: dict[str, Any], settings: Any) -> Any:
    """OverfitOptions from the flags and the settings; every value that cannot train is exit 2 here, before loading."""
    import math

    from ctcdoctor.errors import UserInputError
    from ctcdoctor.load.samples import parse_samples
    from ctcdoctor.overfit.extend import budget
    from ctcdoctor.overfit.prepare import validate_options
    from ctcdoctor.overfit.result import OverfitOptions

    alpha = flags["alpha"]
    if alpha is not None and not 0.0 < alpha < 1.0:
        raise UserInputError(f"--alpha {alpha}: must lie in (0, 1)", "Try --alpha 0.5 (half the frames non-blank).")
    if not math.isfinite(flags["gamma"]):  # typer's min=0 lets inf (and NaN) through
        raise UserInputError(f"--gamma {flags['gamma']}: must be a finite number >= 0 (the exponent of the key-frame "
                             "weight)", "Try --gamma 1 (weight each frame by its distance from its target), or --gamma 0 "
                             "for plain CTC.")
    chosen = parse_samples(flags["samples"], default=(flags["sample"],), limit=MAX_SAMPLES)
    options = OverfitOptions(
        samples=chosen, **budget(flags["steps"]), lr=flags["lr"], alpha=alpha, gamma=flags["gamma"],
        freeze_except_head=flags["freeze_except_head"], seed=settings.seed, device=settings.device or "auto",
        clip=flags["clip"], eval_every=flags["eval_every"], patience=flags["patience"], threads=flags["threads"] or None,
        loss=flags["loss"], lr_probe=flags["lr_probe"], probe_jobs=flags["probe_jobs"],
    )
    validate_options(options)
    if options.device != "auto":
        from ctcdoctor.load.device import resolve_device

        resolve_device(options.device)
    return options


def _overfit_report(spec: str, options: Any, settings: Any, plot: Path | None, progress: str) -> Any:
    from ctcdoctor.findings import Report
    from ctcdoctor.load.limits import doing
    from ctcdoctor.load.spec import load_setup
    from ctcdoctor.load.state import seeded
    from ctcdoctor.overfit.result import command_line
    from ctcdoctor.overfit.train import run_overfit
    from ctcdoctor.registry import apply_ignore, matches, sort_findings

    with doing("starting: importing torch"):
        import torch  # noqa: F401 - seconds of the budget, named as such if --timeout runs out here
    with seeded(options.seed):  # --seed before build(), as check does: the same seed builds the same model
        with doing(f"loading {spec}"):
            setup = load_setup(spec)
        findings, checks, result = _run_with_progress(run_overfit, setup, spec, options, progress)
    result_document = result.to_dict()
    if plot is not None:
        with doing(f"plotting to {plot}"):
            result_document["plot"] = _write_plot(result, plot)
    invocation = command_line(spec, options, result, setup.optimizer is not None)  # a pasted report reproduces the run
    findings = apply_ignore(findings, settings.ignore)
    if settings.select:
        findings = [item for item in findings if matches(item.code, settings.select)]
    return Report("overfit", spec, sort_findings(findings), tuple(checks), result=result_document, seconds=result.seconds,
                  invocation=invocation, config=str(settings.config_path) if settings.config_path else None)


def _progress_mode(every: int) -> str:
    """"bar" (a live bar on a terminal), "lines:N" (a plain line every N steps: CI logs, pipes)."""
    if stderr_console().is_terminal:
        return "bar"
    return f"lines:{every}"


def _run_with_progress(run_overfit: Any, setup: Any, spec: str, options: Any, mode: str) -> Any:
    if mode.startswith("lines:"):
        lines = PlainProgress(int(mode.split(":")[1]))
        return run_overfit(setup, spec, options, on_progress=lines.progress, on_phase=lines.phase, loadable=True)
    return _with_bar(run_overfit, setup, spec, options)


class PlainProgress:
    """Plain progress lines on stderr for output that is not a terminal: every `every` steps (and at least every
    PROGRESS_SECONDS), one line with the step, the loss, the CER and the decode, so a long run is visibly alive."""

    def __init__(self, every: int) -> None:
        import time

        self.every = every
        self.clock = time.monotonic
        self.last = self.clock()
        self.printed_step = 0

    def _print(self, text: str) -> None:
        print(f"overfit: {text}", file=sys.stderr, flush=True)
        self.last = self.clock()

    def phase(self, text: str) -> None:
        self._print(text + "…")

    def progress(self, progress: Any) -> None:
        if progress.step - self.printed_step < self.every and self.clock() - self.last < PROGRESS_SECONDS:
            return
        self.printed_step = progress.step
        decode = progress.decode if len(progress.decode) <= 60 else progress.decode[:59] + "…"
        fits = f" (decode = target, {progress.streak} in a row)" if progress.streak else ""
        self._print(f"step {progress.step}/{progress.steps} loss {progress.loss:.4g} CER {progress.cer:.2f} "
                    f"decode {decode!r}{fits}")


def _with_bar(run_overfit: Any, setup: Any, spec: str, options: Any) -> Any:
    from rich.markup import escape
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    stderr = stderr_console()
    columns = (
        TextColumn("[bold]overfit[/]"),
        BarColumn(bar_width=24),
        MofNCompleteColumn(),
        TextColumn("loss [cyan]{task.fields[loss]}[/]  CER [cyan]{task.fields[cer]}[/]"),
        TextColumn("decode [magenta]{task.fields[decode]}[/]"),
        TimeElapsedColumn(),
    )
    # One live display at a time: a spinner while loading and checking, then the bar.
    status = stderr.status("loading…")
    bar = Progress(*columns, console=stderr, transient=True)
    task = bar.add_task("overfit", total=options.steps, loss="-", cer="-", decode="")

    def on_phase(text: str) -> None:
        if text == "training":
            status.stop()
            bar.reset(task, total=options.steps, loss="-", cer="-", decode="")
            bar.start()
        elif text == "final decode":
            bar.stop()
            status.update("final decode…")
            status.start()
        else:
            status.update(text + "…")

    def on_progress(progress: Any) -> None:
        decode = progress.decode if len(progress.decode) <= 40 else progress.decode[:39] + "…"
        bar.update(
            task,
            total=progress.steps,  # grows when the budget is extended while the run is still learning
            completed=progress.step,
            loss=f"{progress.loss:.4g}",
            cer=f"{progress.cer:.2f}",
            decode=escape(repr(decode)) + (" ✔" * min(progress.streak, 3)),
        )

    status.start()
    try:
        return run_overfit(setup, spec, options, on_progress=on_progress, on_phase=on_phase, loadable=True)
    finally:
        bar.stop()
        status.stop()


def _write_plot(result: Any, path: Path) -> str | None:
    """Save the overfit figure; None (and no file) when training was skipped."""
    if not result.trained:
        return None
    from ctcdoctor.render.figures import save
    from ctcdoctor.render.plot_overfit import plot

    save(plot(result), path)
    return str(path)
