"""Non-finite values in the log: the loss (CTC200), a part of a summed loss (CTC201), the
gradient norm while the logged loss looks finite (CTC202)."""
from __future__ import annotations

import numpy as np

from ctcdoctor.findings import Finding
from ctcdoctor.registry import document, finding
from ctcdoctor.training.curve import fmt
from ctcdoctor.training.rules.context import Analysis
from ctcdoctor.training.series import Series

document(
    "CTC200",
    "error",
    "the logged loss is NaN or infinite",
    """
    **What it means.** Some logged loss values are NaN or inf. Two pictures: a few isolated
    non-finite steps between finite ones (single batches: an infeasible sample gives CTC an
    infinite loss, an fp16 overflow), or a loss that goes non-finite at some step and stays
    there (the weights themselves became NaN; nothing after that step is training). The
    finding gives the first non-finite step, how many there are, and the loss just before.

    **Example.** `error CTC200 loss is non-finite from step 3,400 to the end (1,200 of 5,000
    values: nan); the last finite value was 8.1 at step 3,390, up from 0.9 at step 3,000.`

    When the first non-finite value is +inf (and the loss was not rising before it), it is the
    CTC loss of a sample that cannot be aligned, whose NaN gradient then poisoned the weights:
    the finding says so and points at `ctcdoctor scan`, not at the learning rate. When the
    gradient norm was already non-finite at the last finite step, that step's batch is named.

    **Fix.** For a +inf first: `ctcdoctor scan SPEC`, drop or fix the samples it lists, or
    `zero_infinity=True`. For a NaN gradient first: check that step's batch for non-finite
    inputs or labels and skip non-finite steps. Otherwise, for a loss that stays NaN: lower the learning rate by 10x, clip gradients
    (`torch.nn.utils.clip_grad_norm_(params, 1.0)`), compute CTC in float32, and resume from a
    checkpoint before the first NaN. For isolated inf steps: find the infeasible samples
    (`ctcdoctor scan`: a target longer than its output frames allow) and fix their lengths;
    `zero_infinity=True` hides them rather than fixing them.
    """,
)

document(
    "CTC201",
    "error",
    "a part of the summed loss went non-finite",
    """
    **What it means.** The training loss is a sum of terms that are logged too (a CTC term and
    an attention or auxiliary term, `loss_ctc` + `loss_att`), and one of them went NaN or inf
    first. A sum is NaN as soon as one term is, so the total's curve hides which branch broke;
    this finding names it and the step.

    **Example.** `error CTC201 loss_ctc is inf from step 1,240 (first non-finite part); the
    total loss is non-finite from step 1,240; loss_att stays finite.`

    **Fix.** Debug the term named: for a CTC term, an infeasible sample (target longer than
    the frames: `ctcdoctor scan`) gives inf, and log-probabilities computed in float16 can
    overflow (compute CTC in float32). Guard the sum only after fixing the cause (masking a
    NaN term trains the other branch alone).
    """,
)

document(
    "CTC202",
    "warning",
    "the gradient norm is NaN or infinite while the logged loss is finite",
    """
    **What it means.** The logged gradient norm is NaN or inf at steps where the logged loss
    is finite (or not logged). Hugging Face's Trainer leaves non-finite losses out of the
    logged loss by default (`logging_nan_inf_filter=True`), so a run with NaN steps can show a
    clean loss curve; the gradient norm of the logging step is the trace left. With fp16 mixed
    precision a few inf norms early on are the loss scaler calibrating (those steps are
    skipped); many, or NaN, mean the updates themselves are broken.

    **Example.** `warning CTC202 grad_norm is non-finite at 14 of 300 logged steps (first at
    step 2,350: nan) while the logged loss stays finite: the Trainer's NaN filter hides these
    steps.`

    In a plain loop (or Lightning, Keras) nothing hides the loss: `optimizer.step()` applies the
    non-finite gradient, the weights turn NaN and the loss follows at the next step; the finding
    says so when it did (and CTC200 names that step's batch).

    **Fix.** Hugging Face: set `logging_nan_inf_filter=False` to see the real loss; clip gradients
    (`max_grad_norm=1.0`), lower the learning rate by 3-10x, and compute CTC in float32. In a
    loop: check that step's batch for non-finite inputs or labels, clip gradients, and skip
    steps whose gradient norm is non-finite. For a CTC model, infeasible samples are the usual
    source of inf: run `ctcdoctor scan`.
    """,
)

PERSISTENT_SHARE = 0.9
"""A loss whose values after the first non-finite one are at least 90% non-finite 'stays' non-finite."""


def _kinds(values: np.ndarray) -> str:
    nan, pos, neg = int(np.isnan(values).sum()), int(np.isposinf(values).sum()), int(np.isneginf(values).sum())
    parts = [f"{count} {name}" if count != values.size else name
             for count, name in ((nan, "nan"), (pos, "inf"), (neg, "-inf")) if count]
    return ", ".join(parts)


def first_nonfinite(series: Series) -> int | None:
    bad = np.flatnonzero(~np.isfinite(series.values))
    return int(series.steps[bad[0]]) if bad.size else None


def nonfinite_loss(analysis: Analysis, series: Series, what: str) -> list[Finding]:
    values, steps = series.values, series.steps
    bad = ~np.isfinite(values)
    count = int(bad.sum())
    if not count:
        return []
    where = np.flatnonzero(bad)
    first_index = int(where[0])
    after = bad[first_index:]
    persistent = after.mean() >= PERSISTENT_SHARE and bool(bad[-1])
    first_step, last_step = int(steps[first_index]), int(steps[where[-1]])
    before = np.flatnonzero(~bad[:first_index])
    evidence = {"series": series.tag, "steps": [first_step, int(steps[-1]) if persistent else last_step],
                "first_step": first_step, "count": count, "points": int(values.size), "kinds": _kinds(values[bad]),
                "persistent": bool(persistent)}
    context = ""
    if before.size:
        last_good = int(before[-1])
        evidence["last_finite"] = {"step": int(steps[last_good]), "value": float(values[last_good])}
        context = f"; the last finite value was {fmt(float(values[last_good]))} at {analysis.step(int(steps[last_good]))}"
        curve = analysis.curve(series)
        if curve.n >= 6:
            low = float(np.min(curve.smooth[: max(1, int(np.searchsorted(curve.bin_first_step, steps[last_good])))]))
            if values[last_good] > 2 * low > 0:
                context += f", up from {fmt(low)} earlier (it was diverging)"
                evidence["rising_before"] = True
    else:
        context = "; no finite value was ever logged"
    if persistent:
        message = (f"{analysis.called(series, what)} is non-finite from {analysis.step(first_step)} to the end "
                   f"({count:,} of {values.size:,} values: {_kinds(values[bad])}){context}")
        cause, hint = _persistent_cause(analysis, series, first_index, bool(evidence.get("rising_before")))
        message += cause + "."
        evidence["cause"] = "infeasible" if "cannot align" in cause else "gradient" if "gradient norm" in cause else None
    else:
        message = (f"{analysis.called(series, what)} is non-finite at {count:,} of {analysis.logged(values.size)} "
                   f"(first at {analysis.step(first_step)}: {_kinds(values[bad])}), finite again after each{context}.")
        hint = _transient_hint(values[bad])
    return [finding("CTC200", message, hint, evidence)]


def _transient_hint(bad_values: np.ndarray) -> str:
    """What makes a few batches non-finite, by what they logged: CTC's own inf is a sample it cannot align;
    NaN comes from the numbers before the loss."""
    inf = ("run `ctcdoctor scan` for infeasible samples (a target longer than its output frames) and fix their "
           "lengths")
    nan = ("look for NaN or inf in those batches' inputs (CTC040 of `ctcdoctor check SPEC` in the batches it reads), log() of a "
           "softmax that reached 0 (use log_softmax) and fp16 overflow (compute the CTC loss in float32 under autocast)")
    has_nan, has_inf = bool(np.isnan(bad_values).any()), bool(np.isinf(bad_values).any())
    if has_nan and has_inf:
        return f"Find the batches that give them: for inf, {inf}; for NaN, {nan}."
    if has_nan:
        return f"Find the batches that give NaN: {nan}."
    return f"Find the batches that give inf: {inf}; check for fp16 overflow (compute CTC in float32)."


def _bad_gradient_before(analysis: Analysis, first_step: int) -> tuple[int, float] | None:
    """The logged step just before `first_step` when its gradient norm was non-finite while its loss was
    finite (the update of that step wrote NaN into the weights), with that finite loss."""
    grad, loss = analysis.curves.grad_norm, analysis.curves.loss
    if grad is None or not len(grad):
        return None
    before = loss.steps < first_step
    if not before.any():
        return None
    step, value = int(loss.steps[before][-1]), float(loss.values[before][-1])
    at = np.flatnonzero(grad.steps == step)
    return (step, value) if at.size and not np.isfinite(grad.values[at[-1]]) else None


def _persistent_cause(analysis: Analysis, series: Series, first_index: int, rising: bool) -> tuple[str, str]:
    """What a loss that goes non-finite and stays so tells about its cause (a clause for the message), and the hint.

    +inf first, without a rise before it: one sample CTC cannot align (zero_infinity=False gives it an infinite
    loss, whose NaN gradient then poisons the weights), not a learning rate. A non-finite gradient norm at the
    last finite step: that step's update made the weights non-finite (a NaN/inf in its batch, most often)."""
    first_step = int(series.steps[first_index])
    resume = f"resume from a checkpoint before {analysis.step(first_step)}"
    if np.isposinf(series.values[first_index]) and not rising:
        clause = (f"; the first non-finite value, at {analysis.step(first_step)}, was +inf: the CTC loss of a sample it "
                  "cannot align (fewer output frames than labels + repeats, with zero_infinity=False), whose NaN gradient "
                  "then made the weights NaN")
        hint = ("Run `ctcdoctor scan SPEC` to list the samples CTC cannot align, and drop them or fix their lengths (output "
                "lengths after subsampling), or pass zero_infinity=True to the loss (the monitor's CTC223 still counts them); "
                f"{resume}. The learning rate is not the cause.")
        return clause, hint
    bad_grad = _bad_gradient_before(analysis, first_step)
    if bad_grad is not None:
        step, value = bad_grad
        clause = (f"; the gradient norm was already non-finite at {analysis.step(step)}, where the loss was still "
                  f"finite ({fmt(value)}): that step's update made the weights non-finite")
        hint = (f"Check the batch of {analysis.step(step)} for non-finite inputs or labels (torch.isfinite(inputs).all()); "
                "clip gradients (clip_grad_norm_(params, 1.0)) and skip steps whose gradient norm is non-finite (zero the "
                f"gradients instead of optimizer.step()); resume from a checkpoint before {analysis.step(step)}.")
        return clause, hint
    return "", ("Lower the learning rate by 10x, clip gradients (clip_grad_norm_(params, 1.0)), compute CTC in float32, "
                f"and {resume}.")


def check_nonfinite(analysis: Analysis) -> list[Finding]:
    curves = analysis.curves
    found = nonfinite_loss(analysis, curves.loss, "train loss")
    if curves.eval_loss is not None:
        found += nonfinite_loss(analysis, curves.eval_loss, "eval loss")
    found += _parts(analysis)
    found += _grad_norm(analysis)
    return found


def _parts(analysis: Analysis) -> list[Finding]:
    parts = analysis.curves.parts
    firsts = [(first_nonfinite(part), part) for part in parts]
    broken = sorted(((step, part) for step, part in firsts if step is not None), key=lambda item: item[0])
    if not broken:
        return []
    step, part = broken[0]
    total = analysis.curves.loss
    total_step = first_nonfinite(total)
    finite_parts = [other.tag for other in parts if first_nonfinite(other) is None]
    bad = ~np.isfinite(part.values)
    message = f"{part.tag} is {_kinds(part.values[bad])} from {analysis.step(step)} (the first part to go non-finite"
    message += f", {int(bad.sum()):,} of {len(part):,} values)"
    if total_step is not None:
        message += f"; the total {total.tag} is non-finite from {analysis.step(total_step)}"
    else:
        message += f"; the total {total.tag} stays finite, so something masks the broken term"
    if finite_parts:
        message += f"; {', '.join(finite_parts)} stay{'s' if len(finite_parts) == 1 else ''} finite"
    others = [f"{other.tag} from {analysis.step(other_step)}" for other_step, other in broken[1:]]
    if others:
        message += f"; also non-finite: {', '.join(others)}"
    hint = (f"Debug {part.tag} first: for a CTC term, find infeasible samples (`ctcdoctor scan`) and compute it in "
            "float32; fix the term rather than masking it in the sum.")
    evidence = {"series": part.tag, "steps": [step, int(part.steps[-1])], "first_step": step, "total": total.tag,
                "total_first_step": total_step, "finite_parts": finite_parts}
    return [finding("CTC201", message + ".", hint, evidence)]


def _grad_norm(analysis: Analysis) -> list[Finding]:
    grad = analysis.curves.grad_norm
    if grad is None:
        return []
    bad = ~np.isfinite(grad.values)
    if not bad.any():
        return []
    loss = analysis.curves.loss
    # grad-norm steps where the loss is logged finite, or not logged at all
    bad_steps = grad.steps[bad]
    index = np.minimum(np.searchsorted(loss.steps, bad_steps), max(len(loss) - 1, 0))
    logged_nonfinite = (loss.steps[index] == bad_steps) & ~np.isfinite(loss.values[index]) if len(loss) else False
    hidden = ~np.asarray(logged_nonfinite, dtype=bool) if len(loss) else np.ones(bad_steps.size, dtype=bool)
    if not hidden.any():
        return []  # the loss is non-finite at the same steps: CTC200 says it
    steps = bad_steps[hidden]
    first = int(steps[0])
    message = (f"{grad.tag} is non-finite at {int(hidden.sum()):,} of {analysis.logged(len(grad))} "
               f"(first at {analysis.step(first)}: {_kinds(grad.values[bad])}) while {analysis.called(loss, 'logged loss')} "
               "is finite there")
    later = first_nonfinite(Series(loss.tag, loss.steps[loss.steps > first], loss.values[loss.steps > first]))
    if analysis.options.trainer in (None, "huggingface"):
        message += (" (a trainer that leaves NaN/inf losses out of its logged mean, as Hugging Face's does by default, "
                    "hides these steps)")
        hint = ("Log the real loss (Hugging Face: logging_nan_inf_filter=False), clip gradients (max_grad_norm=1.0), lower "
                "the learning rate by 3-10x, and look for infeasible samples with `ctcdoctor scan`.")
    else:  # a plain loop (or Lightning, Keras): nothing hides the loss, and optimizer.step() applies that gradient
        message += ": optimizer.step() applies such a gradient unless the loop skips it"
        hint = (f"Check the batch of {analysis.step(first)} for non-finite inputs or labels (torch.isfinite(inputs).all()), "
                "clip gradients (clip_grad_norm_(params, 1.0)) and skip steps whose gradient norm is non-finite; look for "
                "infeasible samples with `ctcdoctor scan`.")
    if later is not None:
        message += f"; the loss is non-finite from {analysis.step(later)}: the weights are now non-finite (CTC200)"
    evidence = {"series": grad.tag, "steps": [first, int(steps[-1])], "first_step": first, "count": int(hidden.sum()),
                "points": len(grad), "loss_nonfinite_after": later}
    return [finding("CTC202", message + ".", hint, evidence)]
