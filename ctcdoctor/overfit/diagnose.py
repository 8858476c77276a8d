"""Why a single-sample overfit failed: classify the loss curve and name the likely causes.

Pure functions of the run's numbers; `ctcdoctor.overfit` calls them and attaches the finding.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ctcdoctor.findings import Finding
from ctcdoctor.overfit.curve import loss_trend, median
from ctcdoctor.overfit.result import DEFAULT_LR, DEFAULT_STEPS
from ctcdoctor.registry import document, finding
from ctcdoctor.render.phrases import number

if TYPE_CHECKING:  # pragma: no cover
    from ctcdoctor.overfit.result import OverfitResult

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
BLANK_PHASE_DROP = 0.05
"""All-blank output with the loss still dropping by more than this share over the last quarter is the
normal early blank phase of CTC training (CTC070, more steps), not a collapse (CTC071), unless a
cause of a collapse was measured (blank bias, tiny learning rate, frozen layers, vanishing gradients)."""


def suggested_steps(steps: int) -> int:
    """A budget worth trying when the loss was still falling: twice this run's, at least the default."""
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
        early = median(losses[:5])
        window = max(5, len(losses) // 10)
        tail = median(losses[-window:])
        best = min(losses)
        if tail > DIVERGED_FACTOR * early or (tail > REBOUND_FACTOR * best and tail - best > 0.5):
            peak = max(range(len(losses)), key=lambda i: losses[i]) + 1
            return Verdict("CTC072", "diverged", peak)
    if decodes_empty and final_blank_ratio >= BLANK_COLLAPSE_RATIO:
        recent = loss_trend(losses)
        if not collapse_explained and recent["trend"] == "falling" and recent["drop"] > BLANK_PHASE_DROP:
            return Verdict("CTC070", "blank_phase")
        return Verdict("CTC071", "blank")
    early_median = median(losses[:5]) if losses else float("nan")
    stalled = bool(losses) and median(losses[-max(5, len(losses) // 10):]) > 0.5 * early_median
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


def _number(value: float | None) -> str:
    return number(value, 3, missing="?")


def _quote(text: str) -> str:
    return f'"{text}"'


def _collapse_repeats(sequence: Sequence[Any]) -> list[Any]:
    return [item for position, item in enumerate(sequence) if position == 0 or item != sequence[position - 1]]


def collapse_causes(result: OverfitResult, context: dict[str, Any]) -> list[str]:
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
    span = f"{_number(recent.get('from'))} → {_number(recent.get('to'))} over the last {recent.get('steps')} steps"
    return {"falling": f"still falling ({span})", "rising": f"rising ({span})", "flat": f"flat ({span})"}[trend]


def explain_failure(
    verdict: Verdict,
    result: OverfitResult,
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
        f"loss {_number(summary['first'])} at step 1, best {_number(summary['best'])} at step {summary['best_step']}"
        + (f", {trend}" if trend else f", {_number(summary['tail_median'])} over the last steps")
    )
    causes: list[str] = []
    lr = result.lr
    frozen = result.parameters.get("frozen", 0)
    total = result.parameters.get("total", 0)
    blank_ratio = result.evaluations[-1].blank_ratio if result.evaluations else float("nan")

    if verdict.kind == "nonfinite":
        message = f"the loss went non-finite at step {verdict.step} on {label}; before that: {curve}."
    elif verdict.kind == "diverged":
        message = f"the loss diverged on {label}: {curve}; highest at step {verdict.step} ({_number(max(result.losses))})."
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
                f"(norm up to {_number(result.clipping.get('max_grad_norm'))}): the updates themselves are too large"
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
            causes.append("the decode only lacks doubled labels: the model has not learned the blank between equal neighbours "
                          "(more frames per label helps, CTC002)")
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
                hint += (" If it still does not fit, run without --freeze-except-head: if the whole model fits, "
                         "the head alone is too small (not a bug).")
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


# ----------------------------------------------------------------------------- the codes

document(
    "CTC070",
    "error",
    "single-sample overfit failed within its budget",
    """
    **What it means.** `ctcdoctor overfit` trained a copy of the model on one sample (or a
    handful) for the whole step budget, and the greedy decode never matched the target
    stably. The loss neither went non-finite nor collapsed to all-blank outputs: it just
    did not get there. A healthy CTC set-up memorises one sample in a few hundred steps.

    **Example.** `error CTC070 after 500 steps sample 0 decodes as "dier" for "dinner"
    (CER 0.33); the loss fell 4.1 -> 0.21 and plateaued.` The decode drops the doubled
    "nn": the model never learned the blank that must separate two equal labels.

    **Fix.** Read the likely causes in the finding. If the loss was still falling, give it
    more steps (`--steps`) or a higher `--lr`. If it plateaued, look at the static findings
    listed with it (a tight length budget, CTC002; un-normalised inputs), and run again with
    `--freeze-except-head`: if the head alone can fit, the feature extractor is the problem
    (frozen, dead ReLUs, too much downsampling); if not, the problem is the loss wiring.
    """,
)

document(
    "CTC071",
    "error",
    "overfit collapsed to blank-only output",
    """
    **What it means.** At the end of the overfit run the model outputs blank on (almost)
    every frame, so the greedy decode is empty. Every CTC model passes through an all-blank
    phase early in training (blank is the cheapest way to lower the loss at first); a model
    that cannot leave it in the step budget has a problem that keeps it there.

    **Example.** `error CTC071 after 300 steps blank is the argmax on 100% of the 24 frames
    of sample 0 (mean p(blank) 0.999) and the decode is empty, for target "dinner"; the head's
    bias favours blank by 12.0 nats and the learning rate is 1e-05.`

    **Fix.** The usual causes, in order: a learning rate far too small for the optimizer
    (Adam wants about 1e-3 here); a head initialised to favour blank (a large blank bias);
    layers frozen by mistake (`requires_grad=False`) or a feature extractor whose output is
    constant (dead ReLUs, inputs not normalised); too few frames per label (CTC002). The
    finding lists the ones it measured. If the loss was still falling, give it more steps.
    """,
)

document(
    "CTC072",
    "error",
    "overfit loss diverged, oscillated or went non-finite",
    """
    **What it means.** While overfitting one sample the loss went NaN or infinite, ended
    well above where it started, or jumped up and down instead of settling. The finding
    gives the step where it happened.

    **Example.** `error CTC072 the loss went non-finite (nan) at step 37; it had fallen
    from 4.2 to 3.1 by step 20, then rose to 85 at step 30.`

    **Fix.** Lower the learning rate (ten times is a good first try: `--lr`), keep gradient
    clipping on, compute CTC in float32 (CTC025), and make sure the model emits
    log-probabilities (CTC020, CTC024): `log` of a softmax underflows to `-inf`. An
    optimizer built for SGD learning rates (0.1-1) and used with Adam diverges like this.
    """,
)
