"""The error rate stays at 1 while the loss falls (CTC210)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ctcdoctor.findings import Finding
from ctcdoctor.registry import document, finding
from ctcdoctor.training.curve import between, fmt
from ctcdoctor.training.rules.context import Analysis
from ctcdoctor.training.series import Metric

document(
    "CTC210",
    "error",
    "CER/WER stuck at 1 (or accuracy at 0) while the loss falls",
    """
    **What it means.** Over the second half of its logged values the error rate never went
    below 0.85 (accuracy never above 0.15), while the training loss was still falling: by 15%
    or more over the second half of those steps. The loss says the model fits its targets better; the decoded output says
    nothing is right. Two causes: a blank collapse (greedy decoding gives empty strings:
    every frame's argmax is blank, even though the label probabilities grow), or a decoder
    that does not match training (another blank index, an alphabet shifted by one, a
    tokenizer that decodes to different symbols). When the loss is flat instead, this is
    CTC212.

    Of the error rates measured on the same data (training batches, or held out) the rule
    judges the finest-grained one logged: CER before PER or token error rate, before WER. A
    word is wrong as soon as one of its characters is, so early in every speech run WER
    stays near 1 long after CER has fallen well below it; a flat WER beside a falling CER is
    that, not this finding. A WER is judged when it is the finest rate of its data.

    **Example.** `error CTC210 eval_cer stayed at 0.97-1.00 over steps 500-4,000 while the
    loss fell from 3.3 to 0.8 (-76%); blank_ratio was 99%: the decodes are empty.`

    **Fix.** Print a few decodes next to their targets. Empty decodes: give the run more
    steps if the loss is still on its way down, otherwise see CTC212 (learning rate, frames
    per label, blank bias). Wrong symbols: decode with the blank index and the alphabet used
    in training (greedy: argmax per frame, merge repeats, drop blanks), and make sure the
    metric compares the same text normalisation on both sides.
    """,
)

MIN_POINTS = 3
"""The second half of the metric's values must hold at least this many..."""
STUCK_ERROR = 0.85
"""... all at or above this error rate (accuracy at or below 1 - this)..."""
STILL_FALLING = 0.15
"""... while the loss fell at least this share over the second half of those steps (less: the blank
plateau, CTC212)."""


GRAIN = {"cer": 0, "per": 1, "ler": 1, "wer": 2}
"""How fine an error rate's unit is: characters, then phonemes or tokens, then words ("error" and accuracy: unknown)."""


def finest_metrics(metrics: tuple[Metric, ...] | list[Metric]) -> list[Metric]:
    """The metrics the rules judge: of the error rates measured on the same data (train, or held out), those of the
    finest grain logged with a finite value; rates of unknown grain (a plain error rate, accuracy) always.

    A WER stays near 1 while the CER falls (one wrong character spoils its word), so a WER next to a CER says
    nothing the CER does not say better, and a flat WER is no evidence of a blank or broken decoder."""
    finest: dict[bool, int] = {}
    for metric in metrics:
        grain = GRAIN.get(metric.kind)
        if grain is not None and np.isfinite(metric.error).any():
            finest[metric.eval] = min(grain, finest.get(metric.eval, grain))
    return [metric for metric in metrics
            if GRAIN.get(metric.kind) is None or GRAIN[metric.kind] <= finest.get(metric.eval, GRAIN[metric.kind])]


@dataclass(frozen=True)
class StuckMetric:
    metric: Metric
    start_step: int
    end_step: int
    low: float
    high: float


def find_stuck_metric(analysis: Analysis) -> StuckMetric | None:
    for metric in finest_metrics(analysis.curves.metrics):
        finite = np.isfinite(metric.error)
        steps, error = metric.series.steps[finite], metric.error[finite]
        half = error[error.size // 2 :]
        if half.size < MIN_POINTS or float(half.min()) < STUCK_ERROR:
            continue
        # the stuck stretch: from the first value after which all are >= STUCK_ERROR
        below = np.flatnonzero(error < STUCK_ERROR)
        first = int(below[-1]) + 1 if below.size else 0
        start, end = int(steps[first]), int(steps[-1])
        if end - start < analysis.patience:
            continue
        return StuckMetric(metric, start, end, float(error[first:].min()), float(error[first:].max()))
    return None


def check_metric_stuck(analysis: Analysis) -> list[Finding]:
    stuck = analysis.stuck_metric
    if stuck is None:
        return []
    tail = analysis.tail
    if tail is not None and tail.kind in ("blank", "stuck"):
        return []  # the loss is flat: CTC212 / CTC205 tell that story, with this metric as evidence
    curve = analysis.loss
    if curve.n < 2:
        return []
    before = curve.value_at(stuck.start_step)
    middle = curve.value_at((stuck.start_step + curve.last_step) // 2)
    after = curve.end
    if middle <= 0 or (middle - after) / middle < STILL_FALLING:
        return []  # not falling: the blank plateau (CTC212) when it lasted, else too early to say
    metric = stuck.metric
    name = metric.series.tag
    if metric.kind == "accuracy":
        shown = f"{name} stayed at {between(1 - stuck.high, 1 - stuck.low)}"
    else:
        shown = f"{name} stayed at {between(stuck.low, stuck.high)}"
    message = (f"{shown} over {analysis.steps(stuck.start_step, stuck.end_step)} while {analysis.called(curve.series, 'loss')} fell "
               f"from {fmt(before)} to {fmt(after)} ({(after - before) / before:+.0%}; {(after - middle) / middle:+.0%} over the second half)")
    blank = analysis.curves.blank_ratio
    collapse = None
    if blank is not None:
        inside = np.flatnonzero((blank.steps >= stuck.start_step) & np.isfinite(blank.values))
        if inside.size:
            collapse = float(np.median(blank.values[inside[-3:]]))
            message += f"; {blank.tag} is {collapse:.0%} at the end"
            message += ": the decodes are (nearly) empty, a blank collapse" if collapse >= 0.9 else (
                ": the model emits labels, so the decoder or the metric does not match training")
    hint = ("Print a few decodes next to their targets. Empty: give the run more steps while the loss still falls, else "
            "see CTC212 (learning rate, frames per label, blank bias). Wrong symbols: decode with the training blank "
            "index and alphabet (argmax, merge repeats, drop blanks) and normalise text the same way on both sides.")
    evidence = {"series": name, "steps": [stuck.start_step, stuck.end_step], "low": stuck.low, "high": stuck.high,
                "loss_from": before, "loss_to": after, "kind": metric.kind, "blank_ratio": collapse}
    return [finding("CTC210", message + ".", hint, evidence)]
