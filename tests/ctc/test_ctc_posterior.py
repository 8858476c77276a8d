import warnings

import pytest
import torch

from ctcdoctor.ctc import InfeasibleSampleWarning, posterior, reference_ctc


@pytest.mark.parametrize("blank", [0, 3, 5])
@pytest.mark.parametrize("concat", [False, True])
def test_posterior_matches_reference(batch, blank, concat):
    lp, tg, il, tl = batch(T=12, N=5, C=6, S=4, blank=blank, seed=blank)
    tg[1, :3] = tg[1, 0]  # repeated label: one class at several states
    targets = torch.cat([tg[n, : tl[n]] for n in range(5)]) if concat else tg
    _, want = reference_ctc(lp, tg, il, tl, blank)
    got = posterior(lp, targets, il, tl, blank=blank)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-12)


def test_frames_sum_to_one_and_padding_is_zero(batch):
    lp, tg, il, tl = batch(T=40, N=6, C=9, S=8, dtype=torch.float32, seed=1)
    occ = posterior(lp, tg, il, tl)
    valid = torch.arange(40)[:, None] < il[None, :]
    scale = max(1.0, float(reference_ctc(lp.double(), tg, il, tl)[0].abs().max()))
    torch.testing.assert_close(occ.sum(-1)[valid], torch.ones(int(valid.sum())), rtol=0, atol=1e-6 * scale)
    assert (occ[~valid] == 0).all()
    assert (occ >= -1e-6).all()


def test_fp32_close_to_reference(batch):
    lp, tg, il, tl = batch(T=60, N=3, C=20, S=15, dtype=torch.float32, seed=9)
    nll, want = reference_ctc(lp.double(), tg, il, tl)
    scale = max(1.0, float(nll.abs().max()))
    torch.testing.assert_close(posterior(lp, tg, il, tl).double(), want, rtol=0, atol=1e-5 * scale)


def test_infeasible_sample_is_nan_and_warned(batch):
    lp, tg, il, tl = batch(T=6, N=3, C=5, S=3, seed=2)
    tl[:] = 3
    il[2] = 2
    with pytest.warns(InfeasibleSampleWarning, match=r"indices \[2\]"):
        occ = posterior(lp, tg, il, tl)
    assert torch.isnan(occ[:2, 2]).all() and (occ[2:, 2] == 0).all()
    assert torch.isfinite(occ[:, :2]).all()


def test_feasible_batch_does_not_warn(batch):
    lp, tg, il, tl = batch()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        posterior(lp, tg, il, tl)


def test_unbatched(batch):
    lp, tg, il, tl = batch(N=1)
    got = posterior(lp[:, 0], tg[0], il[0], tl[0])
    assert got.shape == lp[:, 0].shape
    torch.testing.assert_close(got, posterior(lp, tg, il, tl)[:, 0])
