"""The CPU fast path (ctc/fast_cpu.py) against the plain definition (ctc/modified.py), its oracle.

Both are also checked against the float64 formulas (test_ctc_modified.py); here every case the
fast path treats specially (subset columns, numpy weights, padding rows, infeasible samples,
-inf log-probs, strided input, the three reductions) must give the plain path's numbers.
"""
from __future__ import annotations

import pytest
import torch
from test_ctc_loss import cases

from ctcdoctor.ctc._args import normalise
from ctcdoctor.ctc.dispatch import PrecomputedCTC
from ctcdoctor.ctc.fast_cpu import FastModifiedCTC
from ctcdoctor.ctc.modified import modified_gradient


def fast(lp, tg, il, tl, blank, reduction, zero_infinity, alpha, gamma):
    args = normalise(lp, tg, il, tl, blank)
    return FastModifiedCTC.apply(args.log_probs, args, reduction, zero_infinity, alpha, gamma)


def plain(lp, tg, il, tl, blank, reduction, zero_infinity, alpha, gamma):
    args = normalise(lp, tg, il, tl, blank)
    nll, grad = modified_gradient(args, alpha, gamma, zero_infinity)
    return PrecomputedCTC.apply(args.log_probs, nll, grad, args.target_lengths, reduction)


def run(fn, lp, *a, weights=None):
    x = lp.detach().clone().requires_grad_()
    out = fn(x, *a)
    w = torch.ones_like(out) if weights is None else weights
    (g,) = torch.autograd.grad((out * w).sum(), x)
    return out.detach(), g


def assert_same(lp, tg, il, tl, blank=0, reduction="sum", zero_infinity=False, alpha=0.5, gamma=1.0, msg=""):
    w = torch.rand(lp.shape[1], dtype=lp.dtype) + 0.5 if reduction == "none" else None
    a = (tg, il, tl, blank, reduction, zero_infinity, alpha, gamma)
    want, want_g = run(plain, lp, *a, weights=w)
    got, got_g = run(fast, lp, *a, weights=w)
    tol = 1e-12 if lp.dtype == torch.float64 else 2e-6
    torch.testing.assert_close(got, want, rtol=tol, atol=tol, equal_nan=True, msg=msg)
    torch.testing.assert_close(got_g, want_g, rtol=tol, atol=tol, equal_nan=True, msg=msg)
    return got, got_g


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
@pytest.mark.parametrize("alpha, gamma", [(0.5, 0.0), (None, 1.0), (0.3, 2.0)])
def test_fast_path_matches_the_definition(batch, dtype, reduction, alpha, gamma):
    for name, lp, tg, il, tl, blank in cases(batch, dtype):
        assert_same(lp, tg, il, tl, blank, reduction, False, alpha, gamma, msg=name)
        if name == "infeasible":
            assert_same(lp, tg, il, tl, blank, reduction, True, alpha, gamma, msg=name + ", zero_infinity")


def test_large_vocabulary_and_strided_input(batch):
    lp, tg, il, tl = batch(T=12, N=4, C=300, S=4, seed=3)
    assert_same(lp, tg, il, tl)
    # (T, N, C) view of batch-first storage: the gradient buffer must not inherit the strides.
    strided = lp.transpose(0, 1).contiguous().transpose(0, 1)
    assert not strided.is_contiguous()
    assert_same(strided, tg, il, tl, reduction="mean")


def test_minus_infinity_and_nan_padding(batch):
    lp, tg, il, tl = batch(T=9, N=3, C=6, S=3, seed=4)
    il = torch.tensor([9, 7, 5])
    lp = lp.clone()
    lp[:, :, 5] = float("-inf")  # a class no target uses, masked out
    lp[2, 0, 0] = float("-inf")  # no blank possible at one frame
    lp = lp.log_softmax(-1)
    lp[7:, 1] = float("nan")  # padding past T_n
    got, grad = assert_same(lp, tg, il, tl)
    assert torch.isfinite(grad).all() and (grad[7:, 1] == 0).all() and (grad[..., 5] == 0).all()


def test_single_alignment_keeps_the_posterior(batch):
    # T_n = U + repeats: one path, no blank occupancy at all (exactly 0 in log space), so alpha
    # leaves y' alone; a rescale by 1 / (rounding noise) made every frame blank once.
    lp, _, _, _ = batch(T=5, N=1, C=4, S=3, dtype=torch.float32, seed=1)
    tg, il, tl = torch.tensor([[1, 1, 2]]), torch.tensor([4]), torch.tensor([3])
    _, grad = assert_same(lp, tg, il, tl, gamma=0.0)
    _, plain_grad = run(lambda x, *a: torch.nn.functional.ctc_loss(x, *a[:3], reduction="sum"), lp, tg, il, tl)
    torch.testing.assert_close(grad, plain_grad, rtol=1e-6, atol=1e-6)
