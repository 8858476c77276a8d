"""CTC063 leaves out parameters whose zero gradient comes from a weight initialised to zero on purpose downstream.

A spatial transformer's localisation head (TPS in deep-text-recognition-benchmark: `localization_fc2.weight.data.fill_(0)`)
and ResNet's zero_init_residual start a weight at exactly 0, which blocks the gradient to everything before it on the first
step only. A fresh-eyes trial on that code got "14 parameters got an all-zero gradient … Remove .detach()" on a healthy
model that `overfit` then fitted with every parameter trained.
"""
from __future__ import annotations

import torch
from torch import nn

import ctcdoctor
from ctcdoctor import Setup
from ctchelpers import TinyCTC, healthy_setup


class LocalisedCTC(TinyCTC):
    """TinyCTC whose input is scaled per sample by a localisation branch (conv -> global pool -> linear): the linear's
    weight starts at 0 and its bias at 1, the identity, as a TPS localisation network's last layer starts."""

    def __init__(self, detach_conv: bool = False) -> None:
        super().__init__()
        self.localise = nn.Sequential(nn.Conv1d(4, 8, 3, padding=1), nn.AdaptiveAvgPool1d(1), nn.Linear(1, 1))
        with torch.no_grad():
            self.localise[2].weight.zero_()
            self.localise[2].bias.fill_(1.0)
        self.detach_conv = detach_conv

    def forward(self, x):
        scale = self.localise(x).mean(dim=(1, 2)).view(-1, 1, 1)  # (N, 1, 1), 1 at initialisation
        hidden = self.conv(x)
        if self.detach_conv:  # the bug CTC063 is for, on a path of its own
            hidden = hidden.detach()
        out = self.fc(torch.tanh(hidden.transpose(1, 2) * scale)).log_softmax(-1)
        return out.transpose(0, 1)


def setup_with(model: nn.Module) -> Setup:
    setup = healthy_setup()
    return Setup(**{**setup.__dict__, "model": model})


def test_a_zero_initialised_localisation_head_is_not_ctc063():
    torch.manual_seed(0)
    report = ctcdoctor.check(setup_with(LocalisedCTC()), select=["CTC06"])
    assert not report.findings, [f"{item.code}: {item.message}" for item in report.findings]


def test_the_gradients_say_which_parameters_wait_behind_which_zero_weight():
    from ctcdoctor.engine import Context

    torch.manual_seed(0)
    gradients = Context(setup_with(LocalisedCTC())).gradients
    assert gradients.zero_weights == ("localise.2.weight",)
    assert set(gradients.behind_zero_weights) == {"localise.0.weight", "localise.0.bias"}


def test_a_detached_branch_beside_a_zero_initialised_head_is_still_ctc063():
    torch.manual_seed(0)
    report = ctcdoctor.check(setup_with(LocalisedCTC(detach_conv=True)), select=["CTC063"])
    (finding,) = report.findings
    assert "conv.weight" in finding.message and "localise.0.weight" not in finding.message


def test_the_users_zero_weight_is_left_at_zero():
    torch.manual_seed(0)
    model = LocalisedCTC()
    ctcdoctor.check(setup_with(model), select=["CTC063"])
    assert not model.localise[2].weight.any()
