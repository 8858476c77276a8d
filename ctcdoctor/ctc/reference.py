"""Float64 reference CTC: the forward-backward recursion written out, one sample at a time.

This file is the yardstick, not the fast path. Everything else in ctcdoctor.ctc (the
production `ctc_loss`, `posterior`, the Triton kernel) is tested against it, and it is tested
against a brute-force sum over every alignment path. It is written to be read top to bottom:
plain loops over time and states, float64, log space, no cleverness.

Notation (Graves et al. 2006; Li & Wang, "Reinterpreting CTC Training as Iterative Fitting"):
    y[t, k]   = p(class k at frame t), the network output after softmax; we hold log y.
    l         = the target, U labels; l' = the extended target, blank l_1 blank l_2 ... blank,
                S = 2U + 1 states. An alignment path visits states left to right.
    alpha[t, s] = log p(all paths through l'[:s+1] that sit in state s at frame t, frames 0..t)
    beta[t, s]  = log p(frames t+1..T-1 complete the target | in state s at frame t)
    occupancy gamma[t, k] = sum over states s with l'[s] == k of exp(alpha + beta) / p(l | Y):
                the posterior p(pi_t = k | l, Y), which the paper calls the pseudo ground truth.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

NEG_INF = float("-inf")


def _logsumexp(*xs: float) -> float:
    # math.fsum-free, but stable: shift by the max so exp never overflows, and keep -inf
    # (an impossible state) exactly -inf instead of producing nan from -inf - -inf.
    m = max(xs)
    if m == NEG_INF:
        return NEG_INF
    return m + math.log(sum(math.exp(x - m) for x in xs))


def extend_target(target: Sequence[int], blank: int) -> list[int]:
    """l' = blank, l_1, blank, l_2, ..., l_U, blank (length 2U + 1)."""
    ext = [blank]
    for c in target:
        ext += [int(c), blank]
    return ext


def _can_skip(ext: list[int], s: int, blank: int) -> bool:
    # A path may jump from state s-2 to s (skipping the blank between) only when s is a label
    # and differs from the label two states back: between two equal labels the blank is
    # mandatory, otherwise "aa" would collapse to "a".
    return s >= 2 and ext[s] != blank and ext[s] != ext[s - 2]


@dataclass(frozen=True)
class ReferenceResult:
    """Forward-backward quantities for one sample."""

    nll: float
    """-log p(l | Y); +inf when no path fits (the sample needs more frames than it has)."""
    log_alpha: torch.Tensor
    """(T, S) forward variables, log space."""
    log_beta: torch.Tensor
    """(T, S) backward variables, log space; beta includes no emission at frame t."""
    occupancy: torch.Tensor
    """(T, C) posterior p(pi_t = k | l, Y); NaN when the sample is infeasible."""


def forward_backward(log_probs: torch.Tensor, target: Sequence[int], blank: int = 0) -> ReferenceResult:
    """Run CTC forward-backward for one sample.

    log_probs: (T, C) log-probabilities of the sample's valid frames only.
    target: the U label indices (no blanks, no padding).
    """
    lp = log_probs.detach().to(torch.float64).cpu()
    T, C = lp.shape
    ext = extend_target(target, blank)
    S = len(ext)
    y = lp.tolist()  # python floats: the loops below are clearer without tensor indexing

    alpha = [[NEG_INF] * S for _ in range(T)]
    beta = [[NEG_INF] * S for _ in range(T)]

    if T > 0:
        # A path starts in the leading blank or directly on the first label.
        alpha[0][0] = y[0][ext[0]]
        if S > 1:
            alpha[0][1] = y[0][ext[1]]
        for t in range(1, T):
            for s in range(S):
                incoming = [alpha[t - 1][s]]  # stay
                if s >= 1:
                    incoming.append(alpha[t - 1][s - 1])  # advance one state
                if _can_skip(ext, s, blank):
                    incoming.append(alpha[t - 1][s - 2])  # skip an optional blank
                alpha[t][s] = _logsumexp(*incoming) + y[t][ext[s]]

        # A path ends in the trailing blank or on the last label. beta[t][s] excludes frame t's
        # emission, so beta at the last frame is log 1 = 0 for the two final states.
        beta[T - 1][S - 1] = 0.0
        if S > 1:
            beta[T - 1][S - 2] = 0.0
        for t in range(T - 2, -1, -1):
            for s in range(S):
                outgoing = [beta[t + 1][s] + y[t + 1][ext[s]]]
                if s + 1 < S:
                    outgoing.append(beta[t + 1][s + 1] + y[t + 1][ext[s + 1]])
                if s + 2 < S and _can_skip(ext, s + 2, blank):
                    outgoing.append(beta[t + 1][s + 2] + y[t + 1][ext[s + 2]])
                beta[t][s] = _logsumexp(*outgoing)

    if T == 0:  # noqa: SIM108 - the two cases read better apart
        log_p = 0.0 if S == 1 else NEG_INF  # zero frames only "emit" the empty target
    else:
        log_p = _logsumexp(alpha[T - 1][S - 1], alpha[T - 1][S - 2] if S > 1 else NEG_INF)

    occ = torch.zeros(T, C, dtype=torch.float64)
    if log_p == NEG_INF:
        occ.fill_(float("nan"))  # no alignment exists: the posterior is undefined, say so
    else:
        # Sum the state posteriors into classes: several states can carry the same class
        # (every blank state, and a repeated label), and the network sees classes, not states.
        for t in range(T):
            for s in range(S):
                occ[t, ext[s]] += math.exp(alpha[t][s] + beta[t][s] - log_p)

    return ReferenceResult(
        nll=-log_p,
        log_alpha=torch.tensor(alpha, dtype=torch.float64).reshape(T, S),
        log_beta=torch.tensor(beta, dtype=torch.float64).reshape(T, S),
        occupancy=occ,
    )


def _split_targets(targets: torch.Tensor, target_lengths: Sequence[int]) -> list[list[int]]:
    # Same two layouts as F.ctc_loss: padded (N, S) rows, or all targets concatenated in 1-D.
    if targets.dim() == 2:
        return [targets[n, : int(u)].tolist() for n, u in enumerate(target_lengths)]
    out, start = [], 0
    for u in target_lengths:
        out.append(targets[start : start + int(u)].tolist())
        start += int(u)
    return out


def reference_ctc(
    log_probs: torch.Tensor,
    targets: torch.Tensor,
    input_lengths: Sequence[int] | torch.Tensor,
    target_lengths: Sequence[int] | torch.Tensor,
    blank: int = 0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Batched reference: per-sample NLL (N,) and occupancy (T, N, C), float64.

    Rows t >= input_lengths[n] of the occupancy are zero; infeasible samples have NaN rows for
    t < input_lengths[n] and NLL +inf.
    """
    T, N, C = log_probs.shape
    in_lens = [int(x) for x in torch.as_tensor(input_lengths).tolist()]
    tg_lens = [int(x) for x in torch.as_tensor(target_lengths).tolist()]
    tgts = _split_targets(torch.as_tensor(targets), tg_lens)
    nll = torch.empty(N, dtype=torch.float64)
    occ = torch.zeros(T, N, C, dtype=torch.float64)
    for n in range(N):
        r = forward_backward(log_probs[: in_lens[n], n], tgts[n], blank)
        nll[n] = r.nll
        occ[: in_lens[n], n] = r.occupancy
    return nll, occ


def reference_ctc_loss(
    log_probs: torch.Tensor,
    targets: torch.Tensor,
    input_lengths: Sequence[int] | torch.Tensor,
    target_lengths: Sequence[int] | torch.Tensor,
    blank: int = 0,
    reduction: str = "mean",
) -> torch.Tensor:
    """The loss F.ctc_loss reports, from the reference recursion (float64, no gradient)."""
    nll, _ = reference_ctc(log_probs, targets, input_lengths, target_lengths, blank)
    if reduction == "none":
        return nll
    if reduction == "sum":
        return nll.sum()
    # "mean" as F.ctc_loss: each sample divided by its target length (at least 1), then batch mean.
    u = torch.as_tensor(target_lengths, dtype=torch.float64).clamp_min(1)
    return (nll / u).mean()
