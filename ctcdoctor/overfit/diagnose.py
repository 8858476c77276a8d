"""Why an overfit run failed: the verdict (CTC070-CTC074) and its finding, and the codes' documentation.

`ctcdoctor.overfit.rules` holds the pure rules that classify a failed run, `ctcdoctor.overfit.explain`
the words; this module gathers the run's numbers, calls both, and documents the codes it raises.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ctcdoctor.findings import Finding
from ctcdoctor.overfit.explain import explain_failure
from ctcdoctor.overfit.rules import Verdict, classify_failure, collapse_causes, final_streak
from ctcdoctor.registry import document

if TYPE_CHECKING:  # pragma: no cover
    from ctcdoctor.overfit.result import OverfitResult

__all__ = ["Verdict", "classify_failure", "collapse_causes", "diagnose", "explain_failure"]


def _labels_from(result: OverfitResult) -> int | None:
    """The first evaluation step whose eval-mode decode was not empty (for every sample with a target)."""
    for evaluation in result.evaluations:
        if any(decode for decode in evaluation.decodes):
            return evaluation.step
    return None


def diagnose(result: OverfitResult, static: Sequence[Finding], context: dict[str, Any]) -> Verdict:
    """The verdict on a run that did not fit; `context` carries what the run measured beyond the result
    (`blank_bias_gap`, `frozen_modules`)."""
    last = result.evaluations[-1] if result.evaluations else None
    final_blank = last.blank_ratio if last else 0.0
    decodes = list(last.decodes) if last else list(result.final_decode)
    empty = bool(decodes) and all(len(d) == 0 for d in decodes) and any(result.targets)
    # The eval-mode decode already exact at the end, not yet at `patience` evaluations in a row: the budget ran out as
    # the run fitted, whatever the train-mode decode says.
    streak, exact_from = final_streak(result)
    train_fits = bool(result.train_decode) and list(result.train_decode) == list(result.targets) and not streak
    explained = bool(collapse_causes(result, context)) or any(item.severity.value == "error" for item in static)
    return classify_failure(result.losses, final_blank, empty, result.nonfinite_step, collapse_explained=explained,
                            norms=result.norms, train_fits=train_fits, labels_from=_labels_from(result),
                            samples=len(result.samples), clipped=bool(result.clipped_labels), exact_from=exact_from)


# ----------------------------------------------------------------------------- the codes

document(
    "CTC070",
    "error",
    "single-sample overfit failed within its budget",
    """
    **What it means.** `ctcdoctor overfit` trained a copy of the model on one sample for the
    whole step budget, and the greedy decode in eval mode (as inference runs) never matched the
    target stably, while the loss neither went non-finite nor collapsed to all-blank outputs. A
    healthy CTC set-up memorises one sample in a few hundred steps. The finding says which case
    it measured: the loss still falling (the budget was short); a plateau; the all-blank phase
    that CTC training starts with, still going on or only just ending; a dead network (gradient
    norms near zero from the first step: nothing reaches the weights); a model that fits in
    train mode but not in eval mode; or a decode that became exact only as the budget ran out,
    too few evaluations in a row to count as a fit (not yet confirmed: run longer).

    **Example.** `error CTC070 after 1000 steps sample 0 decodes as "dier" for "dinner"
    (CER 0.33); loss 10.4 at step 1, best 0.21 at step 640, flat (0.22 → 0.21 over the last
    250 steps).` The decode drops the doubled "nn": the model never learned the blank that must
    separate two equal labels. Or: `nothing reaches the weights on sample 0: the median gradient
    norm of the first steps is 9e-11`, with CTC027 (a ReLU on the output scores) reported above.

    Without `--steps`, a run still learning at the default 1000 steps (the loss clearly falling,
    the decode at its best) trains on, up to 4000 steps, before this is reported.

    **Fix.** Read the likely causes in the finding. If the loss was still falling, give it
    more steps (`--steps`) or a higher `--lr`; `--lr-probe` tries lr/10, lr and 10·lr and says
    which fits. If it plateaued, look at the static findings listed with it (a tight length
    budget, CTC002; un-normalised inputs), and run again with `--freeze-except-head`: if the
    head alone can fit, the feature extractor is the problem (frozen, dead ReLUs, too much
    downsampling); if not, the problem is the loss wiring. A dead network: remove what cuts the
    gradient (a ReLU or clamp on the output, CTC027; a `.detach()`). A fit in train mode only:
    make the eval-mode forward match training (BatchNorm statistics, code under `self.training`).
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

    **Example.** `error CTC071 after 1000 steps blank is the argmax on 100% of the frames and
    the decode is empty ("" for "dinner"); ... Likely causes: the head (fc) bias favours blank
    by 8.0 nats; learning rate 1e-06 is tiny: Adam-like optimizers want about 0.001.`

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
    **What it means.** While overfitting the sample the loss went NaN or infinite, ended well
    above where it started (or well above the best it reached), jumped up and down instead of
    settling, or the gradient norm grew a hundredfold: the updates are too large. The finding
    gives the step where it happened, with words that match its numbers ("rose from 13.6 to 16.3").

    **Example.** `error CTC072 the loss diverged on sample 0: loss 10.4 at step 1, best 0.591 at
    step 565, rose from 13.6 to 16.3 over the last 250 steps; highest at step 5 (161).`

    **Fix.** Lower the learning rate (ten times is a good first try: `--lr`, or `--lr-probe`),
    keep gradient clipping on, compute CTC in float32 (CTC025), and make sure the model emits
    log-probabilities (CTC020, CTC024): `log` of a softmax underflows to `-inf`. An optimizer
    built for SGD learning rates (0.1-1) and used with Adam diverges like this.
    """,
)

document(
    "CTC073",
    "error",
    "small-batch overfit failed: not every sample fits",
    """
    **What it means.** `ctcdoctor overfit --samples 0-7` trained a copy of the model on a small
    batch, and within the step budget the eval-mode decode did not match every target: the
    finding says how many samples fit, which did not, and, for the worst one, whether it fits
    when trained alone. That tells a batch problem from a sample problem.

    **Example.** `error CTC073 after 1000 steps 6 of 8 samples decode exactly; samples 3, 5 do
    not ("dier" for "dinner"; ...). Likely causes: sample 5 fits alone in 180 steps, not in the
    batch of 8: the batch is the problem, not the sample.`

    **Fix.** If the worst sample does not fit alone either, run `overfit --sample N` on it for
    its own diagnosis; if its lone run also ran out of steps with the loss still falling, the
    budget was too small for both, and the finding asks for more `--steps` instead. If it fits
    alone, the batch is the problem: the loss is a mean over the
    samples, so each one gets a share of every step. With Adam (which normalises the step) keep
    the learning rate and give the batch more steps; with SGD more steps or a larger learning
    rate (`--lr-probe`). BatchNorm sees the padded frames of shorter samples in its batch
    statistics: mask them, or use LayerNorm/GroupNorm.
    """,
)

document(
    "CTC074",
    "error",
    "overfit loss is negative: the loss is not given log-probabilities",
    """
    **What it means.** While overfitting the sample the trained loss went below 0. A CTC loss
    is a negative log-likelihood: it is never negative, and reaches 0 only for a model certain of
    the one right alignment. A negative value means the loss was not given log-probabilities:
    usually the model ends with `softmax` and `F.ctc_loss` reads the probabilities (all in [0, 1],
    so their "log-likelihood" is above 0 and the loss below it), sometimes it gets raw logits, or
    the total adds a negative term. The curve then falls without meaning anything, and neither a
    learning rate nor more steps helps. The finding names the output kind the static checks
    measured (CTC020 probabilities, CTC021 raw logits). When the model already outputs
    log-probabilities and the targets contain the loss's blank (labels 0..25 with the blank meant
    last, but `F.ctc_loss` left at its default `blank=0`; CTC030 names the mismatch), CTC counts
    the same alignments more than once and its "likelihood" exceeds 1: the finding then says so,
    titled "overfit loss is negative: the targets contain the loss's blank", and gives CTC030's
    fix (`blank=26`), not `log_softmax`. The `logs` command reports the same curve in a training
    log as CTC209.

    **Example.** `error CTC074 the loss is negative on sample 0: below 0 at 20 of 20 steps
    (first at step 1, lowest -6.462 at step 7). A CTC loss is a negative log-likelihood and never
    goes below 0: the model's output is probabilities (softmax ...), and the loss reads them as
    log-probabilities.` A loss below 0 at every one of the first 20 steps ends the run there: more
    steps cannot change the verdict.

    **Fix.** Pass log-probabilities to the loss: replace `softmax` with `log_softmax(dim=-1)`
    (`dim=1` for an `(N, C, T)` output) at the model's head (or call the loss on `output.log()` in the criterion; `log_softmax` is the
    stabler), then run overfit again. For raw logits apply `log_softmax(dim=-1)` before the loss.
    For the loss's blank in the targets: call the loss with the blank your labels leave free
    (`F.ctc_loss(..., blank=26)`, `Setup.blank`).
    """,
)
