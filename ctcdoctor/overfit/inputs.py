"""Inputs the static checks flagged (CTC040-CTC042) as a cause of a failed overfit, named before "run longer".

Unnormalised features (a log-spectrogram around -60) saturate the first layers: the loss still falls, slowly,
so the run reads as "the budget was short" and more steps or another learning rate only half help. When the
input checks fired on the trained sample itself, that is the first thing to fix, and the failure says so.
"""
from __future__ import annotations

from collections.abc import Sequence

from ctcdoctor.findings import Finding

INPUT_CODES = ("CTC040", "CTC041", "CTC042")
"""The input checks: NaN/Inf inputs, inputs not normalised, constant inputs."""

WHY = {
    "CTC040": "NaN or Inf inputs turn the output and every gradient into NaN",
    "CTC041": "unnormalised inputs saturate the first layers and make learning slow or unstable, however long it runs",
    "CTC042": "a constant input carries nothing to learn from",
}


def _numbers(item: Finding) -> str:
    evidence = item.evidence
    if item.code == "CTC041" and {"min", "max", "mean"} <= evidence.keys():
        return f": range {evidence['min']:.4g} to {evidence['max']:.4g}, mean {evidence['mean']:.4g}"
    return ""


def input_causes(static: Sequence[Finding]) -> list[tuple[str, tuple[str, str]]]:
    """(code, (cause, fix)) for each input finding on the trained samples themselves (not the loader's other samples), as an
    error or warning: the info variant of CTC041 (the model normalises its inputs itself) is no cause."""
    found = [item for item in static if item.code in INPUT_CODES and "overfit_samples" in item.evidence
             and item.severity.value in ("error", "warning")]
    return [(item.code, (f"{item.title} ({item.code}, reported above{_numbers(item)}): {WHY[item.code]}",
                         f"Fix the inputs first ({item.code}). {item.hint}")) for item in found]
