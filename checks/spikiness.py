"""Spikiness of the model's outputs: blank-dominated, confident frames (informational)."""
from __future__ import annotations

from typing import TYPE_CHECKING

from ctcdoctor.registry import SkipCheck, check, finding

if TYPE_CHECKING:  # pragma: no cover
    from ctcdoctor.findings import Finding
    from ctcdoctor.measure.spikiness import OutputSpikiness

#: CTC080 fires when at least this share of frames has blank as its argmax ...
BLANK_RATIO = 0.9
#: ... and the mean peak probability is at least this (confident, not near-uniform).
PEAK_PROB = 0.8


@check("CTC080", "info", "spiky, blank-dominated outputs")
def spiky_outputs(output_spikiness: OutputSpikiness) -> list[Finding]:
    """
    **What it checks.** Spikiness metrics of the model's outputs on the model batches
    (`ctcdoctor.ctc.spikiness`, over valid frames): the share of frames whose argmax is
    blank, the mean non-blank probability mass, the mean width of runs of equal non-blank
    argmax frames, the mean peak probability and the mean frame entropy. It reports when
    at least **90 %** of frames are blank at argmax **and** the mean peak probability is at
    least **0.8**. `ctcdoctor overfit` reports the same metrics after training.

    **Why it matters.** A trained CTC model is spiky by nature: one confident frame per
    label in a sea of blanks. At initialisation outputs should be near uniform (peak
    probability about 1/C); a model that is already blank-dominated and confident was
    loaded from a collapsed checkpoint, has a blank bias pushed high, or a saturated head.
    After training, all-blank output with a falling loss is the classic "CTC collapse".

    **Example.** `info CTC080 97 % of frames are blank at argmax with mean peak probability
    0.99 (non-blank mass 0.01, spike width 1.0, entropy 0.05 nats).`

    **Fix.** At initialisation: start from a fresh head, or reset a large blank bias.
    After training: nothing to fix if the decodes are right; if they are empty, see
    CTC071 (collapse to blank) and check the length budget (CTC001/CTC002).
    """
    if output_spikiness.skipped:
        raise SkipCheck(output_spikiness.skipped)
    metrics = output_spikiness.metrics
    if metrics["blank_ratio"] < BLANK_RATIO or metrics["peak_prob"] < PEAK_PROB:
        return []
    return [
        finding(
            "CTC080",
            f"{metrics['blank_ratio']:.0%} of {output_spikiness.frames} frames are blank at argmax with mean peak probability "
            f"{metrics['peak_prob']:.2f} (non-blank mass {metrics['nonblank_mass']:.3g}, spike width "
            f"{metrics['spike_width']:.2g}, entropy {metrics['entropy']:.3g} nats): the outputs are already spiky.",
            "If this is an untrained model, reset the head (a blank bias pushed high, or a collapsed checkpoint); "
            "if it is trained and decodes are empty, see CTC071 and the length budget (CTC001/CTC002).",
            {**metrics, "frames": output_spikiness.frames, "blank_ratio_threshold": BLANK_RATIO,
             "peak_prob_threshold": PEAK_PROB},
        )
    ]
