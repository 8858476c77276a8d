"""`ctcdoctor simulate`: the Li & Wang CTC training simulator, with progress, metrics and a figure."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ctcdoctor.cli import FailOn, OutputFormat, app, emit, guarded, stderr


@app.command()
def simulate(
    label: str = typer.Option("abcd", "--label", help="Label text; its distinct characters become the classes (blank is 0)."),
    frames: int = typer.Option(40, "--frames", min=1, help="Output frames T of the free logit matrix."),
    steps: int = typer.Option(200, "--steps", min=0, help="Gradient-descent steps."),
    alpha: Optional[float] = typer.Option(None, "--alpha", help="Non-blank proportion of the pseudo ground truth, in (0, 1)."),
    gamma: float = typer.Option(0.0, "--gamma", min=0.0, help="Key-frame weighting exponent (0 = plain CTC)."),
    lr: float = typer.Option(1.0, "--lr", help="SGD learning rate on the logits."),
    seed: int = typer.Option(0, "--seed", help="Seed of the initial logits."),
    every: Optional[int] = typer.Option(None, "--every", min=1, help="Print metrics every N steps \\[default: steps/10]."),
    out: Optional[Path] = typer.Option(None, "--out", help="Save a figure of outputs (solid) and pseudo ground truth (dashed)."),
    output_format: OutputFormat = typer.Option(OutputFormat.text, "--format", "-f", help="text or json."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Also write the JSON report to this file."),
    fail_on: FailOn = typer.Option(FailOn.error, "--fail-on", help="Exit 1 on findings at or above this severity."),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks."),
) -> None:
    """Train a free logit matrix on one label under (modified) CTC and watch it turn spiky.

    Plain CTC goes through a suppression phase (blank wins every frame) and a peaking phase
    (labels return as one-frame spikes); --alpha 0.5 keeps about half the frames non-blank,
    --gamma 1 concentrates the gradient on the frames still far from their target.
    """

    def work() -> int:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        from ctcdoctor.errors import UserInputError
        from ctcdoctor.findings import Report
        from ctcdoctor.simulate import simulate as run_simulation
        from ctcdoctor.writable import ensure_writable

        ensure_writable(out, "--out")  # before the run: a failed write must not throw it away
        ensure_writable(output, "--output")

        with Progress(
            TextColumn("simulating"), BarColumn(), MofNCompleteColumn(), TextColumn("loss {task.fields[loss]}"),
            TimeElapsedColumn(), console=stderr, transient=True,
        ) as progress:
            task = progress.add_task("simulate", total=steps, loss="…")

            def on_step(metrics) -> None:
                progress.update(task, completed=metrics.step, loss=f"{metrics.loss:.3f}")

            try:
                result = run_simulation(label, frames, steps=steps, alpha=alpha, gamma=gamma, lr=lr, seed=seed, on_step=on_step)
            except ValueError as error:
                raise UserInputError(f"simulate: {error}", "Adjust the options; see `ctcdoctor simulate --help`.") from error
        document = result.as_dict(history=True)
        if out is not None:
            from ctcdoctor.plots import plot_simulation

            out.parent.mkdir(parents=True, exist_ok=True)
            plot_simulation(result, out)
            document["figure"] = str(out)
        blocks = [] if output_format is OutputFormat.json else [_metrics_table(result, every or max(1, steps // 10))]
        if out is not None and output_format is OutputFormat.text:
            blocks.append(f"figure written to {out}")
        spec = f"--label {label!r} --frames {frames}" + (f" --alpha {alpha}" if alpha is not None else "") + (f" --gamma {gamma}" if gamma else "")
        report = Report("simulate", spec, (), (), document, {"blocks": blocks})
        return emit(report, output_format, output, False, fail_on.value)

    guarded(debug, work)


def _metrics_table(result, every: int):
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    table = Table(show_header=True, header_style="bold", box=None, padding=(0, 2))
    for column in ("step", "loss", "blank ratio", "non-blank mass", "spike width", "peak prob", "entropy", "decode"):
        table.add_column(column, justify="left" if column == "decode" else "right")
    for metrics in result.history:
        if metrics.step % every == 0 or metrics.step == result.steps:
            decoded = metrics.decoded if isinstance(metrics.decoded, str) else " ".join(map(str, metrics.decoded))
            table.add_row(
                str(metrics.step), f"{metrics.loss:.3f}", f"{metrics.blank_ratio:.2f}", f"{metrics.nonblank_mass:.2f}",
                f"{metrics.spike_width:.2f}", f"{metrics.peak_prob:.2f}", f"{metrics.entropy:.2f}", repr(decoded),
            )
    first = result.first_correct_step
    verdict = Text(
        f"first correct greedy decode at step {first}" if first is not None else f"never decoded correctly in {result.steps} steps",
        style="bold green" if first is not None else "bold yellow",
    )
    return Group(table, verdict)
