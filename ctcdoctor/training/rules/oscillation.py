"""Oscillation: a sawtooth loss that swings without progress, or blow-ups that recover (CTC206)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ctcdoctor.findings import Finding
from ctcdoctor.registry import document, finding
from ctcdoctor.training.curve import Curve, fmt
from ctcdoctor.training.rules.context import Analysis
from ctcdoctor.training.rules.cycles import Cycles, follows_schedule

document(
    "CTC206",
    "warning",
    "the loss oscillates or blows up and recovers",
    """
    **What it means.** The loss swings up and down by a large share of its level over the
    last third of the run without getting lower (a sawtooth), or it blew up for a while (at
    least 2x its best so far, for a stretch, not one batch) and came back down: the
    practitioner's "large sawtooth", updates too large for the curvature (learning rate too
    high) or gradients too noisy (batch too small). Or the loss repeats one cycle (at least 4
    of them, the mean cycle explaining 60% or more of the detrended log-loss, its top at least
    1.2x its bottom and that span, at the median level, at least 2% of the first loss; the
    period is found on the binned curve and, for logs of up to 20,000 points, refined on the
    points): every epoch the same batches in the same order (unshuffled data, or batches sorted
    by length, whose CTC loss grows with the label lengths), or a restarting learning-rate
    schedule. A cycle that the logged learning rate repeats is expected and not
    reported; a cycle's flat stretches and last climb are not reported as plateaus (CTC211,
    CTC204) or a divergence (CTC203).

    A blow-up of a few steps counts too when the logged learning rate explains it: at least 2
    logged values in a row at 5x or more the loss before them (the first logged value, or the
    smoothed best so far), and 10% of the range the run descends, while an Adam-like optimizer
    runs at 1e-2 or more (10x the top of its usual CTC range). Adam at 1.0 typically throws the
    loss to 10x its first value within the first steps, then leaves it at the level of a model
    that emits only blanks; the blow-up is then the finding that names the rate.

    Not this: the ordinary noise of a CTC loss. Per-batch CTC losses vary with the lengths
    and difficulty in each batch, and near convergence the relative noise gets large while
    the absolute swings are tiny. A sawtooth counts only when the swings (10th to 90th
    percentile around the smoothed level) are at least half the level and at least 10% of
    the loss the run started from (a tenth of the height of a linear plot of the run), and the
    level is not falling.

    **Example.** `warning CTC206 the loss swings without progress over steps 2,000-3,000:
    the middle 80% of values spans 1.9 around a level of 2.4 (0.8x the level); the level
    fell 2% over the window.`

    A cycle: `warning CTC206 the loss repeats one cycle every 25 steps (12 cycles over steps
    0-299): its top is 1.7x its bottom in a typical cycle, climbing through each cycle and
    dropping back at its end; over the last two thirds of the log the level fell 27%.`

    **Fix.** Lower the learning rate by 3x (with Adam or AdamW above 1e-3: back into their
    usual CTC range, 1e-4 to 1e-3, and restart from the initial weights after a blow-up at
    10x that range or more), or raise the batch size 4x (or accumulate gradients over 4
    batches), and clip gradients at 1.0. A cycle as long as an epoch: shuffle the batches
    (`DataLoader(shuffle=True)`); sorted by length on purpose (bucketing, SortaGrad), draw the
    buckets in random order, use `reduction='mean'` and judge the loss averaged over an epoch.
    """,
)

TAIL_SHARE = 1 / 3
"""The sawtooth is judged over the last third of the finite points..."""
MIN_POINTS = 20
"""... when it holds at least this many."""
SWING_OF_LEVEL = 0.5
"""Swings (10th-90th percentile of the residuals) at least this share of the level..."""
SWING_OF_START = 0.10
"""... and at least this share of the starting loss (near-converged noise is tiny in absolute terms)..."""
MAX_DROP = 0.20
"""... while the level fell less than 20% over the window."""
BLOWUP_RATIO = 2.0
"""A blow-up: the smoothed loss at least 2x its best so far..."""
BLOWUP_SHARE = 0.10
"""... and at least 10% of the range descended so far above it, for at least 2 bins..."""
BLOWUP_POINTS = 5
"""... and 5 logged values (a spike of one or two bad batches is noise), then back below 1.5x the best so far."""


SHORT_RATIO = 5.0
"""A blow-up of fewer than BLOWUP_POINTS values: at least 2 logged values in a row at 5x the loss before them..."""
SHORT_POINTS = 2
"""... (this many), and BLOWUP_SHARE of the range the run descends, while the logged learning rate is far above the
optimizer's usual range (`lr_advice.far_above_range`): then the rate explains it, and it is not a noisy batch."""


@dataclass(frozen=True)
class Sawtooth:
    start_step: int
    end_step: int
    level: float
    swing: float
    drop: float


@dataclass(frozen=True)
class Blowup:
    start_step: int
    end_step: int
    peak: float
    before: float
    lr: float | None = None
    """The learning rate at its start, when a short blow-up is counted for it (`find_short_blowups`)."""


def find_sawtooth(curve: Curve) -> Sawtooth | None:
    if curve.n < 3 * MIN_POINTS:
        return None
    first = int(curve.n * (1 - TAIL_SHARE))
    values = curve.values[first:]
    around = curve.smooth[curve.point_bin[first:]]
    residual = values - around
    low, high = np.quantile(residual, [0.1, 0.9])
    swing = float(high - low)
    level = float(np.median(values))
    start_step, end_step = int(curve.steps[first]), int(curve.steps[-1])
    drop = curve.trend_drop(start_step, end_step)
    if level <= 0 or swing < SWING_OF_LEVEL * level or swing < SWING_OF_START * curve.start or drop >= MAX_DROP:
        return None
    return Sawtooth(start_step, end_step, level, swing, drop)


def find_blowups(curve: Curve, until_bin: int) -> list[Blowup]:
    """Stretches of at least 2 bins well above the best so far that came back down before `until_bin`."""
    smooth = curve.smooth[:until_bin]
    if smooth.size < 8:
        return []
    best_so_far = np.minimum.accumulate(smooth)
    top_so_far = np.maximum.accumulate(smooth)
    high = (smooth >= BLOWUP_RATIO * best_so_far) & (smooth - best_so_far >= BLOWUP_SHARE * (top_so_far - best_so_far))
    high &= best_so_far > 0
    edges = np.diff(np.concatenate([[0], high.astype(np.int8), [0]]))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1) - 1
    found = []
    for first, last in zip(starts.tolist(), ends.tolist()):
        if last - first + 1 < 2 or (last - first + 1) * curve.bin_size < BLOWUP_POINTS or last + 1 >= smooth.size:
            continue
        before = float(best_so_far[first])
        if np.min(smooth[last + 1 :]) > 1.5 * before:  # never came back: that is a divergence
            continue
        found.append(Blowup(int(curve.bin_first_step[first]), int(curve.bin_last_step[last]),
                            float(np.max(smooth[first : last + 1])), before))
    return found


def find_short_blowups(analysis: Analysis, until_step: int) -> list[Blowup]:
    """Blow-ups of a few logged values (raw values: the rolling median hides them, most of all in the first steps) that
    came back down before `until_step`, counted only while the logged learning rate is far above the optimizer's range."""
    from ctcdoctor.training.rules.divergence import _value_at
    from ctcdoctor.training.rules.lr_advice import far_above_range

    curve, lr = analysis.loss, analysis.curves.lr
    if lr is None or not len(lr) or curve.n < 4:
        return []
    values, steps = curve.values, curve.steps
    before = np.minimum(curve.first, np.minimum.accumulate(curve.smooth)[curve.point_bin])
    before = np.concatenate([[values[0]], before[:-1]])  # the loss before each value, not holding it
    high = (values >= SHORT_RATIO * before) & (values - before >= BLOWUP_SHARE * max(curve.start - before.min(), 0.0))
    high &= (before > 0) & (steps < until_step)
    edges = np.diff(np.concatenate([[0], high.astype(np.int8), [0]]))
    found = []
    for first, last in zip(np.flatnonzero(edges == 1).tolist(), (np.flatnonzero(edges == -1) - 1).tolist()):
        reference = float(before[first])
        if last - first + 1 < SHORT_POINTS or last + 1 >= values.size or np.min(values[last + 1 :]) > 1.5 * reference:
            continue  # a single batch, or never back down (a divergence)
        rate = _value_at(lr.steps, lr.values, int(steps[first]))
        if far_above_range(analysis.optimizer, rate):
            found.append(Blowup(int(steps[first]), int(steps[last]), float(np.max(values[first : last + 1])),
                                reference, rate))
    return found


def check_oscillation(analysis: Analysis) -> list[Finding]:
    curve = analysis.loss
    found: list[Finding] = []
    cycles = analysis.cycles
    if cycles is not None:
        # One finding for a repeating cycle: its swings are also what the sawtooth and blow-up tests see.
        return [] if follows_schedule(analysis.curves.lr, cycles) else [_cycles_finding(analysis, cycles)]
    saw = analysis.sawtooth
    if saw is not None and analysis.divergence is None:
        message = (f"{analysis.called(curve.series, 'loss')} swings without progress over {analysis.steps(saw.start_step, saw.end_step)}: "
                   f"the middle 80% of values spans {fmt(saw.swing)} around a level of {fmt(saw.level)} "
                   f"({saw.swing / saw.level:.1f}x the level); the level fell {max(saw.drop, 0):.0%} over the window.")
        evidence = {"series": curve.tag, "steps": [saw.start_step, saw.end_step], "level": saw.level,
                    "swing": saw.swing, "drop": saw.drop, "kind": "sawtooth"}
        found.append(finding("CTC206", message, _hint(analysis, saw.end_step), evidence))
    divergence = analysis.divergence
    until = curve.bins if divergence is None else int(np.searchsorted(curve.bin_first_step, divergence.onset_step))
    blowups = find_blowups(curve, until)
    until_step = int(curve.bin_first_step[until]) if until < curve.bins else curve.last_step + 1
    blowups += [short for short in find_short_blowups(analysis, until_step)
                if not any(b.start_step <= short.end_step and short.start_step <= b.end_step for b in blowups)]
    blowups.sort(key=lambda blowup: blowup.start_step)
    if blowups:
        shown = "; ".join(f"{analysis.steps(b.start_step, b.end_step)} (peak {fmt(b.peak)}, "
                          f"{b.peak / b.before:.1f}x {'the loss' if b.lr is not None else 'the best'} before it"
                          f"{f', at learning rate {fmt(b.lr)}' if b.lr is not None else ''})" for b in blowups[:3])
        more = f" and {len(blowups) - 3} more" if len(blowups) > 3 else ""
        count = "once" if len(blowups) == 1 else f"{len(blowups)} times"
        message = f"{analysis.called(curve.series, 'loss')} blew up {count} and recovered: {shown}{more}."
        evidence = {"series": curve.tag, "steps": [blowups[0].start_step, blowups[-1].end_step], "kind": "blowups",
                    "ranges": [[b.start_step, b.end_step] for b in blowups], "peaks": [b.peak for b in blowups]}
        found.append(finding("CTC206", message, _hint(analysis, blowups[0].start_step), evidence))
    return found


def _cycles_finding(analysis: Analysis, cycles: Cycles) -> Finding:
    curve = analysis.loss
    unit = analysis.unit
    period = f"{cycles.period:,.0f} {unit}s" if cycles.period >= 1.5 else f"{unit}"
    if cycles.peak_at >= 0.75:
        shape = "climbing through each cycle and dropping back at its end"
    elif cycles.peak_at <= 0.25:
        shape = "jumping up at the start of each cycle and falling through it"
    else:
        shape = f"highest about {cycles.peak_at:.0%} into each cycle"
    progress = (f"over the last two thirds of the log the level fell {cycles.drop:.0%}" if cycles.drop > 0
                else f"over the last two thirds of the log the level rose {-cycles.drop:.0%}")
    message = (f"{analysis.called(curve.series, 'loss')} repeats one cycle every {period} ({cycles.count} cycles over "
               f"{analysis.steps(cycles.start_step, cycles.end_step)}): its top is {cycles.factor:.1f}x its bottom in a "
               f"typical cycle, {shape}; {progress}.")
    if unit == "epoch":
        hint = ("A loss that repeats over several epochs follows something periodic in the run: a cyclic or restarting "
                "learning-rate schedule (CyclicLR, CosineAnnealingWarmRestarts) is expected to do this; otherwise look "
                "for a data pipeline that cycles (a curriculum, shards read in a fixed order).")
    else:
        hint = ("When a cycle is one epoch, the batches come in the same order every epoch: shuffle them "
                "(DataLoader(shuffle=True)). Sorted by length on purpose (bucketing, SortaGrad), a batch's CTC loss "
                "grows with its label lengths: draw the buckets in random order, use reduction='mean' (per label), and "
                "judge the loss averaged over an epoch. A cycle that matches a restarting learning-rate schedule "
                "(CyclicLR, CosineAnnealingWarmRestarts) is expected; log the learning rate and it is recognised.")
    if cycles.drop < MAX_DROP:
        # No progress across the cycles: the swings may also be updates too large to settle.
        advice = _hint(analysis, cycles.end_step)
        hint += f" If neither applies: {advice[0].lower()}{advice[1:]}"
    evidence = {"series": curve.tag, "steps": [cycles.start_step, cycles.end_step], "kind": "cycles",
                "period": cycles.period, "cycles": cycles.count, "factor": cycles.factor, "swing": cycles.swing,
                "level": cycles.level,
                "drop": cycles.drop, "explained": cycles.explained}
    return finding("CTC206", message, hint, evidence)


def _hint(analysis: Analysis, step: int) -> str:
    from ctcdoctor.training.rules.divergence import _value_at, clip_gradients
    from ctcdoctor.training.rules.lr_advice import far_above_range, lower_lr

    lr = analysis.curves.lr
    at = _value_at(lr.steps, lr.values, step) if lr is not None else None
    rate = at if at is not None and at > 0 else None
    text = lower_lr(analysis.optimizer, rate, (3,))
    clip = clip_gradients(analysis.options.trainer, analysis.options.clip)
    if far_above_range(analysis.optimizer, rate):
        # The rate alone explains it: a bigger batch would not help, and the weights it left behind are spoilt.
        return f"{text}, {clip}, and restart from the initial weights."
    return text + f", or raise the batch size 4x (or accumulate gradients over 4 batches), and {clip}."
