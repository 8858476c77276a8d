"""Float64 reference for the fused CTC kernel's tests, written from the formulas, one sample at a time.

Deliberately plain (Python loops over frames and states, numpy float64): it is the thing the
kernel is checked against, so it should be checkable by reading.
"""
from __future__ import annotations

import numpy as np


def _lse(*xs):
    m = max(xs)
    if m == -np.inf:
        return -np.inf
    return m + np.log(sum(np.exp(x - m) for x in xs))


def sample_reference(lp, labels, blank, alpha=None, gamma=0.0):
    """lp: (T_n, C) float64 log-probabilities of one sample; labels: list of ints.

    Returns loss, grad (T_n, C), posterior (T_n, C). Infeasible: inf loss, NaN grad/posterior.
    """
    T_n, C = lp.shape
    U = len(labels)
    ext = [blank]
    for k in labels:
        ext += [k, blank]
    S = len(ext)
    repeats = sum(labels[i] == labels[i - 1] for i in range(1, U))
    if T_n < U + repeats or T_n == 0:
        nan = np.full((T_n, C), np.nan)
        return (0.0 if (T_n == 0 and U == 0) else np.inf), nan, nan

    def can_skip(s):  # transition s-2 -> s
        return s >= 2 and ext[s] != blank and ext[s] != ext[s - 2]

    la = np.full((T_n, S), -np.inf)
    la[0, 0] = lp[0, ext[0]]
    if S > 1:
        la[0, 1] = lp[0, ext[1]]
    for t in range(1, T_n):
        for s in range(S):
            terms = [la[t - 1, s]]
            if s >= 1:
                terms.append(la[t - 1, s - 1])
            if can_skip(s):
                terms.append(la[t - 1, s - 2])
            la[t, s] = _lse(*terms) + lp[t, ext[s]]
    # beta including the emission at t
    lb = np.full((T_n, S), -np.inf)
    lb[T_n - 1, S - 1] = lp[T_n - 1, ext[S - 1]]
    if S > 1:
        lb[T_n - 1, S - 2] = lp[T_n - 1, ext[S - 2]]
    for t in range(T_n - 2, -1, -1):
        for s in range(S):
            terms = [lb[t + 1, s]]
            if s + 1 < S:
                terms.append(lb[t + 1, s + 1])
            if s + 2 < S and can_skip(s + 2):
                terms.append(lb[t + 1, s + 2])
            lb[t, s] = _lse(*terms) + lp[t, ext[s]]
    log_p = _lse(la[T_n - 1, S - 1], la[T_n - 1, S - 2]) if S > 1 else la[T_n - 1, 0]
    post = np.zeros((T_n, C))
    for t in range(T_n):
        for s in range(S):
            if la[t, s] > -np.inf and lb[t, s] > -np.inf:  # else no path uses (t, s)
                post[t, ext[s]] += np.exp(la[t, s] + lb[t, s] - lp[t, ext[s]] - log_p)

    y = np.exp(lp)
    target = post
    if alpha is not None and U > 0:
        V = post.sum(0)
        if V[blank] != 0:
            scale = np.ones(C)
            scale[blank] = (1 - alpha) * U / V[blank]
            for k in set(labels):
                scale[k] = alpha * labels.count(k) / V[k]
            target = post * scale
            target = target / target.sum(1, keepdims=True)
    omega = np.ones(T_n)
    if gamma > 0:
        w = (target - y).max(1)
        wg = np.maximum(w, 0) ** gamma
        if wg.sum() > 0:
            omega = wg / wg.sum() * T_n
    grad = omega[:, None] * (y - target)
    return -log_p, grad, post


def batch_reference(log_probs, labels, input_lengths, blank=0, alpha=None, gamma=0.0):
    """log_probs (T, N, C) torch or numpy; labels: list of N label lists. Returns numpy float64."""
    lp = np.asarray(log_probs, dtype=np.float64)
    T, N, C = lp.shape
    loss = np.zeros(N)
    grad = np.zeros((T, N, C))
    post = np.zeros((T, N, C))
    for n in range(N):
        T_n = int(input_lengths[n])
        loss[n], g, p = sample_reference(lp[:T_n, n], list(labels[n]), blank, alpha, gamma)
        grad[:T_n, n] = g
        post[:T_n, n] = p
    return loss, grad, post
