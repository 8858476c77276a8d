"""Dispatch between PyTorch's native CTC and the Triton kernel (run in the interpreter here)."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from ctcdoctor.ctc import ctc_loss, posterior
from ctcdoctor.ctc.dispatch import describe_path, kernel_path
from ctcdoctor.kernels import triton_available


def _inputs(seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    log_probs = torch.randn(8, 3, 5, generator=generator).log_softmax(-1)
    targets = torch.tensor([[1, 1, 2], [3, 4, 0], [2, 0, 0]])
    return log_probs, targets, torch.tensor([8, 7, 2]), torch.tensor([3, 2, 0])


def test_cpu_tensors_take_the_native_path_by_default(monkeypatch):
    monkeypatch.delenv("CTCDOCTOR_KERNEL", raising=False)
    assert kernel_path(torch.zeros(1)) == "torch"
    assert describe_path(torch.zeros(1)) == "torch native (CPU)"


def test_unknown_choice_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("CTCDOCTOR_KERNEL", "cudnn")
    with pytest.raises(ValueError, match="not one of auto, torch, triton"):
        kernel_path(torch.zeros(1))


def test_forcing_triton_on_cpu_without_interpreter_says_how(monkeypatch):
    if not triton_available():
        pytest.skip("triton not installed")
    monkeypatch.setenv("CTCDOCTOR_KERNEL", "triton")
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    with pytest.raises(RuntimeError, match="TRITON_INTERPRET=1"):
        kernel_path(torch.zeros(1))


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("alpha, gamma", [(None, 0.0), (0.5, 1.0)])
def test_forced_triton_path_matches_native_path(monkeypatch, reduction, alpha, gamma):
    if not triton_available():
        pytest.skip("triton not installed")
    log_probs, targets, input_lengths, target_lengths = _inputs()

    def run(kernel: str):
        monkeypatch.setenv("CTCDOCTOR_KERNEL", kernel)
        leaf = log_probs.clone().requires_grad_()
        loss = ctc_loss(leaf, targets, input_lengths, target_lengths, reduction=reduction, alpha=alpha, gamma=gamma)
        weights = torch.arange(1.0, loss.numel() + 1).reshape(loss.shape)
        (loss * weights).sum().backward()
        return loss.detach(), leaf.grad

    native_loss, native_grad = run("torch")
    monkeypatch.setenv("CTCDOCTOR_KERNEL", "triton")
    assert describe_path(log_probs) == "triton fused kernel (interpreter)"
    kernel_loss, kernel_grad = run("triton")
    torch.testing.assert_close(kernel_loss, native_loss, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(kernel_grad, native_grad, rtol=1e-4, atol=1e-5)
    if alpha is None:
        reference = F.ctc_loss(log_probs, targets, input_lengths, target_lengths, reduction=reduction)
        torch.testing.assert_close(kernel_loss, reference, rtol=1e-4, atol=1e-5)


def test_forced_triton_posterior_and_zero_infinity(monkeypatch):
    if not triton_available():
        pytest.skip("triton not installed")
    log_probs, targets, input_lengths, target_lengths = _inputs(1)
    input_lengths = torch.tensor([8, 7, 2])
    targets[2, :2] = torch.tensor([1, 1])
    target_lengths = torch.tensor([3, 2, 2])  # sample 2: "aa" needs 3 frames, has 2
    monkeypatch.setenv("CTCDOCTOR_KERNEL", "torch")
    with pytest.warns(UserWarning):
        native = posterior(log_probs, targets, input_lengths, target_lengths)
    native_loss = ctc_loss(log_probs, targets, input_lengths, target_lengths, zero_infinity=True, reduction="none")
    monkeypatch.setenv("CTCDOCTOR_KERNEL", "triton")
    with pytest.warns(UserWarning, match="cannot be aligned"):
        kernel = posterior(log_probs, targets, input_lengths, target_lengths)
    torch.testing.assert_close(kernel, native, rtol=1e-4, atol=1e-5, equal_nan=True)
    kernel_loss = ctc_loss(log_probs, targets, input_lengths, target_lengths, zero_infinity=True, reduction="none")
    torch.testing.assert_close(kernel_loss, native_loss, rtol=1e-4, atol=1e-5)
    assert float(kernel_loss[2]) == 0.0


class _CudaLike:
    """Stands in for a CUDA tensor: the dispatch only asks `is_cuda`."""

    is_cuda = True


def test_cuda_tensors_take_the_kernel_when_triton_imports(monkeypatch):
    import ctcdoctor.kernels as kernels

    monkeypatch.delenv("CTCDOCTOR_KERNEL", raising=False)
    monkeypatch.setattr(kernels, "triton_available", lambda: True)
    assert describe_path(_CudaLike()) == "triton fused kernel (CUDA)"
    monkeypatch.setenv("CTCDOCTOR_KERNEL", "torch")
    assert describe_path(_CudaLike()) == "torch native (CUDA)"
    monkeypatch.delenv("CTCDOCTOR_KERNEL")
    monkeypatch.setattr(kernels, "triton_available", lambda: False)
    assert describe_path(_CudaLike()) == "torch native (CUDA)"
