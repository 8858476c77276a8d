"""CTC027: class scores clipped (ReLU, clamp, Hardtanh) or squashed (Tanh, Sigmoid) before log_softmax."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from ctcdoctor.checks.head import clipped_logits
from ctcdoctor.measure.head import LogitClipping, score_ties
from ctcdoctor.measure.model import LayoutDecision
from ctchelpers import TinyCTC, codes_of, healthy_setup, run_codes

TNC = LayoutDecision("TNC", "shape", "")


class Activated(TinyCTC):
    """TinyCTC with `activation` applied to the class scores before log_softmax (a module or a function)."""

    def __init__(self, activation, layout: str = "TNC"):
        super().__init__(layout=layout)
        self.activation = activation

    def forward(self, x):
        scores = self.fc(torch.tanh(self.conv(x).transpose(1, 2)))  # (N, T, C)
        out = self.activation(scores).log_softmax(-1)
        return out if self.layout == "NTC" else out.transpose(0, 1)


def _with(activation, layout: str = "TNC"):
    setup = healthy_setup()
    setup.model = Activated(activation, layout)
    return run_codes(setup, ("CTC027",))[0]


def test_a_linear_head_passes():
    assert run_codes(healthy_setup(), ("CTC027",))[0] == []
    assert run_codes(healthy_setup(layout="NTC"), ("CTC027",))[0] == []


def test_a_relu_module_on_the_scores_is_named_with_its_module():
    (found,) = _with(nn.ReLU())
    assert found.code == "CTC027" and found.severity.value == "error"
    assert "activation (ReLU)" in found.message and "no gradient" in found.message
    assert found.evidence["final_activation"] == "ReLU" and found.evidence["floor_share"] > 0.25
    assert "Remove the ReLU" in found.hint


def test_a_functional_clamp_is_caught_by_the_tied_scores():
    (found,) = _with(lambda scores: scores.clamp(min=0.0), layout="NTC")
    assert found.evidence["final_activation"] is None
    assert found.evidence["floor_share"] > 0.25 and "tied at their frame's minimum" in found.message
    assert "relu, clamp or similar" in found.message


def test_a_tanh_caps_the_confidence_and_says_by_how_much():
    (found,) = _with(nn.Tanh())
    cap = math.e ** 2 / (math.e ** 2 + 5)  # 6 classes, scores within [-1, 1]
    assert found.evidence["confidence_cap"] == pytest.approx(cap)
    assert f"p = {cap:.2f}" in found.message and "(Tanh)" in found.message


def test_an_activation_before_the_output_layer_is_fine():
    class Hidden(TinyCTC):
        def forward(self, x):
            hidden = torch.relu(self.conv(x).transpose(1, 2))  # a ReLU between layers: as it should be
            return self.fc(hidden).log_softmax(-1).transpose(0, 1)

    setup = healthy_setup()
    setup.model = Hidden()
    assert codes_of(run_codes(setup, ("CTC027",))[0]) == set()


def test_score_ties_counts_ties_within_the_output_lengths_only():
    scores = torch.tensor([[[0.0, 0.0, 0.0, 2.0]], [[5.0, 5.0, 5.0, 5.0]]])  # (T=2, N=1, C=4); frame 2 is padding
    frames, floor, ceiling, tied = score_ties(scores, torch.tensor([1]))
    assert (frames, floor, ceiling, tied) == (1, pytest.approx(2 / 3), 0.0, 0.0)
    frames, _, _, tied = score_ties(scores)
    assert frames == 2 and tied == 0.5


def test_the_check_judges_hand_built_measurements():
    healthy = LogitClipping(frames=40, classes=6, floor_share=0.01, ceiling_share=0.0, all_tied_share=0.0)
    assert clipped_logits(healthy, TNC) == []
    dead = LogitClipping(frames=40, classes=6, floor_share=1.0, ceiling_share=1.0, all_tied_share=1.0,
                         final_module="fc.1", final_activation="ReLU")
    (found,) = clipped_logits(dead, TNC)
    assert "100% of the frames have all their scores equal" in found.message and "fc.1 (ReLU)" in found.message
