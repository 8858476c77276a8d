"""Inputs that once gave silently wrong numbers: strided targets, -inf log-probs, loose lengths, half losses."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ctcdoctor.ctc import ctc_loss, posterior
from ctcdoctor.ctc.dispatch import kernel_path
from ctcdoctor.kernels import triton_available


def _log_probs(T=7, N=3, C=5, seed=0, dtype=torch.float64):
    return torch.randn(T, N, C, generator=torch.Generator().manual_seed(seed), dtype=dtype).log_softmax(-1)


def test_strided_concatenated_targets_read_the_right_labels():
    log_probs = _log_probs()
    strided = torch.tensor([1, 9, 2, 9, 2, 9, 3, 9, 4, 9, 4, 9])[::2]  # labels 1 2 2 | 3 | 4 4
    contiguous = strided.contiguous()
    lengths, target_lengths = torch.tensor([7, 7, 7]), torch.tensor([3, 1, 2])
    expected = F.ctc_loss(log_probs, contiguous, lengths, target_lengths, reduction="none")
    for alpha in (None, 0.5):
        got = ctc_loss(log_probs, strided, lengths, target_lengths, reduction="none", alpha=alpha)
        torch.testing.assert_close(got, expected)
    torch.testing.assert_close(
        posterior(log_probs, strided, lengths, target_lengths),
        posterior(log_probs, contiguous, lengths, target_lengths),
    )


def test_kernel_reads_strided_concatenated_targets():
    if not triton_available():
        pytest.skip("triton not installed")
    from ctcdoctor.kernels.triton_ctc import forward_backward

    log_probs = _log_probs(dtype=torch.float32)
    strided = torch.tensor([1, 9, 2, 9, 2, 9, 3, 9, 4, 9, 4, 9])[::2]
    lengths, target_lengths = torch.tensor([7, 7, 7]), torch.tensor([3, 1, 2])
    loss, _, _ = forward_backward(log_probs, strided, lengths, target_lengths)
    expected = F.ctc_loss(log_probs, strided.contiguous(), lengths, target_lengths, reduction="none")
    torch.testing.assert_close(loss, expected, rtol=1e-4, atol=1e-5)


def test_minus_infinity_log_probs_give_finite_occupancy_and_modified_gradient():
    log_probs = _log_probs(N=1)
    log_probs[:, :, 4] = float("-inf")  # a masked class that no target uses
    log_probs[2, 0, 0] = float("-inf")  # no blank possible at frame 2
    log_probs = log_probs.log_softmax(-1)
    targets, lengths, target_lengths = torch.tensor([[1, 2]]), torch.tensor([7]), torch.tensor([2])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a feasible sample must not be reported infeasible
        occupancy = posterior(log_probs, targets, lengths, target_lengths)
    assert torch.isfinite(occupancy).all()
    torch.testing.assert_close(occupancy.sum(-1), torch.ones(7, 1, dtype=torch.float64))
    assert float(occupancy[2, 0, 0]) == 0.0 and float(occupancy[:, 0, 4].abs().max()) == 0.0
    for alpha, gamma in ((0.5, 0.0), (None, 1.0)):
        leaf = log_probs.clone().requires_grad_()
        ctc_loss(leaf, targets, lengths, target_lengths, alpha=alpha, gamma=gamma).backward()
        assert torch.isfinite(leaf.grad).all()
        assert float(leaf.grad[:, 0, 4].abs().max()) == 0.0


def test_plain_path_accepts_the_same_lengths_as_the_modified_path():
    log_probs = _log_probs(N=1)
    targets = torch.tensor([1, 2, 2])
    plain = ctc_loss(log_probs[:, 0], targets, 7, 3, reduction="none")
    modified = ctc_loss(log_probs[:, 0], targets, 7, 3, reduction="none", alpha=0.5)
    torch.testing.assert_close(plain, modified)
    from_numpy = ctc_loss(log_probs, targets.unsqueeze(0), np.array([7]), np.array([3]))
    torch.testing.assert_close(from_numpy, F.ctc_loss(log_probs, targets.unsqueeze(0), [7], [3]))


class _CudaLike:
    is_cuda = True

    def __init__(self, dtype):
        self.dtype = dtype


def test_float64_stays_on_the_native_path(monkeypatch):
    import ctcdoctor.kernels as kernels

    monkeypatch.delenv("CTCDOCTOR_KERNEL", raising=False)
    monkeypatch.setattr(kernels, "triton_available", lambda: True)
    assert kernel_path(_CudaLike(torch.float64)) == "torch"
    assert kernel_path(_CudaLike(torch.float32)) == "triton"


def test_triton_path_keeps_a_float32_loss_for_half_inputs(monkeypatch):
    if not triton_available():
        pytest.skip("triton not installed")
    monkeypatch.setenv("CTCDOCTOR_KERNEL", "triton")
    # Confident wrong outputs: per-sample NLL in the thousands, whose sum overflows float16.
    logits = torch.zeros(10, 16, 4)
    logits[:, :, 0] = 1000.0  # each label frame costs ~1000 nats: ~5000 per sample, ~80000 in all
    log_probs = logits.log_softmax(-1).half()
    targets = torch.tensor([[1, 2, 3, 1, 2]] * 16)
    loss = ctc_loss(log_probs, targets, torch.full((16,), 10), torch.full((16,), 5), reduction="sum")
    assert loss.dtype == torch.float32 and torch.isfinite(loss) and float(loss) > 65504
