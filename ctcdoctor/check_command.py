"""`ctcdoctor check`: load the spec, scan batches, run the selected checks, build the report."""
from __future__ import annotations

import time
from typing import Any

from rich.console import Console

from ctcdoctor.context import Context, Options
from ctcdoctor.errors import BatchError, UserInputError
from ctcdoctor.loading import load_setup
from ctcdoctor.findings import Report
from ctcdoctor.runner import apply_ignore, run_checks, select, sort_findings


def run_check(spec: str, settings: dict[str, Any], progress: Console | None = None) -> Report:
    started = time.perf_counter()
    selected = select(settings.get("select") or (), settings.get("ignore") or ())
    if not selected:
        # A gate that runs nothing must not pass silently.
        raise UserInputError(
            f"--select {','.join(settings.get('select') or [])} --ignore {','.join(settings.get('ignore') or []) or '-'} "
            "leaves no check to run",
            "See `ctcdoctor codes`; CTC07x are raised by `ctcdoctor overfit`, CTC090 by `ctcdoctor labels`.",
        )
    options = Options(
        max_batches=int(settings.get("max_batches") or 2),
        scan_batches=int(settings.get("scan_batches") or 32),
        device=settings.get("device"),
    )
    if options.device:
        from ctcdoctor.devices import resolve_device

        resolve_device(options.device)
    setup = load_setup(spec)
    context = Context(setup, options, spec)
    # Read the batches up front: a loader that yields non-batches is a usage error (exit 2), not a finding.
    try:
        context.get("batches")
    except BatchError as error:
        raise BatchError(f"spec {spec!r}: {error.message}", error.hint) from error
    if progress is not None:
        with progress.status("checking…") as status:
            findings, results = run_checks(context, selected, on_check=lambda info: status.update(f"{info.code} {info.title}"))
    else:
        findings, results = run_checks(context, selected)
    findings = apply_ignore(findings, settings.get("ignore") or ())
    # Wall time includes loading the spec and reading batches, which the per-check timings do not.
    return Report("check", spec, sort_findings(findings), tuple(results), extras={"seconds": time.perf_counter() - started})
