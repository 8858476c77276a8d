"""The fast CPU path of the alpha/gamma ctc_loss: `modified.modified_gradient`'s numbers (its
test oracle), with the time and memory of F.ctc_loss's forward+backward.

What makes it fast, against the plain definition:

- The native forward+backward runs on the K = 1 + (distinct labels) columns a sample can occupy
  (`occupancy.subset_occupancy`), not on all C: its backward then writes (T, N, K), not (T, N, C).
- Everything of size (T, N, K) or smaller is done in the forward; the (N, K) factors, the (T, N)
  frame weights and the reduction's scaling are numpy arithmetic on the host (microseconds,
  no OpenMP region per op).
- Nothing of size (T, N, C) exists until the backward, which builds the gradient in one buffer:

      G = exp(log_probs) * W[..., None];  G[subset columns] -= y'' * W[..., None]

  with W (T, N) = omega times the incoming gradient's per-sample factor (0 past T_n). That is one
  exp and one multiply over (T, N, C) (F.ctc_loss's backward evaluates two scalar exps per
  element) and a scatter over (T, N, K). The forward saves only y'' (T, N, K).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch.autograd.function import once_differentiable

from ctcdoctor.ctc._args import CTCArgs
from ctcdoctor.ctc.occupancy import (
    _NP_DTYPE,
    SubsetOccupancy,
    alpha_rescale_subset,
    one_thread,
    subset_occupancy,
    to_torch,
)


@dataclass(frozen=True)
class FastModified:
    """What the backward needs, and the loss."""

    nll: torch.Tensor  # (N,) plain NLL; 0 for infeasible samples with zero_infinity
    target: torch.Tensor  # (T, N, K) y'' on the subset columns; 0 past T_n (and on rows zero_infinity drops)
    index: torch.Tensor  # (T, N, K) class of each subset column, for the scatter
    omega: np.ndarray  # (T, N) float64 frame weights; 0 past T_n; NaN (or 0) on an infeasible sample's rows
    padding_rows: np.ndarray | None  # flat t * N + n of the frames past T_n, None when every sample is T long


def modified_ctc_cpu(args: CTCArgs, alpha: float | None, gamma: float, zero_infinity: bool) -> FastModified:
    """The alpha/gamma gradient's parts for a CPU batch, float32 or float64 (see the module doc)."""
    sub = subset_occupancy(args)
    with one_thread():
        return _finish_parts(args, sub, alpha, gamma, zero_infinity)


def _finish_parts(args: CTCArgs, sub: SubsetOccupancy, alpha: float | None, gamma: float, zero_infinity: bool) -> FastModified:
    T = args.log_probs.shape[0]
    target = sub.occ if alpha is None else alpha_rescale_subset(sub, args, alpha)
    in_lens = args.host_input_lengths
    valid = np.arange(T)[:, None] < in_lens[None, :]
    if gamma == 0:
        omega = valid.astype(np.float64)
    else:
        # w_t = max_k (y'' - y): over the subset columns it is the max over every class (elsewhere
        # y'' = 0, so y'' - y <= 0 <= the clamped max). sub.lp holds the scores as given.
        y = sub.lp.exp_()
        w = torch.sub(target, y, out=y).amax(-1).numpy().astype(np.float64)
        omega = _frame_weights(w, valid, in_lens, gamma)
    nll = sub.nll
    infeasible = np.isinf(nll.numpy())
    if infeasible.any():
        # Like F.ctc_loss: NaN gradient on the real frames, or zero (and a zero loss) with zero_infinity.
        omega[valid & infeasible[None, :]] = 0.0 if zero_infinity else np.nan
        if zero_infinity:
            target[:, torch.from_numpy(infeasible)] = 0.0  # NaN rows: 0 * NaN would still be NaN
            nll = torch.where(torch.from_numpy(infeasible), 0.0, nll)
    padding = np.flatnonzero(~valid) if int(in_lens.min()) < T else None
    return FastModified(nll, target, sub.columns.index, omega, padding)


def _frame_weights(w: np.ndarray, valid: np.ndarray, in_lens: np.ndarray, gamma: float) -> np.ndarray:
    """omega (T, N) from w (T, N), as `modified.frame_weights`, in float64 numpy."""
    wg = np.maximum(w, 0.0)  # max_k (y'' - y) >= 0 exactly; clamp the rounding so pow stays real
    if gamma != 1:
        wg = wg**gamma
    wg = np.where(valid, wg, 0.0)
    total = wg.sum(0)
    with np.errstate(divide="ignore", invalid="ignore"):
        omega = wg * (in_lens / total)
    # All-zero weights (the outputs already equal the target everywhere), or NaN (infeasible): uniform.
    return np.where(total > 0, omega, valid.astype(np.float64))


def assemble_gradient(log_probs: torch.Tensor, parts: FastModified, factor: np.ndarray) -> torch.Tensor:
    """The (T, N, C) gradient, scaled per sample by `factor` (N,): the backward of the fast path."""
    T, N, C = log_probs.shape
    np_dtype = _NP_DTYPE[log_probs.dtype]
    W = torch.from_numpy((parts.omega * factor[None, :]).astype(np_dtype))
    with one_thread(T * N * C):
        # A fresh contiguous buffer whatever log_probs' strides: the views below need it.
        grad = torch.exp(log_probs.detach(), out=torch.empty((T, N, C), dtype=log_probs.dtype))
        grad.mul_(W.unsqueeze(-1))
    with one_thread():
        if parts.padding_rows is not None:
            # Past T_n the gradient is 0 even where the padding is inf or NaN (0 * inf would not
            # be). index_fill touches only those rows; a broadcast mask would walk the whole tensor.
            grad.view(T * N, C).index_fill_(0, torch.from_numpy(parts.padding_rows), 0.0)
        correction = torch.mul(parts.target, W.neg_().unsqueeze(-1))
        return grad.scatter_add_(2, parts.index, correction)


class FastModifiedCTC(torch.autograd.Function):
    """Loss from `modified_ctc_cpu` in the forward; the gradient assembled in the backward."""

    @staticmethod
    def forward(ctx, log_probs, args: CTCArgs, reduction: str, zero_infinity: bool, alpha, gamma):
        parts = modified_ctc_cpu(args, alpha, gamma, zero_infinity)
        ctx.save_for_backward(log_probs)
        ctx.parts, ctx.reduction = parts, reduction
        ctx.lengths = args.host_target_lengths
        nll = parts.nll
        if reduction == "none":
            return nll
        if reduction == "sum":
            return nll.sum()
        # "mean" as F.ctc_loss: sample n divided by max(U_n, 1), then by N.
        return (nll / to_torch(np.maximum(ctx.lengths, 1), nll)).mean()

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out):
        (log_probs,) = ctx.saved_tensors
        g = grad_out.detach().cpu().numpy().astype(np.float64)
        N = log_probs.shape[1]
        if ctx.reduction == "none":
            factor = g.reshape(N)
        elif ctx.reduction == "sum":
            factor = np.full(N, float(g))
        else:
            factor = float(g) / (np.maximum(ctx.lengths, 1) * N)
        return assemble_gradient(log_probs, ctx.parts, factor), None, None, None, None, None
