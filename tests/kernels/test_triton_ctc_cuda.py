"""On a real GPU: the compiled kernel against F.ctc_loss at realistic sizes. Skips without CUDA."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

pytest.importorskip("triton")
pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@pytest.mark.parametrize("T,N,C,U,blank", [(40, 8, 30, 12, 0), (200, 4, 40, 60, 39)])
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
    assert torch.allclose(loss.cpu().double(), ref.detach(), rtol=1e-4)
    assert (grad.cpu().double() - x.grad).abs().max() <= 1e-4
    live = (torch.arange(T)[:, None] < in_len[None, :])[..., None]
    assert (post.cpu().double() - (lp.exp() - x.grad) * live).abs().max() <= 1e-4
