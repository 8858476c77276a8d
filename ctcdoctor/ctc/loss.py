"""`ctc_loss`: a drop-in for F.ctc_loss, plus the paper's alpha (non-blank proportion) and
gamma (key-frame weighting) gradient modifications.

With alpha=None and gamma=0 we simply call F.ctc_loss: same value, same gradient, same edge
cases, nothing to keep in sync. With either modification a custom autograd Function runs one
native forward+backward in its forward (which yields both the loss and the occupancy y'),
builds the modified gradient there, and its backward only scales it by the incoming gradient.
The reported loss stays the plain CTC loss: alpha and gamma change where training goes, not
how we measure it.

Modified gradient for sample n, frame t < T_n (zero beyond), w.r.t. log_probs:
    g[t, k] = omega_t (y[t, k] - y''[t, k])
y'' = y' or its alpha rescale (see posterior.alpha_rescale_), and
    w_t = max_k (y''[t, k] - y[t, k]),  omega_t = T_n w_t^gamma / sum_{t' < T_n} w_t'^gamma
(omega = 1 when gamma = 0 or the sum is 0). Since every row of g sums to 0, the gradient
w.r.t. pre-log-softmax activations is the same g.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from ctcdoctor.ctc._args import CTCArgs, Lengths, normalise
from ctcdoctor.ctc.dispatch import kernel_path, triton_ctc_loss
from ctcdoctor.ctc.posterior import _NP_DTYPE, Occupancy, _check_alpha, alpha_rescale, occupancy

_REDUCTIONS = ("none", "mean", "sum")


def _check_options(reduction: str, alpha: float | None, gamma: float) -> None:
    if reduction not in _REDUCTIONS:
        raise ValueError(f"reduction={reduction!r} is not one of {_REDUCTIONS}")
    _check_alpha(alpha)
    if not isinstance(gamma, (int, float)) or isinstance(gamma, bool) or not (gamma >= 0 and math.isfinite(gamma)):
        raise ValueError(f"gamma={gamma!r} must be a finite number >= 0 (0 disables key-frame weighting)")


def _frame_weights(w: torch.Tensor, occ: Occupancy, in_lens: torch.Tensor, gamma: float) -> torch.Tensor:
    """omega (T, N): w^gamma mean-normalised within each sequence, 0 past T_n.

    Normalising to mean 1 (rather than sum 1, as the paper writes it) keeps the gradient's
    overall size, and so the learning rate, comparable with plain CTC and independent of T_n.
    """
    wg = w.clamp_min(0)
    if gamma != 1:  # x ** 1 is x bit for bit: skip the pass
        wg = wg.pow(gamma)
    wg = torch.where(occ.valid, wg, 0.0)
    total = wg.sum(0)
    tiny = torch.finfo(w.dtype).tiny
    if total.is_cuda or w.dtype not in (torch.float32, torch.float64):
        omega = wg * (in_lens.to(w.dtype) / total.clamp_min(tiny))
        return torch.where((total > 0)[None, :], omega, occ.validf)
    # The (N,) factors in numpy, in the same dtype: IEEE division and max give the same bits as
    # torch's, for a fraction of the per-op cost.
    t = total.numpy()
    scale = in_lens.numpy().astype(t.dtype) / np.maximum(t, t.dtype.type(tiny))
    omega = wg * torch.from_numpy(scale)
    # One reduction for the common all-positive case (a NaN total fails it too, as t > 0 would);
    # the mask is built only when some sample needs it.
    if t.size and not t.min() > 0:
        # All-zero weights (outputs already equal the target everywhere): fall back to uniform.
        omega = torch.where(torch.from_numpy(t > 0)[None, :], omega, occ.validf)
    return omega


def _max_gap(occ: Occupancy, target: torch.Tensor) -> torch.Tensor:
    """w (T, N) = max_k (y''[t, k] - y[t, k]) over each sample's real subset columns. Spends occ.y."""
    gap = torch.sub(target, occ.y, out=occ.y)  # y is not read again: reuse its buffer
    T, N, K = gap.shape
    pads = occ.columns.pads
    if pads is not None:
        # Padding columns must not win the max. index_fill touches only those columns, where a
        # broadcast masked_fill walks the whole tensor in a scalar loop.
        gap.view(T, N * K).index_fill_(1, pads, float("-inf"))
    # Reduced over a leading dimension, the max vectorises across (t, n); over the short last
    # dimension it runs one scalar loop per frame. max is exact, so the layout cannot change it.
    return gap.permute(2, 0, 1).contiguous().amax(0)


def modified_gradient(
    args: CTCArgs, alpha: float | None, gamma: float, zero_infinity: bool
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Plain per-sample NLL (N,), and the unreduced modified gradient as diff (T, N, C) times
    frame weights omega (T, N): g = omega[..., None] * diff.

    The product is left to backward so that it happens in the same pass as the reduction's
    scaling: one full-size pass fewer.
    """
    occ = occupancy(args, alpha=alpha is not None, pads=gamma != 0)
    with torch.no_grad():
        diff = occ.grad  # y - y' on valid rows of feasible samples, zero past T_n; ours to modify
        # PyTorch's backward is NaN where log_probs = -inf (exp(... - lp)); there y = y' = 0.
        # A finite gradient has no such entry (see occupancy), so it skips this full-size pass.
        if not occ.finite:
            diff.masked_fill_(torch.isneginf(args.log_probs), 0.0)
        target = occ.occ if alpha is None else alpha_rescale(occ, args, alpha)
        if alpha is not None:
            # y - y'' = (y - y') + (y' - y''), and y' - y'' is non-zero only on the subset columns.
            # In place: y' is not read again (target is its rescaled copy), and a fresh
            # (T, N, K) buffer costs more than the subtraction.
            diff.scatter_add_(2, occ.index, occ.occ.sub_(target))
        if gamma != 0:
            # max_k (y'' - y) over the subset columns is the max over all classes: elsewhere
            # y'' = 0 so y'' - y <= 0, while the subset's differences sum to 1 - sum_sub y >= 0.
            omega = _frame_weights(_max_gap(occ, target), occ, args.input_lengths, gamma)
        else:
            omega = occ.validf
        nll = occ.nll
        # On CPU the (N,) test costs less in numpy; the torch mask is built only when needed.
        infeasible = torch.isinf(nll) if nll.is_cuda or np.isinf(nll.numpy()).any() else None
        if infeasible is not None and bool(infeasible.any()):
            # Like F.ctc_loss: NaN gradient on the real frames, or zero with zero_infinity.
            diff.masked_fill_(infeasible[None, :, None], 0.0)
            fill = 0.0 if zero_infinity else float("nan")
            omega = omega.masked_fill(occ.valid & infeasible[None, :], fill)
            if zero_infinity:
                nll = torch.where(infeasible, torch.zeros_like(nll), nll)
    return nll, diff, omega


def _mean_divisors(args: CTCArgs, nll: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """max(U_n, 1) (N,) in nll's dtype, and that times N for the backward. On CPU from the
    host lengths in numpy: the same roundings (int to float, then one float product), without
    three small torch ops."""
    N = nll.shape[0]
    tl = args.host_target_lengths
    np_dtype = _NP_DTYPE.get(nll.dtype)
    if tl is not None and np_dtype is not None and not nll.is_cuda:
        d = np.maximum(tl, 1).astype(np_dtype)
        return torch.from_numpy(d), torch.from_numpy(d * np_dtype(N))
    divisor = args.target_lengths.clamp_min(1).to(nll.dtype)
    return divisor, divisor * N


class _ModifiedCTC(torch.autograd.Function):
    @staticmethod
    def forward(ctx, log_probs, args: CTCArgs, reduction: str, zero_infinity: bool, alpha, gamma):
        nll, diff, omega = modified_gradient(args, alpha, gamma, zero_infinity)
        ctx.reduction = reduction
        if reduction == "none":
            ctx.save_for_backward(diff, omega)
            return nll
        if reduction == "sum":
            ctx.save_for_backward(diff, omega)
            return nll.sum()
        # "mean" as F.ctc_loss: sample n divided by max(U_n, 1), then by N.
        divisor, scaled = _mean_divisors(args, nll)
        ctx.save_for_backward(diff, omega, scaled)
        return (nll / divisor).mean()

    @staticmethod
    def backward(ctx, grad_out):
        diff, omega, *divisor = ctx.saved_tensors
        N = diff.shape[1]
        factor = grad_out.to(diff.dtype)
        if ctx.reduction == "sum":
            factor = factor.expand(N)
        elif ctx.reduction == "mean":
            factor = factor / divisor[0]  # max(U_n, 1) * N, from forward
        return diff * (omega * factor).unsqueeze(-1), None, None, None, None, None


def ctc_loss(
    log_probs: torch.Tensor,
    targets: torch.Tensor,
    input_lengths: Lengths,
    target_lengths: Lengths,
    blank: int = 0,
    reduction: str = "mean",
    zero_infinity: bool = False,
    alpha: float | None = None,
    gamma: float = 0.0,
) -> torch.Tensor:
    """CTC loss; a drop-in for `torch.nn.functional.ctc_loss` when alpha is None and gamma == 0.

    log_probs: (T, N, C) log-softmax outputs (or unbatched (T, C)). targets: padded (N, S) or
    concatenated 1-D. alpha in (0, 1): rescale the pseudo ground truth so about alpha of each
    sample's occupancy is non-blank. gamma >= 0: weight frame gradients by w_t ** gamma,
    w_t = max_k(y'_k - y_k), mean-normalised within each sequence. The value returned is
    always the plain CTC loss; only the gradient is modified. On CUDA tensors with triton
    installed the fused Triton kernel runs (`CTCDOCTOR_KERNEL=torch|triton` forces a path).
    """
    _check_options(reduction, alpha, gamma)
    args = normalise(log_probs, targets, input_lengths, target_lengths, blank)
    if kernel_path(args.log_probs) == "triton":
        out = triton_ctc_loss(args, reduction, zero_infinity, alpha, float(gamma))
        return out.squeeze(0) if args.unbatched and reduction == "none" else out
    if alpha is None and gamma == 0:
        # The validated, batched arguments: contiguous targets (see _args.normalise) and the
        # same accepted length types as the modified path.
        out = F.ctc_loss(
            args.log_probs, args.targets, args.input_lengths, args.target_lengths,
            blank=blank, reduction=reduction, zero_infinity=zero_infinity,
        )
        return out.squeeze(0) if args.unbatched and reduction == "none" else out
    out = _ModifiedCTC.apply(args.log_probs, args, reduction, zero_infinity, alpha, float(gamma))
    if args.unbatched and reduction == "none":
        out = out.squeeze(0)
    return out
