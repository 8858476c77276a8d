"""Whether a drop-list may be written: one that would hide a problem to fix in code is not.

A drop-list is for the few samples a data set can do without (a label far too long for its
audio, an empty transcript). It is not written (without `--drop-anyway`) when it would drop:

- samples whose cause is systematic, so the fix is in the user's code, not the data: labels
  outside the model's classes (CTC010: a forgotten blank slot), the blank index as a label
  (CTC011: an encoder off by one), or samples CTC cannot align when the model's downsampling
  is the problem (CTC001 on at least `OUTLIER_SHARE` of the samples, as CTC001's fix says);
- more than `MAX_DROP_SHARE` of the samples, whatever the cause;
- or, dropping `infeasible` or `tight` samples, when some samples have no known output length
  (unknown lengths, or lengths CTC003 found wrong that the model could not be probed for): the
  list could not hold them.

Only the causes among the chosen `--drop` reasons count. Judged on the whole data set: a
single scan, a merge, or rank 0 under torchrun; a shard's list is a part of the merge's.
"""
from __future__ import annotations

from math import prod
from typing import Any

from ctcdoctor.checks.lengths import OUTLIER_SHARE
from ctcdoctor.findings import Finding

#: A drop-list that would drop more than this share of the samples is not written (without --drop-anyway).
MAX_DROP_SHARE = 0.10
#: The option that writes it all the same.
FORCE = "--drop-anyway"


def _percent(count: int, total: int) -> str:
    return f"{100 * count / total:.3g}%" if total else "0%"


def _causes(state: Any, codes: set[str], reasons: frozenset[str]) -> list[str]:
    """The systematic causes among the samples the list would drop, each with its code and its fix, in words."""
    summary = state.judged_summary
    causes = []
    if "infeasible" in reasons and "CTC001" in codes and summary.known and summary.infeasible / summary.known >= OUTLIER_SHARE:
        factor = prod(int(item["stride"]) for item in state.time_strides) if state.time_strides else None
        why = f"the model downsamples time ×{factor}" if factor and factor > 1 else "the model gives too few output frames"
        causes.append(f"{summary.infeasible:,} cannot be aligned because {why} (CTC001: fix the model)")
    if "alphabet" in reasons and "CTC010" in codes:
        causes.append(f"{len(summary.out_of_range):,} hold labels outside the model's {state.num_classes} classes "
                      "(CTC010: fix the output layer or the label encoder)")
    if "alphabet" in reasons and "CTC011" in codes:
        causes.append(f"{len(summary.blank):,} hold the blank index {state.blank} as a label (CTC011: fix the label encoder)")
    return causes


def _unknown_lengths(state: Any, reasons: frozenset[str]) -> str | None:
    summary = state.judged_summary
    if not reasons & {"infeasible", "tight"} or summary.known == summary.samples:
        return None
    why = (f"{state.rejected} are wrong (CTC003) and the model could not be probed" if state.rejected
           else "see CTC003" if summary.known == 0 else "see the status line")
    return (f"drop-list not written: {summary.samples - summary.known:,} of {summary.samples:,} samples have no known output "
            f"length ({why}), so it could not hold those that cannot be aligned; fix the output lengths, or pass "
            f"--drop {','.join(sorted(reasons - {'infeasible', 'tight'})) or 'empty,alphabet'} for a list without them "
            f"({FORCE} writes it all the same)")


def refusal(state: Any, findings: list[Finding], count: int, reasons: frozenset[str]) -> str | None:
    """The one line that says why the drop-list of `count` samples is not written, or None when it may be."""
    samples = state.judged_summary.samples
    unknown = _unknown_lengths(state, reasons)
    if unknown:
        return unknown
    if count == 0 or not samples:
        return None
    causes = _causes(state, {item.code for item in findings}, reasons)
    if not causes and count / samples <= MAX_DROP_SHARE:
        return None
    line = f"drop-list not written: it would drop {count:,} of {samples:,} samples ({_percent(count, samples)})"
    if causes:
        line += ": " + "; ".join(causes) + "; dropping them would hide that"
    else:
        line += f", more than {MAX_DROP_SHARE:.0%}: find their cause in the findings above instead of dropping them"
    return line + f" ({FORCE} writes it all the same)"
