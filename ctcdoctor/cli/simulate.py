"""`ctcdoctor simulate`: the Li & Wang CTC training simulator, with progress, metrics and a figure."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

import ctcdoctor.cli.options as opt
from ctcdoctor.cli.output import Emit, emit, guarded, json_errors_for, stderr_console


def simulate(
    label: Annotated[str, typer.Option("--label", help="Label text; its distinct characters become the classes (blank is 0).")] = "abcd",
    frames: Annotated[int, typer.Option("--frames", min=1, help="Output frames T of the free logit matrix.")] = 40,
    steps: Annotated[int, typer.Option("--steps", min=0, help="Gradient-descent steps.")] = 200,
    alpha: Annotated[
        float | None, typer.Option("--alpha", help="Non-blank proportion of the pseudo ground truth, in (0, 1) (open).",
                                   show_default=False)
    ] = None,
    gamma: Annotated[float, typer.Option("--gamma", help="Key-frame weighting exponent, finite and >= 0 (0 = plain CTC).")] = 0.0,
    lr: Annotated[float, typer.Option("--lr", help="SGD learning rate on the logits, finite and > 0.")] = 1.0,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the initial logits.")] = 0,
    every: Annotated[int | None, typer.Option("--every", min=1, help="Print metrics every N steps [default: steps/10].", show_default=False)] = None,
    plot: opt.Plot = None,
    out: Annotated[Path | None, typer.Option("--out", hidden=True, help="Old name of --plot.")] = None,
    output_format: opt.Format = opt.OutputFormat.text,
    output: opt.Output = None,
    junit_xml: opt.JunitXml = None,
    sarif: opt.Sarif = None,
    no_github: opt.NoGithub = False,
    fail_on: opt.FailOnOption = None,
    debug: opt.Debug = False,
) -> None:
    """Train a free logit matrix on one label under (modified) CTC and watch it turn spiky.

    Plain CTC goes through a suppression phase (blank wins every frame) and a peaking phase
    (labels return as one-frame spikes); --alpha 0.5 keeps about half the frames non-blank,
    --gamma 1 concentrates the gradient on the frames still far from their target.
    """

    def work() -> int:
        how = Emit(output_format, output, every=every, junit_xml=junit_xml, sarif=sarif, no_github=no_github)
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        from ctcdoctor.config import resolve_settings
        from ctcdoctor.errors import UserInputError
        from ctcdoctor.findings import Report
        from ctcdoctor.simulate import simulate as run_simulation

        check_options(label, frames, alpha, gamma, lr)
        settings = resolve_settings(fail_on=fail_on)
        if plot is not None and out is not None and plot != out:
            raise UserInputError(f"--plot {plot} and --out {out} name two figures", "Give --plot only (--out is its old name).")
        figure = plot or out
        opt.ensure_plot_path(figure, "--plot" if plot is not None else "--out")  # before the run: a failed write must not throw it away
        how.check_paths()
        with Progress(
            TextColumn("simulating"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]}"),
            TimeElapsedColumn(),
            console=stderr_console(),
            transient=True,
        ) as progress:
            task = progress.add_task("simulate", total=steps, loss="…")
            try:
                result = run_simulation(
                    label,
                    frames,
                    steps=steps,
                    alpha=alpha,
                    gamma=gamma,
                    lr=lr,
                    seed=seed,
                    on_step=lambda metrics: progress.update(task, completed=metrics.step, loss=f"{metrics.loss:.3f}"),
                )
            except ValueError as error:
                raise UserInputError(f"simulate: {error}", "Adjust the options; see `ctcdoctor simulate --help`.") from error
        document = result.as_dict(history=True)
        if figure is not None:
            from ctcdoctor.render.figures import save
            from ctcdoctor.render.plot_simulate import plot as draw

            save(draw(result), figure)
            document["plot"] = str(figure)
        spec = _arguments(label, frames, steps, alpha, gamma, lr, seed)
        report = Report("simulate", spec, (), (), document, config=str(settings.config_path) if settings.config_path else None)
        return emit(report, how, settings.fail_on)

    guarded(debug, work, json_errors_for("simulate", _arguments(label, frames, steps, alpha, gamma, lr, seed), output_format))


def _arguments(label: str, frames: int, steps: int, alpha: float | None, gamma: float, lr: float, seed: int) -> str:
    """The options that shape the run, as the report's reproduce line: the defaults left out."""
    given = [f"--label {label!r}", f"--frames {frames}"]
    for flag, value, default in (("--steps", steps, 200), ("--alpha", alpha, None), ("--gamma", gamma, 0.0),
                                 ("--lr", lr, 1.0), ("--seed", seed, 0)):
        if value != default:
            given.append(f"{flag} {value:g}" if isinstance(value, float) else f"{flag} {value}")
    return " ".join(given)


def check_options(label: str, frames: int, alpha: float | None, gamma: float, lr: float) -> None:
    """Values the simulation cannot run with are exit 2 before it starts, each naming its flag and valid range.

    The ranges are the modified CTC's (`ctcdoctor.ctc.loss`): α is the share of frames the pseudo ground truth
    keeps non-blank, strictly between 0 (all blank) and 1 (no blank left to separate labels); γ is the exponent
    of the key-frame weight w_t^γ (w_t: how far frame t still is from its target), any finite γ >= 0 (0 = plain CTC).
    """
    import math

    from ctcdoctor.errors import UserInputError
    from ctcdoctor.render.phrases import plural

    if alpha is not None and not 0.0 < alpha < 1.0:
        raise UserInputError(
            f"--alpha {alpha:g}: must be in (0, 1), exclusive: the share of frames the pseudo ground truth keeps "
            "non-blank (0 would be all blank, 1 leaves no blank to separate the labels)",
            "Try --alpha 0.5 (about half the frames non-blank), or drop --alpha for plain CTC.")
    if not (math.isfinite(gamma) and gamma >= 0.0):
        raise UserInputError(f"--gamma {gamma:g}: must be a finite number >= 0: the exponent of the key-frame weight w_t^γ "
                             "(w_t: how far frame t still is from its target)",
                             "Try --gamma 1 (weight each frame by its distance), or --gamma 0 for plain CTC.")
    if not (math.isfinite(lr) and lr > 0.0):
        raise UserInputError(f"--lr {lr:g}: must be a finite number > 0: the SGD step on the logits",
                             "Use --lr 1 (the default).")
    if not label:
        raise UserInputError("--label is empty: the simulation needs at least one symbol to learn", "Try --label hello.")
    repeats = sum(a == b for a, b in zip(label, label[1:]))
    if frames < len(label) + repeats:
        raise UserInputError(
            f"--frames {frames}: too few for --label {label!r}, {plural(len(label), 'symbol')} with "
            f"{plural(repeats, 'repeat')}; use at least {len(label) + repeats} frames (a blank must separate equal neighbours)",
            f"Use --frames {len(label) + repeats} at least; about 4 frames per symbol (--frames {4 * (len(label) + repeats)}) "
            "leaves room for the spikes to show.")
