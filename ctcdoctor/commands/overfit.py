"""`ctcdoctor overfit`: make the model memorise one sample, or say why it cannot.

Imports torch only inside the command (start-up and `--help` stay fast); the codes
CTC070-CTC072 are documented in ctcdoctor.codes.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, List, Optional

import typer

from ctcdoctor.cli import SPEC_HELP, FailOn, OutputFormat, _settings, app, emit, guarded, stderr
from ctcdoctor.overfit import DEFAULT_CLIP, DEFAULT_EVAL_EVERY, DEFAULT_PATIENCE, DEFAULT_STEPS


@app.command()
def overfit(
    spec: str = typer.Argument(..., help=SPEC_HELP),
    sample: int = typer.Option(0, "--sample", min=0, help="Index of the sample to memorise (dataset[i] for a DataLoader)."),
    samples: Optional[str] = typer.Option(None, "--samples", help="Several samples at once: 0,3,7 or 0-3 (overrides --sample)."),
    steps: int = typer.Option(DEFAULT_STEPS, "--steps", min=1, help="Step budget; fitting stops early. Small models fit one sample in 150-600."),
    lr: Optional[float] = typer.Option(None, "--lr", help="Learning rate (overrides Setup.optimizer's) \\[default: Adam 1e-3]."),
    alpha: Optional[float] = typer.Option(None, "--alpha", help="Modified CTC: non-blank proportion of the pseudo ground truth, in (0, 1)."),
    gamma: float = typer.Option(0.0, "--gamma", min=0.0, help="Modified CTC: key-frame weighting exponent (0 = plain CTC)."),
    freeze_except_head: bool = typer.Option(False, "--freeze-except-head", help="Train only the final layer with parameters."),
    seed: int = typer.Option(0, "--seed", help="Random seed (dropout, initial state of the copy's RNG)."),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda (the copy of the model is moved there)."),
    clip: float = typer.Option(DEFAULT_CLIP, "--clip", min=0.0, help="Gradient clipping max norm (0 turns clipping off)."),
    eval_every: int = typer.Option(DEFAULT_EVAL_EVERY, "--eval-every", min=1, help="Decode and check every this many steps."),
    patience: int = typer.Option(DEFAULT_PATIENCE, "--patience", min=1, help="Fitted = decode equals target at this many checks in a row."),
    threads: int = typer.Option(1, "--threads", min=0, help="CPU threads while training (0 = torch's default); one sample trains fastest on one."),
    plot: Optional[Path] = typer.Option(None, "--plot", help="Write loss/CER curves and per-frame outputs vs pseudo ground truth to this PNG."),
    output_format: OutputFormat = typer.Option(OutputFormat.text, "--format", "-f", help="text for people, json for CI."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Also write the JSON report to this file."),
    ignore: List[str] = typer.Option([], "--ignore", help="Drop findings with these codes or prefixes."),
    fail_on: Optional[FailOn] = typer.Option(None, "--fail-on", help="Exit 1 on findings at or above this severity \\[default: error]."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Show the static checks' timings."),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks."),
) -> None:
    """Train a copy of the model on one sample until it decodes it exactly; diagnose it when it cannot.

    Runs the length, label and output checks on the sample first (an infeasible length is
    reported as CTC001 and training is skipped). Exit 0: fitted; exit 1: CTC070 (did not fit
    in the budget), CTC071 (collapsed to blanks), CTC072 (diverged / oscillated / NaN), or a
    static error.
    """

    def work() -> int:
        from ctcdoctor.errors import UserInputError
        from ctcdoctor.loading import load_setup
        from ctcdoctor.overfit import OverfitOptions, run_overfit
        from ctcdoctor.samples import parse_samples
        from ctcdoctor.findings import Report
        from ctcdoctor.runner import apply_ignore, sort_findings
        from ctcdoctor.writable import ensure_writable

        settings = _settings(spec, fail_on, [], ignore)
        if alpha is not None and not 0.0 < alpha < 1.0:
            raise UserInputError(f"--alpha {alpha}: must lie in (0, 1)", "Try --alpha 0.5 (half the frames non-blank).")
        chosen = parse_samples(samples, default=(sample,))
        options = OverfitOptions(
            samples=chosen, steps=steps, lr=lr, alpha=alpha, gamma=gamma, freeze_except_head=freeze_except_head,
            seed=seed, device=device, clip=clip, eval_every=eval_every, patience=patience,
            threads=threads or None,
        )
        if plot is not None and plot.suffix.lower() not in (".png", ".pdf", ".svg"):
            raise UserInputError(f"--plot {plot}: write a .png (or .pdf/.svg) file", "Use e.g. --plot overfit.png.")
        ensure_writable(plot, "--plot")  # before training: a failed write must not throw the run away
        ensure_writable(output, "--output")
        setup = load_setup(spec)
        show = output_format is OutputFormat.text or stderr.is_terminal
        findings, checks, result = _run_with_progress(run_overfit, setup, spec, options, show)
        blocks: list[Any] = [_summary(result)]
        if plot is not None:
            blocks.append(_write_plot(result, plot))
        findings = apply_ignore(findings, settings["ignore"] or ())
        invocation = f"{spec} --samples {','.join(map(str, chosen))}" if len(chosen) > 1 else f"{spec} --sample {chosen[0]}"
        report = Report(
            "overfit", spec, sort_findings(findings), tuple(checks), result=result.to_dict(),
            extras={"blocks": blocks, "invocation": invocation},
        )
        if plot is not None and report.result is not None:
            report.result["plot"] = str(plot) if plot.exists() else None
        return emit(report, output_format, output, verbose, settings["fail_on"])

    guarded(debug, work)


def _run_with_progress(run_overfit, setup, spec, options, show: bool):
    if not show:
        return run_overfit(setup, spec, options)
    from rich.markup import escape
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

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

    def on_progress(progress) -> None:
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


def _summary(result) -> Any:
    """The result as Rich renderables: a headline, then the numbers behind it."""
    from rich.console import Group
    from rich.markup import escape
    from rich.table import Table
    from rich.text import Text

    targets = ", ".join(f'"{t}"' for t in result.targets)
    samples = ("sample " if len(result.samples) == 1 else "samples ") + ", ".join(map(str, result.samples))
    if not result.trained:
        head = Text.assemble(
            ("■ overfit not run ", "bold red"),
            f"on {samples} ({targets}): fix {', '.join(result.skipped_because)} above first; training could not succeed.",
        )
        return Group(head, Text(""))
    if result.fitted:
        head = Text.assemble(
            ("✔ fitted ", "bold green"),
            f"{samples} ({targets}) in {result.steps_to_fit} steps, {result.seconds_to_fit:.1f} s "
            f"(stopped after {result.steps_run} steps, {result.seconds:.1f} s)",
        )
    else:
        head = Text.assemble(
            (f"✖ did not fit ({result.diagnosis}) ", "bold red"),
            f"{samples} ({targets}) in {result.steps_run} steps, {result.seconds:.1f} s",
        )
    table = Table(show_header=False, box=None, padding=(0, 2), pad_edge=False)
    table.add_column(style="dim")
    table.add_column()
    decode = ", ".join(f'"{d}"' for d in result.final_decode) or "-"
    distances = ", ".join(str(distance) for distance in result.edit_distance)
    table.add_row("final decode", escape(f"{decode}  (edit distance {distances}, CER {result.cer if result.cer is not None else float('nan'):.2f})"))
    loss = result.loss_summary()
    table.add_row("loss", f"{_num(loss['first'])} → {_num(loss['last'])} (best {_num(loss['best'])} at step {loss['best_step']})")
    table.add_row("CTC path", escape(f"{result.ctc_path}, {result.loss_function}"))
    table.add_row("optimizer", escape(f"{result.optimizer} on {result.device}, seed {result.seed}"))
    clipping = result.clipping
    if clipping.get("max_norm"):
        table.add_row(
            "clipping",
            f"max norm {clipping['max_norm']:g}: clipped {clipping['clipped_steps']} of {clipping['steps']} steps "
            f"(median grad norm {_num(clipping.get('median_grad_norm'))}, max {_num(clipping.get('max_grad_norm'))})",
        )
    else:
        table.add_row("clipping", "off")
    parameters = result.parameters
    trained = f"{parameters.get('trainable', 0):,} of {parameters.get('total', 0):,} parameters trained"
    if parameters.get("freeze_except_head"):
        trained += f" (only the head: {result.head})"
    table.add_row("parameters", escape(trained))
    if result.spikiness:
        s = result.spikiness
        table.add_row(
            "spikiness",
            f"blank ratio {s['blank_ratio']:.2f}, spike width {s['spike_width']:.2f} frames, "
            f"peak p {s['peak_prob']:.2f}, entropy {s['entropy']:.2f} nats",
        )
    table.add_row("output", escape(result.normalisation))
    for note in result.notes:
        table.add_row("note", escape(note))
    return Group(head, table, Text(""))


def _num(value: Optional[float]) -> str:
    return "-" if value is None else f"{value:.4g}"


def _write_plot(result, path: Path) -> Any:
    from rich.text import Text

    if not result.trained:
        return Text(f"no plot written to {path}: training was skipped", style="yellow")
    from ctcdoctor.plots_overfit import plot_overfit

    figure = plot_overfit(result)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(path, dpi=110)
    except OSError as error:
        from ctcdoctor.errors import UserInputError

        raise UserInputError(f"cannot write --plot {path}: {error}", "Choose a writable path.") from error
    finally:
        import matplotlib.pyplot as plt

        plt.close(figure)
    return Text(f"plot written to {path}", style="dim")
