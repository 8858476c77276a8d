"""The blank phase of a CTC run, judged from the monitor's evaluations: CTC220 (info, the early
phase within its budget) and CTC221 (error, blank collapse: the phase outlived its budget, or
came back after the model had emitted labels).

The budget is `Options.patience` (steps), the same while the run goes on and once it is over
(`Options.finished`: the monitor's `close()`, or a monitor log that says so): a run that ended
before its phase outlived the budget is too short to judge (CTC220, info, saying how long judging
would take), never "nothing to fix yet" and never a collapse the live verdict had not announced.
Without a budget (a log without one) a phase counts when it reaches the end of the run and
covers at least 35% of it, unless the loss still fell over the run's second half (the model was
still learning).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ctcdoctor.findings import Finding
from ctcdoctor.registry import document, finding
from ctcdoctor.training.curve import fmt
from ctcdoctor.training.rules.context import Analysis
from ctcdoctor.training.rules.evaluations import Evaluations
from ctcdoctor.training.rules.lr_advice import ADAPTIVE_HIGH, far_above_range, lower_lr, usual_lr

document(
    "CTC220",
    "info",
    "the outputs are in the early blank phase",
    """
    **What it means.** At the latest evaluations the model's greedy decodes are (nearly) all
    empty: blank wins (almost) every frame. Every CTC model starts like this: emitting blank
    everywhere is the cheapest way to lower the loss at first, and labels appear only once the
    model has found where they go. The finding says how long the phase has lasted so far and
    when it would become a blank collapse (CTC221). How long it usually lasts: about 150 steps
    on the bundled OCR example (Adam 2e-3 with warm-up); longer for larger models and longer
    warm-ups, and fine-tuning a pretrained speech encoder with a long warm-up commonly spends
    the warm-up there. Set the budget (`patience=`) to what your model needs. A run that
    ended in the phase before its budget ran out (a smoke test, a run stopped early) is this
    finding too ("too short to judge ... train longer"), not a blank collapse: the finding says
    how long the phase lasted and at which step it would have been judged. Without a budget
    (a log without one), a run whose loss still fell by 5% or more over its second half is
    too short to judge the same way.

    **Example.** `info CTC220 decodes have been empty (100% of 16 samples, blank wins 99% of
    frames) since step 1: 150 steps so far; it becomes CTC221 (blank collapse) past step
    2,001 (patience 2,000).`

    **Fix.** Nothing to fix yet. To shorten it: a learning rate at the high end of what is
    stable (Adam and AdamW: about 1e-4 to 1e-3; SGD much higher) with warm-up, a head bias initialised at 0, enough frames per
    label.
    """,
)

document(
    "CTC221",
    "error",
    "blank collapse: the model decodes only blanks",
    """
    **What it means.** The greedy decodes are empty (blank wins almost every frame) and have
    been for longer than the budget (`patience=` steps, while the run goes on and once it is
    over: a finished run shorter than that is CTC220, too short to judge; in a log without a
    budget, for the last 35% of it, unless its loss still fell by 5% or more over its second
    half), or they turned empty again after the model had already emitted labels (a collapse,
    often after a learning-rate spike). A relapse counts only on enough evidence: at least 32
    decodes since it began, 90% of them empty together (a batch of 4 flickers between 25% and
    100% empty while the model learns), and a loss that rose above its level where the model
    had emitted labels (a loss still at its best is a model still learning). In the early
    phase the loss can still fall slowly: the label probabilities grow, but never above the
    blank's. The loss-curve view of the same failure is CTC212 (the blank plateau
    never ends) or CTC210 (CER stuck while the loss falls); this finding replaces them.

    **Example.** `error CTC221 the outputs have been in the blank phase since step 10 (2,390
    steps, 240 evaluations; now 100% of 16 decodes empty, blank wins 100% of frames), past the
    budget of 2,000 steps; the loss is 3.1.`

    **Fix.** In order: make sure labels belong to their inputs (a misaligned label list gives
    exactly this), that the learning rate is in range (too low never leaves, too high falls
    back here: Adam and AdamW about 1e-4 to 1e-3, warm-up), that each label has enough output frames
    (`ctcdoctor check`, CTC002), that the head's blank bias is not large, and that inputs are
    normalised. After a collapse that followed learning: lower the learning rate 3x, clip
    gradients, resume from the last checkpoint whose decodes were not empty.
    """,
)

EMPTY_PHASE = 0.9
"""An evaluation is in the blank phase when at least this share of decodes is empty..."""
BLANK_PHASE = 0.98
"""... or, without decodes, at least this share of frames is blank."""
LEFT_BLANK = 0.5
"""The model has learned to emit labels once at most this share of its decodes is empty..."""
LEARNED_CER = 0.8
"""... and its CER is below this (random outputs at initialisation are not empty either, but far off)."""
RELAPSE_EVALUATIONS = 2
"""A relapse into blank counts after at least this many evaluations since it began..."""
RELAPSE_SAMPLES = 32
"""... holding at least this many decodes together, of which at least EMPTY_PHASE are empty (a batch of 4
flickers between 25% and 100% empty while a model learns: single evaluations of a few decodes prove nothing)..."""
RELAPSE_LOSS_RISE = 1.1
"""... while the loss is at least this many times its level where the model had emitted labels: a collapse
costs loss, so a loss still at its best (or falling) is a model still learning, whatever a few decodes show."""
FINISHED_SHARE = 0.35
"""A finished run (or a log without a budget): a phase counts when it covers this share of the run, to its end..."""
FINISHED_EVALUATIONS = 3
"""... and this many evaluations."""


@dataclass(frozen=True)
class Phase:
    """A stretch of evaluations in the blank phase, from `first` to the latest."""

    first: int
    """Index of its first evaluation."""
    relapse: bool
    """It began after the model had learned to emit labels."""
    learned_at: int | None
    """Step of the last evaluation at which the model emitted labels close to its targets."""


def blank_phase(evaluations: Evaluations) -> Phase | None:
    """The blank phase the run is in at its latest evaluation, if any.

    An evaluation is blank when at least 90% of its decodes are empty (or, without decodes,
    98% of frames are blank); it is out of the phase when at most half of them are. Until the
    model has learned (out of the phase with CER below 0.8) the run is in its early phase from
    the first blank evaluation on, as long as the latest is not out. After it has learned, a
    new blank stretch is a relapse."""
    empty, blank = evaluations.get("empty_rate"), evaluations.get("blank_ratio")
    known = np.isfinite(empty)
    phase = np.where(known, empty >= EMPTY_PHASE, np.nan_to_num(blank, nan=0.0) >= BLANK_PHASE).astype(bool)
    out = np.where(known, empty <= LEFT_BLANK, np.nan_to_num(blank, nan=1.0) < EMPTY_PHASE).astype(bool)
    learned = out & (np.nan_to_num(evaluations.get("cer"), nan=1.0) < LEARNED_CER)
    if out[-1]:
        return None
    taught = np.flatnonzero(learned)
    if taught.size:  # a relapse: the latest stretch after the last evaluation out of the phase
        last_out = int(np.flatnonzero(out)[-1])
        stretch = np.flatnonzero(phase[last_out + 1 :])
        if not stretch.size:
            return None
        return Phase(last_out + 1 + int(stretch[0]), True, int(evaluations.steps[taught[-1]]))
    started = np.flatnonzero(phase)  # never learned: the early phase, from its first blank evaluation
    return Phase(int(started[0]), False, None) if started.size else None


STILL_FALLING = 0.05
"""A loss that fell by this share over the second half of the run is still moving: not a model stuck at its start
(CTC224), nor, in a run that ended before its budget, a blank collapse (CTC221)."""


def falling_levels(analysis: Analysis) -> tuple[float, float] | None:
    """The loss's smoothed level at the middle and at the end of the run when it still falls by STILL_FALLING over that
    second half (updates reach the weights); None otherwise. (Over the whole run would not do: a loss that drops in its
    first steps and then stays flat is the untrained model's, or the blank plateau's.)"""
    loss = analysis.loss
    if loss.n < 4:
        return None
    middle = int(loss.steps[loss.n // 2])
    if loss.trend_drop(middle, loss.last_step) < STILL_FALLING:
        return None
    levels = loss.levels_between(middle, loss.last_step)
    few = max(1, levels.size // 4)
    return float(np.median(levels[:few])), float(np.median(levels[-few:]))


def still_falling(analysis: Analysis) -> bool:
    """The loss (smoothed) still falls over the second half of the run (see `falling_levels`)."""
    return falling_levels(analysis) is not None


def over_budget(analysis: Analysis, start: int, evaluations: int) -> bool:
    """The phase from `start` to the end of the run has outlived the budget: `patience` steps, whether the run goes
    on or is over (the close keeps the budget the live verdict stated); without a budget (a log without one),
    FINISHED_SHARE of the run over FINISHED_EVALUATIONS."""
    loss, patience = analysis.loss, analysis.options.patience
    if patience > 0:
        return loss.last_step - start >= patience
    return covers_the_end(analysis, start, evaluations)


def covers_the_end(analysis: Analysis, start: int, evaluations: int) -> bool:
    """The phase from `start` covers FINISHED_SHARE of the run, to its end, over FINISHED_EVALUATIONS."""
    loss = analysis.loss
    return evaluations >= FINISHED_EVALUATIONS and loss.share(start, loss.last_step) >= FINISHED_SHARE


def _now(evaluations: Evaluations) -> str:
    empty, blank = evaluations.get("empty_rate")[-1], evaluations.get("blank_ratio")[-1]
    parts = []
    if np.isfinite(empty):
        parts.append(f"{float(empty):.0%} of {int(evaluations.get('evaluated')[-1])} decodes empty")
    if np.isfinite(blank):
        parts.append(f"blank wins {float(blank):.0%} of frames")
    return ", ".join(parts)


def _lr_now(analysis: Analysis) -> float | None:
    """The last finite logged learning rate (None when not logged)."""
    lr = analysis.curves.lr
    if lr is None:
        return None
    finite = lr.values[np.isfinite(lr.values)]
    return float(finite[-1]) if finite.size and finite[-1] > 0 else None


def _rate_first(analysis: Analysis) -> str | None:
    """"Set the learning rate to 1e-4 to 1e-3 (...; 1 is 1000x the top of that range)" when the logged rate is far above
    the optimizer's usual range: a model at Adam 1.0 does not leave the blank phase by training longer."""
    rate = _lr_now(analysis)
    return lower_lr(analysis.optimizer, rate) if far_above_range(analysis.optimizer, rate) else None


def _loss_levels(analysis: Analysis, start: int, learned_at: int) -> tuple[float, float] | None:
    """Median loss since the relapse began, and over as many steps up to where the model had emitted labels
    (None when either holds fewer than 3 finite values)."""
    curve = analysis.loss
    during = curve.values[curve.steps >= start]
    width = max(curve.last_step - start, 1)
    before = curve.values[(curve.steps <= learned_at) & (curve.steps > learned_at - width)]
    if during.size < 3 or before.size < 3:
        return None
    return float(np.median(during)), float(np.median(before))


def _relapse(analysis: Analysis, evaluations: Evaluations, phase: Phase, start: int, lasted: str) -> list[Finding]:
    """CTC221 for blank after learning, once enough decodes say so and the loss paid for it."""
    count = len(evaluations) - phase.first
    decodes, empty = evaluations.pooled(phase.first)
    blank = evaluations.get("blank_ratio")[phase.first :]
    if count < RELAPSE_EVALUATIONS:
        return []
    if decodes and (decodes < RELAPSE_SAMPLES or empty < EMPTY_PHASE):
        return []  # too few decodes, or not (nearly) all empty taken together
    if not decodes and not float(np.nanmean(blank)) >= BLANK_PHASE:
        return []
    learned_at = phase.learned_at or 0
    levels = _loss_levels(analysis, start, learned_at)
    if levels is not None and levels[0] < RELAPSE_LOSS_RISE * levels[1]:
        return []  # the loss is where it was when the model emitted labels, or lower: still learning
    pooled = f"; {empty:.0%} of {decodes} decodes since then empty" if decodes else ""
    loss = (f"; the loss rose from {fmt(levels[1])} there to {fmt(levels[0])}" if levels is not None else "")
    message = (f"the outputs fell back to blank {lasted}{pooled}, after the model had emitted labels at "
               f"{analysis.step(learned_at)}{loss}.")
    from ctcdoctor.training.rules.divergence import clip_gradients

    hint = (f"{lower_lr(analysis.optimizer, _lr_now(analysis), (3,))} and {clip_gradients(None, analysis.options.clip)}; "
            f"resume from the checkpoint at or before {analysis.step(learned_at)}, whose decodes were not empty.")
    evidence = {"steps": [start, analysis.loss.last_step], "evaluations": count, "relapse": True,
                "patience": analysis.options.patience, "emitted_at": phase.learned_at, "decodes": decodes,
                "empty_share": empty if decodes else None, "loss_now": levels[0] if levels else None,
                "loss_then": levels[1] if levels else None}
    return [finding("CTC221", message, hint, evidence)]


def check_blank_phase(analysis: Analysis, evaluations: Evaluations) -> list[Finding]:
    """CTC220 while the early blank phase lasts within its budget, CTC221 once it outlives it or returns."""
    phase = blank_phase(evaluations)
    if phase is None:
        return []
    start = int(evaluations.steps[phase.first]) if phase.first else min(analysis.loss.first_step, int(evaluations.steps[0]))
    end, patience, count = analysis.loss.last_step, analysis.options.patience, len(evaluations) - phase.first
    lasted = (f"since {analysis.step(start)} ({end - start:,} {analysis.unit}s, {count} evaluation{'s' if count != 1 else ''}; "
              f"now {_now(evaluations)})")
    if phase.relapse:
        return _relapse(analysis, evaluations, phase, start, lasted)
    evidence = {"steps": [start, end], "evaluations": count, "relapse": False, "patience": patience,
                "finished": analysis.options.finished, "empty_rate": float(evaluations.get("empty_rate")[-1]),
                "blank_ratio": float(evaluations.get("blank_ratio")[-1])}
    loss_now = f"; the loss is {fmt(analysis.loss.end)}" if analysis.loss.n else ""
    usual = usual_lr(analysis.optimizer)
    # A log without a budget is judged whole: a loss still falling says the model is still learning, so the run is
    # too short to call the phase a collapse. With a budget, a run that ended before the phase outlived it is too short
    # to judge whatever its loss did: the close keeps the budget the live CTC220 stated.
    whole = analysis.options.finished or not patience
    falling = falling_levels(analysis) if whole and not (patience and end - start >= patience) else None
    if over_budget(analysis, start, count) and falling is None:
        budget = (f"past the budget of {patience:,} {analysis.unit}s" if patience else
                  f"{analysis.loss.share(start, end):.0%} of the run, to its end")
        message = f"the outputs have been in the blank phase {lasted}, {budget}{loss_now}."
        longer = "train longer" if analysis.options.finished else "raise patience="
        hint = (f"Make sure labels belong to their inputs, the learning rate is in range ({usual}; with warm-up), each "
                "label has enough output frames (`ctcdoctor check`), the head's blank bias is not large and inputs are "
                f"normalised; if your model needs longer, {longer}.")
        rate = _rate_first(analysis)
        if rate is not None:
            hint = f"{rate}, and restart from the initial weights. Then: {hint[0].lower()}{hint[1:]}"
        return [finding("CTC221", message, hint, evidence)]
    if analysis.options.finished or falling is not None:
        return [_ended_in_phase(analysis, lasted, falling, loss_now, evidence, start)]
    until = f"; it becomes CTC221 (blank collapse) past {analysis.step(start + patience)} (patience {patience:,})" if patience else ""
    message = (f"the outputs have been in the blank phase {lasted}: the early phase every CTC model goes through "
               f"(about 150 steps on the bundled OCR example; longer for large models and long warm-ups){until}.")
    hint = (f"Nothing to fix yet. To shorten it: a learning rate at the high end of the usual range ({usual}) "
            "with warm-up, a head bias initialised at 0, enough frames per label.")
    rate = _rate_first(analysis)
    if rate is not None:
        hint = f"{rate}, and restart from the initial weights: at this rate the model may never leave the phase."
    return [finding("CTC220", message, hint, evidence)]


def _ended_in_phase(analysis: Analysis, lasted: str, falling: tuple[float, float] | None, loss_now: str,
                    evidence: dict, start: int) -> Finding:
    """CTC220 for a run over in the early blank phase: too short to judge (its loss still falling, or the phase a
    small share of it), so "train longer", never "nothing to fix yet"."""
    usual = usual_lr(analysis.optimizer)
    patience = analysis.options.patience
    judge = (f"a blank phase is judged a blank collapse once it lasts {patience:,} {analysis.unit}s (patience {patience:,}), "
             f"and this one lasted {analysis.loss.last_step - start:,}: judging it takes a run to "
             f"{analysis.step(start + patience)}") if patience else ""
    if falling is not None:
        middle = analysis.step(int(analysis.loss.steps[analysis.loss.n // 2]))
        ended = "the run ended" if analysis.options.finished else "the log ends"
        message = (f"{ended} in the early blank phase, too short to judge: the outputs have been blank {lasted}, "
                   f"but the loss was still falling ({fmt(falling[0])} at {middle} to {fmt(falling[1])} at the end, "
                   f"smoothed), so the model was still learning: not a blank collapse (the phase lasts about 150 steps on "
                   "the bundled OCR example; longer for large models and long warm-ups).")
        if judge:
            message += f" With the loss flat, {judge}."
    else:
        message = (f"the run ended in the early blank phase: the outputs have been blank {lasted}; the model does not "
                   "emit labels yet (the phase lasts about 150 steps on the bundled OCR example; longer for large "
                   f"models and long warm-ups){loss_now}")
        message += f". Too short to judge: {judge}." if judge else "."
    hint = (f"Train longer: the run ended before the model left the phase. To shorten it: a learning rate at the high "
            f"end of the usual range ({usual}) with warm-up, a head bias initialised at 0, enough frames per label.")
    if patience and falling is None:
        hint += (" If the phase lasts well past the usual few hundred steps, it is likely a collapse: check that labels "
                 "belong to their inputs and that the learning rate is in range; a smaller budget (Monitor(patience=...), "
                 "`ctcdoctor logs --patience`) judges it sooner.")
    rate = _rate_first(analysis)
    if rate is not None:  # training longer at this rate would not help, whatever the loss did
        lr = _lr_now(analysis)
        assert lr is not None
        ended = "the run ended" if analysis.options.finished or falling is None else "the log ends"
        message = (f"{ended} in the early blank phase: the outputs have been blank {lasted}, at a learning rate of "
                   f"{fmt(lr)}, {lr / ADAPTIVE_HIGH:.0f}x the top of {analysis.optimizer}'s usual range for CTC: the "
                   "likely reason they are still blank.")
        hint = (f"{rate}, and restart from the initial weights: at this rate the model may never leave the phase, "
                "however long it trains.")
    budget_end = start + patience if patience else None
    return finding("CTC220", message, hint, {**evidence, "still_falling": falling is not None, "judged_at": budget_end})
