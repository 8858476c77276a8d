"""`ctcdoctor check SPEC`: load the spec, run every selected check, report."""

from __future__ import annotations

from typing import Annotated

import typer

import ctcdoctor.cli.options as opt
from ctcdoctor.cli.output import Emit, emit, guarded, json_errors_for, stderr_console


def check(
    spec: opt.Spec,
    output_format: opt.Format = opt.OutputFormat.text,
    output: opt.Output = None,
    junit_xml: opt.JunitXml = None,
    sarif: opt.Sarif = None,
    no_github: opt.NoGithub = False,
    select: opt.Select = [],  # noqa: B006 - typer reads the default, never mutates it
    ignore: opt.Ignore = [],  # noqa: B006
    fail_on: opt.FailOnOption = None,
    max_batches: Annotated[
        int | None, typer.Option("--max-batches", min=1, help="Batches the model is run on [default: 2].", show_default=False)
    ] = None,
    scan_batches: Annotated[
        int | None, typer.Option("--scan-batches", min=1, help="Batches the label and length checks read [default: 32].", show_default=False)
    ] = None,
    device: opt.Device = None,
    timeout: opt.Timeout = None,
    seed: opt.Seed = None,
    verbose: opt.Verbose = False,
    debug: opt.Debug = False,
) -> None:
    """Load SPEC's model and data and run every check on them."""

    def work() -> int:
        how = Emit(output_format, output, verbose, junit_xml=junit_xml, sarif=sarif, no_github=no_github)
        from ctcdoctor.config import resolve_settings, spec_folder
        from ctcdoctor.engine import check_spec
        from ctcdoctor.load.limits import deadline

        how.check_paths()
        settings = resolve_settings(
            spec_folder(spec),
            fail_on=fail_on,
            select=select,
            ignore=ignore,
            max_batches=max_batches,
            scan_batches=scan_batches,
            device=device,
            timeout=timeout,
            seed=seed,
        )
        with deadline(settings.timeout):
            if output_format is opt.OutputFormat.text:
                with stderr_console().status("checking…") as status:
                    report = check_spec(spec, settings, on_check=lambda info: status.update(f"{info.code} {info.title}"))
            else:
                report = check_spec(spec, settings)
        return emit(report, how, settings.fail_on)

    guarded(debug, work, json_errors_for("check", spec, output_format))
