"""CTC math: loss (with the paper's alpha and gamma), posterior occupancy, decoding, metrics.

`reference` holds the float64 forward-backward that everything here is tested against.
"""
from ctcdoctor.ctc.decode import cer, edit_distance, greedy_decode, wer
from ctcdoctor.ctc.loss import ctc_loss
from ctcdoctor.ctc.metrics import Spikiness, spikiness
from ctcdoctor.ctc.posterior import InfeasibleSampleWarning, posterior, pseudo_ground_truth
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
    "forward_backward",
    "reference_ctc",
    "reference_ctc_loss",
]
