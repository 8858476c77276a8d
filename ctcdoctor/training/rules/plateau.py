"""Where the loss stops falling: a plateau (CTC204), stuck at the start (CTC205), the early blank
plateau that ended (CTC211, info) and the blank plateau that never ends (CTC212)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ctcdoctor.findings import Finding
from ctcdoctor.registry import document, finding
from ctcdoctor.training.curve import Curve, Segment, between, fmt
from ctcdoctor.training.rules.context import Analysis
from ctcdoctor.training.rules.lr_advice import usual_lr
from ctcdoctor.training.rules.metrics import STILL_FALLING, finest_metrics

document(
    "CTC204",
    "warning",
    "the loss has plateaued",
    """
    **What it means.** Over the last part of the run (at least 35% of its steps) the smoothed
    loss stayed within +-10% of one level and fell less than 10%, after having fallen from
    where it started. Either the run has converged at this level and the remaining steps are
    spent for nothing, or the learning rate is too large to settle lower or too small to
    move. Not reported when the logged learning rate had already decayed (to 20% of its peak
    or less): that is the end of a schedule. A plateau at the blank level of CTC is CTC212,
    a run that never left its start is CTC205.

    **Example.** `warning CTC204 the loss plateaued at 0.41 over steps 6,000-10,000 (40% of
    the run; it fell 2% there, from 10.5 at the start); the learning rate stayed at 0.001.`

    **Fix.** Decay the learning rate when the loss stalls:
    `torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=0.1, patience=...)` or a
    cosine schedule; or stop at the plateau's start. If the level is too high for the task,
    raise the learning rate 3x (or the model's capacity) and check the data.
    """,
)

document(
    "CTC205",
    "error",
    "the loss never left its starting level",
    """
    **What it means.** After the whole run the loss is still at least 85% of where it
    started, and it never got below 70% of it: the model has not learned. For a freshly
    initialised CTC model the starting loss is that of near-uniform outputs (roughly
    T*ln(C) minus the log of the number of alignments, per sample), far above the loss of a
    model that has only learned to emit blanks; a curve that never drops from there usually
    means that no update reaches the weights. Caution: the log's first value is what is
    compared, and a log that starts late (the first value averaged over hundreds of steps)
    may already start on the blank plateau; `--classes` and `--label-length` tell which.

    **Example.** `error CTC205 the loss stayed at its start over steps 1-5,000: 10.5 at the
    start, 10.3 at the end (98%); the lowest level reached was 10.1.`

    **Fix.** Check that the optimizer holds the model's parameters and its learning rate is
    not 0, that no layer is frozen by mistake (`requires_grad=False`), that the loss is
    computed from the model output (not a detached copy), and that labels belong to their
    inputs; then try a 10x larger learning rate. `ctcdoctor overfit SPEC` tests one batch in
    a minute.
    """,
)

document(
    "CTC211",
    "info",
    "an early loss plateau ended (the usual CTC blank plateau)",
    """
    **What it means.** Early in the run the loss sat flat for a while (within +-10%) and then
    fell by at least 30%, and, when a blank ratio is logged (the monitor logs it), most frames
    were blank over it (median at least 50%; a plateau with the outputs not blank is not this).
    CTC models go through this: blank is the cheapest output at first,
    the loss falls fast to the level of a model that emits only blanks (about ln(C-1) per
    label), stays there while the model has not yet found where the labels are, and then
    drops again. Normal; reported so that a long one is not mistaken for a failure. Not
    reported for a flat stretch far below that level (under 0.3x the content-free loss, when C
    is known), while the logged error rate around it (over it, or at the nearest evaluation) is
    below 0.5 or the blank ratio below 50% (the model already decodes), or when the loss rose
    before it (the way down from a blow-up is no blank plateau).

    **Example.** `info CTC211 the loss sat at about 3.3 over steps 20-110 (23% of the run),
    then fell to 0.07; CER stayed at 1.0 during it: the usual CTC blank plateau.`

    **Fix.** Nothing to fix. To shorten it: a learning rate at the high end of what is stable
    (Adam and AdamW: about 1e-4 to 1e-3; SGD much higher) with warm-up, a head bias
    initialised at 0 (not favouring blank), and enough frames per label (CTC002).
    """,
)

document(
    "CTC212",
    "error",
    "the blank plateau never ends",
    """
    **What it means.** The loss fell from its start to a level and stayed flat there to the
    end of the run (at least 35% of it), and the level is that of a model that emits only
    blanks: the logged error rate stayed at 0.85 or more (decodes empty or nearly), or the
    logged blank ratio at 0.9 or more, or the level matches the content-free loss estimated
    from the number of classes C and the mean label length U (about ln(C-1) per label,
    U*ln(C-1) per sample: the monitor measures C and U from the outputs and targets it is
    given; `ctcdoctor logs` reads them from a monitor log, or from `--classes`/`--label-length`). The
    model learned the label statistics but not where labels are: a blank collapse.

    **Example.** `error CTC212 the loss sat at 3.16 from step 20 to the end (94% of the
    run) while eval CER stayed at 0.90-1.00; 3.16 is close to ln(26) = 3.26 per label, the
    loss of a model that ignores its input.`

    **Fix.** In order: labels must belong to their inputs (a shuffled or misaligned label list
    gives exactly this curve); the learning rate must be in range (too low never leaves the
    plateau; far too high also lands here); each label needs enough output frames (CTC002);
    the head's blank bias must not be large; the inputs must be normalised (CTC041). Run
    `ctcdoctor check SPEC` and `ctcdoctor overfit SPEC`.
    """,
)

MIN_POINTS = 20
"""The tail rules judge a loss of at least this many finite values."""
STUCK_SHARE = 0.85
"""Stuck: the end level at least this share of the early level..."""
STUCK_BEST_SHARE = 0.70
"""... and the best level never below this share of it."""
PLATEAU_MIN_SHARE = 0.35
"""A final plateau counts when it covers at least this share of the run's steps..."""
PLATEAU_MIN_POINTS = 10
"""... and this many logged values..."""
PLATEAU_MAX_DROP = 0.10
"""... and the level fell less than this across it."""
LR_DECAYED = 0.2
"""A plateau with the learning rate at or below this share of its peak is the end of a schedule."""
STUCK_ERROR = 0.85
"""Blank evidence: an error rate (CER, WER, 1 - accuracy) at or above this over the plateau..."""
BLANK_RATIO = 0.9
"""... or a blank ratio at or above this."""
EARLY_MIN_SHARE = 0.05
"""An early plateau covers at least this share of the run (and 5 bins)..."""
EARLY_STARTS_BEFORE = 0.5
"""... begins in the first half of the run..."""
EARLY_THEN_DROP = 0.30
"""... and is followed by a fall of at least 30% below its level..."""
EARLY_BLANK_RATIO = 0.5
"""... and, when a blank ratio is logged over it, most frames' argmax was blank (median >= 50%): the blank
plateau is the model emitting blank everywhere; at 0% blank it is some other stall (a wrong blank index in the
monitor gives exactly 0%, and CTC222 says so), not "the usual CTC blank plateau"."""
EARLY_BELOW_CONTENT_FREE = 0.3
"""... and, when C is known, not below 0.3x the content-free level (a model that low decodes labels)..."""
EARLY_DECODES = 0.5
"""... and not while a logged error rate over it (or at the nearest evaluation) is below this: the model decodes..."""
EARLY_AFTER_BLOW_UP = 1.5
"""... and not after the smoothed loss rose to 1.5x its lowest level so far: that is the recovery from a blow-up..."""
EARLY_ACCELERATION = 3.0
"""... at least 3x faster (in log-loss per step) than the level moved within the plateau..."""
EARLY_ABOVE_CONTENT_FREE = 1.5
"""... and, when C is known, not above 1.5x the content-free level (higher is still the descent from the start)."""


@dataclass(frozen=True)
class Tail:
    """How the run ends, when it ends flat."""

    kind: str
    """"stuck" (CTC205), "blank" (CTC212) or "plateau" (CTC204)."""
    start_step: int
    end_step: int
    level: float
    drop: float
    blank_evidence: tuple[str, ...] = ()
    content_free: tuple[float, str] | None = None


def blank_evidence(analysis: Analysis, start: int, end: int) -> list[str]:
    """Logged signs that outputs are (nearly) all blank over [start, end]."""
    signs = []
    for metric in finest_metrics(analysis.curves.metrics):  # a WER near 1 beside a falling CER is no sign of blanks
        steps, error = metric.series.steps, metric.error
        inside = (steps >= start) & (steps <= end) & np.isfinite(error)
        if inside.sum() >= 2 and float(np.median(error[inside])) >= STUCK_ERROR:
            low, high = float(error[inside].min()), float(error[inside].max())
            name = metric.series.tag
            shown = (f"{name} stayed at {between(1 - high, 1 - low)}" if metric.kind == "accuracy"
                     else f"{name} stayed at {between(low, high)}")
            signs.append(shown)
    blank = analysis.curves.blank_ratio
    if blank is not None:
        inside = (blank.steps >= start) & (blank.steps <= end) & np.isfinite(blank.values)
        if inside.sum() >= 1 and float(np.median(blank.values[inside])) >= BLANK_RATIO:
            signs.append(f"{blank.tag} was {float(np.median(blank.values[inside])):.0%} (median)")
    return signs


def classify_tail(analysis: Analysis) -> Tail | None:
    curve = analysis.loss
    if curve.n < MIN_POINTS or not curve.positive:
        return None
    patience = analysis.patience
    plateau = curve.final_plateau
    flat = (
        plateau is not None
        and curve.share(plateau.start_step, plateau.end_step) >= PLATEAU_MIN_SHARE
        and int(np.sum(curve.steps >= plateau.start_step)) >= PLATEAU_MIN_POINTS
        and curve.drop_within(plateau) < PLATEAU_MAX_DROP
        and plateau.end_step - plateau.start_step >= patience
    )
    near = analysis.near_content_free(curve.end)
    stuck = (
        curve.end >= STUCK_SHARE * curve.early
        and curve.best >= STUCK_BEST_SHARE * curve.early
        and curve.span >= patience
        and analysis.divergence is None
    )
    if stuck:
        start = curve.first_step
        signs = tuple(blank_evidence(analysis, start, curve.last_step))
        kind = "blank" if near is not None and (flat or signs) else "stuck"
        return Tail(kind, start, curve.last_step, curve.end, curve.trend_drop(start, curve.last_step), signs, near)
    if analysis.divergence is not None:
        return None
    if flat:
        assert plateau is not None
        signs = tuple(blank_evidence(analysis, plateau.start_step, plateau.end_step))
        kind = "blank" if signs or near is not None else "plateau"
        return Tail(kind, plateau.start_step, plateau.end_step, plateau.level, curve.drop_within(plateau), signs, near)
    # Not flat by the +-10% band (noisy bumps), but the error rate never moved and the loss is not
    # getting anywhere: it fell less than STILL_FALLING over the second half (more: CTC210).
    stuck_metric = analysis.stuck_metric
    if stuck_metric is not None and curve.share(stuck_metric.start_step, curve.last_step) >= PLATEAU_MIN_SHARE:
        start = max(stuck_metric.start_step, curve.first_step)
        middle = curve.value_at((start + curve.last_step) // 2)
        fall = (middle - curve.end) / middle if middle > 0 else 0.0
        if fall < STILL_FALLING:
            signs = tuple(blank_evidence(analysis, start, curve.last_step))
            return Tail("blank", start, curve.last_step, curve.end, fall, signs, near)
    return None


def _lr_decayed(analysis: Analysis) -> float | None:
    """The learning rate at the end as a share of its peak, when it is logged."""
    lr = analysis.curves.lr
    if lr is None:
        return None
    finite = lr.values[np.isfinite(lr.values)]
    if not finite.size or finite.max() <= 0:
        return None
    return float(finite[-1] / finite.max())


def check_plateau(analysis: Analysis) -> list[Finding]:
    tail = analysis.tail
    curve = analysis.loss
    found = list(_early_plateau(analysis, tail))
    if tail is None:
        return found
    share = curve.share(tail.start_step, tail.end_step)
    evidence = {"series": curve.tag, "steps": [tail.start_step, tail.end_step], "level": tail.level,
                "start": curve.first, "share": share, "drop": tail.drop}
    if tail.kind == "stuck":
        message = (f"{analysis.called(curve.series, 'loss')} stayed at its start over {analysis.steps(tail.start_step, tail.end_step)}: "
                   f"{fmt(curve.first)} first logged, {fmt(curve.end)} at the end ({curve.end / curve.early:.0%} "
                   f"of the early level {fmt(curve.early)}); the lowest level reached was {fmt(curve.best)}")
        if tail.blank_evidence:
            message += f"; {', '.join(tail.blank_evidence)}"
        message += _content_free_note(analysis, curve.end)
        hint = ("Check that the optimizer holds the model's parameters and its learning rate is not 0, that no layer is "
                "frozen by mistake (requires_grad=False), that the loss is computed from the model output (not a "
                "detached copy) and that labels belong to their inputs; then try a 10x larger learning rate. "
                "`ctcdoctor overfit SPEC` tests one batch.")
        return found + [finding("CTC205", message + ".", hint, evidence)]
    if tail.kind == "blank":
        reasons = list(tail.blank_evidence)
        if tail.content_free is not None:
            reasons.append(f"{fmt(tail.level)} is close to {tail.content_free[1]}, the loss of a model that ignores "
                           f"its input ({analysis.sizes_origin()})")
        message = (f"{analysis.called(curve.series, 'loss')} stayed near {fmt(tail.level)} over "
                   f"{analysis.steps(tail.start_step, tail.end_step)} ({share:.0%} of the run, to the end; it started "
                   f"at {fmt(curve.first)} and fell {max(tail.drop, 0):.0%} over the stretch) while " + "; ".join(reasons))
        evidence["blank_evidence"] = list(tail.blank_evidence)
        if tail.content_free is not None:
            evidence["content_free"] = tail.content_free[0]
        hint = ("Make sure labels belong to their inputs (a misaligned label list gives this curve), the learning rate is "
                f"in range ({usual_lr(analysis.optimizer)}), each label has enough output frames (CTC002), the head's blank bias is not "
                "large, and inputs are normalised; run `ctcdoctor check SPEC` and `ctcdoctor overfit SPEC`.")
        return found + [finding("CTC212", message + ".", hint, evidence)]
    # a plain plateau: not at the end of a decayed schedule, not a sawtooth (CTC206 says that)
    decayed = _lr_decayed(analysis)
    if (decayed is not None and decayed <= LR_DECAYED) or analysis.sawtooth is not None or analysis.cycles is not None:
        return found
    message = (f"{analysis.called(curve.series, 'loss')} plateaued at {fmt(tail.level)} over "
               f"{analysis.steps(tail.start_step, tail.end_step)} ({share:.0%} of the run; it fell "
               f"{max(tail.drop, 0):.0%} there, from {fmt(curve.first)} at the start)")
    message += _content_free_note(analysis, tail.level)
    if not analysis.curves.metrics and not analysis.content_free:
        given = ("the model's outputs and targets given to update()" if analysis.options.sizes == "monitor"
                 else "--classes/--label-length")
        message += f"; without an error rate in the log or {given} this cannot be told apart from the CTC blank plateau (CTC212)"
    hint = ("Decay the learning rate when the loss stalls (ReduceLROnPlateau(optimizer, factor=0.1, patience=...) or a "
            "cosine schedule), or stop at the plateau's start; if the level is too high for the task, raise the "
            "learning rate 3x and check the data.")
    return found + [finding("CTC204", message + ".", hint, evidence)]


def _content_free_note(analysis: Analysis, level: float) -> str:
    if not analysis.content_free:
        return ""
    reference, text = min(analysis.content_free, key=lambda item: abs(np.log(level / item[0])) if level > 0 else 0)
    return f"; the loss of a model that ignores its input is about {text} (an estimate), {level / reference:.2f}x of it"


def _early_plateau(analysis: Analysis, tail: Tail | None) -> list[Finding]:
    curve = analysis.loss
    if curve.n < MIN_POINTS or analysis.cycles is not None:
        return []  # a repeating cycle's flat stretches are no blank plateau (CTC206 names the cycle)
    limit = curve.bins if tail is None else int(np.searchsorted(curve.bin_first_step, tail.start_step))
    for segment in curve.flat_segments(min_bins=5):
        if segment.last + 1 >= limit:
            break
        if curve.share(segment.start_step, segment.end_step) < EARLY_MIN_SHARE:
            continue
        if int(np.sum((curve.steps >= segment.start_step) & (curve.steps <= segment.end_step))) < PLATEAU_MIN_POINTS:
            continue  # a few flat values in a short log are noise, not a plateau
        if analysis.content_free and segment.level > EARLY_ABOVE_CONTENT_FREE * max(ref for ref, _ in analysis.content_free):
            continue  # far above the loss of a model that ignores its input: not the blank plateau
        if _not_blank_plateau(analysis, segment):
            continue
        if segment.start_step > curve.first_step + EARLY_STARTS_BEFORE * curve.span:
            break
        after = curve.smooth[segment.last + 1 :]
        target = (1 - EARLY_THEN_DROP) * segment.level
        if not after.size or float(after.min()) > target:
            continue
        # A plateau is followed by a faster fall than within it; a curve that just decelerates
        # (a power law) has short flat-looking stretches followed by slower falls.
        reached = int(curve.bin_last_step[segment.last + 1 + int(np.argmax(after <= target))])
        inside = max(curve.drop_within(segment), 0.0)
        slope_in = -np.log1p(-min(inside, 0.99)) / max(1, segment.end_step - segment.start_step)
        # Noise can hide a steady fall from the ends' medians: a least-squares slope of the log-levels sees it
        # (a smooth decay has no plateau, and its fall after the stretch is no faster than within it).
        slope_in = max(slope_in, _log_slope(curve, segment))
        slope_after = -np.log1p(-EARLY_THEN_DROP) / max(1, reached - segment.end_step)
        if slope_after < EARLY_ACCELERATION * slope_in:
            continue
        return [_early_finding(analysis, segment, float(after.min()))]
    return []


def _log_slope(curve: Curve, segment: Segment) -> float:
    """The fall per step of the log-level across a segment (least squares over its bins; >= 0)."""
    levels = curve.level[segment.first : segment.last + 1]
    steps = curve.bin_first_step[segment.first : segment.last + 1].astype(np.float64)
    if levels.size < 3 or np.ptp(steps) <= 0 or np.any(levels <= 0):
        return 0.0
    return max(0.0, -float(np.polyfit(steps, np.log(levels), 1)[0]))


def _around(steps: np.ndarray, values: np.ndarray, start: int, end: int) -> float | None:
    """The median of the finite values logged over [start, end], else the one logged nearest to it (None if none)."""
    finite = np.isfinite(values)
    inside = (steps >= start) & (steps <= end) & finite
    if inside.any():
        return float(np.median(values[inside]))
    if not finite.any():
        return None
    distance = np.where(steps < start, start - steps, steps - end)[finite]
    return float(values[finite][int(np.argmin(distance))])


def _not_blank_plateau(analysis: Analysis, segment: Segment) -> bool:
    """A flat stretch that is not CTC's blank plateau: far below the content-free level, while the outputs
    (logged over it, or at the nearest evaluation) already decode labels, or the recovery after a blow-up."""
    start, end = segment.start_step, segment.end_step
    if analysis.content_free and segment.level < EARLY_BELOW_CONTENT_FREE * min(ref for ref, _ in analysis.content_free):
        return True  # a model at a tenth of the loss of one that ignores its input has long left blank
    blank = analysis.curves.blank_ratio
    ratio = _around(blank.steps, blank.values, start, end) if blank is not None else None
    if ratio is not None and ratio < EARLY_BLANK_RATIO:
        return True  # the logged outputs were not blank: a plateau, but not the blank plateau CTC211 names
    for metric in analysis.curves.metrics:
        error = _around(metric.series.steps, metric.error, start, end)
        if error is not None and error < EARLY_DECODES:
            return True  # the model already decodes labels there
    curve = analysis.loss
    before = curve.smooth[: segment.first]
    rose = before.size and float(np.max(before / np.minimum.accumulate(before))) > EARLY_AFTER_BLOW_UP
    return bool(rose)  # the loss rose before the stretch: it is the way down from a blow-up


def _early_finding(analysis: Analysis, segment: Segment, low: float) -> Finding:
    curve = analysis.loss
    share = curve.share(segment.start_step, segment.end_step)
    message = (f"{analysis.called(curve.series, 'loss')} sat at about {fmt(segment.level)} over "
               f"{analysis.steps(segment.start_step, segment.end_step)} ({share:.0%} of the run), then fell to "
               f"{fmt(low)}")
    signs = blank_evidence(analysis, segment.start_step, segment.end_step)
    near = analysis.near_content_free(segment.level)
    if signs:
        message += f"; {', '.join(signs)} during it"
    if near is not None:
        message += f"; the level is close to {near[1]}"
    message += ": the usual CTC blank plateau, and it ended."
    hint = (f"Nothing to fix. To shorten it: a learning rate at the high end of what is stable ({usual_lr(analysis.optimizer)}) with "
            "warm-up, a head bias initialised at 0, and enough frames per label.")
    evidence = {"series": curve.tag, "steps": [segment.start_step, segment.end_step], "level": segment.level,
                "after": low, "share": share, "blank_evidence": signs}
    return finding("CTC211", message, hint, evidence)
