"""The float64 reference forward-backward against a brute-force sum over all alignment paths."""
import itertools
import math

import pytest
import torch
import torch.nn.functional as F

from ctcdoctor.ctc import forward_backward, posterior, reference_ctc, reference_ctc_loss


def collapse(path, blank):
    out, prev = [], None
    for c in path:
        if c != prev and c != blank:
            out.append(c)
        prev = c
    return out


def brute_force(lp, target, blank):
    """-log p(l|Y) and occupancy by enumerating all C**T paths."""
    T, C = lp.shape
    total = 0.0
    occ = torch.zeros(T, C, dtype=torch.float64)
    for path in itertools.product(range(C), repeat=T):
        if collapse(path, blank) != list(target):
            continue
        p = math.exp(sum(float(lp[t, k]) for t, k in enumerate(path)))
        total += p
        for t, k in enumerate(path):
            occ[t, k] += p
    if total == 0:
        return math.inf, torch.full((T, C), float("nan"), dtype=torch.float64)
    return -math.log(total), occ / total


CASES = [  # (T, C, target, blank)
    (5, 3, [1, 2], 0),
    (5, 3, [1, 1], 0),  # a repeat needs a blank between
    (3, 3, [1, 1], 0),  # T == U + repeats: exactly one path
    (4, 3, [], 0),  # empty target: all blanks
    (6, 4, [2, 0, 2], 3),  # blank is the last class
    (5, 4, [0, 3], 1),  # blank in the middle
    (2, 3, [1, 1], 0),  # infeasible
]


@pytest.mark.parametrize("T,C,target,blank", CASES)
def test_reference_matches_brute_force(T, C, target, blank):
    g = torch.Generator().manual_seed(T * 10 + C)
    lp = torch.randn(T, C, generator=g, dtype=torch.float64).log_softmax(-1)
    nll, occ = brute_force(lp, target, blank)
    r = forward_backward(lp, target, blank)
    if math.isinf(nll):
        assert math.isinf(r.nll) and torch.isnan(r.occupancy).all()
        return
    assert r.nll == pytest.approx(nll, rel=1e-12, abs=1e-12)
    torch.testing.assert_close(r.occupancy, occ, rtol=0, atol=1e-12)


@pytest.mark.parametrize("T,C,target,blank", CASES[:6])
def test_posterior_matches_brute_force(T, C, target, blank):
    g = torch.Generator().manual_seed(T * 7 + C)
    lp = torch.randn(T, 1, C, generator=g, dtype=torch.float64).log_softmax(-1)
    _, occ = brute_force(lp[:, 0], target, blank)
    got = posterior(lp, torch.tensor([target + [0]]), [T], [len(target)], blank=blank)
    torch.testing.assert_close(got[:, 0], occ, rtol=0, atol=1e-12)


def test_reference_loss_matches_torch(batch):
    lp, tg, il, tl = batch(T=10, N=5, C=6, S=3)
    for reduction in ("none", "sum", "mean"):
        ref = reference_ctc_loss(lp, tg, il, tl, reduction=reduction)
        torch.testing.assert_close(ref, F.ctc_loss(lp, tg, il, tl, reduction=reduction), rtol=1e-12, atol=1e-12)


def test_reference_batched_rows_past_length_are_zero(batch):
    lp, tg, il, tl = batch(T=9, N=4, C=5, S=2)
    il[1] = 6
    _, occ = reference_ctc(lp, tg, il, tl)
    assert occ[6:, 1].abs().sum() == 0
    torch.testing.assert_close(occ[:6, 1].sum(-1), torch.ones(6, dtype=torch.float64))
