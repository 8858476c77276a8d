"""ctc_loss as a drop-in for F.ctc_loss, and the modified-gradient machinery on the same cases."""
import pytest
import torch
import torch.nn.functional as F

from ctcdoctor.ctc import ctc_loss
from ctcdoctor.ctc._args import normalise
from ctcdoctor.ctc.dispatch import PrecomputedCTC
from ctcdoctor.ctc.fast_cpu import FastModifiedCTC
from ctcdoctor.ctc.modified import modified_gradient


def unmodified_function(lp, tg, il, tl, blank=0, reduction="mean", zero_infinity=False):
    """The fast path's autograd Function with alpha=None, gamma=0: must reproduce F.ctc_loss, which
    checks its reductions, masking and infeasible-sample handling (shared with alpha/gamma)."""
    args = normalise(lp, tg, il, tl, blank)
    out = FastModifiedCTC.apply(args.log_probs, args, reduction, zero_infinity, None, 0.0)
    return out.squeeze(0) if args.unbatched and reduction == "none" else out


def unmodified_plain(lp, tg, il, tl, blank=0, reduction="mean", zero_infinity=False):
    """The plain definition (modified.modified_gradient) with alpha=None, gamma=0: also F.ctc_loss."""
    args = normalise(lp, tg, il, tl, blank)
    nll, grad = modified_gradient(args, None, 0.0, zero_infinity)
    out = PrecomputedCTC.apply(args.log_probs, nll, grad, args.target_lengths, reduction)
    return out.squeeze(0) if args.unbatched and reduction == "none" else out


def value_and_grad(fn, lp, *a, weights=None, **kw):
    x = lp.detach().clone().requires_grad_()
    out = fn(x, *a, **kw)
    # Random weights on "none" so each sample's gradient scaling is exercised.
    w = torch.ones_like(out) if weights is None else weights
    (g,) = torch.autograd.grad((out * w).sum(), x)
    return out.detach(), g


def tol(dtype, nll):
    # fp32 CTC gradients drift with sequence length: scale with max(1, |NLL|).
    scale = max(1.0, float(nll[torch.isfinite(nll)].abs().max()) if torch.isfinite(nll).any() else 1.0)
    return (1e-12, 1e-12) if dtype == torch.float64 else (1e-5 * scale, 1e-5 * scale)


def cases(batch, dtype):
    lp, tg, il, tl = batch(T=12, N=5, C=6, S=4, dtype=dtype)
    yield "ragged", lp, tg, il, tl, 0
    tl0 = tl.clone()
    tl0[1] = 0
    yield "empty target", lp, tg, il, tl0, 0
    tight = torch.tensor([[1, 1, 2, 3], [2, 3, 4, 5], [1, 2, 2, 2], [4, 4, 4, 4], [1, 2, 3, 4]])
    tlt = torch.tensor([4, 4, 4, 4, 4])
    ilt = torch.tensor([5, 4, 6, 7, 12])  # T_n == U_n + repeats for the first four
    yield "T == U + repeats", lp, tight, ilt, tlt, 0
    ili = ilt.clone()
    ili[0], ili[3] = 4, 5  # one short of feasible
    yield "infeasible", lp, tight, ili, tlt, 0
    flat = torch.cat([tg[n, : tl[n]] for n in range(5)])
    yield "1-D concatenated", lp, flat, il, tl, 0
    last = torch.where(tg == 5, torch.zeros_like(tg), tg)  # class 5 is the blank now
    yield "blank = C-1", lp, last, il, tl, 5
    mid = torch.where(tg == 2, torch.zeros_like(tg), tg)
    yield "blank in the middle", lp, mid, il, tl, 2


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
@pytest.mark.parametrize("zero_infinity", [False, True])
@pytest.mark.parametrize(
    "impl", [ctc_loss, unmodified_function, unmodified_plain], ids=["ctc_loss", "fast", "plain"]
)
def test_matches_torch(batch, dtype, reduction, zero_infinity, impl):
    for name, lp, tg, il, tl, blank in cases(batch, dtype):
        kw = dict(blank=blank, reduction=reduction, zero_infinity=zero_infinity)
        w = torch.rand(lp.shape[1], dtype=dtype) + 0.5 if reduction == "none" else None
        want, want_g = value_and_grad(F.ctc_loss, lp, tg, il, tl, weights=w, **kw)
        got, got_g = value_and_grad(impl, lp, tg, il, tl, weights=w, **kw)
        nll = F.ctc_loss(lp, tg, il, tl, blank=blank, reduction="none")
        rtol, atol = tol(dtype, nll)
        torch.testing.assert_close(got, want, rtol=rtol, atol=atol, equal_nan=True, msg=name)
        torch.testing.assert_close(got_g, want_g, rtol=rtol, atol=atol, equal_nan=True, msg=name)


@pytest.mark.parametrize("impl", [unmodified_function, unmodified_plain], ids=["fast", "plain"])
def test_infeasible_is_inf_and_nan_like_torch(batch, impl):
    lp, tg, il, tl = batch(T=6, N=2, C=4, S=3)
    il = torch.tensor([6, 2])  # sample 1 needs >= 3 frames
    tl = torch.tensor([3, 3])
    loss, g = value_and_grad(impl, lp, tg, il, tl, reduction="none")
    assert torch.isinf(loss[1]) and torch.isfinite(loss[0])
    assert torch.isnan(g[:2, 1]).all() and (g[2:, 1] == 0).all() and torch.isfinite(g[:, 0]).all()
    loss, g = value_and_grad(impl, lp, tg, il, tl, reduction="none", zero_infinity=True)
    assert loss[1] == 0 and (g[:, 1] == 0).all()


def test_unbatched(batch):
    lp, tg, il, tl = batch(T=9, N=1, C=5, S=3)
    for impl in (ctc_loss, unmodified_function, unmodified_plain):
        for reduction in ("none", "mean"):
            want, wg = value_and_grad(F.ctc_loss, lp[:, 0], tg[0], il[0], tl[0], reduction=reduction)
            got, gg = value_and_grad(impl, lp[:, 0], tg[0], il[0], tl[0], reduction=reduction)
            assert got.shape == want.shape
            torch.testing.assert_close(got, want)
            torch.testing.assert_close(gg, wg)


@pytest.mark.parametrize(
    "change,match",
    [
        (dict(blank=7), "blank=7 is out of range"),
        (dict(blank=-1), "blank=-1 is out of range"),
        (dict(reduction="avg"), "reduction='avg'"),
        (dict(alpha=1.0), "alpha=1.0"),
        (dict(alpha=0.0), "alpha=0.0"),
        (dict(gamma=-1.0), "gamma=-1.0"),
        (dict(log_probs=torch.zeros(4)), "1-D shape"),
        (dict(input_lengths=[6, 6]), "input_lengths has 2 entries"),
        (dict(input_lengths=[6, 6, 9]), r"input_lengths must lie in \[0, T=6\]"),
        (dict(target_lengths=[2, 2, 4]), "exceeds the padded target width"),
        (dict(targets=torch.tensor([[1, 9, 1]] * 3)), r"target indices must lie in \[0, C=5\)"),
        (dict(targets=torch.tensor([1, 2, 3]), target_lengths=[2, 2, 2]), "sum to 6"),
        (dict(targets=torch.zeros(3, 3)), "integer class indices"),
    ],
)
def test_validation_errors_name_the_problem(change, match):
    kw = dict(
        log_probs=torch.randn(6, 3, 5).log_softmax(-1),
        targets=torch.tensor([[1, 2, 3]] * 3),
        input_lengths=[6, 6, 6],
        target_lengths=[2, 2, 3],
    )
    kw.update(change)
    with pytest.raises(ValueError, match=match):
        ctc_loss(**kw)


def test_padding_values_are_ignored():
    lp = torch.randn(6, 2, 5, dtype=torch.float64).log_softmax(-1)
    a = ctc_loss(lp, torch.tensor([[1, 2, -1], [3, 99, 99]]), [6, 6], [2, 1], alpha=0.5, reduction="none")
    b = ctc_loss(lp, torch.tensor([[1, 2, 0], [3, 0, 0]]), [6, 6], [2, 1], alpha=0.5, reduction="none")
    torch.testing.assert_close(a, b)
