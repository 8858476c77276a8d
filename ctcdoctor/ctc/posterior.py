"""Posterior occupancy (the paper's pseudo ground truth) from PyTorch's native CTC kernels.

Li & Wang read CTC training as iterative fitting: the gradient of the CTC loss w.r.t. the
pre-softmax activations is y - y', where y' = p(pi_t = k | l, Y) is the posterior occupancy.
PyTorch's native backward already forms exactly that: with reduction="sum",

    d loss / d log_probs = exp(log_probs) - y'      (for frames t < T_n of feasible samples)

so one native forward+backward gives y' = exp(log_probs) - grad. That is several times faster
than any forward-backward we could write in Python (a loop over time pays ~0.1 ms dispatch per
step), and it is checked against the float64 reference in reference.py by the tests. When only
y' is wanted (posterior, pseudo_ground_truth) the native pass runs on the blank and target
columns alone, which gives the same numbers (see `occupancy`).
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, replace
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

from ctcdoctor.ctc._args import CTCArgs, Lengths, frame_mask, normalise


class InfeasibleSampleWarning(UserWarning):
    """Some samples need more frames than they have: no CTC alignment exists for them."""


def _aten_op(name: str):
    try:
        return getattr(torch.ops.aten, name)
    except (AttributeError, RuntimeError):  # not in this PyTorch build
        return None


# The two kernels F.ctc_loss (reduction="none", int64 targets) runs, called directly: the same
# numbers (the backward gets the same all-ones incoming gradient autograd would hand it) without
# building and running an autograd graph, which costs ~0.1 ms per call.
_CTC_FORWARD = _aten_op("_ctc_loss")
_CTC_BACKWARD = _aten_op("_ctc_loss_backward")


def native_nll_and_grad(args: CTCArgs) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample NLL (N,) and d(sum NLL)/d log_probs (T, N, C) from one native pass.

    Infeasible samples come back with NLL +inf and NaN gradient rows (t < T_n), as PyTorch
    gives them; callers decide what that means.
    """
    lp = args.log_probs.detach()
    # int64 targets keep PyTorch on its native kernel: cuDNN (int32-only) would hand back a
    # gradient with different conventions on CUDA.
    if _CTC_FORWARD is not None and _CTC_BACKWARD is not None:
        # Lengths as int lists, the overload F.ctc_loss itself reaches (the Tensor-lengths
        # overload measured ~0.5 ms slower per call on CPU).
        if args.host_lengths_lists is not None:
            il, tl = args.host_lengths_lists
        else:
            il, tl, _ = _host(args)
            il, tl = il.tolist(), tl.tolist()
        with torch.no_grad():
            nll, log_alpha = _CTC_FORWARD(lp, args.targets, il, tl, args.blank, False)
            grad = _CTC_BACKWARD(torch.ones_like(nll), lp, args.targets, il, tl, nll, log_alpha, args.blank, False)
        return nll, grad
    with torch.enable_grad():
        leaf = lp.requires_grad_()
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


class TargetColumns(NamedTuple):
    """Per-sample bookkeeping from the targets (see `target_columns`)."""

    cols: torch.Tensor  # (N, K) int64 class of each subset column, on log_probs' device
    colmask: torch.Tensor  # (N, K) 1 on real columns, 0 on padding; log_probs' dtype and device
    mask: np.ndarray  # (N, K) bool, colmask on the host
    counts: np.ndarray | None  # (N, K) float64 N_k, occurrences in the target (0 for the blank column); for alpha
    lengths: np.ndarray | None  # (N,) float64 U_n; for alpha
    keep: np.ndarray | None  # (N,) bool, alpha leaves this sample's y' unchanged; for alpha
    remapped: torch.Tensor | None  # (N, S) targets as subset column numbers, when asked for
    pads: torch.Tensor | None  # flat (n * K + k) indices of the padding columns; None if none or not asked for


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
    grad: torch.Tensor | None  # (T, N, C) native d(sum NLL)/d log_probs = y - y' on valid rows; None from the subset pass
    finite: bool  # grad holds no NaN/inf (so no -inf log-prob sits on a valid row)
    valid: torch.Tensor  # (T, N) bool, t < T_n
    validf: torch.Tensor  # valid as 0/1 in log_probs' dtype
    index: torch.Tensor  # (T, N, K) int64 class of each subset column, expanded for gather/scatter
    columns: TargetColumns
    y: torch.Tensor  # (T, N, K) outputs on the subset columns
    occ: torch.Tensor  # (T, N, K) y' on the subset; zero on padded rows and columns


def _host(args: CTCArgs) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """input_lengths, target_lengths and targets as numpy arrays (normalise's copies if any)."""
    if args.host_targets is not None:
        return args.host_input_lengths, args.host_target_lengths, args.host_targets
    return args.input_lengths.cpu().numpy(), args.target_lengths.cpu().numpy(), args.targets.cpu().numpy()


# numpy twins of the float dtypes: small host arrays are converted there (bit for bit the same
# rounding) rather than by a torch op each.
_NP_DTYPE = {torch.float32: np.float32, torch.float64: np.float64}


def _to_torch(a: np.ndarray, like: torch.Tensor) -> torch.Tensor:
    """Host array a as a tensor in like's float dtype, on like's device."""
    np_dtype = _NP_DTYPE.get(like.dtype)
    if np_dtype is None:
        return torch.from_numpy(a).to(like.device, like.dtype)
    return torch.from_numpy(a.astype(np_dtype)).to(like.device)


def _padded_labels(args: CTCArgs, tl: np.ndarray, tg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Targets as an (N, max U) int array padded with the blank past each length (from either
    layout), and the mask of real positions. normalise has usually built them already."""
    if args.host_labels is not None:
        return args.host_labels, args.host_used
    width = int(tl.max()) if tl.size else 0
    used = np.arange(width)[None, :] < tl[:, None]
    if tg.ndim == 2:
        labels = tg[:, :width]
    else:
        starts = np.concatenate([[0], np.cumsum(tl)[:-1]]).astype(np.int64)
        idx = np.minimum(starts[:, None] + np.arange(width)[None, :], max(tg.size - 1, 0))
        labels = tg[idx] if tg.size else np.zeros_like(idx)
    return np.where(used, labels, args.blank), used


def target_columns(args: CTCArgs, remap: bool = False, alpha: bool = True, pads: bool = True) -> TargetColumns:
    """Per-sample bookkeeping from the (small) targets, done in numpy where an op costs ~1 us
    rather than the ~10 us of a torch dispatch.

    cols (N, K): the blank, then the sample's distinct target classes in class order; colmask
    0 on padding; counts N_k (0 for the blank column); keep (N,) True where alpha leaves y'
    alone: U_n = 0, or T_n = U_n + repeats (a single alignment, so y' is one-hot on every frame
    and the rescale could not change it). Only cols and colmask go to torch: alpha_rescale
    does its (N, K) arithmetic in numpy too. With remap, also the targets rewritten as subset
    column numbers (blank -> 0), for running CTC on the K columns alone. With alpha=False,
    counts, lengths and keep are None; with pads=False, pads is None: each costs a few host
    ops that a call without alpha (or without gamma) would throw away.
    """
    _, N, C = args.log_probs.shape
    dev = args.log_probs.device
    in_lens, tl, tg = _host(args)
    labels, used = _padded_labels(args, tl, tg)
    rows = np.arange(N)[:, None]
    nonblank = labels != args.blank  # padding is the blank: no need to mask it out
    counts = np.bincount((rows * C + labels)[nonblank], minlength=N * C).reshape(N, C)
    present = counts > 0
    # Subset column of class c in sample n: the number of its present classes <= c (the blank,
    # never counted as present, is column 0), so classes stay sorted within each row.
    column = np.cumsum(present, axis=1)
    per_row = column[:, -1]
    k = int(per_row.max()) if N else 0
    r, c = np.nonzero(present)
    j = column[r, c]
    cols = np.full((N, k + 1), args.blank, dtype=np.int64)
    cols[r, j] = c
    colmask = np.arange(k + 1) <= per_row[:, None]
    sub_counts = lengths = keep = None
    if alpha:
        sub_counts = np.zeros((N, k + 1))
        sub_counts[r, j] = counts[r, c]
        repeats = ((labels[:, 1:] == labels[:, :-1]) & used[:, 1:]).sum(1)
        keep = (tl == 0) | (in_lens <= tl + repeats)
        lengths = tl.astype(np.float64)
    remapped = None
    if remap:
        # A label equal to the blank (allowed, if odd) stays the blank.
        remapped = torch.from_numpy(np.where(nonblank, column[rows, labels], 0)).to(dev)
    pad_idx = np.flatnonzero(~colmask) if pads else None
    return TargetColumns(
        torch.from_numpy(cols).to(dev), _to_torch(colmask, args.log_probs),
        colmask, sub_counts, lengths, keep, remapped,
        torch.from_numpy(pad_idx).to(dev) if pad_idx is not None and pad_idx.size else None,
    )


def _frame_masks(args: CTCArgs, T: int) -> tuple[torch.Tensor, torch.Tensor]:
    """frame_mask (T, N) and its 0/1 copy in log_probs' dtype; on CPU built in numpy from
    normalise's host lengths, where the five small torch ops would cost more."""
    lp, il = args.log_probs, args.host_input_lengths
    np_dtype = _NP_DTYPE.get(lp.dtype)
    if il is not None and np_dtype is not None and not lp.is_cuda:
        valid = np.arange(T)[:, None] < il
        return torch.from_numpy(valid), torch.from_numpy(valid.astype(np_dtype))
    valid = frame_mask(args.input_lengths, T)
    return valid, valid.to(lp.dtype)


def _all_finite(t: torch.Tensor) -> bool:
    """True when t holds no NaN or inf, from one reduction (any such entry makes the sum
    non-finite; a sum that merely overflows answers False, which only costs the slow path).
    On CUDA this would be a host sync, so there we answer False and always mask."""
    return not t.is_cuda and math.isfinite(float(t.sum()))


def occupancy(args: CTCArgs, full_grad: bool = True, alpha: bool = True, pads: bool = True) -> Occupancy:
    """One native forward+backward and y' = exp(log_probs) - grad on the occupiable columns.

    full_grad=False (for callers that need y' alone) runs the native pass on the K subset
    columns instead of all C, with the targets renumbered to match. CTC never couples the
    classes: the recursions read only the target states' log-probs, and the gradient of a
    class collects only its own states, in the same order, so nll and the subset gradient are
    bit for bit those of the full pass, at a fraction of its cost for a large vocabulary. Only
    on CPU: PyTorch's CUDA backward picks its algorithm by the number of classes. alpha and
    pads say whether the caller needs the columns' alpha bookkeeping and padding indices
    (see `target_columns`).
    """
    T, N, _ = args.log_probs.shape
    subset = not full_grad and not args.log_probs.is_cuda
    with torch.no_grad():
        columns = target_columns(args, remap=subset, alpha=alpha, pads=pads)
        index = columns.cols.unsqueeze(0).expand(T, -1, -1)
        valid, validf = _frame_masks(args, T)
        y = args.log_probs.detach().gather(2, index)
        if subset:
            nll, occ = native_nll_and_grad(replace(args, log_probs=y, targets=columns.remapped, blank=0))
            grad = None
        else:
            nll, grad = native_nll_and_grad(args)
            occ = grad.gather(2, index)
        # Where log_probs = -inf the native gradient is NaN (exp(... - lp)); that class has
        # probability 0 and so zero occupancy. Such a log-prob on a valid row always makes the
        # gradient non-finite (past T_n the gradient is 0, and 0 - 0 is already right), so a
        # finite gradient needs no -inf mask.
        finite = _all_finite(occ if grad is None else grad)
        neginf = None if finite else torch.isneginf(y)
        y = y.exp_() if subset else y.exp()
        if finite:
            torch.sub(y, occ, out=occ)
        else:
            occ = torch.where(neginf, torch.zeros_like(y), y - occ)
        # Past T_n the native gradient is zero, which would leave y' = y there. Two broadcast
        # products rather than one (T, N, K) mask: both multiply by exactly 0 or 1.
        occ.mul_(validf.unsqueeze(-1)).mul_(columns.colmask)
    return Occupancy(nll, grad, finite, valid, validf, index, columns, y, occ)


def _finish(occ: Occupancy, args: CTCArgs, sub: torch.Tensor) -> torch.Tensor:
    """sub (T, N, K) spread to (T, N, C)."""
    full = args.log_probs.new_zeros(args.log_probs.shape)
    # scatter_add, not scatter: padded columns alias the blank and must add 0, not overwrite.
    full.scatter_add_(2, occ.index, sub)
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
    occ = occupancy(args, full_grad=False, alpha=False, pads=False)
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
    V = y1.sum(0).cpu()  # (N, K) class totals; rows past T_n are already zero
    # Widened in numpy where it can be (exact, like torch's .double(), without a dispatch).
    V = V.numpy().astype(np.float64) if V.dtype in _NP_DTYPE else V.double().numpy()
    cols = occ.columns
    # The (N, K) scale factors are tiny: numpy does them for a fraction of torch's dispatch cost.
    with np.errstate(divide="ignore", invalid="ignore"):
        scale = np.where(cols.mask, alpha * cols.counts / V, 0.0)
        scale[:, 0] = (1.0 - alpha) * cols.lengths / V[:, 0]
    # The single-alignment case is decided from the lengths (keep), not from V_blank: in fp32,
    # exp(lp) - grad leaves ~1e-8 blank residue, and dividing by it would make every frame blank.
    skip = cols.keep | ~(V[:, 0] > 0)
    scale = np.where(skip[:, None], cols.mask.astype(np.float64), scale)
    # (N, K) broadcasts over the leading T dimension as it is.
    y2 = y1 * _to_torch(scale, y1)
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
    occ = occupancy(args, full_grad=False, alpha=alpha is not None, pads=False)
    return _finish(occ, args, occ.occ if alpha is None else alpha_rescale(occ, args, alpha))


def _check_alpha(alpha: float | None) -> None:
    if alpha is not None and not (isinstance(alpha, (int, float)) and 0.0 < float(alpha) < 1.0):
        raise ValueError(f"alpha={alpha!r} must be None or a number in (0, 1), e.g. 0.5 for half non-blank frames")
