"""ctcdoctor: find out why a CTC model will not learn.

The facade: `Setup` (what your `build()` returns), `check` (run the checks from Python),
`Finding`, `Severity`, `ExitCode` and `__version__`. The top level stays light (no torch
import until a check runs) so the command line starts fast.
"""
from __future__ import annotations

from typing import Any

from ctcdoctor.errors import ExitCode
from ctcdoctor.findings import Finding, Report, Severity
from ctcdoctor.protocol import Setup

__version__ = "0.2.0"
__all__ = ["Setup", "Finding", "Severity", "Report", "ExitCode", "check", "__version__"]


def check(
    setup_or_spec: Setup | tuple[Any, Any] | str,
    *,
    select: str | tuple[str, ...] | list[str] = (),
    ignore: str | tuple[str, ...] | list[str] = (),
    max_batches: int = 2,
    scan_batches: int = 32,
    device: str | None = None,
    seed: int = 0,
) -> Report:
    """Run the checks on a `Setup`, a `(model, loader)` pair, or a spec such as `"train.py:build"`.

    Returns the `Report` (its `findings` worst first); nothing is printed. `ctcdoctor.testing`
    turns a report into an assertion. torch, numpy and random are seeded with `seed` before a
    spec's `build()` runs and before the checks; the caller's random states and torch's thread
    count are restored afterwards.
    """
    from ctcdoctor.config import Settings, as_code_list
    from ctcdoctor.engine import check_setup, check_spec
    from ctcdoctor.load.spec import as_setup

    # as_code_list takes "CTC001", "CTC001,CTC002" or a list, as the command line and pyproject do.
    settings = Settings(select=as_code_list(select, "select="), ignore=as_code_list(ignore, "ignore="), max_batches=max_batches,
                        scan_batches=scan_batches, device=device, seed=seed)
    if isinstance(setup_or_spec, str):
        return check_spec(setup_or_spec, settings)
    return check_setup(as_setup(setup_or_spec), settings)
