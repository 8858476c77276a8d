"""The head: class scores must reach log_softmax as they are, not clipped or squashed."""
from __future__ import annotations

from typing import TYPE_CHECKING

from ctcdoctor.registry import check, finding

if TYPE_CHECKING:  # pragma: no cover
    from ctcdoctor.findings import Finding
    from ctcdoctor.measure.head import LogitClipping
    from ctcdoctor.measure.model import LayoutDecision


@check("CTC027", "error", "class scores clipped or squashed before log_softmax")
def clipped_logits(logit_clipping: LogitClipping, layout: LayoutDecision) -> list[Finding]:
    """
    **What it checks.** Whether the class scores that reach `log_softmax` went through an
    activation that clips them (`ReLU`, `ReLU6`, `Hardtanh`, a `clamp`) or squashes them into a
    small range (`Sigmoid`, `Tanh`). Two measurements: the last module to shape the scores (found
    by tracing one sample through the model), and, for a functional `F.relu` or `clamp` that no
    module shows, the share of scores tied exactly at their frame's minimum or maximum (a linear
    head never produces ties; a clip at 0 ties every score below 0). It reports when the traced
    activation clips or bounds, or when at least **25 %** of the scores are tied.

    **Why it matters.** A score clipped at the floor gets no gradient: once every class of a frame
    sits below the ReLU's 0, the frame's output is uniform and stays so, and a class that starts
    below 0 everywhere never wins a frame (torchaudio's Wav2Letter ends with a ReLU: on one
    sample, with Adam, whole letters never appear in its output). A bounded range caps the confidence: with scores in
    [-1, 1] (`Tanh`) and 29 classes no frame can give one class more than p = 0.21, while CTC
    needs near-certain blanks and labels, so the loss cannot get low. `ctcdoctor overfit` then
    reports a flat loss or a model stuck on blanks.

    **Example.** `nn.Sequential(nn.Linear(256, 29), nn.ReLU())` then `log_softmax`: `error CTC027
    the last layer before log_softmax is head.1 (ReLU): scores below 0 are cut to 0 (48% of them
    are tied at their frame's minimum) and get no gradient.`

    **Fix.** Remove the activation after the output layer: feed the last `Linear`/`Conv` layer's
    output straight to `log_softmax(dim=-1)` (`dim=1` for an `(N, C, T)` output, as a `Conv1d` head and
    Wav2Letter give: drop its `acoustic_model[-1]`). Keep activations between hidden layers only.
    """
    clip = logit_clipping
    if not clip.clipped:
        return []
    ties = _ties(clip)
    where = f"{clip.final_module} ({clip.final_activation})" if clip.final_activation else None
    cap = clip.confidence_cap()
    if where is not None and cap is not None and clip.final_activation not in ("ReLU", "Threshold"):
        message = (
            f"the last layer before log_softmax is {where}: every class score lies in a range {clip.value_range:g} wide, "
            f"so no frame can give one of the {clip.classes} classes more than p = {cap:.2f}" + (f" ({ties})." if ties else ".")
        )
    elif where is not None:
        message = f"the last layer before log_softmax is {where}: scores below its floor are cut and get no gradient" + (
            f" ({ties})." if ties else ".")
    else:
        message = (
            f"{ties or 'scores tied'} ({clip.frames} frames): the scores are clipped before log_softmax by a relu, clamp or similar "
            "in forward() after the output layer."
        )
    from ctcdoctor.measure.outputs import log_softmax_call

    removed = f"the {clip.final_activation} at {clip.final_module}" if where is not None else "the clipping"
    hint = (
        f"Remove {removed} after the output layer: feed the last Linear/Conv layer's output straight to "
        f"{log_softmax_call(layout.layout)}."
    )
    evidence = {
        "final_module": clip.final_module, "final_activation": clip.final_activation, "floor_share": clip.floor_share,
        "ceiling_share": clip.ceiling_share, "all_tied_share": clip.all_tied_share, "frames": clip.frames,
        "classes": clip.classes, "confidence_cap": cap,
    }
    return [finding("CTC027", message, hint, evidence)]


def _ties(clip: LogitClipping) -> str:
    """The tie shares in words: frames with all scores equal first (a uniform output says it all)."""
    if clip.all_tied_share >= 0.5:
        return f"{clip.all_tied_share:.0%} of the frames have all their scores equal: a uniform output, with no class to learn from"
    parts = [f"{clip.floor_share:.0%} of the scores are tied at their frame's minimum"] if clip.floor_share >= 0.01 else []
    if clip.ceiling_share >= 0.01:
        parts.append(f"{clip.ceiling_share:.0%} at its maximum")
    if clip.all_tied_share >= 0.01:
        parts.append(f"{clip.all_tied_share:.0%} of the frames have all scores equal (a uniform output)")
    return "; ".join(parts)
