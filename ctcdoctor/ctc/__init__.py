"""CTC math: loss (with the paper's alpha and gamma), posterior occupancy, decoding, metrics.

Reading order: `reference` (the float64 forward-backward everything is tested against, written
out in loops), `_args` (argument checks), `occupancy` (y' from PyTorch's native kernels, in log
space), `posterior` (the public occupancy and pseudo ground truth), `modified` (the alpha/gamma
gradient, plainly: the definition), `fast_cpu` (the same numbers at F.ctc_loss's speed: the CPU
fast path, tested against `modified`), `loss` (ctc_loss: which of them runs), `dispatch` (the
Triton kernel), then `decode` and `metrics`.
"""
from ctcdoctor.ctc.decode import cer, edit_distance, greedy_decode, wer
from ctcdoctor.ctc.loss import BlankLabelWarning, ctc_loss
from ctcdoctor.ctc.metrics import Spikiness, spikiness
from ctcdoctor.ctc.posterior import (
    InfeasibleSampleWarning,
    posterior,
    pseudo_ground_truth,
)
from ctcdoctor.ctc.reference import forward_backward, reference_ctc, reference_ctc_loss

__all__ = [
    "ctc_loss",
    "posterior",
    "pseudo_ground_truth",
    "greedy_decode",
    "spikiness",
    "Spikiness",
    "edit_distance",
    "cer",
    "wer",
    "InfeasibleSampleWarning",
    "BlankLabelWarning",
    "forward_backward",
    "reference_ctc",
    "reference_ctc_loss",
]
