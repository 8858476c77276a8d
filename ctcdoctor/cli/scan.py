"""`ctcdoctor scan SPEC`: the length and label checks (CTC001-003, CTC005, CTC010-013) over the whole data set."""

from __future__ import annotations

from typing import Annotated

import typer

import ctcdoctor.cli.options as opt
from ctcdoctor.cli.output import Emit, emit, guarded, stderr_console


def scan(
    spec: opt.Spec,
    output_format: opt.Format = opt.OutputFormat.text,
    output: opt.Output = None,
    junit_xml: opt.JunitXml = None,
    sarif: opt.Sarif = None,
    no_github: opt.NoGithub = False,
    plot: opt.Plot = None,
    worst: Annotated[int, typer.Option("--worst", min=1, help="How many of the tightest samples to list.")] = 10,
    select: opt.Select = [],  # noqa: B006 - typer reads the default, never mutates it
    ignore: opt.Ignore = [],  # noqa: B006
    fail_on: opt.FailOnOption = None,
    verbose: opt.Verbose = False,
    debug: opt.Debug = False,
) -> None:
    """Run the length and label checks over the WHOLE data set, without running the model per batch."""

    def work() -> int:
        how = Emit(output_format, output, verbose, junit_xml=junit_xml, sarif=sarif, no_github=no_github)
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        from ctcdoctor.config import resolve_settings, spec_folder
        from ctcdoctor.findings import Report
        from ctcdoctor.load.spec import load_setup
        from ctcdoctor.scan.run import lengths_status, read_all, scan_findings

        settings = resolve_settings(spec_folder(spec), fail_on=fail_on, select=select, ignore=ignore)
        opt.ensure_plot_path(plot)  # before the scan: a failed write must not throw the run away
        how.check_paths()
        setup = load_setup(spec)
        try:
            total = len(setup.loader.dataset)  # type: ignore[attr-defined]
        except Exception:
            total = None
        stderr = stderr_console()
        progress = Progress(
            TextColumn("scanning"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("samples"),
            TextColumn("{task.fields[rate]}"),
            TimeElapsedColumn(),
            console=stderr,
            transient=True,
        )
        with progress:
            task = progress.add_task("scan", total=total, rate="")

            def advance(size: int) -> None:
                progress.advance(task, size)
                speed = progress.tasks[0].speed
                if speed:
                    progress.update(task, rate=f"{speed:,.0f} samples/s")

            data = read_all(setup.loader, advance)
        findings, results, result = scan_findings(setup, data, settings, worst)
        if plot is not None:
            from ctcdoctor.render.figures import save
            from ctcdoctor.render.plot_scan import plot as draw

            save(draw(result), plot)
            result["plot"] = str(plot)
        if output_format is opt.OutputFormat.text:
            stderr.print(
                f"scanned {result['samples']:,} samples in {data.batches:,} batches in {data.seconds:.2f} s; "
                f"{lengths_status(result['lengths_source'], result['lengths_detail'])}",
                markup=False,
                highlight=False,
            )
        report = Report("scan", spec, tuple(findings), tuple(results), result, config=str(settings.config_path) if settings.config_path else None)
        return emit(report, how, settings.fail_on)

    guarded(debug, work)
