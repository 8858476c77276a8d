"""On a real GPU: the compiled kernel against F.ctc_loss and the CPU path at realistic sizes, and the
public ctc_loss's Triton path without a host sync. Skips without CUDA (benchmarks/gpu_suite.py runs it)."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

pytest.importorskip("triton")
pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@pytest.mark.parametrize("T,N,C,U,blank", [(40, 8, 30, 12, 0), (200, 4, 40, 60, 39), (120, 4, 3000, 70, 5)])
def test_matches_torch_on_cuda(T, N, C, U, blank):
    from ctcdoctor.kernels.triton_ctc import forward_backward

    gen = torch.Generator(device="cpu").manual_seed(T)
    lp = torch.randn(T, N, C, generator=gen, dtype=torch.float64).log_softmax(-1)
    classes = torch.tensor([k for k in range(C) if k != blank])
    targets = classes[torch.randint(0, len(classes), (N, U), generator=gen)]
    in_len = torch.full((N,), T, dtype=torch.int64)
    in_len[-1] = T - 3
    tgt_len = torch.randint(1, U + 1, (N,), generator=gen)
    x = lp.clone().requires_grad_()
    ref = F.ctc_loss(x, targets, in_len, tgt_len, blank=blank, reduction="none")
    ref.sum().backward()
    loss, grad, post = forward_backward(lp.float().cuda(), targets.cuda(), in_len.cuda(), tgt_len.cuda(),
                                        blank=blank, _poison=123.0)
    torch.cuda.synchronize()
    assert not (grad == 123.0).any() and not (post == 123.0).any()  # every element written
    assert torch.allclose(loss.cpu().double(), ref.detach(), rtol=1e-4)
    assert (grad.cpu().double() - x.grad).abs().max() <= 1e-4
    live = (torch.arange(T)[:, None] < in_len[None, :])[..., None]
    assert (post.cpu().double() - (lp.exp() - x.grad) * live).abs().max() <= 1e-4


@pytest.mark.parametrize("alpha,gamma,reduction", [(0.5, 1.0, "mean"), (0.3, 0.0, "sum"), (None, 2.0, "none")])
def test_public_ctc_loss_on_cuda_matches_the_cpu_path(monkeypatch, alpha, gamma, reduction):
    from ctcdoctor.ctc import ctc_loss, posterior

    monkeypatch.delenv("CTCDOCTOR_KERNEL", raising=False)  # CUDA tensors take the kernel by default
    gen = torch.Generator().manual_seed(1)
    T, N, C, U = 150, 8, 500, 30
    lp = torch.randn(T, N, C, generator=gen).mul(3).log_softmax(-1)
    targets = torch.randint(1, C, (N, U), generator=gen)
    in_len = torch.randint(2 * U + 1, T + 1, (N,), generator=gen)
    tgt_len = torch.randint(U // 2, U + 1, (N,), generator=gen)
    weights = torch.rand(N, generator=gen) + 0.5 if reduction == "none" else torch.ones(())

    def run(log_probs):
        leaf = log_probs.clone().requires_grad_()
        loss = ctc_loss(leaf, targets, in_len, tgt_len, reduction=reduction, alpha=alpha, gamma=gamma)
        (loss * weights.to(loss.device)).sum().backward()
        return loss.detach().cpu(), leaf.grad.cpu()

    cpu_loss, cpu_grad = run(lp)
    gpu_loss, gpu_grad = run(lp.cuda())
    torch.testing.assert_close(gpu_loss, cpu_loss, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(gpu_grad, cpu_grad, rtol=1e-3, atol=2e-5)
    torch.testing.assert_close(posterior(lp.cuda(), targets, in_len, tgt_len).cpu(),
                               posterior(lp, targets, in_len, tgt_len), rtol=1e-3, atol=2e-5)


def test_triton_path_never_waits_for_the_gpu(monkeypatch):
    # Targets and lengths on the CPU, as cuDNN wants them: validation reads them there, the kernel
    # gets them through pinned memory, and nothing asks the device for a value.
    from ctcdoctor.ctc import ctc_loss

    monkeypatch.delenv("CTCDOCTOR_KERNEL", raising=False)
    gen = torch.Generator().manual_seed(2)
    T, N, C, U = 100, 8, 40, 20
    lp = torch.randn(T, N, C, generator=gen).log_softmax(-1).cuda().requires_grad_()
    targets = torch.randint(1, C, (N, U), generator=gen)
    lengths, tgt_len = torch.full((N,), T), torch.full((N,), U)
    ctc_loss(lp, targets, lengths, tgt_len, alpha=0.5, gamma=1.0).backward()  # compile outside the check
    lp.grad = None
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for kw in ({}, {"alpha": 0.5, "gamma": 1.0}, {"zero_infinity": True, "reduction": "sum"}):
            ctc_loss(lp, targets, lengths, tgt_len, **kw).backward()
    finally:
        torch.cuda.set_sync_debug_mode("default")
    torch.cuda.synchronize()
    assert torch.isfinite(lp.grad).all()
