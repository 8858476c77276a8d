"""Label and class-count fixes from the loader's batches, not from the chosen samples alone.

The label checks' fixes read the labels the data uses ("the labels run 0..35 and class 36 is never used",
"every label fits the 36 classes and none is the blank"). One sample holds a few of them, so its fix can
differ from the one `check` gives: a digit '0' that sample 0 happens not to use looks like a blank symbol.
When such a check fires on the samples, it runs again on the loader's batches, as `check` reads them, and
its fix replaces the samples'; when the loader cannot tell, the fix says it was judged on the samples alone.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from ctcdoctor.findings import Finding
    from ctcdoctor.protocol import Setup

LABEL_HINTS = ("CTC010", "CTC011", "CTC014")
"""Checks whose fix reads the range of the labels (or which classes they use)."""


def _loader_hints(setup: Setup, model: Any, codes: set[str]) -> dict[str, str]:
    """Each code's fix as `check` gives it on the loader's batches (the model runs on the first one only)."""
    from ctcdoctor.engine import Context, Options, run_checks
    from ctcdoctor.registry import select_checks

    wanted = [info for info in select_checks(tuple(codes)) if info.code in codes]
    context = Context(dataclasses.replace(setup, model=model), Options(max_batches=1))
    try:
        findings, _ = run_checks(context, wanted)
    except Exception:  # the loader or the model fails on a full batch: the samples' fixes stand, worded as such
        return {}
    hints: dict[str, str] = {}
    for item in findings:
        hints.setdefault(item.code, item.hint)
    return hints


def _samples_alone(samples: Sequence[int]) -> str:
    if len(samples) == 1:
        return f"sample {samples[0]}'s labels alone"
    return f"the labels of samples {', '.join(map(str, samples))} alone"


def hints_from_loader(setup: Setup, model: Any, findings: list[Finding], samples: Sequence[int]) -> list[Finding]:
    """`findings` with the fixes of the label checks (LABEL_HINTS) replaced by the loader's; a fix the loader's
    batches do not give is kept and said to come from the samples alone."""
    codes = {item.code for item in findings if item.code in LABEL_HINTS}
    if not codes:
        return findings
    hints = _loader_hints(setup, model, codes)
    changed = []
    for item in findings:
        if item.code not in codes:
            changed.append(item)
        elif item.code in hints:
            changed.append(dataclasses.replace(item, hint=hints[item.code],
                                               evidence={**item.evidence, "hint_from": "loader"}))
        else:
            hint = (f"Judged on {_samples_alone(samples)} (the loader's batches that check reads do not show "
                    f"it). {item.hint}")
            changed.append(dataclasses.replace(item, hint=hint, evidence={**item.evidence, "hint_from": "samples"}))
    return changed
