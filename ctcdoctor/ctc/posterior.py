"""Posterior occupancy (the paper's pseudo ground truth) from PyTorch's native CTC kernels.

Li & Wang read CTC training as iterative fitting: the gradient of the CTC loss w.r.t. the
pre-softmax activations is y - y', where y' = p(pi_t = k | l, Y) is the posterior occupancy.
PyTorch's native backward already forms exactly that: with reduction="sum",

    d loss / d log_probs = exp(log_probs) - y'      (for frames t < T_n of feasible samples)

so one native forward+backward gives y' = exp(log_probs) - grad. That is several times faster
than any forward-backward we could write in Python (a loop over time pays ~0.1 ms dispatch per
step), and it is checked against the float64 reference in reference.py by the tests.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ctcdoctor.ctc._args import CTCArgs, Lengths, frame_mask, normalise


class InfeasibleSampleWarning(UserWarning):
    """Some samples need more frames than they have: no CTC alignment exists for them."""


def native_nll_and_grad(args: CTCArgs) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample NLL (N,) and d(sum NLL)/d log_probs (T, N, C) from one native pass.

    Infeasible samples come back with NLL +inf and NaN gradient rows (t < T_n), as PyTorch
    gives them; callers decide what that means.
    """
    with torch.enable_grad():
        leaf = args.log_probs.detach().requires_grad_()
        # int64 targets keep PyTorch on its native kernel: cuDNN (int32-only) would hand back a
        # gradient with different conventions on CUDA.
        nll = F.ctc_loss(
            leaf, args.targets, args.input_lengths, args.target_lengths,
            blank=args.blank, reduction="none", zero_infinity=False,
        )
        (grad,) = torch.autograd.grad(nll.sum(), leaf)
    return nll.detach(), grad


def _warn_infeasible(infeasible: torch.Tensor, args: CTCArgs) -> None:
    idx = infeasible.nonzero().flatten().tolist()
    shown = ", ".join(map(str, idx[:10])) + (", ..." if len(idx) > 10 else "")
    n = idx[0]
    warnings.warn(
        f"{len(idx)} sample(s) cannot be aligned by CTC (need more frames than they have): "
        f"indices [{shown}]; e.g. sample {n} has {int(args.input_lengths[n])} frames for "
        f"{int(args.target_lengths[n])} labels. Their posterior rows are NaN.",
        InfeasibleSampleWarning,
        stacklevel=3,
    )


@dataclass(frozen=True)
class Occupancy:
    """The native pass, plus y' restricted to the classes that can carry occupancy.

    Only the blank and the classes of a sample's target can be occupied: every other column
    of y' is zero. So we work on K = 1 + (distinct labels) columns per sample instead of all C;
    for a 5000-class vocabulary with 40-label targets that is ~1% of the tensor. Column 0 of
    the subset is always the blank; padded columns (samples with fewer distinct labels) point
    at the blank and are masked out.
    """

    nll: torch.Tensor  # (N,) plain per-sample NLL, +inf when infeasible
    grad: torch.Tensor  # (T, N, C) native d(sum NLL)/d log_probs = y - y' on valid rows
    valid: torch.Tensor  # (T, N) bool, t < T_n
    index: torch.Tensor  # (T, N, K) int64 class of each subset column, expanded for gather/scatter
    colmask: torch.Tensor  # (N, K) bool, real (not padding) columns
    counts: torch.Tensor  # (N, K) N_k, occurrences in the target (0 for the blank column)
    keep: torch.Tensor  # (N,) bool, alpha leaves this sample's y' unchanged
    y: torch.Tensor  # (T, N, K) outputs on the subset columns
    occ: torch.Tensor  # (T, N, K) y' on the subset; zero on padded rows and columns


def _padded_labels(args: CTCArgs) -> tuple[np.ndarray, np.ndarray]:
    """Targets as an (N, S) int array with -1 past each length (from either layout)."""
    tl = args.target_lengths.cpu().numpy()
    tg = args.targets.cpu().numpy()
    width = int(tl.max()) if tl.size else 0
    used = np.arange(width)[None, :] < tl[:, None]
    if tg.ndim == 2:
        labels = tg[:, :width]
    else:
        starts = np.concatenate([[0], np.cumsum(tl)[:-1]]).astype(np.int64)
        idx = np.minimum(starts[:, None] + np.arange(width)[None, :], max(tg.size - 1, 0))
        labels = tg[idx] if tg.size else np.zeros_like(idx)
    return np.where(used, labels, -1), used


def target_columns(args: CTCArgs) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-sample bookkeeping from the (small) targets, done in numpy where an op costs ~1 us
    rather than the ~10 us of a torch dispatch.

    Returns cols (N, K) int64: the blank, then the sample's distinct target classes in class
    order; colmask (N, K) bool, False on padding; counts (N, K) N_k (0 for the blank column);
    keep (N,) bool, True where alpha leaves y' alone: U_n = 0, or T_n = U_n + repeats (a single
    alignment, so y' is one-hot on every frame and the rescale could not change it).
    """
    _, N, C = args.log_probs.shape
    dev = args.log_probs.device
    labels, used = _padded_labels(args)
    rows = np.broadcast_to(np.arange(N)[:, None], labels.shape)
    nonblank = used & (labels != args.blank)
    counts = np.bincount((rows * C + labels)[nonblank], minlength=N * C).reshape(N, C)
    present = counts > 0
    r, c = np.nonzero(present)  # row-major, so classes come out sorted within each row
    per_row = present.sum(1)
    k = int(per_row.max()) if N else 0
    pos = np.arange(r.size) - np.repeat(np.cumsum(per_row) - per_row, per_row)
    cols = np.full((N, k + 1), args.blank, dtype=np.int64)
    cols[r, pos + 1] = c
    colmask = np.zeros((N, k + 1), dtype=bool)
    colmask[:, 0] = True
    colmask[r, pos + 1] = True
    sub_counts = np.zeros((N, k + 1))
    sub_counts[r, pos + 1] = counts[r, c]
    tl = used.sum(1)
    repeats = ((labels[:, 1:] == labels[:, :-1]) & used[:, 1:]).sum(1)
    in_lens = args.input_lengths.cpu().numpy()
    keep = (tl == 0) | (in_lens <= tl + repeats)

    def t(a: np.ndarray, dtype: torch.dtype) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(a)).to(device=dev, dtype=dtype)

    return t(cols, torch.long), t(colmask, torch.bool), t(sub_counts, args.log_probs.dtype), t(keep, torch.bool)


def occupancy(args: CTCArgs) -> Occupancy:
    """One native forward+backward and y' = exp(log_probs) - grad on the occupiable columns."""
    nll, grad = native_nll_and_grad(args)
    T, N, _ = args.log_probs.shape
    with torch.no_grad():
        cols, colmask, counts, keep = target_columns(args)
        index = cols.unsqueeze(0).expand(T, -1, -1)
        valid = frame_mask(args.input_lengths, T)
        sub = args.log_probs.detach().gather(2, index)
        y = sub.exp()
        # Where log_probs = -inf the native gradient is NaN (exp(... - lp)); that class has
        # probability 0 and so zero occupancy.
        occ = torch.where(torch.isneginf(sub), torch.zeros_like(y), y - grad.gather(2, index))
        # Past T_n the native gradient is zero, which would leave y' = y there.
        occ.mul_((valid.unsqueeze(-1) & colmask.unsqueeze(0)).to(occ.dtype))
    return Occupancy(nll, grad, valid, index, colmask, counts, keep, y, occ)


def _scatter(occ: Occupancy, sub: torch.Tensor) -> torch.Tensor:
    full = torch.zeros_like(occ.grad)
    # scatter_add, not scatter: padded columns alias the blank and must add 0, not overwrite.
    return full.scatter_add_(2, occ.index, sub)


def _finish(occ: Occupancy, args: CTCArgs, sub: torch.Tensor) -> torch.Tensor:
    full = _scatter(occ, sub)
    infeasible = torch.isinf(occ.nll)
    if bool(infeasible.any()):
        full.masked_fill_((occ.valid & infeasible[None, :]).unsqueeze(-1), float("nan"))
        _warn_infeasible(infeasible, args)
    return full.squeeze(1) if args.unbatched else full


def posterior(
    log_probs: torch.Tensor,
    targets: torch.Tensor,
    input_lengths: Lengths,
    target_lengths: Lengths,
    blank: int = 0,
) -> torch.Tensor:
    """p(pi_t = k | l, Y): the posterior occupancy, (T, N, C) (or (T, C) for unbatched input).

    Rows t >= input_lengths[n] are zero; each frame of a feasible sample sums to 1. A sample
    that needs more frames than it has gets NaN rows for t < input_lengths[n] and an
    `InfeasibleSampleWarning` naming it, rather than silently zero rows.
    """
    args = normalise(log_probs, targets, input_lengths, target_lengths, blank)
    from ctcdoctor.ctc.dispatch import kernel_path, triton_posterior

    if kernel_path(args.log_probs) == "triton":
        full, nll = triton_posterior(args)
        infeasible = torch.isinf(nll)
        if bool(infeasible.any()):
            _warn_infeasible(infeasible, args)
        return full.squeeze(1) if args.unbatched else full
    occ = occupancy(args)
    return _finish(occ, args, occ.occ)


def alpha_rescale(occ: Occupancy, args: CTCArgs, alpha: float) -> torch.Tensor:
    """y'' (T, N, K): y' rescaled so the non-blank share of each sample's occupancy is alpha.

    Per sample n with U_n labels and class totals V_k = sum_{t<T_n} y'[t, k]: blank column
    times (1 - alpha) U_n / V_blank, each target class k times alpha N_k / V_k (N_k =
    occurrences of k in the target), then every frame renormalised to sum to 1. Summed over
    frames before renormalising, blank then carries (1 - alpha) U_n and labels alpha U_n.

    Per sample, not per batch as in the paper: a sample's target must not depend on which
    other samples share its batch, and it lets a GPU kernel handle one sequence per program.
    Samples with U_n = 0, or with a single alignment (T_n = U_n + repeats: y' is one-hot on
    every frame, so rescaling and renormalising would leave it unchanged), keep y'.
    """
    y1 = occ.occ
    V = y1.sum(0).cpu().double().numpy()  # (N, K) class totals; rows past T_n are already zero
    counts = occ.counts.cpu().double().numpy()
    U = args.target_lengths.cpu().double().numpy()
    colmask = occ.colmask.cpu().numpy()
    # The (N, K) scale factors are tiny: numpy does them for a fraction of torch's dispatch cost.
    with np.errstate(divide="ignore", invalid="ignore"):
        scale = np.where(colmask, alpha * counts / V, 0.0)
        scale[:, 0] = (1.0 - alpha) * U / V[:, 0]
    # The single-alignment case is decided from the lengths (occ.keep), not from V_blank: in
    # fp32, exp(lp) - grad leaves ~1e-8 blank residue, and dividing by it would make every frame blank.
    skip = occ.keep.cpu().numpy() | ~(V[:, 0] > 0)
    scale = np.where(skip[:, None], colmask.astype(np.float64), scale)
    y2 = y1 * torch.from_numpy(scale).to(device=y1.device, dtype=y1.dtype).unsqueeze(0)
    # Rows past T_n are all zero; keep them zero rather than 0/0.
    return y2.div_(y2.sum(-1, keepdim=True).clamp_min_(torch.finfo(y1.dtype).tiny))


def pseudo_ground_truth(
    log_probs: torch.Tensor,
    targets: torch.Tensor,
    input_lengths: Lengths,
    target_lengths: Lengths,
    blank: int = 0,
    alpha: float | None = None,
) -> torch.Tensor:
    """The target the (modified) CTC gradient pulls the outputs towards: y' or its alpha rescale.

    Same shape and conventions as `posterior`; with alpha=None it is the posterior itself.
    """
    _check_alpha(alpha)
    args = normalise(log_probs, targets, input_lengths, target_lengths, blank)
    occ = occupancy(args)
    return _finish(occ, args, occ.occ if alpha is None else alpha_rescale(occ, args, alpha))


def _check_alpha(alpha: float | None) -> None:
    if alpha is not None and not (isinstance(alpha, (int, float)) and 0.0 < float(alpha) < 1.0):
        raise ValueError(f"alpha={alpha!r} must be None or a number in (0, 1), e.g. 0.5 for half non-blank frames")
