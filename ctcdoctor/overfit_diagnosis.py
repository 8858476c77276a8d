"""Why a single-sample overfit failed: classify the loss curve and name the likely causes.

Pure functions of the run's numbers; `ctcdoctor.overfit` calls them and attaches the finding.
"""
from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Sequence

from ctcdoctor.findings import Finding
from ctcdoctor.registry import finding

if TYPE_CHECKING:  # pragma: no cover
    from ctcdoctor.overfit import OverfitResult

DEFAULT_LR = 1e-3
"""Adam's usual learning rate, suggested when a run diverged."""
BLANK_COLLAPSE_RATIO = 0.95
"""CTC071 when, at the end, blank is the argmax on at least this share of frames and every
decode is empty."""
DIVERGED_FACTOR = 1.5
"""CTC072 "diverged" when the median loss of the last tenth exceeds the first steps' by this factor."""
REBOUND_FACTOR = 3.0
"""CTC072 "diverged" too when the end sits this far above the best loss reached (and above 0.5)."""
OSCILLATION_JUMPS = 0.2
"""CTC072 "oscillated" when at least this share of the last half's steps jump up by >= 20% and the
loss at the end is still above half its starting value (a noisy loss that keeps falling is not this)."""
SMALL_LR = 1e-4
"""A learning rate below this is named as a likely cause of a blank collapse (for Adam-like optimizers)."""
BLANK_BIAS_NATS = 3.0
"""A head bias favouring blank by more than this many nats is named as a likely cause."""
TREND_MIN_STEPS = 8
"""The trend is read over the last quarter of the steps, and at least this many."""
TREND_SIGNIFICANCE = 3.0
"""A trend needs a slope this many standard errors away from zero (dropout noise is not a trend)."""
FALLING_SHARE = 0.02
"""... and a change of more than this share of the loss over the window."""
BLANK_PHASE_DROP = 0.05
"""All-blank output with the loss still dropping by more than this share over the last quarter is the
normal early blank phase of CTC training (CTC070, more steps), not a collapse (CTC071), unless a
cause of a collapse was measured (blank bias, tiny learning rate, frozen layers, vanishing gradients)."""


def _median(values: Sequence[float]) -> float:
    return float(statistics.median(values)) if values else float("nan")


def loss_trend(losses: Sequence[float]) -> dict[str, Any]:
    """How the loss moved over the last quarter of the run (at least `TREND_MIN_STEPS` steps).

    A least-squares line through that window decides: "falling" when its slope is
    `TREND_SIGNIFICANCE` standard errors below zero (so noise from dropout does not count)
    and the line drops by more than `FALLING_SHARE` of its starting level; "rising" the
    other way round; otherwise "flat". `from`/`to` are the medians of the window's first
    and last few steps (measured values, for the message); `drop` is the line's relative
    drop over the window.
    """
    empty = {"trend": None, "from": None, "to": None, "steps": 0, "drop": None}
    window = max(TREND_MIN_STEPS, len(losses) // 4)
    points = [(step, value) for step, value in enumerate(losses, 1) if math.isfinite(value)][-window:]
    if len(losses) < TREND_MIN_STEPS or len(points) < TREND_MIN_STEPS:
        return empty
    xs = [float(step) for step, _ in points]
    ys = [value for _, value in points]
    mean_x, mean_y = sum(xs) / len(xs), sum(ys) / len(ys)
    sxx = sum((x - mean_x) ** 2 for x in xs)
    slope = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys)) / sxx
    intercept = mean_y - slope * mean_x
    residual = sum((y - intercept - slope * x) ** 2 for x, y in zip(xs, ys))
    error = math.sqrt(residual / max(len(xs) - 2, 1) / sxx)
    start = intercept + slope * xs[0]
    end = intercept + slope * xs[-1]
    drop = (start - end) / max(abs(start), 1e-12)
    significance = slope / error if error > 0 else (math.copysign(math.inf, slope) if slope else 0.0)
    if significance < -TREND_SIGNIFICANCE and drop > FALLING_SHARE:
        trend = "falling"
    elif significance > TREND_SIGNIFICANCE and drop < -FALLING_SHARE:
        trend = "rising"
    else:
        trend = "flat"
    few = max(1, min(5, len(ys) // 4))
    return {
        "trend": trend,
        "from": _median(ys[:few]),
        "to": _median(ys[-few:]),
        "steps": int(xs[-1] - xs[0]) + 1,
        "drop": drop,
    }


def loss_summary(losses: Sequence[float]) -> dict[str, Any]:
    """First, best (with step), last, tail median and recent trend of a loss curve (steps are 1-based)."""
    if not losses:
        return {"first": None, "best": None, "best_step": None, "last": None, "tail_median": None, "trend": None, "recent": None}
    finite = [(value, step) for step, value in enumerate(losses, 1) if math.isfinite(value)]
    best, best_step = min(finite) if finite else (float("nan"), None)
    tail = [value for value in losses[-max(5, len(losses) // 10):] if math.isfinite(value)]
    recent = loss_trend(losses)
    return {
        "first": losses[0],
        "best": best,
        "best_step": best_step,
        "last": losses[-1],
        "tail_median": _median(tail) if tail else float("nan"),
        "trend": recent["trend"],
        "recent": {key: recent[key] for key in ("from", "to", "steps", "drop")},
    }


def suggested_steps(steps: int) -> int:
    """A budget worth trying when the loss was still falling: twice this run's, at least the default."""
    from ctcdoctor.overfit import DEFAULT_STEPS

    return max(2 * steps, DEFAULT_STEPS)


@dataclass(frozen=True)
class Verdict:
    code: str
    kind: str
    """"nonfinite", "diverged", "oscillated", "blank" (CTC071), "blank_phase" or "budget" (CTC070)."""
    step: int | None = None


def classify_failure(
    losses: Sequence[float],
    final_blank_ratio: float,
    decodes_empty: bool,
    nonfinite_step: int | None,
    collapse_explained: bool = False,
) -> Verdict:
    """Pure rule that names a failed run. Order: non-finite, diverged, blank collapse, oscillation, budget.

    All-blank output while the loss still falls fast (`BLANK_PHASE_DROP`) is the normal early
    blank phase (CTC070 "blank_phase": more steps), unless `collapse_explained` (a measured cause
    of a collapse: `collapse_causes`, or a static error).
    """
    if nonfinite_step is not None:
        return Verdict("CTC072", "nonfinite", nonfinite_step)
    if losses:
        early = _median(losses[:5])
        window = max(5, len(losses) // 10)
        tail = _median(losses[-window:])
        best = min(losses)
        if tail > DIVERGED_FACTOR * early or (tail > REBOUND_FACTOR * best and tail - best > 0.5):
            peak = max(range(len(losses)), key=lambda i: losses[i]) + 1
            return Verdict("CTC072", "diverged", peak)
    if decodes_empty and final_blank_ratio >= BLANK_COLLAPSE_RATIO:
        recent = loss_trend(losses)
        if not collapse_explained and recent["trend"] == "falling" and recent["drop"] > BLANK_PHASE_DROP:
            return Verdict("CTC070", "blank_phase")
        return Verdict("CTC071", "blank")
    early_median = _median(losses[:5]) if losses else float("nan")
    stalled = bool(losses) and _median(losses[-max(5, len(losses) // 10):]) > 0.5 * early_median
    if len(losses) >= 20 and stalled:  # noisy but still learning (dropout) is not oscillation
        half = losses[len(losses) // 2 :]
        jumps = sum(1 for a, b in zip(half, half[1:]) if b > 1.2 * a and b - a > 0.05)
        if jumps >= OSCILLATION_JUMPS * (len(half) - 1):
            first_jump = next(
                (len(losses) - len(half) + i + 2 for i, (a, b) in enumerate(zip(half, half[1:])) if b > 1.2 * a and b - a > 0.05),
                None,
            )
            return Verdict("CTC072", "oscillated", first_jump)
    return Verdict("CTC070", "budget")


def _fmt(value: float | None) -> str:
    if value is None:
        return "?"
    if not math.isfinite(value):
        return str(value)
    return f"{value:.3g}"


def _quote(text: str) -> str:
    return f'"{text}"'


def _collapse_repeats(sequence: Sequence[Any]) -> list[Any]:
    return [item for position, item in enumerate(sequence) if position == 0 or item != sequence[position - 1]]


def collapse_causes(result: "OverfitResult", context: dict[str, Any]) -> list[str]:
    """Measured reasons for an all-blank output other than too few steps (empty: none measured)."""
    causes: list[str] = []
    gap = context.get("blank_bias_gap")
    lr = result.lr
    frozen = result.parameters.get("frozen", 0)
    median_norm = result.clipping.get("median_grad_norm")
    if gap is not None and gap > BLANK_BIAS_NATS:
        causes.append(f"the head ({result.head}) bias favours blank by {gap:.1f} nats: initialise it at 0 (or at most log(T/U))")
    if lr is not None and lr < SMALL_LR:
        causes.append(f"learning rate {lr:g} is tiny: Adam-like optimizers want about {DEFAULT_LR:g}")
    if frozen and not result.parameters.get("freeze_except_head"):
        modules = ", ".join(context.get("frozen_modules", [])[:4])
        causes.append(
            f"{frozen:,} of {result.parameters.get('total', 0):,} parameters are frozen (requires_grad=False)"
            + (f": {modules}" if modules else "")
        )
    if median_norm is not None and median_norm < 1e-4:
        causes.append(f"gradients vanish (median norm {median_norm:.2g}): check the features reaching the head")
    return causes


def _trend_words(summary: dict[str, Any]) -> str:
    recent = summary.get("recent") or {}
    trend = summary.get("trend")
    if trend is None:
        return ""
    span = f"{_fmt(recent.get('from'))} → {_fmt(recent.get('to'))} over the last {recent.get('steps')} steps"
    return {"falling": f"still falling ({span})", "rising": f"rising ({span})", "flat": f"flat ({span})"}[trend]


def explain_failure(
    verdict: Verdict,
    result: "OverfitResult",
    static: Sequence[Finding],
    context: dict[str, Any],
) -> Finding:
    """The CTC070/071/072 finding: what happened (numbers), what to change, and the evidence."""
    summary = result.loss_summary()
    steps = result.steps_run
    more = suggested_steps(steps)
    label = ("sample " if len(result.samples) == 1 else "samples ") + ", ".join(map(str, result.samples))
    decodes = result.train_decode or result.final_decode
    pairs = "; ".join(f"{_quote(d)} for {_quote(t)}" for d, t in zip(decodes, result.targets))
    trend = _trend_words(summary)
    falling = summary["trend"] == "falling"
    curve = (
        f"loss {_fmt(summary['first'])} at step 1, best {_fmt(summary['best'])} at step {summary['best_step']}"
        + (f", {trend}" if trend else f", {_fmt(summary['tail_median'])} over the last steps")
    )
    causes: list[str] = []
    lr = result.lr
    frozen = result.parameters.get("frozen", 0)
    total = result.parameters.get("total", 0)
    blank_ratio = result.evaluations[-1].blank_ratio if result.evaluations else float("nan")

    if verdict.kind == "nonfinite":
        message = f"the loss went non-finite at step {verdict.step} on {label}; before that: {curve}."
    elif verdict.kind == "diverged":
        message = f"the loss diverged on {label}: {curve}; highest at step {verdict.step} ({_fmt(max(result.losses))})."
    elif verdict.kind == "oscillated":
        message = f"the loss oscillates instead of settling on {label}: {curve}; first big jump at step {verdict.step}."
    elif verdict.kind == "blank":
        message = (
            f"after {steps} steps blank is the argmax on {blank_ratio:.0%} of the frames and the decode is empty "
            f"({pairs}); {curve}."
        )
    elif verdict.kind == "blank_phase":
        message = (
            f"after {steps} steps {label} is still in the all-blank phase that CTC training starts with (blank is the "
            f"argmax on {blank_ratio:.0%} of the frames, decode {pairs}), but the loss is {trend or 'still falling'}, "
            "so this is not a collapse: the step budget is too short."
        )
    else:
        cer = result.evaluations[-1].cer if result.evaluations else float("nan")
        message = f"after {steps} steps {label} decodes as {pairs} (CER {cer:.2f}); {curve}."

    if verdict.code == "CTC072":
        adaptive = result.optimizer.startswith(("Adam", "RMSprop", "Adagrad", "Adadelta", "NAdam", "RAdam", "Adamax"))
        suggested = min(lr / 10, DEFAULT_LR) if (lr is not None and adaptive) else (lr / 10 if lr is not None else None)
        if lr is not None:
            causes.append(
                f"learning rate {lr:g} is too high for {result.optimizer.split('(')[0] or 'the optimizer'}: try {suggested:g}"
                + (" (Adam-like optimizers move every weight by about lr per step, whatever the gradient's size)" if adaptive and lr > 1e-2 else "")
            )
        if not result.clipping.get("max_norm"):
            causes.append("gradient clipping is off: keep --clip at 5")
        elif result.clipping.get("clipped_steps"):
            causes.append(
                f"gradients were clipped on {result.clipping['clipped_steps']} of {result.clipping['steps']} steps "
                f"(norm up to {_fmt(result.clipping.get('max_grad_norm'))}): the updates themselves are too large"
            )
        hint = "Lower the learning rate (--lr " + (f"{suggested:g}" if suggested else "1e-4") + "), keep clipping on, and compute CTC in float32."
    elif verdict.code == "CTC071":
        causes.extend(collapse_causes(result, context))
        gap = context.get("blank_bias_gap")
        median_norm = result.clipping.get("median_grad_norm")
        fixes = []
        if gap is not None and gap > BLANK_BIAS_NATS:
            fixes.append("reset the head's blank bias to 0")
        if lr is not None and lr < SMALL_LR:
            fixes.append(f"raise the learning rate from {lr:g} to {DEFAULT_LR:g} (--lr {DEFAULT_LR:g})")
        if frozen and not result.parameters.get("freeze_except_head"):
            fixes.append("unfreeze the layers frozen by mistake")
        if median_norm is not None and median_norm < 1e-4:
            fixes.append("check the features that reach the head (their gradients vanish)")
        if falling:
            causes.append(f"the loss was still falling: more steps may get out of the all-blank phase (--steps {more})")
            fixes.append(f"run longer (--steps {more})")
        if not fixes:
            fixes.append(
                "check the features that reach the head; --freeze-except-head tells a feature-extractor problem "
                "from a loss problem"
            )
        hint = "Get the model out of the all-blank phase: " + ", ".join(fixes[:-1]) + (" and " if len(fixes) > 1 else "") + fixes[-1] + "."
    elif verdict.kind == "blank_phase":
        hint = f"Run longer: --steps {more} (CTC models output only blanks for their first steps, then the labels appear)."
    else:
        if falling:
            causes.append("the loss was still falling when the step budget ran out")
        missing_repeats = any(
            list(d) != list(t) and list(d) == _collapse_repeats(list(t)) for d, t in zip(decodes, result.targets)
        )
        if missing_repeats:
            causes.append("the decode only lacks doubled labels: the model has not learned the blank between equal neighbours (more frames per label helps, CTC002)")
        if lr is not None and lr < SMALL_LR:
            causes.append(f"learning rate {lr:g} is small: try {DEFAULT_LR:g}")
        by_flag = result.parameters.get("freeze_except_head")
        if frozen and not by_flag:
            causes.append(f"{frozen:,} of {total:,} parameters are frozen (requires_grad=False)")
        if by_flag:
            causes.append(f"only the head ({result.head}) was trained (--freeze-except-head): it may lack the capacity alone")
        if falling:
            hint = f"The loss was still falling: run longer (--steps {more})"
            hint += f" or raise the learning rate to {DEFAULT_LR:g} (--lr {DEFAULT_LR:g})." if lr is not None and lr < SMALL_LR else "."
            if by_flag:
                hint += " If it still does not fit, run without --freeze-except-head: if the whole model fits, the head alone is too small (not a bug)."
        elif by_flag:
            hint = (
                "The loss stopped falling: run without --freeze-except-head; if the whole model fits, the head alone "
                "is too small for this sample (not a bug)."
            )
        else:
            hint = (
                "The loss stopped falling: try --freeze-except-head to tell a feature-extractor problem from a loss "
                "problem, and fix the static findings listed."
            )
    if result.normalisation and "exactly as written" not in result.normalisation:
        causes.append(result.normalisation)
    for item in static:
        if item.severity.value in ("error", "warning") and item.code not in result.normalisation:
            causes.append(f"{item.code} {item.title} (reported above)")
    static_errors = sorted({item.code for item in static if item.severity.value == "error"})
    if static_errors:
        hint = f"Fix {', '.join(static_errors)} first (reported above), then run overfit again. " + hint
    if causes:
        message += " Likely causes: " + "; ".join(causes) + "."
    evidence = {
        "samples": list(result.samples),
        "kind": verdict.kind,
        "step": verdict.step,
        "steps": steps,
        "suggested_steps": more if (falling or verdict.kind == "blank_phase") else None,
        "loss": summary,
        "targets": list(result.targets),
        "last_decode": list(decodes),
        "likely_causes": causes,
        "lr": lr,
        "optimizer": result.optimizer,
        "blank_bias_gap": context.get("blank_bias_gap"),
        "clipping": result.clipping,
    }
    title = "overfit still in the all-blank phase when the step budget ran out" if verdict.kind == "blank_phase" else None
    return finding(verdict.code, message, hint, evidence, title=title)
