"""CTC061-CTC063 judge only the modules whose forward ran in the backward pass's forward."""
from __future__ import annotations

import torch
from torch import nn

import ctcdoctor
from ctcdoctor import Setup
from ctchelpers import TinyCTC, healthy_setup


class WithIdleModules(TinyCTC):
    """TinyCTC plus a module that is built and never called, and one whose weight is read without calling it
    (as SEW-D reads rel_embeddings.weight), defined last so that definition order would make it the "last layer"."""

    def __init__(self) -> None:
        super().__init__()
        self.unused = nn.Linear(16, 16)
        self.table = nn.Embedding(4, 6)

    def forward(self, x):
        out = super().forward(x)  # (T, N, C) log-probabilities
        return out + 0.0 * self.table.weight.sum()


def test_modules_that_never_ran_are_not_reported():
    setup = healthy_setup()
    torch.manual_seed(0)
    idle = Setup(**{**setup.__dict__, "model": WithIdleModules()})
    report = ctcdoctor.check(idle, select=["CTC06"])
    assert not report.findings, [f"{item.code}: {item.message}" for item in report.findings]
    from ctcdoctor.engine import Context

    layers = {layer.name: layer for layer in Context(idle).gradients.layers}
    assert not layers["unused"].ran and layers["unused"].grad_norm is None and layers["unused"].no_grad == ()
    assert not layers["table"].ran and layers["table"].grad_norm is not None  # read, not run: left out of the ratio
    assert layers["fc"].ran


def test_a_module_that_ran_without_gradient_is_still_ctc063():
    class Detached(TinyCTC):
        def forward(self, x):
            hidden = self.conv(x).detach().transpose(1, 2)
            return self.fc(torch.tanh(hidden)).log_softmax(-1).transpose(0, 1)

    setup = healthy_setup()
    torch.manual_seed(0)
    report = ctcdoctor.check(Setup(**{**setup.__dict__, "model": Detached()}), select=["CTC063"])
    (finding,) = report.findings
    assert "conv.weight" in finding.message
