"""Rules on what the model outputs (codes CTC220-CTC225), judged from the training monitor's numbers.

The monitor measures its outputs every `every` steps (`ctcdoctor.training.outputs`) and writes
the numbers to its JSONL (`blank_ratio`, `empty_rate`, `entropy`, `infeasible`, `evaluated`,
`alt_decode_rate`, ...). These rules read those series, never the tensors, so the monitor
live and `ctcdoctor logs` on its JSONL reach the same verdicts. The curve rules (CTC200-CTC215)
judge the loss; these add what only the outputs show:

* CTC220 (info): the early blank phase, still within its budget;
* CTC221 (error): blank collapse: the blank phase outlived its budget, or came back after the
  model had emitted labels;
* CTC222 (error): the decodes match the targets only with another blank index;
* CTC223 (warning): samples CTC cannot align, hidden when the loss stays finite;
* CTC224 (error): the outputs are still near uniform after the budget: the model never left
  its initialisation;
* CTC225 (error): the outputs given as log-probabilities are normalised over time or over the
  batch (log_softmax over the wrong axis), or are probabilities.

CTC220 and CTC221 live in `rules.blank_phase`, the numbers they read in `rules.evaluations`
(both re-exported here). The budget is `Options.patience` (steps), kept once the run is over
(`Options.finished`: a run that ended within it is too short to judge); without a budget
(patience 0) a phase counts when it reaches the end and covers at least 35% of the run, as the
curve rules count plateaus. CTC224 at a finished run's end within the budget only when the
logged learning rate explains it.
"""
from __future__ import annotations

import math

import numpy as np

from ctcdoctor.findings import Finding
from ctcdoctor.registry import document, finding
from ctcdoctor.training.curve import fmt
from ctcdoctor.training.rules.blank_phase import blank_phase, check_blank_phase, covers_the_end, over_budget, still_falling
from ctcdoctor.training.rules.context import Analysis
from ctcdoctor.training.rules.evaluations import Evaluations
from ctcdoctor.training.rules.lr_advice import raise_lr

document(
    "CTC222",
    "error",
    "the decodes match the targets only with another blank index",
    """
    **What it means.** Decoded with the blank index the monitor was given, the outputs are far
    from their targets; decoded with the other usual blank index (the last class instead of
    0, or 0 instead of the last class) they are close. The loss trains that other class as
    the blank, so the decoder, the metric and the monitor read the model wrong: a model that
    learns well looks broken (CER near 1) or a broken one looks fine.

    **Example.** `error CTC222 with blank=0 the decodes have CER 0.93; with blank=27 (the last
    class) CER 0.08: the loss treats class 27 as the blank.`

    **Fix.** Use one blank index everywhere: `F.ctc_loss(..., blank=B)`, the greedy decoder
    (`ctcdoctor.ctc.greedy_decode(..., blank=B)`), the monitor (`blank=B`). TensorFlow's
    `tf.nn.ctc_loss(blank_index=-1)` and Keras' `ctc_batch_cost` use the last class; PyTorch,
    Hugging Face (`pad_token_id`) and `keras.ops.ctc_loss(mask_index=0)` use 0 by default.
    """,
)

document(
    "CTC223",
    "warning",
    "samples CTC cannot align are in the training batches",
    """
    **What it means.** Some evaluated samples have fewer output frames than their labels plus
    adjacent repeats (a repeated letter needs a blank frame between the two): no alignment
    exists, their CTC loss is infinite. With `zero_infinity=True` (or a loss that filters
    them) their loss is silently set to 0, so the curve looks clean while those samples teach
    nothing: this finding makes them visible. Without it their loss is inf (CTC200).

    **Example.** `warning CTC223 3 of 96 evaluated samples (3.1%) at steps 100-600 cannot be
    aligned (fewer frames than labels + repeats); the loss stayed finite there, so they are
    zeroed (zero_infinity).`

    It is an error when they are a fifth or more of the evaluated samples: that much of the
    data teaches nothing, and the loss swings from batch to batch with how many of them a batch
    holds (a swinging curve is then theirs: CTC206's learning-rate advice is withheld).

    **Fix.** Run `ctcdoctor scan SPEC` to list every such sample. Downsample time less (a
    smaller stride or pooling), drop or split those samples, or fix their lengths (output
    lengths after subsampling, not raw frames).
    """,
)

document(
    "CTC224",
    "error",
    "the outputs are still near uniform: the model never left its initialisation",
    """
    **What it means.** Over the whole run so far, longer than the budget, the model's
    output distribution stayed near uniform: the mean frame entropy is at least 90% of ln(C),
    the entropy of a uniform guess. A CTC model that receives updates leaves uniform within
    tens of steps (first towards blank); one that does not is not being trained. The loss
    view of the same failure is CTC205 (never left its starting level); this replaces it. A
    run whose loss still falls over its second half is moving, however uniform its outputs
    still are, and is not reported. A run that ended before the budget ran out (a smoke test,
    a run stopped early) is too short to judge: this finding as info ("Too short to judge ...
    judging it takes a run to step N", "Train longer"), not an error, unless the logged
    learning rate explains the uniform outputs (that is a mistake however short the run).

    **Example.** `error CTC224 the mean frame entropy stayed at 3.29 nats (100% of ln(27) =
    3.30) over steps 1-2,400; the blank probability is 0.037 (1/C = 0.037).`

    **Fix.** When the logged learning rate is far below the usual range (10x under Adam's
    1e-4 to 1e-3 for CTC, or 0), that is the likely cause: the finding names it and says by
    how much to raise it. Otherwise check that the optimizer holds the model's parameters (built after the model, or
    after moving it to the device) and its learning rate is not 0, that no layer is frozen by
    mistake (`requires_grad=False`), that the loss is computed from the model output (not a
    detached copy, not under `torch.no_grad()`), and that `optimizer.step()` is called.
    `ctcdoctor overfit SPEC` tests one batch in a minute.
    """,
)

document(
    "CTC225",
    "error",
    "the log-probabilities are not normalised over the classes",
    """
    **What it means.** The outputs handed to the monitor as `log_probs` (what the loss gets)
    are not log-probabilities over the classes: exp of them sums to 1 over the time axis or over
    the batch axis instead (log_softmax taken over the wrong dimension: `dim=0` or `dim=1` of a
    (T, N, C) output), or they are probabilities (softmax, not log_softmax). CTC then trains on
    numbers that are not a distribution per frame: the loss still falls, and the decodes stay
    poor. `ctcdoctor check` reports the same mistake before training as CTC024 or CTC020.
    Outputs that are not normalised anywhere (raw logits whose loss applies log_softmax itself)
    are not flagged.

    **Example.** `error CTC225 at step 100 the log-probabilities sum to 1 over the time axis
    (median |logsumexp| 0 nats over time, 2.91 over the classes): log_softmax ran over time.`

    **Fix.** Take log_softmax over the class axis: `log_softmax(dim=-1)` (or `dim=2` of (T, N, C)),
    or `log_softmax` instead of `softmax`; the monitor then needs nothing else.
    """,
)
NORMALISED_GAP = 1e-3
"""CTC225: an axis counts as normalised when the median |logsumexp| over it is below this (nats)..."""
UNNORMALISED_GAP = 0.05
"""... and the classes as not normalised when theirs is above this."""
MISMATCH_CER = 0.6
"""Blank mismatch: CER with the given blank at least this..."""
MISMATCH_OTHER = 0.35
"""... CER with the other blank at most this..."""
MISMATCH_RATIO = 0.5
"""... and at most this share of the first."""
UNIFORM_ENTROPY = 0.9
"""Near uniform: mean frame entropy at least this share of ln(C)."""
__all__ = ["Evaluations", "blank_phase", "check_blank_phase", "diagnose_outputs", "merge"]


def check_blank_mismatch(analysis: Analysis, evaluations: Evaluations, blank: int | None) -> list[Finding]:
    """CTC222: the decodes match the targets only with the other usual blank index."""
    cer, other = evaluations.get("cer"), evaluations.get("alt_decode_rate")
    if not (np.isfinite(cer[-1]) and np.isfinite(other[-1])):
        return []
    now, alt = float(cer[-1]), float(other[-1])
    if now < MISMATCH_CER or alt > MISMATCH_OTHER or alt > MISMATCH_RATIO * now:
        return []
    classes = analysis.options.classes
    given = 0 if blank is None else blank
    swapped = (classes - 1 if given == 0 else 0) if classes else None
    name = f"blank={swapped}" + (" (the last class)" if given == 0 else "") if swapped is not None else "the other blank index"
    step = int(evaluations.steps[-1])
    message = (f"at {analysis.step(step)} the decodes have CER {now:.2f} with blank={given}, and CER {alt:.2f} with {name}: "
               f"the loss treats {'class ' + str(swapped) if swapped is not None else 'that class'} as the blank.")
    hint = (f"Use one blank index in the loss, the decoder and the monitor (blank={swapped if swapped is not None else 'B'}); "
            "tf.nn.ctc_loss(blank_index=-1) and Keras' ctc_batch_cost use the last class, PyTorch and Hugging Face use 0.")
    evidence = {"steps": [step, step], "cer": now, "other_cer": alt, "blank": given, "other_blank": swapped}
    return [finding("CTC222", message, hint, evidence)]


def _infeasible_counts(analysis: Analysis, evaluations: Evaluations) -> tuple[np.ndarray, str, dict] | None:
    """Steps whose batch held samples CTC cannot align, a phrase saying how many, and evidence: from the count the
    monitor takes at every step when it has it (the bad batch is rarely an evaluated one), else from the evaluations."""
    series = evaluations.infeasible_steps
    if series is not None and len(series) > len(evaluations):
        counts = np.nan_to_num(series.values, nan=0.0)
        steps = series.steps[counts > 0]
        if not steps.size:
            return None
        count = int(counts.sum())
        phrase = (f"{count} sample{'s' if count != 1 else ''} in the batches of {steps.size} of {len(series)} steps "
                  f"({analysis.steps(int(steps[0]), int(steps[-1]))})")
        return steps, phrase, {"infeasible": count, "batches": int(steps.size), "counted_steps": len(series)}
    infeasible = np.nan_to_num(evaluations.get("infeasible"), nan=0.0)
    seen = np.flatnonzero(infeasible > 0)
    if not seen.size:
        return None
    evaluated = np.nan_to_num(evaluations.get("evaluated"), nan=0.0)
    count, total = int(infeasible.sum()), int(evaluated.sum())
    steps = evaluations.steps[seen]
    phrase = (f"{count} of {total} evaluated samples ({count / max(total, 1):.1%}) at "
              f"{analysis.steps(int(steps[0]), int(steps[-1]))}")
    return steps, phrase, {"infeasible": count, "evaluated": total}


def check_infeasible(analysis: Analysis, evaluations: Evaluations) -> list[Finding]:
    """CTC223: samples with too few frames, counted from the lengths whatever the loss shows."""
    seen = _infeasible_counts(analysis, evaluations)
    if seen is None:
        return []
    steps, phrase, counts = seen
    loss = analysis.curves.loss
    where = np.searchsorted(loss.steps, steps)
    at = (where < loss.steps.size) & (loss.steps[np.minimum(where, max(loss.steps.size - 1, 0))] == steps) if loss.steps.size else \
        np.zeros(steps.shape, dtype=bool)
    values = loss.values[where[at]]
    infinite = int((~np.isfinite(values)).sum())
    if infinite:
        seen_loss = f"the loss was non-finite at {infinite} of those steps (CTC200)"
    else:
        seen_loss = "the loss stayed finite there, so they are zeroed (zero_infinity=True) and teach nothing"
    message = f"{phrase} cannot be aligned (fewer frames than labels + repeats); {seen_loss}."
    hint = ("Run `ctcdoctor scan SPEC` to list every such sample; downsample time less, drop or split those samples, or fix "
            "their lengths (output lengths after subsampling).")
    evidence = {"steps": [int(steps[0]), int(steps[-1])], **counts,
                "at_steps": [int(step) for step in steps[:20]], "loss_non_finite": infinite}
    share = _evaluated_share(evaluations)
    if share is None or share < INFEASIBLE_ERROR_SHARE:
        return [finding("CTC223", message, hint, evidence)]
    # So many samples are zeroed (or inf) that the loss jumps from batch to batch with how many a batch holds: that,
    # not the learning rate, is what a swinging curve shows (CTC206 is dropped in `merge`).
    message += (f" That is {share:.0%} of the evaluated samples: the loss swings from batch to batch with how many of "
                "them a batch holds.")
    hint += " Fix them before tuning the learning rate or the batch size: the curve's swings are theirs."
    evidence["evaluated_share"] = share
    return [finding("CTC223", message, hint, evidence, severity="error")]


#: A share of the evaluated samples that CTC cannot align at which CTC223 is an error: a fifth of the data teaches
#: nothing, and the loss's swings come from it.
INFEASIBLE_ERROR_SHARE = 0.2


def _evaluated_share(evaluations: Evaluations) -> float | None:
    """Infeasible samples over evaluated samples, from the evaluations (None when none were counted)."""
    infeasible = np.nan_to_num(evaluations.get("infeasible"), nan=0.0)
    evaluated = np.nan_to_num(evaluations.get("evaluated"), nan=0.0)
    total = float(evaluated.sum())
    return float(infeasible.sum()) / total if total > 0 else None


def check_uniform(analysis: Analysis, evaluations: Evaluations) -> list[Finding]:
    """CTC224: the output distribution never left uniform."""
    classes = analysis.options.classes
    entropy = evaluations.get("entropy")
    if not classes or classes < 2 or len(evaluations) < 2 or not np.isfinite(entropy).all():
        return []
    uniform = math.log(classes)
    if float(entropy.min()) < UNIFORM_ENTROPY * uniform:
        return []
    start = min(analysis.loss.first_step, int(evaluations.steps[0]))
    lr = _peak_lr(analysis)
    cause = raise_lr(analysis.optimizer, lr)
    # Within the budget (a run that ended before it is too short to judge) unless the logged rate explains the
    # uniform outputs: a rate 1000x below range is a mistake however short the run.
    whole = analysis.options.finished and covers_the_end(analysis, start, len(evaluations))
    early = not over_budget(analysis, start, len(evaluations)) and not (whole and cause is not None)
    if early and not whole:
        return []
    if still_falling(analysis):
        # The loss fell: updates reach the weights, the outputs are on their way (first towards blank). A model
        # that never left its initialisation keeps its first loss; "check the optimizer" would misdirect here.
        return []
    end = analysis.loss.last_step
    blank_prob = evaluations.get("blank_prob")[-1]
    low, high = f"{float(entropy.min()) / uniform:.0%}", f"{float(entropy.max()) / uniform:.0%}"
    message = (f"the mean frame entropy stayed at {fmt(float(np.median(entropy)))} nats ({low if low == high else low + '-' + high} "
               f"of ln({classes}) = {uniform:.3g}) over {analysis.steps(start, end)}")
    if np.isfinite(blank_prob):
        message += f"; the blank probability is {float(blank_prob):.3f} (1/C = {1 / classes:.3f})"
    grad = analysis.curves.grad_norm
    if grad is not None and len(grad) and np.all(grad.values[np.isfinite(grad.values)] == 0):
        message += "; the gradient norm is 0 at every logged step: no gradient reaches the weights"
    hint = ("Check that the optimizer holds the model's parameters and its learning rate is not 0, that no layer is frozen "
            "(requires_grad=False), that the loss comes from the model output (not detached, not under no_grad) and that "
            "optimizer.step() runs; `ctcdoctor overfit SPEC` tests one batch.")
    if cause is not None:  # the logged rate explains it: say so first, the other causes after
        message += f"; the learning rate was {fmt(lr)} at most"  # type: ignore[arg-type]
        hint = f"{cause}: the likely cause. If it is not: c{hint[1:]}"
    elif analysis.options.finished:
        hint += f" If all of that holds, the run was too short for this model: train longer than {end:,} {analysis.unit}s."
    evidence = {"steps": [start, end], "entropy": float(np.median(entropy)), "uniform_entropy": uniform, "classes": classes,
                "lr": lr}
    if early:  # a finished run shorter than its budget: what the live verdict would have said, not an error
        patience = analysis.options.patience
        message += (f". Too short to judge: outputs this close to uniform are an error (CTC224) once they last "
                    f"{patience:,} {analysis.unit}s (patience {patience:,}), and the run ended after {end - start:,}: "
                    f"judging it takes a run to {analysis.step(start + patience)}")
        hint = ("Train longer: the run ended before it could be judged. If the outputs stay near uniform, check that "
                "the optimizer holds the model's parameters and its learning rate is not 0, that no layer is frozen "
                "(requires_grad=False), that the loss comes from the model output (not detached, not under no_grad) and "
                "that optimizer.step() runs; a smaller budget (Monitor(patience=...), `ctcdoctor logs --patience`) "
                "judges it sooner.")
        return [finding("CTC224", message + ".", hint, {**evidence, "judged_at": start + patience}, severity="info")]
    return [finding("CTC224", message + ".", hint, evidence)]


def _peak_lr(analysis: Analysis) -> float | None:
    """The highest finite logged learning rate, 0 included (None when not logged): a schedule that ends at 0 is
    no cause, a peak far below the usual range is."""
    lr = analysis.curves.lr
    finite = lr.values[np.isfinite(lr.values)] if lr is not None else np.zeros(0)
    return float(finite.max()) if finite.size else None


def check_normalisation(analysis: Analysis, evaluations: Evaluations) -> list[Finding]:
    """CTC225: the log-probabilities the loss gets are normalised over time or the batch, or are probabilities."""
    gaps = {key: evaluations.get(key)[-1] for key in ("class_norm_gap", "time_norm_gap", "batch_norm_gap", "prob_like")}
    step = int(evaluations.steps[-1])
    evidence = {"steps": [step, step], **{key: float(value) for key, value in gaps.items() if np.isfinite(value)}}
    if gaps["prob_like"] == 1.0:
        message = (f"at {analysis.step(step)} the outputs given as log-probabilities are probabilities: every value in [0, 1], "
                   "summing to 1 over the classes (softmax, not log_softmax).")
        hint = "Use log_softmax(dim=-1) instead of softmax at the head (the loss expects log-probabilities)."
        return [finding("CTC225", message, hint, evidence)]
    if not gaps["class_norm_gap"] > UNNORMALISED_GAP:
        return []
    for axis, key, dim in (("time", "time_norm_gap", 0), ("batch", "batch_norm_gap", 1)):
        if gaps[key] < NORMALISED_GAP:
            message = (f"at {analysis.step(step)} the log-probabilities sum to 1 over the {axis} axis (median |logsumexp| "
                       f"{fmt(float(gaps[key]))} nats over {axis}, {fmt(float(gaps['class_norm_gap']))} over the classes): "
                       f"log_softmax ran over the {axis} axis (dim={dim} of (T, N, C)), so no frame is a distribution over the classes.")
            hint = f"Take log_softmax over the classes: log_softmax(dim=-1), not dim={dim}."
            return [finding("CTC225", message, hint, evidence)]
    return []


#: Curve findings that say the run broke: the blank outputs that follow are no early blank phase (CTC220).
BROKEN_LOSS = ("CTC200", "CTC203")
#: Curve findings that an output finding explains (the same failure seen from the loss): dropped.
EXPLAINS = {"CTC221": ("CTC212", "CTC210"), "CTC222": ("CTC212", "CTC210"), "CTC224": ("CTC205", "CTC212", "CTC210", "CTC213")}


def diagnose_outputs(analysis: Analysis, evaluations: Evaluations | None, blank: int | None = None) -> list[Finding]:
    """The output rules on the monitor's evaluations (none when there are none)."""
    if evaluations is None or not len(evaluations):
        return []
    with np.errstate(invalid="ignore", divide="ignore"):
        return [*check_normalisation(analysis, evaluations), *check_uniform(analysis, evaluations),
                *check_blank_phase(analysis, evaluations), *check_blank_mismatch(analysis, evaluations, blank),
                *check_infeasible(analysis, evaluations)]


def merge(curve_findings: list[Finding], output_findings: list[Finding]) -> list[Finding]:
    """Both lists, without the curve findings that an output finding explains."""
    dropped = {code for found in output_findings for code in EXPLAINS.get(found.code, ())}
    if any(found.code == "CTC220" and found.evidence.get("still_falling") for found in output_findings):
        dropped |= set(EXPLAINS["CTC221"])  # a short run ended still learning: its loss is no blank plateau either
    if any(found.code in BROKEN_LOSS for found in curve_findings):  # blank after a blow-up is no early phase
        output_findings = [found for found in output_findings if found.code != "CTC220"]
    if any(found.code == "CTC224" for found in output_findings):
        output_findings = [found for found in output_findings if found.code not in ("CTC220", "CTC221")]
    if any(found.code == "CTC223" and found.severity.value == "error" for found in output_findings):
        dropped.add("CTC206")  # swings from zeroed samples, not from the learning rate (see check_infeasible)
    return [found for found in curve_findings if found.code not in dropped] + output_findings
