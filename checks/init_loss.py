"""Loss at initialisation: finite, and close to what near-uniform outputs would give?"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING

from ctcdoctor.registry import SkipCheck, check, finding
from ctcdoctor.render.phrases import of_total, plural

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from ctcdoctor.findings import Finding
    from ctcdoctor.measure.init_loss import InitLoss
    from ctcdoctor.measure.inputs import InputStats
    from ctcdoctor.measure.model import ModelRun

#: CTC051 fires when the mean per-label init loss exceeds RATIO x the uniform expectation ...
RATIO = 1.5
#: ... plus this many nats per label (keeps tiny losses from tripping the ratio).
MARGIN = 0.5


@check("CTC050", "error", "loss at initialisation is not finite")
def nonfinite_init_loss(init_loss: InitLoss, input_stats: list[InputStats] | None = None, runs: list[ModelRun] | None = None,
                        outputs: list[torch.Tensor] | None = None) -> list[Finding]:
    """
    **What it checks.** Reference CTC (`F.ctc_loss` on float32 log-probabilities with the
    output frame counts) of every sample in the model batches, at initialisation, for the
    samples that *can* be aligned: those whose loss under uniform outputs is finite.
    Samples with too few frames are CTC001's, and are not repeated here.

    **Why it matters.** A NaN or `inf` loss on a feasible sample comes from the model
    itself: `-inf` log-probabilities (a `log` of an exact 0, a class masked with `-inf`),
    NaN activations, an overflow. The first optimiser step turns every weight into NaN,
    or, with `zero_infinity=True`, those samples silently train on nothing.

    **Example.** The head masks an "unknown" class with `-inf`, and some targets use it:
    `error CTC050 4 of 32 samples have a non-finite loss at initialisation although they
    fit their frames: sample 3 (inf), sample 9 (inf) …`

    When every such sample has NaN/Inf inputs (CTC040), or a NaN/Inf output (CTC023), the
    finding is marked as a consequence of that code.

    **Fix.** Look for `-inf` or NaN in the output (CTC023): use `log_softmax` rather than
    `log(softmax)`, mask with a large negative number rather than `-inf`, never mask a
    class the targets use, and check the inputs (CTC040).
    """
    if init_loss.skipped:
        raise SkipCheck(init_loss.skipped)
    bad = [
        (sample, loss)
        for sample, loss, uniform in zip(init_loss.samples, init_loss.loss, init_loss.uniform)
        if math.isfinite(uniform) and not math.isfinite(loss)
    ]
    if not bad:
        return []
    from ctcdoctor.measure.outputs import nonfinite_input_samples, nonfinite_output_samples

    nan = sum(1 for _, loss in bad if math.isnan(loss))
    shown = "; ".join(f"sample {sample} ({loss})" for sample, loss in bad[:8])
    samples = {sample for sample, _ in bad}
    cause = ("CTC040" if samples <= nonfinite_input_samples(input_stats)
             else "CTC023" if samples <= set(nonfinite_output_samples(runs or [], outputs or [])) else None)
    because = {"CTC040": " Each of them has NaN/Inf inputs (CTC040).",
               "CTC023": " Each of them has NaN/Inf in the model output (CTC023)."}.get(cause or "", "")
    hint = ("Find the -inf/NaN in the output (CTC023): use log_softmax instead of log(softmax), mask with a large negative "
            "number instead of -inf and never mask a class the targets use; check the inputs for NaN (CTC040).")
    if cause:
        hint = f"Fix {cause} first; if the loss is still not finite: {hint[0].lower()}{hint[1:]}"
    return [
        finding(
            "CTC050",
            f"{of_total(len(bad), len(init_loss.samples), 'sample', 'has', 'have')} a non-finite loss at initialisation although they fit their "
            f"frames ({nan} NaN, {len(bad) - nan} inf): {shown}.{because}",
            hint,
            {"count": len(bad), "total": len(init_loss.samples), "nan": nan, "samples": [sample for sample, _ in bad[:50]]},
            consequence_of=cause,
        )
    ]


@check("CTC051", "warning", "loss at initialisation far above the uniform-output expectation")
def init_loss_too_high(init_loss: InitLoss) -> list[Finding]:
    """
    **What it checks.** The mean reference CTC loss per label at initialisation against the
    exact loss the same samples would have if the model output the uniform distribution
    `1/C` on every frame (computed per sample with the forward algorithm, i.e.
    `F.ctc_loss` on `log(1/C)` everywhere: `T log C − log(number of alignments)`). It fires
    when the init loss exceeds **1.5×** that expectation **+ 0.5** nats per label (mean
    over the feasible samples with a finite loss).

    **Why it matters.** A freshly initialised network should be unsure: near-uniform
    outputs and a loss near the uniform value. A loss far above it means the outputs are
    confident and wrong before training starts: a saturated head (large init gain, a
    temperature, unnormalised features driving huge logits). Saturated softmax outputs
    give vanishing gradients for everything but the winning class, and training stalls
    or takes many steps to undo the initialisation.

    **Example.** `nn.init.normal_(head.weight, std=1.0)` on a 192-wide LSTM output:
    `warning CTC051 loss at initialisation is 11.8 nats per label, 3.4x the 3.5 that
    uniform outputs would give.`

    **Fix.** Initialise the output layer small (PyTorch's default `nn.Linear` init, or
    `std ≈ 1/sqrt(fan_in)`), drop output temperatures/scales at init, normalise the
    inputs (CTC041), and keep BatchNorm/LayerNorm before the head.
    """
    if init_loss.skipped:
        raise SkipCheck(init_loss.skipped)
    pairs = [
        (loss / max(length, 1), uniform / max(length, 1))
        for loss, uniform, length in zip(init_loss.loss, init_loss.uniform, init_loss.target_lengths)
        if math.isfinite(loss) and math.isfinite(uniform)
    ]
    if not pairs:
        return []
    mean_loss = sum(loss for loss, _ in pairs) / len(pairs)
    mean_uniform = sum(uniform for _, uniform in pairs) / len(pairs)
    threshold = RATIO * mean_uniform + MARGIN
    if mean_loss <= threshold:
        return []
    ratio = mean_loss / mean_uniform if mean_uniform > 0 else float("inf")
    worst = sorted(
        ((sample, loss / max(length, 1), uniform / max(length, 1))
         for sample, loss, uniform, length in zip(init_loss.samples, init_loss.loss, init_loss.uniform, init_loss.target_lengths)
         if math.isfinite(loss) and math.isfinite(uniform)),
        key=lambda item: item[2] - item[1],
    )[:5]
    return [
        finding(
            "CTC051",
            f"loss at initialisation is {mean_loss:.3g} nats per label, {ratio:.2g}x the {mean_uniform:.3g} that uniform outputs "
            f"(1/{init_loss.num_classes} per class) would give on the same {plural(len(pairs), 'sample')} "
            f"(threshold {RATIO}x + {MARGIN}); highest: "
            + ", ".join(f"sample {sample} {loss:.3g} vs {uniform:.3g}" for sample, loss, uniform in worst)
            + ". The outputs are confident before any training: the head is saturated.",
            "Initialise the output layer small (PyTorch's default nn.Linear init, std about 1/sqrt(fan_in)), remove output "
            "scales or temperatures at init, and normalise the inputs (CTC041).",
            {"mean_loss_per_label": mean_loss, "uniform_loss_per_label": mean_uniform, "ratio": ratio,
             "threshold_ratio": RATIO, "threshold_margin": MARGIN, "samples": len(pairs),
             "worst": [{"sample": s, "loss_per_label": loss, "uniform_per_label": u} for s, loss, u in worst]},
        )
    ]

