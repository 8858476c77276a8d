"""Gradient checks: one backward pass of reference CTC on one batch, on a copy of the model.

The pass runs on a deep copy (the user's parameters, `.grad` and BatchNorm statistics
are untouched) in train mode with dropout off: BatchNorm uses batch statistics as in
training, and the result is deterministic. Samples whose loss is not finite at
initialisation (CTC001, CTC050) are left out, so a gradient finding is about the
network, not about those samples.

The finding that fires first in the report (CTC060, then CTC063, CTC061, CTC062) carries
the per-layer table of gradient norms (`evidence.table`, shown in the terminal); every
gradient finding carries the same numbers as `evidence.layers` for JSON.
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING

from ctcdoctor.registry import SkipCheck, check, finding
from ctcdoctor.render.phrases import listing, of_total, plural

if TYPE_CHECKING:  # pragma: no cover
    from ctcdoctor.findings import Finding
    from ctcdoctor.measure.gradients import Gradients
    from ctcdoctor.measure.inputs import InputStats

#: CTC061 when the global gradient norm is below this ...
VANISHING_NORM = 1e-6
#: ... or the first layer's gradient norm is below this fraction of the last layer's.
VANISHING_RATIO = 1e-3
#: CTC062 when the global gradient norm is above this ...
EXPLODING_NORM = 1e3
#: ... or the first layer's gradient norm is above this multiple of the last layer's.
EXPLODING_RATIO = 1e3


def _nonfinite(gradients) -> list[str]:
    return [name for layer in gradients.layers for name in layer.nonfinite]


def _missing(gradients) -> tuple[list[str], list[str]]:
    none = [name for layer in gradients.layers for name in layer.no_grad]
    zero = [name for layer in gradients.layers for name in layer.zero_grad]
    return none, zero


def _vanishing(gradients) -> bool:
    if gradients.global_norm is None or _nonfinite(gradients):
        return False
    ratio = gradients.first_last_ratio()
    return gradients.global_norm < VANISHING_NORM or (ratio is not None and ratio < VANISHING_RATIO)


def _exploding(gradients) -> bool:
    if gradients.global_norm is None or _nonfinite(gradients):
        return False
    ratio = gradients.first_last_ratio()
    return gradients.global_norm > EXPLODING_NORM or (ratio is not None and ratio > EXPLODING_RATIO)


def _bad_inputs(input_stats) -> tuple[str, str] | None:
    """(what is wrong with the inputs, the code that reports it) when they alone explain odd gradients.

    Constant inputs (every sample, or an overall spread of ~0) give a first layer no weight
    gradient and let BatchNorm divide by a variance of ~0; NaN/Inf inputs poison everything.
    Blaming `.detach()` or normalisation then sends the user the wrong way.
    """
    measured = [stats for stats in input_stats or [] if stats.samples]
    for stats in measured:
        if stats.nonfinite_samples:
            count = len(stats.nonfinite_samples)
            what = f"{stats.name} contain" if stats.structured else "inputs contain"
            return f"{what} NaN/Inf ({of_total(count, stats.samples, 'sample', 'holds', 'hold')} them)", "CTC040"
    for stats in measured:
        constant = len(stats.constant_samples) == stats.samples
        spread = stats.std if math.isfinite(stats.std) else None
        flat = spread is not None and spread <= 1e-6 * max(1.0, abs(stats.mean))
        if constant or flat:
            what = f"{stats.name} are" if stats.structured else "inputs are"
            return (
                f"{what} constant ({of_total(len(stats.constant_samples), stats.samples, 'sample', 'has', 'have')} "
                f"no variation; overall range {stats.min:.3g} to {stats.max:.3g})",
                "CTC042",
            )
    return None


def _blame_inputs(message: str, hint: str, input_stats, effect: str) -> tuple[str, str]:
    """Add the input problem to a gradient finding's message and put its fix first in the hint."""
    bad = _bad_inputs(input_stats)
    if bad is None:
        return message, hint
    what, code = bad
    message += f" The {what}, reported as {code}: {effect}, so this follows from the data, not from the network."
    hint = f"Fix the inputs first ({code}), then run the check again; if this finding remains: {hint[0].lower()}{hint[1:]}"
    return message, hint


def _primary(gradients) -> str | None:
    """The code whose finding carries the rendered table: the first one shown."""
    if _nonfinite(gradients):
        return "CTC060"
    none, zero = _missing(gradients)
    if none or zero:
        return "CTC063"
    if _vanishing(gradients):
        return "CTC061"
    if _exploding(gradients):
        return "CTC062"
    return None


def _evidence(gradients, code: str, extra: dict) -> dict:
    evidence = {
        "batch": gradients.batch,
        "loss": gradients.loss,
        "global_norm": gradients.global_norm,
        "first_last_ratio": gradients.first_last_ratio(),
        "mode": gradients.mode,
        "samples_used": gradients.samples_used,
        "samples_left_out": list(gradients.samples_left_out[:50]),
        "layers": gradients.evidence_layers(),
        **extra,
    }
    if _primary(gradients) == code:
        evidence["table"] = gradients.table()
    return evidence


def _ends(gradients) -> str:
    layers = gradients.with_grad
    if len(layers) < 2:
        return ""
    first, last = layers[0], layers[-1]
    return (
        f"first layer {first.name} ({first.kind}) {first.grad_norm:.3g}, last layer {last.name} ({last.kind}) "
        f"{last.grad_norm:.3g}, ratio {first.grad_norm / last.grad_norm:.3g}"
    )


@check("CTC060", "error", "non-finite gradients")
def nonfinite_gradients(gradients: Gradients) -> list[Finding]:
    """
    **What it checks.** One backward pass of reference CTC (mean reduction) on the first
    model batch, on a deep copy of the model in train mode with dropout off; samples whose
    loss is already non-finite are left out. It reports every parameter whose gradient
    holds NaN or Inf although the loss is finite.

    **Why it matters.** The forward pass looks fine, the loss is a number, and after the
    first optimiser step every weight is NaN. The usual culprits differentiate badly at
    exactly the values the data produce: `torch.where(x > 0, torch.log(x), 0)` (the
    unused branch still sends `inf * 0 = nan` backwards), `sqrt` or `norm` at 0, `pow`
    with a fractional exponent at 0, division by a value that can be 0.

    **Example.** `error CTC060 the gradient is NaN/Inf in 8 parameters (loss 3.87 is
    finite): cnn.0.weight, cnn.0.bias, …`

    **Fix.** Compute the unsafe op on a clamped input, e.g.
    `torch.log(x.clamp_min(1e-6))` or `torch.sqrt(x + 1e-8)`; with `torch.where`, make the
    unused branch safe too: `torch.log(torch.where(x > 0, x, 1.0))`. Use
    `torch.autograd.set_detect_anomaly(True)` to find the op.
    """
    if gradients.skipped:
        raise SkipCheck(gradients.skipped)
    bad = _nonfinite(gradients)
    if not bad:
        return []
    hint = ("Find the op with torch.autograd.set_detect_anomaly(True); clamp inputs of log/sqrt/pow/division "
            "(torch.log(x.clamp_min(1e-6))), and with torch.where make both branches safe.")
    where = f"after one backward pass on batch {gradients.batch} ({gradients.mode}), the gradient is NaN/Inf in {plural(len(bad), 'parameter')}"
    if gradients.nonfinite_in_pass:
        # The loss left those samples out, but the model only runs on its whole batch: 0 x NaN = NaN on the way back.
        samples = list(gradients.nonfinite_in_pass)
        message = (f"{where}: {listing(bad)}. The loss over the {gradients.samples_used} samples it keeps is finite "
                   f"({gradients.loss:.4g}), but {plural(len(samples), 'sample')} with a non-finite loss (CTC050: "
                   f"{listing(samples)}) ran in the same forward pass (the model only runs on its whole batch), and their "
                   "NaN reaches the gradients through a zero weight.")
        hint = f"Fix the non-finite loss first (CTC050); if the gradients are still NaN/Inf: {hint[0].lower()}{hint[1:]}"
        return [finding("CTC060", message, hint, _evidence(gradients, "CTC060", {"parameters": bad[:50], "nonfinite_in_pass": samples[:50]}),
                        consequence_of="CTC050")]
    return [
        finding(
            "CTC060",
            f"{where} although the loss {gradients.loss:.4g} is finite: {listing(bad)}.",
            hint,
            _evidence(gradients, "CTC060", {"parameters": bad[:50]}),
        )
    ]


@check("CTC061", "warning", "vanishing gradients")
def vanishing_gradients(gradients: Gradients) -> list[Finding]:
    """
    **What it checks.** From the same backward pass as CTC060: the global gradient norm
    (all parameters) below **1e-6**, or the gradient norm of the first layer (the first
    module with parameters, in registration order) below **1e-3** times that of the last
    layer.

    **Why it matters.** The early layers — the feature extractor that has to learn the
    glyphs or phones — receive almost nothing, so only the head learns. Typical causes are
    deep stacks of saturating activations (sigmoid, tanh) without normalisation or
    residual connections, and saturated outputs (CTC051).

    **Example.** Eight `Linear + Sigmoid` layers before the RNN: `warning CTC061 first
    layer proj.0 (Linear) 2.1e-08, last layer fc (Linear) 0.41, ratio 5.1e-08.`

    **Fix.** Use ReLU/GELU instead of sigmoid/tanh in deep stacks, add BatchNorm/LayerNorm
    between layers, add residual connections, or make the stack shallower.
    """
    if gradients.skipped:
        raise SkipCheck(gradients.skipped)
    if not _vanishing(gradients):
        return []
    ratio = gradients.first_last_ratio()
    parts = [f"global gradient norm {gradients.global_norm:.3g}"]
    if _ends(gradients):
        parts.append(_ends(gradients))
    return [
        finding(
            "CTC061",
            f"gradients vanish towards the input after one backward pass on batch {gradients.batch}: " + "; ".join(parts)
            + f" (thresholds: norm < {VANISHING_NORM:g} or first/last < {VANISHING_RATIO:g}).",
            _vanishing_hint(gradients),
            _evidence(gradients, "CTC061", {"ratio_threshold": VANISHING_RATIO, "norm_threshold": VANISHING_NORM,
                                            "first_last_ratio": ratio}),
        )
    ]


def _vanishing_hint(gradients: Gradients) -> str:
    """Name the saturating activations when the model has them; without any, they are not the cause to chase."""
    if gradients.saturating:
        shown = ", ".join(gradients.saturating[:4]) + (" ..." if len(gradients.saturating) > 4 else "")
        return ("Replace the saturating activations (" + shown + ") with ReLU/GELU, add BatchNorm or LayerNorm between "
                "layers, or add residual connections.")
    return ("The model has no sigmoid/tanh layers to blame: add BatchNorm or LayerNorm between layers or residual "
            "connections, check for a clipped head (CTC027) or saturated outputs (CTC051), and let "
            "`ctcdoctor overfit SPEC` tell whether it learns anyway (Adam rescales small gradients).")


@check("CTC062", "warning", "exploding gradients")
def exploding_gradients(gradients: Gradients, input_stats: list[InputStats] | None = None) -> list[Finding]:
    """
    **What it checks.** From the same backward pass as CTC060: the global gradient norm
    above **1e3** with the default mean reduction, or the first layer's gradient norm above
    **1e3** times that of the last layer.

    **Why it matters.** Huge gradients at initialisation mean the first optimiser steps
    throw the weights far away: the loss jumps to NaN or the model collapses to all-blank.
    Common causes are unnormalised inputs (raw 0–255 pixels, raw log-power around −45),
    recurrent weights initialised too large, and missing normalisation layers.

    **Example.** `warning CTC062 global gradient norm 3.2e+04; first layer conv (Conv2d)
    3.2e+04, last layer fc (Linear) 0.52.`

    **Fix.** Normalise the inputs (CTC041), add BatchNorm/LayerNorm, use the default
    initialisation, and clip gradients (`torch.nn.utils.clip_grad_norm_(params, 1.0)`).
    """
    if gradients.skipped:
        raise SkipCheck(gradients.skipped)
    if not _exploding(gradients):
        return []
    parts = [f"global gradient norm {gradients.global_norm:.3g}"]
    if _ends(gradients):
        parts.append(_ends(gradients))
    message, hint = _blame_inputs(
        f"gradients are large after one backward pass on batch {gradients.batch}: " + "; ".join(parts)
        + f" (thresholds: norm > {EXPLODING_NORM:g} or first/last > {EXPLODING_RATIO:g}).",
        "Normalise the inputs (CTC041), add BatchNorm/LayerNorm, keep the default initialisation, and clip "
        "gradients with torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0).",
        input_stats,
        "normalisation layers divide by a variance of about 0",
    )
    cause = (_bad_inputs(input_stats) or (None, None))[1]
    return [
        finding(
            "CTC062",
            message,
            hint,
            _evidence(gradients, "CTC062", {"ratio_threshold": EXPLODING_RATIO, "norm_threshold": EXPLODING_NORM,
                                            "inputs": cause}),
            consequence_of=cause,
        )
    ]


@check("CTC063", "warning", "trainable parameters receive no gradient")
def parameters_without_gradient(gradients: Gradients, input_stats: list[InputStats] | None = None) -> list[Finding]:
    """
    **What it checks.** From the same backward pass as CTC060: parameters with
    `requires_grad=True` whose `.grad` is still `None` (not on the path from the inputs to
    the loss) or exactly zero everywhere.

    **Why it matters.** The optimiser skips them: a layer defined but not called in
    `forward`, features computed under `torch.no_grad()` or `.detach()`-ed "to save
    memory", a head that is replaced but still registered. The model trains, just without
    the part you think it has.

    **Example.** `features = self.cnn(x).detach()`: `warning CTC063 8 of 14 trainable
    parameters (0.29 M of 0.52 M weights) received no gradient: cnn.0.0.weight, …`

    **Fix.** Remove the `.detach()`/`torch.no_grad()` around trainable parts, call every
    layer you define (or delete it), and freeze parameters on purpose with
    `requires_grad_(False)` — those are not reported. Nor are parameters behind a weight
    initialised to exactly zero on purpose (a TPS localisation head's last layer, ResNet's
    `zero_init_residual`): on a copy with those weights nudged off zero they get a gradient,
    so they train from the second step on.
    """
    if gradients.skipped:
        raise SkipCheck(gradients.skipped)
    none, zero = _missing(gradients)
    if not none and not zero:
        return []
    weights = sum(layer.trainable for layer in gradients.layers)
    missing_weights = sum(layer.trainable for layer in gradients.layers if layer.no_grad or layer.zero_grad)
    parts = []
    if none:
        parts.append(f"{plural(len(none), 'parameter')} got no gradient at all (grad is None): {listing(none)}")
    if zero:
        parts.append(f"{plural(len(zero), 'parameter')} got an all-zero gradient: {listing(zero)}")
    message, hint = _blame_inputs(
        f"after one backward pass on batch {gradients.batch}, " + "; ".join(parts)
        + f" (layers holding {missing_weights:,} of {weights:,} trainable weights).",
        "Remove .detach() / torch.no_grad() around trainable layers, call (or delete) every layer you define, and "
        "freeze parameters on purpose with requires_grad_(False).",
        input_stats,
        "a layer that sees a constant (or broken) input gets no usable weight gradient",
    )
    cause = (_bad_inputs(input_stats) or (None, None))[1]
    return [
        finding(
            "CTC063",
            message,
            hint,
            _evidence(gradients, "CTC063", {"no_grad": none[:50], "zero_grad": zero[:50], "inputs": cause}),
            consequence_of=cause,
        )
    ]
