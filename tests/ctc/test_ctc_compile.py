"""The public CTC functions inside torch.compile: same value and gradient as eager (a graph break around them)."""
from __future__ import annotations

import subprocess
import sys
import warnings

import pytest
import torch
from torch import nn

from ctcdoctor.ctc import BlankLabelWarning, InfeasibleSampleWarning, ctc_loss, posterior, pseudo_ground_truth

TARGETS = torch.tensor([[1, 2], [3, 3]])
LENGTHS, TARGET_LENGTHS = [20, 18], [2, 2]


def _log_probs() -> torch.Tensor:
    return torch.randn(20, 2, 6, generator=torch.Generator().manual_seed(0)).log_softmax(-1)


def _value_and_grad(fn, log_probs):
    leaf = log_probs.clone().requires_grad_()
    value = fn(leaf)
    value.backward()
    return value.detach(), leaf.grad


@pytest.mark.parametrize("options", [{}, {"alpha": 0.5}, {"alpha": 0.5, "gamma": 1.0}], ids=["plain", "alpha", "alpha-gamma"])
def test_ctc_loss_compiles_with_the_eager_value_and_gradient(options):
    def loss(x):
        return ctc_loss(x, TARGETS, LENGTHS, TARGET_LENGTHS, **options) * 2

    compiled = torch.compile(loss, backend="eager")
    for _ in range(2):  # the second call runs the cached graph
        got = _value_and_grad(compiled, _log_probs())
    want = _value_and_grad(loss, _log_probs())
    assert torch.equal(got[0], want[0])
    assert torch.equal(got[1], want[1])


def test_compiled_module_trains_through_ctc_loss():
    class Head(nn.Module):
        def __init__(self):
            super().__init__()
            self.proj = nn.Linear(4, 6)

        def forward(self, feats, targets, lengths, target_lengths):
            return ctc_loss(self.proj(feats).log_softmax(-1), targets, lengths, target_lengths, alpha=0.5)

    torch.manual_seed(0)
    eager = Head()
    compiled = Head()
    compiled.load_state_dict(eager.state_dict())
    feats = torch.randn(20, 2, 4)
    lengths, target_lengths = torch.tensor(LENGTHS), torch.tensor(TARGET_LENGTHS)
    want = eager(feats, TARGETS, lengths, target_lengths)
    got = torch.compile(compiled, backend="eager")(feats, TARGETS, lengths, target_lengths)
    want.backward()
    got.backward()
    torch.testing.assert_close(got, want, rtol=0, atol=0)
    torch.testing.assert_close(compiled.proj.weight.grad, eager.proj.weight.grad, rtol=0, atol=0)


@pytest.mark.parametrize("fn", [posterior, pseudo_ground_truth], ids=["posterior", "pseudo_ground_truth"])
def test_posterior_compiles_with_the_eager_occupancy(fn):
    def occupancy(x):
        return fn(x, TARGETS, LENGTHS, TARGET_LENGTHS) + 0

    got = torch.compile(occupancy, backend="eager")(_log_probs())
    assert torch.equal(got, occupancy(_log_probs()))


def test_warnings_name_the_callers_line_eager_and_compiled():
    log_probs = _log_probs()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ctc_loss(log_probs, torch.tensor([[1, 0], [3, 3]]), LENGTHS, TARGET_LENGTHS)  # a label equal to the blank
        posterior(log_probs[:3], torch.tensor([[1, 1], [2, 3]]), [2, 3], [2, 2])  # 2 frames for 1 1: needs 3
        torch.compile(lambda x: posterior(x, torch.tensor([[1, 1], [2, 3]]), [2, 3], [2, 2]) + 0, backend="eager")(log_probs[:3])
    kinds = [(w.category, w.filename) for w in caught]
    assert kinds == [(BlankLabelWarning, __file__), (InfeasibleSampleWarning, __file__), (InfeasibleSampleWarning, __file__)]


def test_importing_ctcdoctor_ctc_does_not_load_dynamo():
    # torch.compiler.disable at import would load torch._dynamo (seconds) for every user, compiling or not.
    code = "import sys, ctcdoctor.ctc; print('torch._dynamo' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
