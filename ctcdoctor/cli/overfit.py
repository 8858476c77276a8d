"""`ctcdoctor overfit SPEC --sample N`: make a copy of the model memorise one sample, or say why it cannot."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

import ctcdoctor.cli.options as opt
from ctcdoctor.cli.output import Emit, emit, guarded, stderr_console
from ctcdoctor.overfit.result import DEFAULT_CLIP, DEFAULT_EVAL_EVERY, DEFAULT_PATIENCE, DEFAULT_STEPS


def overfit(
    spec: opt.Spec,
    sample: Annotated[int, typer.Option("--sample", min=0, help="Index of the sample to memorise (dataset[i] for a DataLoader).")] = 0,
    samples: Annotated[
        str | None, typer.Option("--samples", help="Several samples at once: 0,3,7 or 0-3 (overrides --sample).", show_default=False)
    ] = None,
    steps: Annotated[
        int, typer.Option("--steps", min=1, help="Step budget; fitting stops early. Small models fit one sample in 150-600.")
    ] = DEFAULT_STEPS,
    lr: Annotated[
        float | None, typer.Option("--lr", help="Learning rate (overrides Setup.optimizer's) [default: Adam 1e-3].", show_default=False)
    ] = None,
    alpha: Annotated[
        float | None, typer.Option("--alpha", help="Modified CTC: non-blank proportion of the pseudo ground truth, in (0, 1).", show_default=False)
    ] = None,
    gamma: Annotated[float, typer.Option("--gamma", min=0.0, help="Modified CTC: key-frame weighting exponent (0 = plain CTC).")] = 0.0,
    freeze_except_head: Annotated[bool, typer.Option("--freeze-except-head", help="Train only the final layer with parameters.")] = False,
    seed: Annotated[int, typer.Option("--seed", help="Random seed (dropout, initial state of the copy's RNG).")] = 0,
    device: opt.Device = None,
    clip: Annotated[float, typer.Option("--clip", min=0.0, help="Gradient clipping max norm (0 turns clipping off).")] = DEFAULT_CLIP,
    eval_every: Annotated[int, typer.Option("--eval-every", min=1, help="Decode and check every this many steps.")] = DEFAULT_EVAL_EVERY,
    patience: Annotated[
        int, typer.Option("--patience", min=1, help="Fitted = decode equals target at this many checks in a row.")
    ] = DEFAULT_PATIENCE,
    threads: Annotated[
        int, typer.Option("--threads", min=0, help="CPU threads while training (0 = torch's default); one sample trains fastest on one.")
    ] = 1,
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
    is reported as CTC001 and training is skipped).

    Exit 0: fitted. Exit 1: CTC070 (did not fit in the budget), CTC071 (collapsed to
    blanks), CTC072 (diverged, oscillated or NaN), or a static error.
    """

    def work() -> int:
        how = Emit(output_format, output, verbose, junit_xml=junit_xml, sarif=sarif, no_github=no_github)
        from ctcdoctor.config import resolve_settings, spec_folder
        from ctcdoctor.errors import UserInputError
        from ctcdoctor.findings import Report
        from ctcdoctor.load.samples import parse_samples
        from ctcdoctor.load.spec import load_setup
        from ctcdoctor.overfit.result import OverfitOptions
        from ctcdoctor.overfit.train import run_overfit
        from ctcdoctor.registry import apply_ignore, sort_findings

        settings = resolve_settings(spec_folder(spec), fail_on=fail_on, select=select, ignore=ignore, device=device)
        if alpha is not None and not 0.0 < alpha < 1.0:
            raise UserInputError(f"--alpha {alpha}: must lie in (0, 1)", "Try --alpha 0.5 (half the frames non-blank).")
        chosen = parse_samples(samples, default=(sample,))
        options = OverfitOptions(
            samples=chosen,
            steps=steps,
            lr=lr,
            alpha=alpha,
            gamma=gamma,
            freeze_except_head=freeze_except_head,
            seed=seed,
            device=settings.device or "auto",
            clip=clip,
            eval_every=eval_every,
            patience=patience,
            threads=threads or None,
        )
        opt.ensure_plot_path(plot)  # before training: a failed write must not throw the run away
        how.check_paths()
        if options.device != "auto":
            from ctcdoctor.load.device import resolve_device

            resolve_device(options.device)
        setup = load_setup(spec)
        show = output_format is opt.OutputFormat.text or stderr_console().is_terminal
        findings, checks, result = _run_with_progress(run_overfit, setup, spec, options, show)
        result_document = result.to_dict()
        if plot is not None:
            result_document["plot"] = _write_plot(result, plot)
        invocation = f"{spec} --samples {','.join(map(str, chosen))}" if len(chosen) > 1 else f"{spec} --sample {chosen[0]}"
        findings = apply_ignore(findings, settings.ignore)
        if settings.select:
            from ctcdoctor.registry import matches

            findings = [item for item in findings if matches(item.code, settings.select)]
        report = Report(
            "overfit",
            spec,
            sort_findings(findings),
            tuple(checks),
            result=result_document,
            seconds=result.seconds,
            invocation=invocation,
            config=str(settings.config_path) if settings.config_path else None,
        )
        return emit(report, how, settings.fail_on)

    guarded(debug, work)


def _run_with_progress(run_overfit: Any, setup: Any, spec: str, options: Any, show: bool) -> Any:
    if not show:
        return run_overfit(setup, spec, options)
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
            completed=progress.step,
            loss=f"{progress.loss:.4g}",
            cer=f"{progress.cer:.2f}",
            decode=escape(repr(decode)) + (" ✔" * min(progress.streak, 3)),
        )

    status.start()
    try:
        return run_overfit(setup, spec, options, on_progress=on_progress, on_phase=on_phase)
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
