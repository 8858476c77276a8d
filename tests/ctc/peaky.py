"""Hypothesis strategies for CTC batches with peaky, confident outputs, and the float64 yardstick.

Shared by the CPU property test (tests/ctc/test_ctc_properties.py) and the CPU vs Triton vs
reference differential test (tests/kernels/test_ctc_differential.py). Confident outputs are where
the occupancy is tiny next to the outputs (y' << y) and where a path that differs from the
likely one by a few frames costs e^-40 per frame: the class of inputs that broke the alpha
gradient once.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from hypothesis import strategies as st

from ctcdoctor.ctc import reference


@dataclass(frozen=True)
class Case:
    log_probs: torch.Tensor  # (T, N, C) float32 log-probabilities
    labels: list[list[int]]
    input_lengths: list[int]
    blank: int
    alpha: float | None
    gamma: float

    def padded(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        width = max(1, max(len(lab) for lab in self.labels))
        targets = torch.full((len(self.labels), width), self.blank, dtype=torch.int64)
        for n, lab in enumerate(self.labels):
            targets[n, : len(lab)] = torch.tensor(lab, dtype=torch.int64)
        return targets, torch.tensor(self.input_lengths), torch.tensor([len(lab) for lab in self.labels])


def min_frames(labels: list[int]) -> int:
    return len(labels) + sum(a == b for a, b in zip(labels, labels[1:], strict=False))


@st.composite
def peaky_cases(draw, max_t: int = 7, max_n: int = 3, max_c: int = 5, max_u: int = 3) -> Case:
    C = draw(st.integers(2, max_c))
    blank = draw(st.integers(0, C - 1))
    N = draw(st.integers(1, max_n))
    T = draw(st.integers(1, max_t))
    classes = [c for c in range(C) if c != blank]
    labels, lengths = [], []
    for _ in range(N):
        lab = draw(st.lists(st.sampled_from(classes), max_size=max_u))
        while min_frames(lab) > T:
            lab = lab[:-1]
        labels.append(lab)
        lengths.append(draw(st.integers(min_frames(lab), T)))
    lengths[0] = T
    # Per frame a preferred class, ahead of the others by a margin: 0 (soft) to 40 (as sure as
    # trained models get); noise keeps ties away.
    margin = draw(st.sampled_from([0.0, 3.0, 12.0, 25.0, 40.0]))
    seed = draw(st.integers(0, 2**16))
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(T, N, C))
    logits[np.arange(T)[:, None], np.arange(N)[None, :], rng.integers(0, C, size=(T, N))] += margin
    log_probs = torch.from_numpy(logits).log_softmax(-1).float()
    alpha = draw(st.sampled_from([None, 0.3, 0.5, 0.8]))
    gamma = draw(st.sampled_from([0.0, 1.0, 2.0]))
    return Case(log_probs, labels, lengths, blank, alpha, gamma)


def reference_result(case: Case) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Float64 NLL (N,), modified gradient (T, N, C) and posterior (T, N, C) from the formulas,
    on the float32 inputs widened exactly."""
    lp = case.log_probs.double()
    T, N, C = lp.shape
    loss, grad, post = np.zeros(N), np.zeros((T, N, C)), np.zeros((T, N, C))
    for n, lab in enumerate(case.labels):
        Tn = case.input_lengths[n]
        r = reference.forward_backward(lp[:Tn, n], lab, case.blank)
        loss[n] = r.nll
        occ = r.occupancy.numpy()
        y = np.exp(lp[:Tn, n].numpy())
        target = occ
        V = occ.sum(0)
        if case.alpha is not None and lab and V[case.blank] > 0:
            f = np.ones(C)
            f[case.blank] = (1 - case.alpha) * len(lab) / V[case.blank]
            for k in set(lab):
                f[k] = case.alpha * lab.count(k) / V[k]
            target = occ * f
            target = target / target.sum(1, keepdims=True)
        omega = np.ones(Tn)
        if case.gamma:
            w = np.maximum((target - y).max(1), 0) ** case.gamma
            if w.sum() > 0:
                omega = w / w.sum() * Tn
        grad[:Tn, n] = omega[:, None] * (y - target)
        post[:Tn, n] = occ
    return loss, grad, post


def float32_reachable(case: Case, post: np.ndarray) -> bool:
    """Whether every class total the alpha rescale divides by is one float32 can carry (>= 1e-30):
    below that both float32 implementations see rounding of denormals, not the occupancy."""
    if case.alpha is None:
        return True
    for n, lab in enumerate(case.labels):
        totals = post[: case.input_lengths[n], n].sum(0)[[case.blank, *lab]]
        if lab and ((totals > 0) & (totals < 1e-30)).any():
            return False
    return True


def rel_err(got, want) -> float:
    """Max error over the finite reference entries, relative to max(1, the largest of them); the
    NaN and inf patterns must agree exactly."""
    got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    assert np.array_equal(np.isnan(got), np.isnan(want)), "NaN pattern differs"
    assert np.array_equal(np.isinf(got), np.isinf(want)), "inf pattern differs"
    ok = np.isfinite(want)
    if not ok.any():
        return 0.0
    return float(np.abs(got[ok] - want[ok]).max() / max(1.0, np.abs(want[ok]).max()))
