"""Hard numerics (issue 10, items 1, 3, 4): confident outputs, unnormalised scores, targets equal to
the blank. Each test failed before the occupancy was formed in log space (see ctc/occupancy.py)."""
from __future__ import annotations

import warnings

import pytest
import torch
import torch.nn.functional as F
from test_ctc_modified import direct_gradient, grad_of

from ctcdoctor.ctc import (
    BlankLabelWarning,
    ctc_loss,
    posterior,
    pseudo_ground_truth,
    reference_ctc,
)


def _confident(dtype):
    """T=3, C=3: frames 0 and 2 are sure of label 1, frame 1 is sure of the blank (log-prob gap 40)."""
    logits = torch.tensor([[[-100.0, 0, -100]], [[0, -40, -100]], [[-100, 0, -100]]], dtype=dtype)
    return logits.log_softmax(-1)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_alpha_gradient_when_the_blank_occupancy_is_tiny(dtype):
    # The only likely path is "1 1 1": y'[1, blank] ~ 2e-26 while y[1, blank] ~ 1. Reading y' as
    # exp(lp) - grad kept only rounding noise there, and the alpha rescale divides by it: the
    # middle row came out [1, -1] (y' unchanged) instead of the formula's [0.4, -0.4].
    lp = _confident(dtype)
    targets, lengths, target_lengths = torch.tensor([[1]]), torch.tensor([3]), torch.tensor([1])
    _, got = grad_of(lp, targets, lengths, target_lengths, alpha=0.5, reduction="sum")
    want = direct_gradient(lp, targets, lengths, target_lengths, 0, 0.5, 0.0, "sum")
    torch.testing.assert_close(got[1, 0, :2].double(), torch.tensor([0.4, -0.4], dtype=torch.float64),
                               rtol=0, atol=1e-6)
    torch.testing.assert_close(got.double(), want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_tiny_occupancies_keep_their_relative_precision(dtype):
    lp = _confident(dtype)
    occ = posterior(lp, torch.tensor([[1]]), [3], [1])
    _, want = reference_ctc(lp.double(), torch.tensor([[1]]), [3], [1])
    # The blank's occupancy at frame 1 is ~2e-26: right to float rounding, not 0 or noise.
    assert float(want[1, 0, 0]) < 1e-25
    torch.testing.assert_close(occ[:, :, 0].double(), want[:, :, 0], rtol=1e-4, atol=0)


def test_posterior_of_logits_is_the_posterior_of_their_log_softmax():
    # F.ctc_loss accepts unnormalised scores, and the occupancy does not change when a frame is
    # shifted by a constant. Before: logits [0, 40, 0] gave an all-zero posterior.
    assert torch.equal(posterior(torch.tensor([[[0.0, 40, 0]]]), torch.tensor([[1]]), [1], [1]),
                       torch.tensor([[[0.0, 1, 0]]]))
    g = torch.Generator().manual_seed(0)
    logits = 10 * torch.randn(12, 2, 6, generator=g)  # float32 logits with std 10: frames summed to -3
    tg, il, tl = torch.tensor([[1, 2, 3], [4, 5, 1]]), [12, 9], [3, 3]
    nll, want = reference_ctc(logits.double().log_softmax(-1), tg, il, tl)
    scale = float(nll.max())  # float32 CTC rounds at the scale of the NLL
    for fn in (posterior, pseudo_ground_truth):
        got = fn(logits, tg, il, tl)
        torch.testing.assert_close(got.double(), want, rtol=0, atol=2e-6 * scale)
    for alpha in (0.3, 0.7):
        torch.testing.assert_close(pseudo_ground_truth(logits, tg, il, tl, alpha=alpha),
                                   pseudo_ground_truth(logits.log_softmax(-1), tg, il, tl, alpha=alpha),
                                   rtol=0, atol=2e-6 * scale)


def test_huge_scores_are_shifted_not_overflowed():
    logits = torch.tensor([[[0.0, 500, 0]], [[300.0, 0, 0]], [[0, 0, 200.0]]])
    tg = torch.tensor([[1, 2]])
    _, want = reference_ctc(logits.double().log_softmax(-1), tg, [3], [2])
    torch.testing.assert_close(posterior(logits, tg, [3], [2]).double(), want, rtol=0, atol=1e-6)


@pytest.mark.parametrize("alpha, gamma", [(0.5, 0.0), (0.3, 0.0), (None, 1.0), (0.5, 2.0)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_alpha_gamma_on_logits_follow_f_ctc_loss(alpha, gamma, dtype):
    # The loss is F.ctc_loss's on the scores as given; the gradient is F.ctc_loss's convention,
    # exp(x) - y', with y'' (from the posterior, which logits and their log_softmax share) in
    # place of y'. Where exp(x) is large it swamps y'' in any float; where it is small the
    # gradient shows y'', which was garbage before (read from exp(x) - grad with exp(x) ~ 1e13).
    g = torch.Generator().manual_seed(1)
    logits = (10 * torch.randn(10, 3, 5, generator=g, dtype=torch.float64)).to(dtype)
    tg, il, tl = torch.tensor([[1, 2, 2], [3, 4, 0], [2, 0, 0]]), torch.tensor([10, 8, 6]), torch.tensor([3, 2, 1])
    loss, got = grad_of(logits, tg, il, tl, alpha=alpha, gamma=gamma, reduction="sum")
    torch.testing.assert_close(loss, F.ctc_loss(logits, tg, il, tl, reduction="sum"))
    want = direct_gradient(logits, tg, il, tl, 0, alpha, gamma, "sum")  # y = exp(x); y'' from the reference
    small = logits.double().exp() < 1
    tol = 1e-9 if dtype == torch.float64 else 1e-4
    torch.testing.assert_close(got.double()[small], want[small], rtol=0, atol=tol)
    torch.testing.assert_close(got.double(), want, rtol=tol, atol=tol)


def test_padding_frames_may_hold_nan():
    # Masked softmax over padded frames can give NaN there; F.ctc_loss never reads past T_n.
    g = torch.Generator().manual_seed(0)
    lp = torch.randn(8, 2, 5, generator=g, dtype=torch.float64).log_softmax(-1)
    lp[6:, 1] = float("nan")
    tg, il, tl = torch.tensor([[1, 2], [3, 4]]), torch.tensor([8, 6]), torch.tensor([2, 2])
    for alpha, gamma in ((0.5, 0.0), (None, 1.0), (0.5, 1.0)):
        loss, grad = grad_of(lp, tg, il, tl, alpha=alpha, gamma=gamma)
        torch.testing.assert_close(loss, F.ctc_loss(lp, tg, il, tl))
        assert torch.isfinite(grad).all() and (grad[6:, 1] == 0).all()
    assert torch.isfinite(posterior(lp, tg, il, tl)).all()


def _blank_target():
    lp = torch.randn(4, 2, 3, generator=torch.Generator().manual_seed(0)).log_softmax(-1)
    return lp, torch.tensor([[1, 2], [0, 1]]), torch.tensor([4, 4]), torch.tensor([2, 2])


@pytest.mark.parametrize("call", [
    lambda *a: posterior(*a),
    lambda *a: pseudo_ground_truth(*a, alpha=0.5),
    lambda *a: ctc_loss(*a, alpha=0.5),
    lambda *a: ctc_loss(*a, gamma=1.0),
], ids=["posterior", "pseudo_ground_truth", "alpha", "gamma"])
def test_target_equal_to_blank_is_refused_where_the_occupancy_is_used(call):
    # PyTorch's backward gives posterior rows summing to 2/3 there; nothing built on it can be right.
    with pytest.raises(ValueError, match=r"target of sample 1 holds the blank index 0 at position 0"):
        call(*_blank_target())


def test_target_equal_to_blank_warns_on_the_plain_loss():
    lp, tg, il, tl = _blank_target()
    with pytest.warns(BlankLabelWarning, match="holds the blank index 0"):
        loss = ctc_loss(lp, tg, il, tl)
    assert torch.equal(loss, F.ctc_loss(lp, tg, il, tl))  # still the drop-in
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ctc_loss(lp, torch.tensor([[1, 2], [2, 1]]), il, tl)  # padding equal to the blank is fine
        ctc_loss(lp, torch.tensor([[1, 0], [2, 1]]), il, torch.tensor([1, 2]))
