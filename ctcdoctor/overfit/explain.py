"""A failed overfit run in words: what happened (with the numbers), the likely causes, and the one fix to try.

Every verb is read off the numbers it describes: a loss that went from 11 to 18.4 "rose", whatever a
regression line through noisy steps says.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ctcdoctor.findings import Finding
from ctcdoctor.overfit.inputs import input_causes
from ctcdoctor.overfit.negative import blank_cause, criterion_cause, negative_fix, negative_loss, negative_words
from ctcdoctor.overfit.result import DEFAULT_LR, DEFAULT_PATIENCE, note_is_cause
from ctcdoctor.overfit.rules import (
    BLANK_BIAS_NATS,
    SMALL_LR,
    Verdict,
    collapse_causes,
    final_streak,
    norm_growth,
    suggested_steps,
)
from ctcdoctor.registry import finding
from ctcdoctor.render.phrases import number

if TYPE_CHECKING:  # pragma: no cover
    from ctcdoctor.overfit.result import OverfitResult

ADAPTIVE = ("Adam", "RMSprop", "Adagrad", "Adadelta", "NAdam", "RAdam", "Adamax")
"""Optimizers that normalise the step: each weight moves by about lr per step, whatever the gradient's size."""
SAME = 0.02
"""Two loss levels within this share of each other are "about the same"."""


def _number(value: float | None) -> str:
    return number(value, 3, missing="?")


def _quote(text: str) -> str:
    return f'"{text}"'


def still_falling(summary: dict[str, Any]) -> bool:
    """The fitted trend is falling and the measured values agree."""
    recent = summary.get("recent") or {}
    start, end = recent.get("from"), recent.get("to")
    return summary.get("trend") == "falling" and start is not None and end is not None and end < start


def recent_words(summary: dict[str, Any]) -> str:
    """How the loss moved over the last quarter, in words that match the two numbers quoted."""
    recent = summary.get("recent") or {}
    start, end, steps = recent.get("from"), recent.get("to"), recent.get("steps")
    if summary.get("trend") is None or start is None or end is None:
        return ""
    span = f"over the last {steps} steps"
    if still_falling(summary):
        return f"still falling ({_number(start)} → {_number(end)} {span})"
    if end > start * (1 + SAME):
        return f"rose from {_number(start)} to {_number(end)} {span}"
    if end < start * (1 - SAME):
        return f"fell from {_number(start)} to {_number(end)} {span}, with no steady trend"
    return f"flat ({_number(start)} → {_number(end)} {span})"


def curve_words(summary: dict[str, Any]) -> str:
    words = recent_words(summary)
    return (f"loss {_number(summary['first'])} at step 1, best {_number(summary['best'])} at step {summary['best_step']}"
            + (f", {words}" if words else f", {_number(summary['tail_median'])} over the last steps"))


def _label(result: OverfitResult) -> str:
    return ("sample " if len(result.samples) == 1 else "samples ") + ", ".join(map(str, result.samples))


def _pairs(result: OverfitResult, decodes: Sequence[str]) -> str:
    return "; ".join(f"{_quote(d)} for {_quote(t)}" for d, t in zip(decodes, result.targets))


# ----------------------------------------------------------------------------- what happened


def _message(verdict: Verdict, result: OverfitResult, summary: dict[str, Any]) -> str:
    label, steps, curve = _label(result), result.steps_run, curve_words(summary)
    decodes = result.final_decode or result.train_decode
    pairs = _pairs(result, decodes)
    blank = result.evaluations[-1].blank_ratio if result.evaluations else float("nan")
    cer = result.evaluations[-1].cer if result.evaluations else float("nan")
    growth = norm_growth(result.norms)
    texts = {
        "nonfinite": lambda: f"the loss went non-finite at step {verdict.step} on {label}; before that: {curve}.",
        "diverged": lambda: f"the loss diverged on {label}: {curve}; highest at step {verdict.step} ({_number(max(result.losses))}).",
        "exploding": lambda: (f"the gradient norm grew from {_number(growth[0] if growth else None)} in the first steps to "
                              f"{_number(growth[1] if growth else None)} at the end on {label} (above 100x from step "
                              f"{verdict.step}); {curve}."),
        "oscillated": lambda: f"the loss oscillates instead of settling on {label}: {curve}; first big jump at step {verdict.step}.",
        "blank": lambda: (f"after {steps} steps blank is the argmax on {blank:.0%} of the frames and the decode is empty "
                          f"({pairs}); {curve}."),
        "blank_phase": lambda: (f"after {steps} steps {label} is still in the all-blank phase that CTC training starts with "
                                f"(blank is the argmax on {blank:.0%} of the frames, decode {pairs}), but the loss is "
                                f"{recent_words(summary) or 'still falling'}, so this is not a collapse: the step budget is too short."),
        "blank_phase_ending": lambda: (f"after {steps} steps {label} is still leaving the all-blank phase: the first label "
                                       f"appeared at step {verdict.step}, blank is still the argmax on {blank:.0%} of the "
                                       f"frames (decode {pairs}); {curve}."),
        "dead": lambda: (f"nothing reaches the weights on {label}: the median gradient norm of the first steps is "
                         f"{_number(growth[0] if growth else result.clipping.get('median_grad_norm'))} (a model that learns "
                         f"starts around 0.01-10); {curve}."),
        "clipped": lambda: (f"after {steps} steps {label} decodes as {pairs} (CER {cer:.2f}): "
                            f"{', '.join(map(_quote, result.clipped_labels))} never appear"
                            f"{'s' if len(result.clipped_labels) == 1 else ''}: on every frame "
                            f"{'its score sits' if len(result.clipped_labels) == 1 else 'their scores sit'} at the "
                            f"output's clipped floor, tied with other classes, where no gradient reaches it; {curve}."),
        "unconfirmed": lambda: (f"the eval-mode decode of {label} is exact from step {verdict.step} to the end ({pairs}), "
                                f"but the {steps}-step budget ran out before it held long enough to count as a fit; {curve}."),
        "eval_mode": lambda: (f"the training steps' own decode fits {label} ({_pairs(result, result.train_decode)}), but "
                              f"the eval-mode decode, as inference runs, does not ({pairs}, CER {cer:.2f}); {curve}."),
    }
    default = lambda: f"after {steps} steps {label} decodes as {pairs} (CER {cer:.2f}); {curve}."  # noqa: E731
    if len(result.samples) > 1 and verdict.kind in ("budget", "plateau"):
        default = lambda: _several_words(result, decodes, cer, curve)  # noqa: E731
    return texts.get(verdict.kind, default)()


def _several_words(result: OverfitResult, decodes: Sequence[str], cer: float, curve: str) -> str:
    """A small batch: how many fit, and the decodes of those that do not."""
    misses = [(sample, decode, target) for sample, decode, target in zip(result.samples, decodes, result.targets)
              if decode != target]
    shown = "; ".join(f"sample {sample}: {_quote(decode)} for {_quote(target)}" for sample, decode, target in misses[:4])
    more = f" and {len(misses) - 4} more" if len(misses) > 4 else ""
    return (f"after {result.steps_run} steps {len(result.samples) - len(misses)} of {len(result.samples)} samples "
            f"decode exactly ({shown}{more}; CER {cer:.2f}); {curve}.")


# ----------------------------------------------------------------------------- what to change


def _own_lr_fix(result: OverfitResult) -> bool:
    """Whether the advice may suggest a learning rate of its own: not when the LR probe already measured one."""
    probe = result.lr_probe or {}
    return not (probe.get("verdict") in ("too_low", "too_high") and probe.get("suggested_lr"))


def _suggested_lr(result: OverfitResult) -> float | None:
    lr = result.lr
    if lr is None:
        return None
    return min(lr / 10, DEFAULT_LR) if result.optimizer.startswith(ADAPTIVE) else lr / 10


def _too_fast(verdict: Verdict, result: OverfitResult) -> tuple[list[str], str]:
    """CTC072: the updates are too large."""
    causes: list[str] = []
    lr, suggested = result.lr, _suggested_lr(result)
    adaptive = result.optimizer.startswith(ADAPTIVE)
    if lr is not None:
        causes.append(
            f"learning rate {lr:g} is too high for {result.optimizer.split('(')[0] or 'the optimizer'}: try {suggested:g}"
            + (" (Adam-like optimizers move every weight by about lr per step, whatever the gradient's size)"
               if adaptive and lr > 1e-2 else "")
        )
    if not result.clipping.get("max_norm"):
        causes.append("gradient clipping is off: keep --clip at 5")
    elif result.clipping.get("clipped_steps"):
        causes.append(
            f"gradients were clipped on {result.clipping['clipped_steps']} of {result.clipping['steps']} steps "
            f"(norm up to {_number(result.clipping.get('max_grad_norm'))}): the updates themselves are too large"
        )
    if not _own_lr_fix(result):
        return causes, "Keep gradient clipping on, and compute CTC in float32."
    hint = "Lower the learning rate (--lr " + (f"{suggested:g}" if suggested else "1e-4") + "), keep clipping on, and compute CTC in float32."
    return causes, hint


def _collapse(verdict: Verdict, result: OverfitResult, summary: dict[str, Any], context: dict[str, Any]) -> tuple[list[str], str]:
    """CTC071: stuck on blanks, with the measured causes."""
    causes = collapse_causes(result, context)
    gap, lr, more = context.get("blank_bias_gap"), result.lr, suggested_steps(result.steps_run)
    median_norm = result.clipping.get("median_grad_norm")
    fixes = []
    if gap is not None and gap > BLANK_BIAS_NATS:
        fixes.append("reset the head's blank bias to 0")
    if lr is not None and lr < SMALL_LR and _own_lr_fix(result):
        fixes.append(f"raise the learning rate from {lr:g} to {DEFAULT_LR:g} (--lr {DEFAULT_LR:g})")
    if result.parameters.get("frozen") and not result.parameters.get("freeze_except_head"):
        fixes.append("unfreeze the layers frozen by mistake")
    if median_norm is not None and median_norm < 1e-4:
        fixes.append("check the features that reach the head (their gradients vanish)")
    if still_falling(summary):
        causes.append(f"the loss was still falling: more steps may get out of the all-blank phase (--steps {more})")
        fixes.append(f"run longer (--steps {more})")
    if not fixes:
        fixes.append("check the features that reach the head; --freeze-except-head tells a feature-extractor problem "
                     "from a loss problem")
    return causes, "Get the model out of the all-blank phase: " + _join(fixes) + "."


def _join(items: list[str]) -> str:
    return ", ".join(items[:-1]) + (" and " if len(items) > 1 else "") + items[-1]


def _blank_phase(verdict: Verdict, result: OverfitResult, summary: dict[str, Any], context: dict[str, Any]) -> tuple[list[str], str]:
    more = suggested_steps(result.steps_run)
    if verdict.kind == "blank_phase":
        return [], f"Run longer: --steps {more} (CTC models output only blanks for their first steps, then the labels appear)."
    causes = collapse_causes(result, context) or [
        f"too few steps: the labels only began to appear at step {verdict.step} of {result.steps_run}"]
    hint = f"Run longer (--steps {more}): the labels have only started to appear"
    if result.lr is not None and result.lr < SMALL_LR and _own_lr_fix(result):
        hint += (f"; better, raise the learning rate from {result.lr:g} to {DEFAULT_LR:g} (--lr {DEFAULT_LR:g}), "
                 "which leaves the blank phase in far fewer steps")
    return causes, hint + "."


def _dead(verdict: Verdict, result: OverfitResult, static: Sequence[Finding]) -> tuple[list[str], str]:
    clipped = next((item for item in static if item.code == "CTC027"), None)
    if clipped is not None:
        return ["the class scores are clipped before log_softmax (CTC027, reported above)"], f"{clipped.hint} Then run overfit again."
    causes = []
    if result.parameters.get("frozen") and not result.parameters.get("freeze_except_head"):
        causes.append(f"{result.parameters['frozen']:,} of {result.parameters.get('total', 0):,} parameters are frozen")
    if verdict.kind == "clipped":
        return causes, ("Remove the ReLU, clamp or similar applied to the class scores in forward(): a score cut at the "
                        "floor gets no gradient, so a label whose score falls below it never comes back.")
    hint = ("Find what cuts the gradient between the loss and the weights: a ReLU, clamp or sigmoid on the output scores "
            "(ctcdoctor check reports CTC027), a .detach() or torch.no_grad() in forward(), layers initialised to zero, "
            "saturated activations; --freeze-except-head tells a dead head from a dead feature extractor.")
    return causes, hint


def _eval_mode(result: OverfitResult) -> tuple[list[str], str]:
    parts = {part["kind"]: part["where"] for part in result.stochastic}
    causes = [f"the model's {kind} ({where}) behaves differently in eval mode" for kind, where in parts.items()]
    if "BatchNorm" in parts:
        hint = ("BatchNorm's running statistics do not match the batch statistics the model trained with: check its "
                "momentum (near 0 they never catch up) and track_running_stats, and whether padding enters the statistics.")
    elif parts:
        hint = "Make the model's eval-mode forward compute what its training forward computes, apart from the noise it adds."
    else:
        causes.append("the model has no dropout, masking or BatchNorm that ctcdoctor recognises: something in forward() "
                      "branches on self.training")
        hint = "Find the code that branches on self.training in forward() and make the eval branch match training."
    return causes, hint + " Inference runs in eval mode, so this is the behaviour users will see."


def _budget(verdict: Verdict, result: OverfitResult, summary: dict[str, Any]) -> tuple[list[str], str]:
    """CTC070 budget / plateau: still falling (more steps) or stuck (what to try)."""
    causes: list[str] = []
    falling, lr, more = still_falling(summary), result.lr, suggested_steps(result.steps_run)
    by_flag = result.parameters.get("freeze_except_head")
    decodes = result.final_decode or result.train_decode
    extended = result.budget.get("extended_to")
    if falling and result.timed_out:
        causes.append(f"the loss was still falling when --timeout cut the training at step {result.steps_run}")
    elif falling:
        causes.append("the loss was still falling when the step budget ran out"
                      + (f", extended from {result.budget['steps']} to {extended} steps while it kept improving" if extended else ""))
    if any(list(d) != list(t) and list(d) == _collapse_repeats(list(t)) for d, t in zip(decodes, result.targets)):
        causes.append("the decode only lacks doubled labels: the model has not learned the blank between equal neighbours "
                      "(more frames per label helps, CTC002)")
    if lr is not None and lr < SMALL_LR and _own_lr_fix(result):
        causes.append(f"learning rate {lr:g} is small: try {DEFAULT_LR:g}")
    if result.parameters.get("frozen") and not by_flag:
        causes.append(f"{result.parameters['frozen']:,} of {result.parameters.get('total', 0):,} parameters are frozen (requires_grad=False)")
    if by_flag:
        causes.append(f"only the head ({result.head}) was trained (--freeze-except-head): it may lack the capacity alone")
    if falling:
        hint = f"The loss was still falling: run longer (--steps {more})"
        raise_lr = lr is not None and lr < SMALL_LR and _own_lr_fix(result)
        hint += f" or raise the learning rate to {DEFAULT_LR:g} (--lr {DEFAULT_LR:g})." if raise_lr else "."
        if by_flag:
            hint += " If it still does not fit, run without --freeze-except-head: if the whole model fits, the head alone is too small (not a bug)."
    elif by_flag:
        hint = ("The loss stopped falling: run without --freeze-except-head; if the whole model fits, the head alone "
                "is too small for this sample (not a bug).")
    else:
        hint = ("The loss stopped falling: run --lr-probe to see whether another learning rate fits, and "
                "--freeze-except-head to tell a feature-extractor problem from a loss problem; fix the static findings listed.")
    return causes, hint


def _collapse_repeats(sequence: Sequence[Any]) -> list[Any]:
    return [item for position, item in enumerate(sequence) if position == 0 or item != sequence[position - 1]]


def _advice(verdict: Verdict, result: OverfitResult, summary: dict[str, Any], static: Sequence[Finding],
            context: dict[str, Any]) -> tuple[list[str], str]:
    if verdict.code == "CTC072":
        return _too_fast(verdict, result)
    if verdict.code == "CTC071":
        return _collapse(verdict, result, summary, context)
    if verdict.kind in ("blank_phase", "blank_phase_ending"):
        return _blank_phase(verdict, result, summary, context)
    if verdict.kind in ("dead", "clipped"):
        return _dead(verdict, result, static)
    if verdict.kind == "eval_mode":
        return _eval_mode(result)
    if verdict.kind == "unconfirmed":
        return _unconfirmed(result, context)
    return _budget(verdict, result, summary)


def _unconfirmed(result: OverfitResult, context: dict[str, Any]) -> tuple[list[str], str]:
    """CTC070/073 unconfirmed: the decode became exact as the budget ran out; only more steps can confirm the fit."""
    streak, patience = final_streak(result)[0], context.get("patience", DEFAULT_PATIENCE)
    cause = (f"not yet confirmed: a fit needs the decode exact at {patience} evaluations in a row, and the run "
             f"ended after {streak}")
    return [cause], (f"Nothing here points at a problem: the run fitted just as its steps ran out. Run longer to "
                     f"confirm it (--steps {suggested_steps(result.steps_run)}).")


def _probe(result: OverfitResult) -> tuple[str, str] | None:
    """The LR probe's conclusion as a cause and a hint, when it points at the learning rate."""
    probe = result.lr_probe
    if not probe or probe.get("verdict") not in ("too_low", "too_high", "not_lr"):
        return None
    suggested = probe.get("suggested_lr")
    if probe["verdict"] == "not_lr" or suggested is None:
        return probe["conclusion"], ""
    if probe.get("fitted_at_suggested"):
        return probe["conclusion"], f"Use --lr {suggested:g} (the learning rate that fitted in the probe)."
    return probe["conclusion"], f"Try --lr {suggested:g}, ten times further the way the probe's losses point (or --lr-probe from there)."


def explain_failure(verdict: Verdict, result: OverfitResult, static: Sequence[Finding], context: dict[str, Any]) -> Finding:
    """The CTC070-074 finding: what happened (numbers), what to change, and the evidence."""
    summary = result.loss_summary()
    if verdict.code == "CTC074":
        return _negative(verdict, result, summary, static, context)
    message = _message(verdict, result, summary)
    causes, hint = _advice(verdict, result, summary, static, context)
    probe = _probe(result)
    if probe is not None:
        causes.insert(0, probe[0])
        hint = (probe[1] + " " + hint).strip() if probe[1] else hint
    inputs = input_causes(static)  # first, before the learning rate and "run longer": the features themselves
    causes[:0] = [cause for _, (cause, _) in inputs]
    hint = " ".join([fix for _, (_, fix) in inputs] + [hint])
    if verdict.code == "CTC073" and result.batch and verdict.kind != "unconfirmed":
        causes.insert(0, result.batch.get("cause", ""))
        hint = result.batch.get("advice") or hint
    if note_is_cause(result.normalisation):  # a neutral note on the output (log_softmax as HF takes it) is no cause
        causes.append(result.normalisation)
    for item in static:
        named = (verdict.kind in ("dead", "clipped") and item.code == "CTC027"  # already the first cause
                 or any(f"({item.code}, reported above" in cause for cause in causes))
        if item.severity.value in ("error", "warning") and item.code not in result.normalisation and not named:
            causes.append(f"{item.code} {item.title} (reported above)")
    static_errors = sorted({item.code for item in static if item.severity.value == "error"} - {code for code, _ in inputs})
    if static_errors and verdict.kind not in ("dead", "clipped"):
        hint = f"Fix {', '.join(static_errors)} first (reported above), then run overfit again. " + hint
    causes = [cause for cause in causes if cause]
    if causes:
        message += " Likely causes: " + "; ".join(causes) + "."
    message, hint = _cut(result, message, hint)
    return finding(verdict.code, message, hint, _evidence(verdict, result, summary, causes, context),
                   title=_title(verdict))


def _cut(result: OverfitResult, message: str, hint: str) -> tuple[str, str]:
    """A run that --timeout cut: say the verdict is judged on the steps run, and provisional while still learning."""
    cut = result.timed_out
    if not cut:
        return message, hint
    limit = f"--timeout {cut['timeout']:g} s" if cut.get("timeout") is not None else "--timeout"
    message += f" Training was cut by {limit} at step {cut['step']} of {cut['budget']}: judged on the steps run"
    if not cut.get("still_falling"):
        return message + ".", hint
    return (message + ", the loss still falling, so this verdict is provisional.",
            f"Rerun with a larger --timeout or fewer --steps: the run was cut while the loss still fell. {hint}")


def _negative(verdict: Verdict, result: OverfitResult, summary: dict[str, Any], static: Sequence[Finding],
              context: dict[str, Any]) -> Finding:
    """CTC074: the loss went below 0, so the criterion is not given log-probabilities (whatever the decode did)."""
    found = negative_loss(result.losses)
    assert found is not None, "CTC074 needs a negative loss"
    kind = context.get("output_kind")
    blank = blank_cause(kind, static, context.get("target_labels", ()), context.get("blank"))
    in_criterion = None if blank else criterion_cause(kind, static)
    named = blank or in_criterion
    causes = [f"{item.code} {item.title} (reported above)" for item in static
              if item.severity.value in ("error", "warning") and item.code in ("CTC020", "CTC021", "CTC024", "CTC030")]
    message = negative_words(found, _label(result), kind, named)
    if result.fitted:
        message += " The decode matched the target anyway, but training on this loss is not training CTC."
    confirmed = [cause for cause in causes if not (named and cause.startswith("CTC030"))]  # named in the words already
    if confirmed:
        message += " Confirmed by: " + "; ".join(confirmed) + "."
    evidence = {**_evidence(verdict, result, summary, causes, context),
                "cause": "blank_in_targets" if blank else "criterion" if in_criterion else kind}
    # The model already outputs log-probabilities: the headline must not send the user looking for a softmax.
    title = "overfit loss is negative: the targets contain the loss's blank" if blank else None
    return finding("CTC074", message, named.fix if named else negative_fix(kind), evidence, title=title)


def _title(verdict: Verdict) -> str | None:
    return {
        "blank_phase": "overfit still in the all-blank phase when the step budget ran out",
        "blank_phase_ending": "overfit still leaving the all-blank phase when the step budget ran out",
        "dead": "overfit cannot start: no gradient reaches the weights",
        "eval_mode": "overfit fits in train mode only, not in eval mode",
        "unconfirmed": "overfit fitted as the step budget ran out: not yet confirmed",
        "exploding": "overfit gradients exploded",
        "clipped": "overfit cannot reach some labels: their scores are clipped",
    }.get(verdict.kind)


def _evidence(verdict: Verdict, result: OverfitResult, summary: dict[str, Any], causes: list[str],
              context: dict[str, Any]) -> dict[str, Any]:
    falling = still_falling(summary)
    return {
        "samples": list(result.samples),
        "kind": verdict.kind,
        "step": verdict.step,
        "steps": result.steps_run,
        "suggested_steps": suggested_steps(result.steps_run) if (falling or verdict.kind.startswith("blank_phase")) else None,
        "loss": summary,
        "targets": list(result.targets),
        "last_decode": list(result.final_decode or result.train_decode),
        "train_decode": list(result.train_decode),
        "likely_causes": causes,
        "lr": result.lr,
        "optimizer": result.optimizer,
        "loss_source": result.loss_source,
        "blank_bias_gap": context.get("blank_bias_gap"),
        "clipping": result.clipping,
        "stochastic": result.stochastic,
        "lr_probe": result.lr_probe,
        **({"timed_out": dict(result.timed_out)} if result.timed_out else {}),  # only on a run --timeout cut
    }
