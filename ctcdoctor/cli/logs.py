"""`ctcdoctor logs RUN_DIR_OR_FILE`: what a training run's curves say (CTC200-CTC224), with the fix."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

import ctcdoctor.cli.options as opt
from ctcdoctor.cli.output import Emit, emit, guarded, json_errors_for, stderr_console


def logs(
    run: Annotated[
        Path,
        typer.Argument(
            help="A log file or a run folder: TensorBoard event files, trainer_state.json, Lightning's metrics.csv, "
            "a Keras CSVLogger file, a CSV/JSONL with a step column, or the monitor's metrics JSONL.",
            metavar="RUN_DIR_OR_FILE",
            show_default=False,
        ),
    ],
    loss: Annotated[str | None, typer.Option("--loss", metavar="TAG", help="The training loss's tag [default: recognised by name].",
                                             show_default=False)] = None,
    eval_loss: Annotated[str | None, typer.Option("--eval-loss", metavar="TAG", help="The held-out loss's tag.", show_default=False)] = None,
    metric: Annotated[str | None, typer.Option("--metric", metavar="TAG", help="An error rate or accuracy tag (CER, WER).",
                                               show_default=False)] = None,
    lr: Annotated[str | None, typer.Option("--lr", metavar="TAG", help="The learning rate's tag.", show_default=False)] = None,
    grad_norm: Annotated[str | None, typer.Option("--grad-norm", metavar="TAG", help="The gradient norm's tag.", show_default=False)] = None,
    classes: Annotated[int | None, typer.Option("--classes", min=2, metavar="C",
                                                help="Output classes, blank included: places CTC's content-free loss level.",
                                                show_default=False)] = None,
    label_length: Annotated[float | None, typer.Option("--label-length", metavar="U", help="Mean labels per target.",
                                                       show_default=False)] = None,
    reduction: Annotated[str | None, typer.Option("--reduction", metavar="mean|sum",
                                                  help="mean: loss per label (F.ctc_loss's default); sum: per sample.",
                                                  show_default=False)] = None,
    patience: Annotated[int | None, typer.Option("--patience", min=0, metavar="STEPS",
                                                 help="Steps a plateau or blank phase may last before it is reported, for a "
                                                 "run in progress [default: the monitor's, else 0].", show_default=False)] = None,
    optimizer: Annotated[str | None, typer.Option("--optimizer", metavar="NAME",
                                                  help="The optimizer (Adam, AdamW, SGD): learning-rate advice depends on it "
                                                  "[default: the monitor's, or a tag like lr-Adam; else relative advice].",
                                                  show_default=False)] = None,
    allow_truncated: Annotated[bool, typer.Option("--allow-truncated", help="Read a TensorBoard file up to a cut-off record.")] = False,
    follow: Annotated[float | None, typer.Option("--follow", min=0.01, metavar="SECONDS",
                                                 help="Re-read the log every SECONDS while it grows; report when it stops "
                                                 "(Ctrl-C, or --idle).", show_default=False)] = None,
    idle: Annotated[float | None, typer.Option("--idle", min=0.0, metavar="SECONDS",
                                               help="With --follow: stop once the log has not changed for this long.",
                                               show_default=False)] = None,
    output_format: opt.Format = opt.OutputFormat.text,
    output: opt.Output = None,
    junit_xml: opt.JunitXml = None,
    sarif: opt.Sarif = None,
    no_github: opt.NoGithub = False,
    plot: opt.Plot = None,
    select: opt.Select = [],  # noqa: B006 - typer reads the default, never mutates it
    ignore: opt.Ignore = [],  # noqa: B006
    fail_on: opt.FailOnOption = None,
    verbose: opt.Verbose = False,
    debug: opt.Debug = False,
) -> None:
    """Read a training run's logged curves and say what is wrong with them, with the fix.

    Plateaus, divergence, sawtooth, NaN steps, overfitting, and CTC's own shapes (the blank plateau,
    CER stuck while the loss falls, a loss of exactly 0); on the monitor's JSONL also what the
    outputs showed (blank collapse, blank-index mismatch, samples CTC cannot align).
    """

    def work() -> int:
        import time

        from ctcdoctor.config import resolve_settings
        from ctcdoctor.errors import UserInputError
        from ctcdoctor.findings import Report
        from ctcdoctor.registry import apply_ignore, matches, sort_findings

        started = time.perf_counter()
        how = Emit(output_format, output, verbose, junit_xml=junit_xml, sarif=sarif, no_github=no_github)
        settings = resolve_settings(run if run.is_dir() else run.parent, fail_on=fail_on, select=select, ignore=ignore)
        if idle is not None and follow is None:
            raise UserInputError("--idle without --follow", "Add --follow SECONDS, or drop --idle.")
        opt.ensure_plot_path(plot)
        how.check_paths()
        options = {"loss": loss, "eval_loss": eval_loss, "metric": metric, "lr": lr, "grad_norm": grad_norm, "classes": classes,
                   "label_length": label_length, "reduction": reduction, "patience": patience, "allow_truncated": allow_truncated,
                   "optimizer": optimizer}
        result = _read(run, follow, idle, options)
        findings = apply_ignore(result.findings, settings.ignore)
        if settings.select:
            findings = [item for item in findings if matches(item.code, settings.select)]
        document = result.to_dict()
        if plot is not None and not len(result.curves.loss):  # a run the check stopped before step 1: nothing to draw
            document["notes"].append(f"no plot written to {plot}: no training step was logged")
        elif plot is not None:
            from ctcdoctor.render.figures import save
            from ctcdoctor.training.plot import plot as draw

            save(draw(result), plot)
            document["plot"] = str(plot)
        report = Report("logs", str(run), sort_findings(findings), result.checks, document, seconds=time.perf_counter() - started,
                        config=str(settings.config_path) if settings.config_path else None)
        return emit(report, how, settings.fail_on)

    guarded(debug, work, json_errors_for("logs", str(run), output_format))


def _read(run: Path, follow: float | None, idle: float | None, options: dict):  # noqa: ANN202 - LogsResult, imported lazily
    from ctcdoctor.training import diagnose_run

    if follow is None:
        return diagnose_run(run, **options)
    from ctcdoctor.training.follow import follow_run

    console = stderr_console()
    shown: set[str] = set()
    printed: list[str] = []

    def changed(result) -> None:  # noqa: ANN001
        loss = result.curves.loss
        counts = {name: sum(1 for item in result.findings if item.severity.value == name) for name in ("error", "warning", "info")}
        new = [item for item in result.findings if item.code not in shown]
        shown.update(item.code for item in result.findings)
        step = f"{result.curves.unit} {int(loss.steps[-1]):,}" if len(loss) else "no steps yet"
        line = (f"{Path(result.source).name}: {step}, {len(loss):,} values; {counts['error']} error{'s' * (counts['error'] != 1)}, "
                f"{counts['warning']} warning{'s' * (counts['warning'] != 1)}, {counts['info']} info")
        line += f"; new: {', '.join(item.code for item in new)}" if new else ""
        if printed and line == printed[-1] and not new:
            return  # the log was touched but says the same: no second, identical status line
        printed[:] = [line]
        console.print(line, markup=False, highlight=False)
        for item in new:
            console.print(f"  {item.severity.value} {item.code} {item.title}", markup=False, highlight=False)

    return follow_run(run, follow, idle, changed, **options)
