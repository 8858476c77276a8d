"""The length and label checks of `checks/lengths.py` and `checks/labels.py`, judged from a `Summary`.

A whole-data-set scan keeps a mergeable summary instead of every target, so these functions
read the same numbers from it and word the findings exactly as the table-based checks do
(`tests/test_scan_summary.py` runs both on random data sets and compares them field by field).
Each takes its inputs by name, as a registered check does, so the engine runs them in place of
the originals: skipped when an input is unavailable, CTC999 when one crashes.
"""
from __future__ import annotations

from math import prod
from typing import Any

from ctcdoctor.checks.labels import LENGTHS_HINT, PADDING_HINT, blank_hint, padding_message, padding_skip_reason
from ctcdoctor.checks.lengths import (
    OUTLIER_SHARE,
    fixed_evidence,
    follow_strides,
    frame_rule_phrase,
    infeasible_hint,
    infeasible_message,
    tight_hint,
)
from ctcdoctor.findings import Finding
from ctcdoctor.labels import outside_hint
from ctcdoctor.protocol import Alphabet
from ctcdoctor.registry import SkipCheck, finding
from ctcdoctor.render.phrases import numbered, of_total, plural
from ctcdoctor.scan.summary import TIGHT_RATIO, Summary


def _coverage(scan: Summary, output_lengths: Any) -> tuple[int, str]:
    """(samples with a known output length, a sentence on the others or "") as checks/lengths.py says it."""
    if scan.known == scan.samples:
        return scan.known, ""
    why = getattr(output_lengths, "uncovered", "") or "the others have no known output length"
    if output_lengths.source == "manifest":  # no batches and no model: the lengths come from the manifest alone
        return scan.known, f" Only the {scan.known} samples with a known output length were checked ({scan.samples - scan.known} have none)."
    return scan.known, (
        f" Only the {scan.known} samples of the batches the model ran on were checked ({scan.samples - scan.known} more were read): "
        f"{why}."
    )


def infeasible_alignment(scan: Summary, output_lengths: Any) -> list[Finding]:
    """CTC001 from the summary (see checks/lengths.py)."""
    if not output_lengths.known:
        raise SkipCheck("output lengths are unknown (CTC003)")
    if not scan.infeasible:
        return []
    count, worst = scan.infeasible, scan.infeasible_worst.values()
    only_repeats = scan.not_only_repeats == 0
    covered, coverage = _coverage(scan, output_lengths)
    # The layers are named only when the model's downsampling is the problem, not for a few outliers (as `check`).
    outliers = bool(covered) and count / covered < OUTLIER_SHARE
    layers = () if outliers else tuple(getattr(output_lengths, "time_strides", ()))
    fixed = None if outliers else getattr(output_lengths, "fixed_length", None)
    measured = prod(item.stride for item in layers) if layers else None
    rule = frame_rule_phrase(scan.ratios.lower_median(), output_lengths, measured, fixed)
    message = infeasible_message(count, covered, worst, rule, coverage, only_repeats)
    hint = infeasible_hint(count, covered, worst, layers, ratio=scan.ratios.lower_median(),
                           manifest=output_lengths.source == "manifest", fixed=fixed)
    sliced = "(CTC007)" in output_lengths.detail  # the lengths returned count frames past padded samples' ends
    if layers and "set the stride" in hint and (output_lengths.source == "model" or sliced):
        hint += " " + follow_strides(sliced=sliced)
    evidence = {"count": count, "total": covered, "scanned": scan.samples, "worst": worst, "only_repeats": only_repeats,
                "lengths_source": output_lengths.source,
                **({"time_strides": [vars(item) for item in layers]} if layers else {}),
                **fixed_evidence(fixed, max(item["needed"] for item in worst))}
    return [finding("CTC001", message, hint, evidence)]


def tight_length_budget(scan: Summary, output_lengths: Any) -> list[Finding]:
    """CTC002 from the summary."""
    if not output_lengths.known:
        raise SkipCheck("output lengths are unknown (CTC003)")
    if not scan.tight:
        return []
    worst = scan.tight_worst.values()
    covered, coverage = _coverage(scan, output_lengths)
    message = (
        f"{of_total(scan.tight, covered, 'sample', 'has', 'have')} almost no spare frames (fewer than {TIGHT_RATIO} per needed frame): "
        + "; ".join(f"sample {item['sample']} has {item['frames']} frames for {item['needed']} needed" for item in worst)
        + "." + coverage
    )
    return [finding(
        "CTC002", message, tight_hint(scan.ratios.lower_median()),
        {"count": scan.tight, "total": covered, "scanned": scan.samples, "ratio_threshold": TIGHT_RATIO, "worst": worst},
    )]


def label_out_of_range(scan: Summary, num_classes: int) -> list[Finding]:
    """CTC010 from the summary."""
    count = scan.out_of_range_labels
    if count == 0:
        return []
    values, _ = scan.classes.items()
    bad = [value for value in values if value < 0 or value >= num_classes]
    largest, smallest = max(bad), min(bad)
    parts = []
    if largest >= num_classes:
        parts.append(f"largest {largest}")
    if smallest < 0:
        parts.append(f"smallest {smallest}")
    if largest == num_classes:
        hint = (
            f"The top label equals C = {num_classes}: the output layer has no slot for it, usually a forgotten blank slot. "
            f"Make the final layer output {num_classes + 1} classes (alphabet + blank)."
        )
    elif smallest < 0:
        hint = "Negative labels are usually padding counted inside target_lengths: pass the true lengths, or pad with a valid index."
    else:
        hint = f"Encode labels into 0..{num_classes - 1}, or give the final layer {largest + 1} or more classes."
    samples = scan.out_of_range
    return [finding(
        "CTC010",
        f"{plural(count, 'label')} in {plural(len(samples), 'sample')} {'lies' if count == 1 else 'lie'} outside [0, {num_classes}) "
        f"({', '.join(parts)}); {numbered(samples, 'sample')}.",
        hint,
        {"count": count, "samples": samples[:20], "num_classes": num_classes, "largest": largest, "smallest": smallest},
    )]


def blank_in_targets(scan: Summary, blank: int, alphabet: Alphabet, padding_counted: bool = False) -> list[Finding]:
    """CTC011 from the summary; skipped, as in `check`, when the blanks are padding that target_lengths count."""
    if padding_counted:
        raise SkipCheck(padding_skip_reason(blank))
    count = scan.blank_labels
    if count == 0:
        return []
    samples = scan.blank
    hint = blank_hint(blank, alphabet, set(scan.classes.items()[0]))
    message = (f"the blank index {blank} appears {plural(count, 'time')} in {len(samples)} of {plural(scan.samples, 'sample')} "
               f"({numbered(samples, 'sample')})")
    padding = scan.padding_likely
    if padding:  # read without their batches (Setup.sample_labels): whether every batch's lengths are its width is unknown
        message += ("; in every one of them the blanks form one run at the end, after the labels: padding that "
                    "target_lengths count, most likely")
        hint = ("If those are padding, pass the true lengths, the count before the padding: target_lengths = "
                "torch.tensor([len(label) for label in labels]) (`ctcdoctor check` on the same spec tells it for sure, as "
                f"CTC012). Only if the blank is really a symbol: {hint[0].lower()}{hint[1:]}")
    evidence = {"blank": blank, "count": count, "samples": samples[:20], **({"trailing_only": True} if padding else {})}
    return [finding("CTC011", message + ".", hint, evidence)]


def target_lengths_inconsistent(scan: Summary, blank: int, padding_counted: bool = False) -> list[Finding]:
    """CTC012 from the summary: the inconsistencies met, and target_lengths that count the padding (as `check`)."""
    problems = [text for _, _, text in scan.problems]
    total = scan.problem_count
    if padding_counted:
        (most,) = scan.padding_worst.values()  # every sample with a blank ends in padding
        problems.insert(0, padding_message(len(scan.blank), scan.samples, most["sample"], most["real"], most["given"], blank))
        total += 1
    if not total:
        return []
    evidence: dict[str, Any] = {"problems": problems[:20]}
    if padding_counted:
        evidence["padding_counted"] = {"samples": scan.blank[:20], "count": len(scan.blank)}
    return [finding(
        "CTC012",
        "; ".join(problems[:5]) + ("." if total <= 5 else f"; and {total - 5} more."),
        PADDING_HINT if padding_counted else LENGTHS_HINT,
        evidence,
    )]


def empty_targets(scan: Summary) -> list[Finding]:
    """CTC013 from the summary."""
    empty = scan.empty
    if not len(empty):
        return []
    return [finding(
        "CTC013",
        f"{of_total(len(empty), scan.samples, 'sample', 'has', 'have')} an empty target: {numbered(empty, 'sample')}.",
        "Check the label text and encoder for these samples; drop them unless silence is intended.",
        {"count": len(empty), "samples": empty[:20]},
    )]


def _show(symbol: str) -> str:
    return repr(symbol) if symbol.isprintable() and symbol.strip() == symbol else f"{symbol!r} (U+{ord(symbol):04X})"


def labels_outside_alphabet(scan: Summary, alphabet: Alphabet) -> list[Finding]:
    """CTC090 of a manifest scan: text symbols outside the alphabet (kept as negative placeholders in the summary)."""
    values, counts = scan.classes.items()
    unknown = sorted(((chr(-value - 1), count) for value, count in zip(values, counts) if value < 0), key=lambda item: (-item[1], item[0]))
    if not unknown:
        return []
    total, samples = sum(count for _, count in unknown), scan.out_of_range
    hint = outside_hint(dict(unknown), alphabet)
    where = of_total(len(samples), scan.samples, 'label', '', '').rstrip()  # the verb agrees with the characters
    return [finding(
        "CTC090",
        f"{plural(total, 'character')} in {where} {'is' if total == 1 else 'are'} outside the alphabet "
        f"({len(unknown)} distinct): "
        + ", ".join(f"{_show(symbol)} ×{count}" for symbol, count in unknown[:8])
        + f"; {numbered(samples, 'sample')}. An encoder that skips unknown symbols would silently drop them "
        "(the length checks count them as labels).",
        hint,
        {"problem": "outside", "symbols": dict(unknown[:50]), "lines_affected": len(samples), "samples": samples[:20]},
        title="label symbols outside the alphabet",
    )]


#: code -> (function, the inputs it takes by name).
SUMMARY_CHECKS = {
    "CTC001": (infeasible_alignment, ("scan", "output_lengths")),
    "CTC002": (tight_length_budget, ("scan", "output_lengths")),
    "CTC010": (label_out_of_range, ("scan", "num_classes")),
    "CTC011": (blank_in_targets, ("scan", "blank", "alphabet", "padding_counted")),
    "CTC012": (target_lengths_inconsistent, ("scan", "blank", "padding_counted")),
    "CTC013": (empty_targets, ("scan",)),
}
