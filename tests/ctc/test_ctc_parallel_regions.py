"""The alpha/gamma CPU path opens no OpenMP region beyond F.ctc_loss's own on batches of usual size.

On a shared machine every parallel region can wait for a descheduled worker thread: under load
(2 cores, load average 3-4) one region cost about as much as the native CTC kernels' work, and two
extra exponentials on the caller's threads made alpha/gamma 1.64x F.ctc_loss where it is 1.04-1.16x
without them (benchmarks/ctc_cpu.py). So elementwise work under `PARALLEL_MIN` elements runs on one
thread; above it (large vocabularies) a second thread pays for itself and is used.
"""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode

from ctcdoctor.ctc import ctc_loss, posterior
from ctcdoctor.ctc.occupancy import PARALLEL_MIN

GRAIN = 32768  # at::internal::GRAIN_SIZE: aten splits an op over threads from this many elements
NATIVE = {"aten._ctc_loss", "aten._ctc_loss_backward"}
METADATA = {"aten.detach", "aten.view", "aten.expand", "aten.unsqueeze", "aten.alias", "aten._unsafe_view"}


class ParallelOps(TorchDispatchMode):
    """Names of the data-touching ops dispatched with > 1 thread on >= GRAIN elements."""

    def __init__(self) -> None:
        super().__init__()
        self.names: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001, ANN204
        tensors = [a for a in (*args, *(kwargs or {}).values()) if isinstance(a, torch.Tensor)]
        name = str(func.overloadpacket)
        if torch.get_num_threads() > 1 and max((t.numel() for t in tensors), default=0) >= GRAIN and name not in METADATA:
            self.names.append(name)
        return func(*args, **(kwargs or {}))


@pytest.fixture
def two_threads():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


def batch(T: int, N: int, C: int, U: int):
    g = torch.Generator().manual_seed(0)
    lp = torch.randn(T, N, C, generator=g).log_softmax(-1).requires_grad_()
    return lp, torch.randint(1, C, (N, U), generator=g), torch.full((N,), T), torch.full((N,), U)


def parallel_ops(fn) -> list[str]:
    with ParallelOps() as mode:
        fn()
    return mode.names


@pytest.mark.parametrize("options", [dict(alpha=0.5, gamma=1.0), dict(gamma=1.0), dict(alpha=0.5)])
def test_alpha_gamma_opens_only_the_native_kernels_regions_at_the_benchmark_shape(two_threads, options):
    lp, targets, il, tl = batch(100, 32, 37, 20)  # benchmarks/ctc_cpu.py's first shape: 118,400 elements
    peer = parallel_ops(lambda: F.ctc_loss(lp, targets, il, tl).backward())
    lp.grad = None
    ours = parallel_ops(lambda: ctc_loss(lp, targets, il, tl, **options).backward())
    assert set(peer) == NATIVE
    assert sorted(ours) == sorted(peer), ours


def test_posterior_opens_only_the_native_kernels_regions(two_threads):
    lp, targets, il, tl = batch(100, 32, 37, 20)
    assert sorted(parallel_ops(lambda: posterior(lp, targets, il, tl))) == sorted(NATIVE)


def test_a_large_vocabulary_still_uses_the_callers_threads_for_the_gradient(two_threads):
    C = PARALLEL_MIN // (10 * 4) + 1  # (T, N, C) just past PARALLEL_MIN; the subset stays small
    lp, targets, il, tl = batch(10, 4, C, 3)
    ours = parallel_ops(lambda: ctc_loss(lp, targets, il, tl, alpha=0.5, gamma=1.0).backward())
    assert "aten.exp" in ours and "aten.mul_" in ours, ours
