"""`ctcdoctor scan`: the length and label checks (CTC001-003, CTC005, CTC010-013) over the whole data set.

    ctcdoctor scan SPEC                          one process
    ctcdoctor scan SPEC --shard I/N -o part.json one shard of N; then
    ctcdoctor scan merge part*.json              the report of the whole
    torchrun --nproc-per-node K -m ctcdoctor scan SPEC
    ctcdoctor scan --manifest FILE --alphabet … --frames EXPR   a manifest, nothing decoded
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

import ctcdoctor.cli.options as opt
from ctcdoctor.cli.output import Emit, guarded, json_errors_for
from ctcdoctor.errors import UserInputError

Targets = Annotated[
    list[str] | None,
    typer.Argument(
        help="SPEC (path/to/file.py[:build] or package.module[:build]), or `merge PART...` to join the JSON reports of "
        "--shard runs; optional with --manifest (the spec then gives Setup.output_lengths, alphabet and blank).",
        show_default=False,
        metavar="SPEC | merge PART...",
    ),
]
ShardOption = Annotated[
    str | None,
    typer.Option("--shard", metavar="I/N", help="Scan only shard I of N (whole batches I, I+N, …); join the --output files with "
                 "`scan merge`.", show_default=False),
]
ManifestOption = Annotated[
    Path | None,
    typer.Option("--manifest", "-m", metavar="FILE", show_default=False,
                 help="Scan a manifest instead of the loader, decoding nothing: NeMo JSONL (duration, text), a label file "
                 "(path<TAB>width<TAB>text, or path<TAB>text with image sizes read from file headers), or Parquet/Arrow/a saved "
                 "Hugging Face data set (needs pyarrow / datasets)."),
]
AlphabetOption = Annotated[
    str | None,
    typer.Option("--alphabet", "-a", show_default=False,
                 help="With --manifest: the symbols of the non-blank classes in class order: a string, or @FILE "
                 "(one line: its characters; several lines: one symbol per line) [default: the spec's Setup.alphabet]."),
]
FramesOption = Annotated[
    str | None,
    typer.Option("--frames", metavar="EXPR", show_default=False,
                 help="With --manifest: output frames from the length L (seconds for a duration, pixels for a width; W and H "
                 "for image sizes), e.g. 'floor(L * 100) // 4 + 1' or 'W * 32 // H // 4' [default: Setup.output_lengths of "
                 "the spec, given L in input steps]."),
]
DropListOption = Annotated[
    Path | None,
    typer.Option("--drop-list", metavar="FILE", show_default=False,
                 help="Write the ids of the samples that cannot train, one per line (data set indices; manifest line "
                 "numbers counted from 0)."),
]
DropOption = Annotated[
    str,
    typer.Option("--drop", metavar="REASONS", help="Which samples --drop-list and --clean-manifest drop: a comma list of "
                 "infeasible (CTC001), empty (CTC013), alphabet (labels outside the classes or the alphabet, blank in "
                 "targets), tight (CTC002)."),
]
DropAnywayOption = Annotated[
    bool,
    typer.Option("--drop-anyway", help="Write --drop-list and --clean-manifest even when they would hide a problem to fix "
                 "in code (CTC010, CTC011, CTC001 from the model's downsampling) or drop more than 10% of the samples."),
]


def scan(
    targets: Targets = None,
    shard: ShardOption = None,
    manifest: ManifestOption = None,
    alphabet: AlphabetOption = None,
    frames: FramesOption = None,
    rate: Annotated[float | None, typer.Option("--rate", metavar="HZ", show_default=False,
                                               help="With --manifest and a spec: input steps per second of a duration "
                                               "(e.g. 100 for 10 ms features, 16000 for raw audio), so that "
                                               "Setup.output_lengths gets L in input steps.")] = None,
    blank: Annotated[int | None, typer.Option("--blank", metavar="N", show_default=False,
                                              help="With --manifest: the blank's class index [default: 0, or Setup.blank].")] = None,
    length_key: Annotated[str | None, typer.Option("--length-key", metavar="NAME", show_default=False,
                                                   help="With --manifest: the column/field holding the length [default: duration, "
                                                   "input_length, length or width, whichever exists].")] = None,
    text_key: Annotated[str, typer.Option("--text-key", metavar="NAME", help="With --manifest: the field holding the text.")] = "text",
    drop_list: DropListOption = None,
    drop: DropOption = "infeasible,empty,alphabet",
    drop_anyway: DropAnywayOption = False,
    clean_manifest: Annotated[Path | None, typer.Option("--clean-manifest", metavar="FILE", show_default=False,
                                                        help="With --manifest: write a copy of it without the dropped samples.")] = None,
    max_samples: Annotated[int | None, typer.Option("--max-samples", metavar="N", min=1, show_default=False,
                                                    help="Stop after about N samples (whole batches): a bounded look at a "
                                                    "large or endless loader.")] = None,
    workers: Annotated[int | None, typer.Option("--workers", metavar="N", min=0, show_default=False,
                                                help="Read a DataLoader over a map-style data set with N worker processes "
                                                "(its collate runs in them) [default: the loader's own num_workers].")] = None,
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
    device: opt.Device = None,
    timeout: opt.Timeout = None,
    seed: opt.Seed = None,
    verbose: opt.Verbose = False,
    debug: opt.Debug = False,
) -> None:
    """Run the length and label checks over the WHOLE data set, streamed, without running the model per batch."""
    from ctcdoctor.scan.command import Request

    request = Request(
        targets=list(targets or []), shard=shard, manifest=manifest, alphabet=alphabet, frames=frames, rate=rate, blank=blank,
        length_key=length_key, text_key=text_key, drop_list=drop_list, drop=drop, drop_anyway=drop_anyway,
        clean_manifest=clean_manifest,
        max_samples=max_samples, workers=workers, plot=plot, worst=worst, select=select, ignore=ignore, fail_on=fail_on, device=device,
        timeout=timeout, seed=seed, output_format=output_format,
    )
    how = Emit(output_format, output, verbose, junit_xml=junit_xml, sarif=sarif, no_github=no_github)
    guarded(debug, lambda: run_scan(request, how), json_errors_for("scan", " ".join(map(str, targets or [])), output_format))


def _progress(quiet: bool):  # noqa: ANN202 - a Rich Progress and a callback, imported lazily
    """A transient progress line on stderr (samples and rate), or none."""
    import contextlib

    if quiet:
        return contextlib.nullcontext(), None
    from rich.progress import Progress, TextColumn, TimeElapsedColumn

    from ctcdoctor.cli.output import stderr_console

    progress = Progress(TextColumn("scanning"), TextColumn("{task.completed:,.0f} samples"), TextColumn("{task.fields[rate]}"),
                        TimeElapsedColumn(), console=stderr_console(), transient=True)
    task = progress.add_task("scan", total=None, rate="")

    def advance(size: int) -> None:
        progress.advance(task, size)
        speed = progress.tasks[0].speed
        if speed:
            progress.update(task, rate=f"{speed:,.0f} samples/s")

    return progress, advance


def _status_line(state, how: Emit) -> None:  # noqa: ANN001 - ScanState, imported lazily
    from ctcdoctor.cli.output import stderr_console
    from ctcdoctor.scan.run import lengths_status

    if how.output_format is not opt.OutputFormat.text:
        return
    summary = state.summary
    batches = f"{summary.batches:,} {'batch' if summary.batches == 1 else 'batches'}"
    read = f"in {batches}" if state.reader == "loader" else f"({state.reader.replace('_', ' ')}, labels only)"
    parts = f" from {state.parts} parts" if state.parts > 1 else ""
    stopped = f"; {state.stopped}" if state.stopped else ""
    stderr_console().print(
        f"scanned {summary.samples:,} {'sample' if summary.samples == 1 else 'samples'} {read}{parts} in {state.seconds:.2f} s; "
        f"{lengths_status(state.source, state.detail, state.rejected)}{stopped}",
        markup=False, highlight=False,
    )


def run_scan(request, how: Emit) -> int:  # noqa: ANN001 - a scan.command.Request, imported lazily
    """One scan, a shard, a merge, a manifest or a torchrun rank: each ends in one state and one report."""
    from ctcdoctor.cli.output import emit
    from ctcdoctor.load.limits import deadline
    from ctcdoctor.scan.command import make_report, merge_drop_lists, merged_state, staged
    from ctcdoctor.scan.distributed import detect_world
    from ctcdoctor.scan.sources import Shard, parse_shard

    world = detect_world()
    try:
        if world is not None and request.merging:
            # Every rank would merge the same parts and write the same --output and --drop-list files at once.
            raise UserInputError("scan merge runs in one process, not under torchrun",
                                 "Run it without torchrun: ctcdoctor scan merge part*.json")
        settings = _prepare(request, how, world is not None)
    except UserInputError:
        if world is not None and world.rank != 0:
            raise typer.Exit(2) from None  # every rank finds the same usage error: rank 0 alone says it, once
        raise
    if world is not None:
        return _run_distributed(request, how, settings, world)
    shard = parse_shard(request.shard) if request.shard else Shard()
    # A whole scan (or a merge) writes its drop-list aside until it is kept: a refused one leaves the user's file as it was.
    drop_path = staged(request.drop_list) if request.drop_list is not None and shard.count == 1 else request.drop_list
    try:
        with deadline(settings.timeout):
            if request.merging:
                state = merged_state(request.targets[1:])
                merge_drop_lists(state, request, drop_path)
            else:
                state = _scan_state(request, settings, shard, quiet=False, drop_path=drop_path)
            report = make_report(state, request, settings, state.spec)
    finally:
        if drop_path is not None and drop_path != request.drop_list:
            drop_path.unlink(missing_ok=True)
    _status_line(state, how)
    return emit(report, how, settings.fail_on)


def _prepare(request, how: Emit, distributed: bool):  # noqa: ANN001, ANN202 - a Request and Settings, imported lazily
    """Every usage error found before any work: the flags, the settings, the files the scan will write."""
    from ctcdoctor.scan.command import settings_for
    from ctcdoctor.scan.droplist import parse_reasons

    request.validate()
    if distributed and (request.shard or request.manifest):
        raise UserInputError("under torchrun each rank takes its own shard: drop --shard and --manifest",
                             "Run torchrun --nproc-per-node K -m ctcdoctor scan SPEC.")
    parse_reasons(request.drop)
    settings = settings_for(request)
    opt.ensure_plot_path(request.plot, make_folders=False)  # before the scan: a failed write must not throw the run away
    how.check_paths()
    opt.ensure_writable(request.drop_list, "--drop-list", make_folders=False)
    opt.ensure_writable(request.clean_manifest, "--clean-manifest", make_folders=False)
    return settings


def _scan_state(request, settings, shard, quiet: bool, drop_path: Path | None = None):  # noqa: ANN001, ANN202 - lazily imported types
    """Scan a spec (or its shard) or a manifest into a state, writing the drop-list as it goes."""
    import tempfile

    from ctcdoctor.scan.command import drop_writer, finish_drops, spec_state

    if drop_path is None and request.clean_manifest is not None:
        drop_path = Path(tempfile.mkstemp(prefix="ctcdoctor-drop-", suffix=".txt")[1])
    writer = drop_writer(request, drop_path)
    progress, advance = _progress(quiet or request.output_format is not opt.OutputFormat.text)
    try:
        with progress:
            if request.manifest is not None:
                from ctcdoctor.scan.metadata import manifest_state

                state = manifest_state(request, settings, advance, writer)
            else:
                state = spec_state(request, settings, shard, advance, writer)
    except BaseException:
        if writer is not None:
            writer.close()
        raise
    finish_drops(state, request, writer)
    return state


def _run_distributed(request, how: Emit, settings, world) -> int:  # noqa: ANN001 - scan types, imported lazily
    """Each rank scans its shard; rank 0 merges, reports and says the exit code every rank returns."""
    from ctcdoctor.cli.output import emit
    from ctcdoctor.load.limits import deadline
    from ctcdoctor.scan.command import make_report, merge_drop_lists, staged
    from ctcdoctor.scan.distributed import exit_together, finish, first_error, gather_states
    from ctcdoctor.scan.sources import Shard
    from ctcdoctor.scan.state import ScanState, merge_states

    shard = Shard(world.rank, world.size)
    drop_path = Path(f"{request.drop_list}.rank{world.rank}") if request.drop_list is not None else None
    with deadline(settings.timeout):
        gathered = gather_states(world, lambda: _scan_state(request, settings, shard, world.rank != 0, drop_path).to_json(),
                                 settings.timeout)
    if world.rank != 0:
        exit_together(finish(world, 0))
    failure: BaseException | None = None
    code = 3
    staging = staged(request.drop_list) if request.drop_list is not None else None
    try:
        assert gathered is not None
        first_error(gathered)
        state = merge_states([ScanState.from_json(item["state"]) for item in gathered], [f"rank {rank}" for rank in range(len(gathered))])
        merge_drop_lists(state, request, staging)
        for rank in range(world.size if request.drop_list is not None else 0):
            Path(f"{request.drop_list}.rank{rank}").unlink(missing_ok=True)
        report = make_report(state, request, settings, state.spec)
        _status_line(state, how)
        code = emit(report, how, settings.fail_on)
    except Exception as error:
        failure, code = error, (2 if isinstance(error, UserInputError) else 3)
    if staging is not None:
        staging.unlink(missing_ok=True)
    code = finish(world, code)
    if failure is not None:
        raise failure
    exit_together(code)
    return code  # pragma: no cover - exit_together does not return

