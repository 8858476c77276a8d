"""The fast CPU path of the alpha/gamma ctc_loss: `modified.modified_gradient`'s numbers (its
test oracle), in about the time and memory of F.ctc_loss's forward+backward.

What makes it fast, against the plain definition:

- The native forward+backward runs on the K = 1 + (distinct labels) columns a sample can occupy
  (`occupancy.subset_occupancy`), not on all C: its backward then writes (T, N, K), not (T, N, C).
- Nothing of size (T, N, C) exists until the backward, which builds the gradient in one buffer:

      G = exp(log_probs) * W[..., None];  G[subset columns] -= y'' * W[..., None]

  with W (T, N) = omega times the incoming gradient's per-sample factor (0 past T_n): one exp
  and one multiply over (T, N, C) (F.ctc_loss's backward evaluates two scalar exps per element)
  and a scatter over (T, N, K). The forward saves only y'' (T, N, K).
- Around the two native calls the work is small, and a Python-level call costs about three times
  more there than in a warm loop (the native kernels evict the caches): so the arithmetic on
  (T, N, K) and smaller is numpy on views of the tensors (about 1 us a call against torch's 5-10,
  no OpenMP region), in as few calls as the formulas allow. Reductions over the short class axis
  use torch or a matrix-vector product, where numpy is slow. The two exps are torch's (faster
  than numpy's even on one thread), on one thread below `PARALLEL_MIN` elements: then the only
  OpenMP regions are the native kernels', as in F.ctc_loss. On a loaded machine every region can
  wait for a descheduled worker; two more made alpha/gamma 1.64x F.ctc_loss at (100, 32, 37, 20)
  under load, against 1.04-1.16x without (docs/ctc.md).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch.autograd.function import once_differentiable

from ctcdoctor.ctc._args import CTCArgs
from ctcdoctor.ctc.occupancy import (
    PARALLEL_MIN,
    SubsetOccupancy,
    alpha_factors,
    one_thread,
    subset_occupancy,
)

_NP = {torch.float32: np.float32, torch.float64: np.float64}


@dataclass(frozen=True)
class FastModified:
    """What the backward needs, and the loss."""

    nll: torch.Tensor  # (N,) plain NLL; 0 for infeasible samples with zero_infinity
    neg_target: np.ndarray  # (T, N, K) -y'' on the subset columns; 0 past T_n (and on rows zero_infinity drops)
    index: torch.Tensor  # (T, N, K) class of each subset column, for the scatter
    omega: np.ndarray  # (T, N) float64 frame weights; 0 past T_n; NaN (or 0) on an infeasible sample's rows
    padding_rows: np.ndarray | None  # flat t * N + n of the frames past T_n, None when every sample is T long


def alpha_rescale_cpu(sub: SubsetOccupancy, args: CTCArgs, alpha: float, sign: float = 1.0) -> np.ndarray:
    """sign * y'' (T, N, K), a numpy view of sub.occ rescaled in place: y' times `alpha_factors`,
    each frame renormalised (`modified.alpha_rescale` on the subset columns). The sign rides on
    the renormalisation for free; the backward wants -y''."""
    occ = sub.occ.numpy()
    cols = sub.columns
    # Class totals in the input's precision (as `modified.alpha_rescale`), the factors in float64.
    f = alpha_factors(occ.sum(0).astype(np.float64), cols.counts, cols.mask,
                      args.host_target_lengths.astype(np.float64), alpha)
    occ *= f.astype(occ.dtype)
    # Frame sums as a matrix-vector product: numpy's sum over a short last axis is slow.
    total = occ @ np.ones(occ.shape[-1], dtype=occ.dtype)
    np.maximum(total, np.finfo(occ.dtype).tiny, out=total)  # frames past T_n are all 0: keep them 0
    np.divide(sign, total, out=total)
    occ *= total[..., None]
    return occ


def modified_ctc_cpu(args: CTCArgs, alpha: float | None, gamma: float, zero_infinity: bool) -> FastModified:
    """The alpha/gamma gradient's parts for a CPU batch, float32 or float64 (see the module doc)."""
    T = args.log_probs.shape[0]
    sub = subset_occupancy(args, sign=-1.0 if alpha is None else 1.0)
    neg_target = sub.occ.numpy()  # -y' straight from the native call without alpha
    y = None
    if gamma != 0:
        # y = exp(scores) on the subset columns, in sub.lp's buffer (ours); the scores as given:
        # logits may overflow to inf, as in F.ctc_loss.
        with one_thread(sub.lp.numel()):
            y = sub.lp.exp_().numpy()
    if alpha is not None:
        alpha_rescale_cpu(sub, args, alpha, sign=-1.0)
    w = None if y is None else _frame_max(y, neg_target)
    in_lens = args.host_input_lengths
    valid = np.arange(T)[:, None] < in_lens
    omega = valid.astype(np.float64) if w is None else _frame_weights(w, valid, in_lens, gamma)
    nll = sub.nll
    infeasible = np.isinf(nll.numpy())
    if infeasible.any():
        # Like F.ctc_loss: NaN gradient on the real frames, or zero (and a zero loss) with zero_infinity.
        omega[valid & infeasible] = 0.0 if zero_infinity else np.nan
        if zero_infinity:
            neg_target[:, infeasible] = 0.0  # NaN rows: 0 * NaN would still be NaN
            nll = torch.from_numpy(np.where(infeasible, 0.0, nll.numpy()).astype(neg_target.dtype))
    padding = np.flatnonzero(~valid) if in_lens.min() < T else None
    return FastModified(nll, neg_target, sub.columns.index, omega, padding)


def _frame_max(y: np.ndarray, neg_target: np.ndarray) -> np.ndarray:
    """w (T, N) = max_k (y'' - y), from y = exp(scores) (overwritten) and neg_target = -y''.

    Over the subset columns it is the extreme over every class (elsewhere y'' = 0, so
    y'' - y <= 0 <= the clamped max)."""
    with np.errstate(invalid="ignore"):  # inf (overflowed logits) and NaN rows pass through
        np.add(y, neg_target, out=y)
    # The min over the short class axis column by column: each step vectorises across (t, n),
    # where a reduction over the last axis runs one scalar loop per frame, and no (T, N, K)
    # copy is made (one would land on fresh pages at the call's memory peak).
    w = y[..., 0].copy()
    for k in range(1, y.shape[-1]):
        np.minimum(w, y[..., k], out=w)
    return np.negative(w, out=w)


def _frame_weights(w: np.ndarray, valid: np.ndarray, in_lens: np.ndarray, gamma: float) -> np.ndarray:
    """omega (T, N) from w (T, N), as `modified.frame_weights`, in float64."""
    # max_k (y'' - y) >= 0 exactly; clamp the rounding so pow stays real. 0 past T_n.
    wg = np.where(valid, np.maximum(w, 0.0, dtype=np.float64), 0.0)
    if gamma != 1:
        wg **= gamma
    total = wg.sum(0)
    with np.errstate(divide="ignore", invalid="ignore"):
        wg *= in_lens / total
    # All-zero weights (the outputs already equal the target everywhere), or NaN (infeasible): uniform.
    return np.where(total > 0, wg, valid)


def assemble_gradient(log_probs: torch.Tensor, parts: FastModified, factor: np.ndarray) -> torch.Tensor:
    """The (T, N, C) gradient, scaled per sample by `factor` (N,): the backward of the fast path.

    (exp(lp) - y'' on the subset columns) * W in three passes: exp, scatter, one multiply.
    """
    T, N, C = log_probs.shape
    W = (parts.omega * factor).astype(_NP[log_probs.dtype])
    # A fresh contiguous buffer whatever log_probs' strides (the views below need it). The largest
    # pass of the backward: on the caller's threads only where a second thread pays (module doc).
    with one_thread(T * N * C):
        grad = torch.exp(log_probs.detach(), out=torch.empty((T, N, C), dtype=log_probs.dtype))
    g = grad.numpy()
    with one_thread():
        grad.scatter_add_(2, parts.index, torch.from_numpy(parts.neg_target))
    if g.size >= PARALLEL_MIN:
        grad.mul_(torch.from_numpy(W).unsqueeze(-1))  # big enough for the caller's threads
    else:
        np.multiply(g, W[..., None], out=g)
    if parts.padding_rows is not None:
        # Past T_n the gradient is 0 even where the padding is inf or NaN (0 * inf would not be).
        g.reshape(T * N, C)[parts.padding_rows] = 0.0
    return grad


class FastModifiedCTC(torch.autograd.Function):
    """Loss from `modified_ctc_cpu` in the forward; the gradient assembled in the backward."""

    @staticmethod
    def forward(ctx, log_probs, args: CTCArgs, reduction: str, zero_infinity: bool, alpha, gamma):
        parts = modified_ctc_cpu(args, alpha, gamma, zero_infinity)
        ctx.save_for_backward(log_probs)
        ctx.parts, ctx.reduction = parts, reduction
        ctx.divisor = np.maximum(args.host_target_lengths, 1)  # "mean": max(U_n, 1)
        nll = parts.nll
        if reduction == "none":
            return nll
        # The (N,) reductions in numpy: a torch op costs more than the arithmetic. "mean" as
        # F.ctc_loss: sample n divided by max(U_n, 1), then by N.
        x = nll.numpy()
        value = x.sum() if reduction == "sum" else np.add.reduce(x / ctx.divisor.astype(x.dtype)) / len(x)
        return torch.from_numpy(np.asarray(value, dtype=x.dtype))

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out):
        (log_probs,) = ctx.saved_tensors
        N = log_probs.shape[1]
        if ctx.reduction == "none":
            factor = grad_out.detach().cpu().numpy().astype(np.float64).reshape(N)
        elif ctx.reduction == "sum":
            factor = np.full(N, grad_out.item())
        else:
            factor = grad_out.item() / (ctx.divisor * float(N))
        return assemble_gradient(log_probs, ctx.parts, factor), None, None, None, None, None
