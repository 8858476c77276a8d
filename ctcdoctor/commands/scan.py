"""`ctcdoctor scan SPEC`: the length and label checks (CTC001-003, CTC010-013) over the whole data set.

torch is imported only inside the command body (start-up stays fast).
"""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from ctcdoctor.cli import SPEC_HELP, FailOn, OutputFormat, _settings, app, emit, guarded, stderr

BAR_WIDTH = 40


def _histogram_block(result: dict):
    from rich.table import Table
    from rich.text import Text

    bins = result["spare_frames"].get("histogram", [])
    table = Table(title="spare frames per sample (output frames − labels − repeats)", box=None, padding=(0, 1),
                  header_style="bold", title_justify="left")
    table.add_column("spare", justify="right")
    table.add_column("samples", justify="right")
    table.add_column("")
    top = max((item["count"] for item in bins), default=0) or 1
    for item in bins:
        label = str(item["from"]) if item["from"] == item["to"] else f"{item['from']}..{item['to']}"
        bar = "█" * max(1 if item["count"] else 0, round(BAR_WIDTH * item["count"] / top))
        table.add_row(label, f"{item['count']:,}", Text(bar, style="red" if item["to"] < 0 else "cyan"))
    return table


def _worst_block(result: dict):
    from rich.table import Table

    table = Table(title="tightest samples", box=None, padding=(0, 1), header_style="bold", title_justify="left")
    for column in ("sample", "frames", "labels", "repeats", "needed", "spare"):
        table.add_column(column, justify="right")
    for item in result["worst"]:
        table.add_row(*(str(item[key]) for key in ("sample", "frames", "labels", "repeats", "needed", "spare")))
    return table


@app.command()
def scan(
    spec: str = typer.Argument(..., help=SPEC_HELP),
    output_format: OutputFormat = typer.Option(OutputFormat.text, "--format", "-f", help="text for people, json for CI."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Also write the JSON report to this file."),
    plot: Optional[Path] = typer.Option(None, "--plot", help="Write a PNG histogram of spare frames here."),
    worst: int = typer.Option(10, "--worst", min=1, help="How many of the tightest samples to list."),
    select: List[str] = typer.Option([], "--select", help="Run only these codes or prefixes."),
    ignore: List[str] = typer.Option([], "--ignore", help="Skip these codes or prefixes."),
    fail_on: Optional[FailOn] = typer.Option(None, "--fail-on", help="Exit 1 on findings at or above this severity \\[default: error]."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Show per-check timings."),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks."),
) -> None:
    """Run the length and label checks over the WHOLE data set, without running the model per batch."""

    def work() -> int:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        from ctcdoctor.loading import load_setup
        from ctcdoctor.findings import Report
        from ctcdoctor.runner import apply_ignore, run_checks, select as select_checks, sort_findings
        from ctcdoctor.scan import SCAN_CODES, ScanContext, lengths_status, read_all, summary, worst_samples
        from ctcdoctor.writable import ensure_writable

        settings = _settings(spec, fail_on, select, ignore)
        ensure_writable(plot, "--plot")  # before the scan: a failed write must not throw the run away
        ensure_writable(output, "--output")
        setup = load_setup(spec)
        total = None
        try:
            total = len(setup.loader.dataset)  # type: ignore[attr-defined]
        except Exception:
            total = None
        progress = Progress(
            TextColumn("scanning"), BarColumn(), MofNCompleteColumn(), TextColumn("samples"),
            TextColumn("{task.fields[rate]}"), TimeElapsedColumn(), console=stderr, transient=True,
        )
        with progress:
            task = progress.add_task("scan", total=total, rate="")

            def advance(size: int) -> None:
                progress.advance(task, size)
                speed = progress.tasks[0].speed
                if speed:
                    progress.update(task, rate=f"{speed:,.0f} samples/s")

            data = read_all(setup.loader, advance)
        context = ScanContext(setup, spec, data)
        wanted = [code for code in SCAN_CODES]
        chosen = select_checks(settings["select"] or wanted, settings["ignore"])
        chosen = [info for info in chosen if info.code in wanted]
        findings, results = run_checks(context, chosen)
        findings = apply_ignore(findings, settings["ignore"])
        lengths = context.get("output_lengths")
        table = data.table
        result = {
            "samples": table.size,
            "batches": data.batches,
            "seconds": round(data.seconds, 4),
            "samples_per_second": round(table.size / data.seconds, 1) if data.seconds > 0 else None,
            "lengths_source": lengths.source,
            "lengths_detail": lengths.detail,
            "spare_frames": summary(table, lengths.scanned),
            "worst": worst_samples(table, lengths.scanned, worst),
            "max_target_length": int(table.valid_lengths.max()) if table.size else 0,
        }
        if plot is not None:
            from ctcdoctor.plots_scan import plot_spare_frames

            try:
                plot.parent.mkdir(parents=True, exist_ok=True)
                plot_spare_frames(result, str(plot))
            except OSError as error:
                from ctcdoctor.errors import UserInputError

                raise UserInputError(f"cannot write --plot {plot}: {error}", "Choose a writable path.") from error
            result["plot"] = str(plot)
        blocks = []
        if output_format is OutputFormat.text and result["spare_frames"].get("known"):
            blocks = [_histogram_block(result), _worst_block(result)]
        report = Report("scan", spec, sort_findings(findings), tuple(results), result, {"blocks": blocks})
        if output_format is OutputFormat.text:
            stderr.print(f"scanned {table.size:,} samples in {data.batches:,} batches in {data.seconds:.2f} s; "
                         f"{lengths_status(lengths.source, lengths.detail)}", markup=False, highlight=False)
        return emit(report, output_format, output, verbose, settings["fail_on"])

    guarded(debug, work)
