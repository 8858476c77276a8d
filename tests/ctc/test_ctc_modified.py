"""The alpha/gamma gradient against a direct float64 implementation of the formulas, written
per sample from the reference occupancy and independent of the production code."""
import pytest
import torch
import torch.nn.functional as F

from ctcdoctor.ctc import ctc_loss, forward_backward, pseudo_ground_truth


def direct_gradient(lp, targets, il, tl, blank, alpha, gamma, reduction, zero_infinity=False):
    """g = omega_t (y - y'') per sample, from the formulas in docs/ctc.md, then reduced."""
    T, N, C = lp.shape
    lp = lp.double()
    g = torch.zeros(T, N, C, dtype=torch.float64)
    for n in range(N):
        Tn, Un = int(il[n]), int(tl[n])
        label = [int(c) for c in targets[n, :Un]]
        r = forward_backward(lp[:Tn, n], label, blank)
        if r.nll == float("inf"):
            g[:Tn, n] = 0.0 if zero_infinity else float("nan")
            continue
        y = lp[:Tn, n].exp()
        target = r.occupancy.clone()
        V = target.sum(0)
        if alpha is not None and Un > 0 and V[blank] > 0:
            factor = torch.ones(C, dtype=torch.float64)
            factor[blank] = (1 - alpha) * Un / V[blank]
            for k in set(label):
                factor[k] = alpha * label.count(k) / V[k]
            target = target * factor
            target = target / target.sum(1, keepdim=True)
        if gamma:
            # w >= 0 exactly for log-probabilities; for unnormalised scores the clamp matters.
            w = (target - y).max(1).values.clamp_min(0) ** gamma
            omega = w / w.sum() * Tn if w.sum() > 0 else torch.ones(Tn, dtype=torch.float64)
        else:
            omega = torch.ones(Tn, dtype=torch.float64)
        gn = omega[:, None] * (y - target)
        if reduction == "mean":
            gn = gn / max(Un, 1) / N
        g[:Tn, n] = gn
    return g


def grad_of(lp, *a, **kw):
    x = lp.detach().clone().requires_grad_()
    loss = ctc_loss(x, *a, **kw)
    (g,) = torch.autograd.grad(loss.sum(), x)
    return loss.detach(), g


@pytest.mark.parametrize("alpha,gamma", [(0.5, 0.0), (0.3, 0.0), (None, 1.0), (None, 2.5), (0.5, 1.0), (0.8, 0.5)])
@pytest.mark.parametrize("reduction", ["sum", "mean"])
@pytest.mark.parametrize("blank", [0, 4, 2])
def test_matches_direct_formulas(batch, alpha, gamma, reduction, blank):
    lp, tg, il, tl = batch(T=11, N=5, C=6, S=4, blank=blank, seed=3)
    tg[2, :4] = torch.tensor([1, 1, 3, 1]) if blank != 1 else torch.tensor([3, 3, 5, 3])  # repeats and N_k > 1
    tl[2], il[2] = 4, 7  # T == U + repeats: no blank frame possible, alpha must leave y' alone
    tl[3] = 0  # empty target
    want = direct_gradient(lp, tg, il, tl, blank, alpha, gamma, reduction)
    loss, got = grad_of(lp, tg, il, tl, blank=blank, alpha=alpha, gamma=gamma, reduction=reduction)
    torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-10)
    torch.testing.assert_close(loss, F.ctc_loss(lp, tg, il, tl, blank=blank, reduction=reduction))


@pytest.mark.parametrize("zero_infinity", [False, True])
def test_infeasible_with_modifications(batch, zero_infinity):
    lp, tg, il, tl = batch(T=8, N=3, C=5, S=3, seed=5)
    tl[1], il[1] = 3, 2
    want = direct_gradient(lp, tg, il, tl, 0, 0.5, 1.0, "sum", zero_infinity)
    loss, got = grad_of(lp, tg, il, tl, alpha=0.5, gamma=1.0, reduction="none", zero_infinity=zero_infinity)
    torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-10, equal_nan=True)
    assert (loss[1] == 0) if zero_infinity else torch.isinf(loss[1])


def test_fp32_matches_float64_direct(batch):
    lp, tg, il, tl = batch(T=30, N=4, C=8, S=8, dtype=torch.float32, seed=7)
    want = direct_gradient(lp, tg, il, tl, 0, 0.5, 1.0, "sum")
    nll = F.ctc_loss(lp.double(), tg, il, tl, reduction="none")
    _, got = grad_of(lp, tg, il, tl, alpha=0.5, gamma=1.0, reduction="sum")
    scale = max(1.0, float(nll.abs().max()))
    torch.testing.assert_close(got.double(), want, rtol=0, atol=2e-5 * scale)


def test_large_vocabulary(batch):
    """Few classes of many carry occupancy; the rest must still get gradient y."""
    lp, tg, il, tl = batch(T=10, N=3, C=300, S=3, seed=11)
    want = direct_gradient(lp, tg, il, tl, 0, 0.5, 1.0, "mean")
    _, got = grad_of(lp, tg, il, tl, alpha=0.5, gamma=1.0)
    torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-10)


def test_no_modification_is_exactly_plain(batch):
    lp, tg, il, tl = batch(T=10, N=4, C=5, S=3)
    x1, x2 = lp.clone().requires_grad_(), lp.clone().requires_grad_()
    ctc_loss(x1, tg, il, tl, alpha=None, gamma=0.0).backward()
    F.ctc_loss(x2, tg, il, tl).backward()
    assert torch.equal(x1.grad, x2.grad)


@pytest.mark.parametrize("alpha", [0.3, 0.5, 0.7])
def test_alpha_sets_nonblank_proportion(alpha):
    """From near-uniform outputs (training's start) the modified target's non-blank share is
    about alpha; per-frame renormalisation moves it only slightly. (From confident outputs a
    frame that is all blank stays all blank after renormalising: the share moves over steps.)"""
    g = torch.Generator().manual_seed(0)
    lp = (0.01 * torch.randn(24, 3, 6, generator=g, dtype=torch.float64)).log_softmax(-1)
    tg = torch.tensor([[1, 2, 3, 4], [5, 5, 1, 0], [2, 0, 0, 0]])
    il, tl = torch.tensor([24, 18, 10]), torch.tensor([4, 3, 1])
    target = pseudo_ground_truth(lp, tg, il, tl, alpha=alpha)
    for n in range(3):
        frames = target[: int(il[n]), n]
        assert float(1 - frames[:, 0].mean()) == pytest.approx(alpha, abs=0.03)
        torch.testing.assert_close(frames.sum(1), torch.ones(int(il[n]), dtype=torch.float64))
    assert target[18:, 1].abs().sum() == 0 and target[10:, 2].abs().sum() == 0


def test_gamma_weights_average_one(batch):
    """Mean-normalised weights: the gradient's total size stays comparable with plain CTC."""
    lp, tg, il, tl = batch(T=16, N=1, C=5, S=3, seed=4)
    _, plain = grad_of(lp, tg, il, tl, reduction="sum")
    _, weighted = grad_of(lp, tg, il, tl, gamma=1.0, reduction="sum")
    # omega_t = weighted / plain row-wise; its mean over frames is 1.
    rows = plain.abs().sum(-1)[:, 0] > 1e-9
    omega = (weighted.abs().sum(-1) / plain.abs().sum(-1).clamp_min(1e-30))[:, 0][rows]
    assert float(omega.mean()) == pytest.approx(1.0, rel=1e-6) and float(omega.std()) > 0.05
