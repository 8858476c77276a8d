"""overfit's default Adam: torch.optim.Adam's numbers, without importing torch._dynamo."""
from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
import torch

from ctcdoctor.overfit.adam import Adam


class _Model(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv1d(3, 8, 3)
        self.norm = torch.nn.LayerNorm(8)
        self.head = torch.nn.Linear(8, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.norm(self.conv(x).transpose(1, 2))
        return self.head(h[:, -1])


def _model(seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    return _Model()


def _train(make_optimizer, steps: int = 25, lr_change_at: int | None = None, skip_head_at: int | None = None):
    model = _model(0)
    optimizer = make_optimizer(model.parameters())
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(4, 3, 8, generator=g), torch.randint(0, 5, (4,), generator=g)
    for step in range(steps):
        optimizer.zero_grad(set_to_none=True)
        loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        if step == skip_head_at:  # a parameter without a gradient in one step keeps its own step count
            model.head.bias.grad = None
        if step == lr_change_at:
            optimizer.param_groups[0]["lr"] = 3e-3
        optimizer.step()
    return [p.detach().clone() for p in model.parameters()]


@pytest.mark.parametrize("kwargs", [{}, {"lr_change_at": 10}, {"skip_head_at": 5}])
def test_same_parameters_as_torch_adam(kwargs):
    ours = _train(lambda p: Adam(p, lr=1e-2), **kwargs)
    theirs = _train(lambda p: torch.optim.Adam(p, lr=1e-2), **kwargs)
    for a, b in zip(ours, theirs):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_zero_grad_without_set_to_none_zeroes():
    p = torch.nn.Parameter(torch.ones(3))
    p.grad = torch.ones(3)
    Adam([p]).zero_grad(set_to_none=False)
    assert p.grad is not None and torch.equal(p.grad, torch.zeros(3))


def test_sparse_gradient_is_refused_by_name():
    embedding = torch.nn.Embedding(10, 4, sparse=True)
    embedding(torch.tensor([1, 2])).sum().backward()
    with pytest.raises(RuntimeError, match="sparse=False"):
        Adam(embedding.parameters()).step()


def test_default_optimizer_does_not_import_dynamo():
    # torch.optim would import torch._dynamo (seconds) at its first constructor: the reason Adam exists.
    code = textwrap.dedent("""
        import sys, torch
        from ctcdoctor.overfit.prepare import build_optimizer
        from ctcdoctor.protocol import Setup
        model = torch.nn.Linear(3, 2)
        optimizer = build_optimizer(Setup(model=model, loader=[]), list(model.parameters()), None)
        model(torch.randn(4, 3)).sum().backward()
        optimizer.step()
        optimizer.zero_grad()
        print(type(optimizer).__name__, optimizer.param_groups[0]["lr"], "torch._dynamo" in sys.modules)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["Adam", "0.001", "False"]
