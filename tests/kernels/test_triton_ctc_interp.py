"""The fused Triton CTC kernel against a float64 reference, run on CPU tensors in the Triton interpreter.

Shapes are tiny on purpose: the interpreter costs milliseconds per program step.
Every output is poisoned with a sentinel before the launch, so an element the kernel forgets to
write fails the comparison (the reference never produces the sentinel).
"""
from __future__ import annotations

import os

import numpy as np
import pytest
import torch
import torch.nn.functional as F

pytest.importorskip("triton")

from kernel_ref64 import batch_reference, sample_reference  # noqa: E402

pytestmark = [
    pytest.mark.skipif(
        os.environ.get("TRITON_INTERPRET", "0") in ("", "0"),
        reason="CPU tensors need TRITON_INTERPRET=1 (tests/kernels/conftest.py sets it when there is no CUDA)",
    ),
    # The interpreter runs on numpy, which warns on the log(0) and -inf - -inf the kernels guard.
    pytest.mark.filterwarnings("ignore:divide by zero:RuntimeWarning"),
    pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning"),
]

POISON = 123.0
RTOL = 1e-4


def _fb(*args, **kwargs):
    from ctcdoctor.kernels.triton_ctc import forward_backward

    return forward_backward(*args, _poison=POISON, **kwargs)


def _rel_err(got, ref):
    """Norm-wise relative error over the finite reference entries; NaN pattern must match exactly."""
    got = np.asarray(got, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    assert np.array_equal(np.isnan(got), np.isnan(ref)), "NaN pattern differs from the reference"
    assert np.array_equal(np.isinf(got), np.isinf(ref)), "inf pattern differs from the reference"
    ok = np.isfinite(ref)
    if not ok.any():
        return 0.0
    return float(np.abs(got[ok] - ref[ok]).max() / max(np.abs(ref[ok]).max(), 1e-30))


def _random_log_probs(gen, T, N, C, scale=3.0, dtype=torch.float32):
    return (torch.randn(T, N, C, generator=gen, dtype=torch.float64) * scale).log_softmax(-1).to(dtype)


def _random_labels(gen, N, C, blank, max_u, repeat_bias=0.5):
    """Label lists with plenty of adjacent repeats (they change the skip transitions)."""
    classes = [k for k in range(C) if k != blank]
    out = []
    for _ in range(N):
        U = int(torch.randint(0, max_u + 1, (1,), generator=gen))
        lab = []
        for _ in range(U):
            if lab and float(torch.rand(1, generator=gen)) < repeat_bias:
                lab.append(lab[-1])
            else:
                lab.append(classes[int(torch.randint(0, len(classes), (1,), generator=gen))])
        out.append(lab)
    return out


def _min_frames(lab):
    return len(lab) + sum(lab[i] == lab[i - 1] for i in range(1, len(lab)))


def _pack(labels, padded, pad_value=0):
    lengths = torch.tensor([len(x) for x in labels], dtype=torch.int64)
    if padded:
        width = max(1, int(lengths.max()))
        t = torch.full((len(labels), width), pad_value, dtype=torch.int64)
        for n, lab in enumerate(labels):
            t[n, : len(lab)] = torch.tensor(lab, dtype=torch.int64)
        return t, lengths
    flat = [k for lab in labels for k in lab]
    return torch.tensor(flat, dtype=torch.int64), lengths


def _check(lp, labels, in_len, blank, alpha=None, gamma=0.0, padded=True, grad_rtol=RTOL):
    targets, tgt_len = _pack(labels, padded, pad_value=blank)
    loss, grad, post = _fb(lp, targets, in_len, tgt_len, blank=blank, alpha=alpha, gamma=gamma)
    assert loss.dtype == torch.float32 and post.dtype == torch.float32 and grad.dtype == lp.dtype
    r_loss, r_grad, r_post = batch_reference(lp.double().numpy(), labels, in_len.tolist(), blank, alpha, gamma)
    T = lp.shape[0]
    for n in range(lp.shape[1]):
        # Frames past the sample's length: exactly 0 (the poison would show here).
        assert (grad[int(in_len[n]):, n] == 0).all() and (post[int(in_len[n]):, n] == 0).all()
    assert _rel_err(loss, r_loss) <= RTOL, (loss, r_loss)
    assert _rel_err(post, r_post) <= RTOL
    assert _rel_err(grad.float(), r_grad) <= grad_rtol
    assert not (grad == POISON).any() and not (post == POISON).any() and not (loss == POISON).any()
    return loss, grad, post, T


def test_reference_matches_torch_float64():
    # The reference is only worth testing against if it agrees with F.ctc_loss where they overlap.
    gen = torch.Generator().manual_seed(7)
    T, N, C, blank = 9, 4, 5, 2
    lp = _random_log_probs(gen, T, N, C).double()
    labels = [[1, 1, 3], [4], [], [3, 4, 3, 3]]
    in_len = torch.tensor([9, 6, 4, 8])
    targets, tgt_len = _pack(labels, padded=True, pad_value=blank)
    x = lp.clone().requires_grad_()
    ref_loss = F.ctc_loss(x, targets, in_len, tgt_len, blank=blank, reduction="none")
    ref_loss.sum().backward()
    loss, grad, post = batch_reference(lp.numpy(), labels, in_len.tolist(), blank)
    np.testing.assert_allclose(loss, ref_loss.detach().numpy(), rtol=1e-10)
    np.testing.assert_allclose(grad, x.grad.numpy(), atol=1e-10)
    live = (torch.arange(T)[:, None] < in_len[None, :])[..., None]
    np.testing.assert_allclose(post, ((lp.exp() - x.grad) * live).numpy(), atol=1e-10)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_batches_plain(seed):
    gen = torch.Generator().manual_seed(1000 + seed)
    T, N, C, blank = 10, 3, 6, 0
    labels = _random_labels(gen, N, C, blank, max_u=4)
    in_len = torch.tensor([max(_min_frames(lab), int(torch.randint(5, T + 1, (1,), generator=gen))) for lab in labels])
    in_len[0] = T
    lp = _random_log_probs(gen, T, N, C)
    _check(lp, labels, in_len, blank, padded=bool(seed % 2))


@pytest.mark.parametrize("blank", [5, 2])  # last class and a middle one
def test_nonzero_blank_concatenated_targets(blank):
    gen = torch.Generator().manual_seed(blank)
    T, N, C = 9, 3, 6
    labels = _random_labels(gen, N, C, blank, max_u=4)
    in_len = torch.tensor([T, max(_min_frames(labels[1]), 7), max(_min_frames(labels[2]), 5)])
    lp = _random_log_probs(gen, T, N, C)
    if blank == 2:
        # A (T, N, C) view of batch-first storage: the kernel must honour strides.
        lp = lp.transpose(0, 1).contiguous().transpose(0, 1)
    _check(lp, labels, in_len, blank, padded=False)


def test_edge_samples_empty_tight_infeasible():
    gen = torch.Generator().manual_seed(11)
    T, C, blank = 8, 5, 1
    labels = [
        [],              # all-blank path
        [2, 2, 3, 3],    # needs exactly 4 + 2 = 6 frames: T_n == U + repeats
        [4, 4, 4, 4],    # needs 7 frames, gets 5: infeasible
        [3, 0, 2],       # ordinary, ends one frame early
    ]
    in_len = torch.tensor([6, 6, 5, 7])
    lp = _random_log_probs(gen, T, len(labels), C)
    loss, grad, post, _ = _check(lp, labels, in_len, blank)
    assert torch.isinf(loss[2]) and loss[2] > 0
    assert torch.isnan(grad[:5, 2]).all() and torch.isnan(post[:5, 2]).all()
    assert (grad[5:, 2] == 0).all()
    # The tight sample has exactly one path: a one-hot posterior.
    assert torch.allclose(post[:6, 1].max(-1).values, torch.ones(6), atol=1e-5)
    # The empty target puts every frame on blank.
    assert torch.allclose(post[:6, 0, blank], torch.ones(6), atol=1e-6)


@pytest.mark.parametrize("seed,alpha,gamma", [(0, 0.3, 0.0), (1, None, 1.0), (2, 0.7, 2.0), (3, 0.5, 0.5)])
def test_alpha_gamma(seed, alpha, gamma):
    gen = torch.Generator().manual_seed(2000 + seed)
    T, N, C, blank = 10, 4, 5, (0 if seed % 2 else 3)
    labels = _random_labels(gen, N, C, blank, max_u=4)
    labels[0] = []  # alpha is skipped for empty targets
    labels[1] = [k for k in range(C) if k != blank][:2] * 2  # a class at several states
    in_len = torch.tensor([T, 9, max(_min_frames(labels[2]), 6), max(_min_frames(labels[3]), 8)])
    lp = _random_log_probs(gen, T, N, C)
    _check(lp, labels, in_len, blank, alpha=alpha, gamma=gamma, padded=bool(seed % 2))


def test_alpha_gamma_change_the_gradient_but_not_loss_or_posterior():
    # Guards against alpha/gamma silently not reaching the kernel (the reference would then still
    # agree with itself only if it ignored them too).
    gen = torch.Generator().manual_seed(5)
    T, C = 8, 5
    labels = [[1, 2], [3, 3, 4]]
    targets, tgt_len = _pack(labels, padded=True)
    in_len = torch.tensor([8, 7])
    lp = _random_log_probs(gen, T, 2, C)
    base = _fb(lp, targets, in_len, tgt_len)
    mod = _fb(lp, targets, in_len, tgt_len, alpha=0.4, gamma=1.5)
    assert torch.equal(base[0], mod[0]) and torch.allclose(base[2], mod[2])
    assert (base[1] - mod[1]).abs().max() > 1e-3


def test_extreme_log_probs():
    # Confident, wrong models give log-probs of -100 and below, and exact -inf after masking: the
    # per-step shift keeps the recursion finite where a scaled linear-space one would underflow.
    gen = torch.Generator().manual_seed(3)
    T, N, C, blank = 8, 2, 5, 0
    lp = _random_log_probs(gen, T, N, C, scale=60.0)
    lp[2, 0, 3] = float("-inf")
    labels = [[1, 3, 3], [2, 4]]
    in_len = torch.tensor([8, 8])
    _check(lp, labels, in_len, blank)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_inputs_accumulate_in_float32(dtype):
    gen = torch.Generator().manual_seed(9)
    T, N, C = 8, 2, 5
    labels = [[1, 2, 2], [4, 3]]
    in_len = torch.tensor([8, 6])
    lp = _random_log_probs(gen, T, N, C, dtype=dtype)
    # Same (rounded) inputs in the reference; only the half-precision grad output rounds.
    _check(lp, labels, in_len, 0, grad_rtol=8e-3 if dtype == torch.bfloat16 else 1e-3)


def test_poison_is_detected():
    # The comparison must fail when an element is left unwritten: simulate one.
    gen = torch.Generator().manual_seed(4)
    lp = _random_log_probs(gen, 6, 1, 4)
    loss, grad, post = _fb(lp, torch.tensor([[1, 2]]), torch.tensor([6]), torch.tensor([2]))
    r_loss, r_grad, r_post = batch_reference(lp.double().numpy(), [[1, 2]], [6], 0)
    assert _rel_err(post, r_post) <= RTOL
    post[3, 0, 2] = POISON
    assert _rel_err(post, r_post) > RTOL


def test_sample_reference_alpha_renormalises():
    # The alpha rescaling itself: non-blank share of the pseudo ground truth moves towards alpha.
    rng = np.random.default_rng(0)
    lp = np.log(rng.dirichlet(np.ones(4), size=12))
    _, g0, post = sample_reference(lp, [1, 2, 3], 0)
    _, g1, _ = sample_reference(lp, [1, 2, 3], 0, alpha=0.6)
    target = np.exp(lp) - g1
    np.testing.assert_allclose(target.sum(1), 1.0, atol=1e-12)
    share = target[:, 1:].sum() / target.sum()
    assert abs(share - 0.6) < abs(post[:, 1:].sum() / post.sum() - 0.6)
