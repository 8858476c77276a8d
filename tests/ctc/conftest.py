import pytest
import torch


@pytest.fixture
def batch():
    """Factory: random (T, N, C) log-probs and padded targets with ragged lengths."""

    def make(T=8, N=4, C=5, S=3, dtype=torch.float64, blank=0, seed=0, min_in=None):
        g = torch.Generator().manual_seed(seed)
        lp = torch.randn(T, N, C, generator=g, dtype=dtype).mul(2).log_softmax(-1)
        nonblank = [c for c in range(C) if c != blank]
        tg = torch.tensor(nonblank)[torch.randint(0, len(nonblank), (N, S), generator=g)]
        tl = torch.randint(0, S + 1, (N,), generator=g)
        tl[0] = S
        lo = min(min_in if min_in is not None else 2 * S + 1, T)
        il = torch.randint(lo, T + 1, (N,), generator=g)
        il[0] = T
        return lp, tg, il, tl

    return make
