"""The posterior occupancy y' from PyTorch's native CTC kernels, formed in log space.

Li & Wang read CTC training as iterative fitting: the gradient of the CTC loss w.r.t. the
pre-softmax activations is y - y', where y' = p(pi_t = k | l, Y) is the posterior occupancy.
PyTorch's native backward (`aten._ctc_loss_backward`, CPU and CUDA alike) ends with

    grad[t, k] = (exp(lp[t, k]) - exp(lcab[t, k] + nll_in - lp[t, k])) * grad_out

where lcab is log sum_s alpha beta over the states of class k, and nll_in and grad_out are
*inputs* of the op. With nll_in = nll the second term is y'. Reading y' as exp(lp) - grad would
keep only rounding noise wherever y' << y (a confident frame that the alignment gives to another
class), and the alpha rescale divides by exactly such entries. So we call the backward with
nll_in = nll + K and grad_out = -exp(-K):

    grad = y' - y * exp(-K)        (exactly y' up to one rounding of each term)

The subtraction now happens at the scale of y' e^K, where y is negligible: y' comes out with
full relative precision down to about y * e^-K (1.8e-35 in float32, 1e-304 in float64), the
same log-space quality as the float64 reference and the Triton kernel. `clamp_min(0)` removes the
-y e^-K left on classes no state carries. Rows past a sample's length are zero (the native
backward zeroes them); infeasible samples come back with NaN rows; a class whose log-prob is
exactly -inf has no occupancy, which the native formula turns into NaN (-inf - -inf) and we set
to 0.

The occupancy is invariant to a per-frame shift of the log-probs (every path visits each frame
once), so unnormalised scores (logits) give the posterior of their log_softmax: when any score is
above 0 the occupancy pass runs on per-frame shifted scores (the loss still comes from the scores
as given).

Only the blank and the classes of a sample's target can be occupied: `target_columns` picks those
K = 1 + (distinct labels) columns per sample, and `subset_occupancy` runs the native pass on them
alone with the targets renumbered. CTC never couples classes: the recursions read only the
target states' log-probs, so the NLL is bit for bit that of the full pass, at a fraction of its
cost for a large vocabulary.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from ctcdoctor.ctc._args import CTCArgs

# The two kernels F.ctc_loss (int64 targets, no cuDNN) runs, called directly.
_CTC_FORWARD = torch.ops.aten._ctc_loss
_CTC_BACKWARD = torch.ops.aten._ctc_loss_backward

# K per dtype: e^K * y' must stay finite for y' up to ~1 (float32 max is e^88.7, float64 e^709.8)
# and e^-K must be a normal number.
_SHIFT = {torch.float32: 80.0, torch.float64: 700.0}
# numpy twins of the float dtypes: small host arrays are converted there (bit for bit the same
# rounding) rather than by a torch op each.
_NP_DTYPE = {torch.float32: np.float32, torch.float64: np.float64}


# Elementwise ops on fewer elements than this run on one thread (see `one_thread`).
PARALLEL_MIN = 1 << 20


class one_thread:  # noqa: N801 - used like a function: `with one_thread(): ...`
    """Run the enclosed ops without OpenMP parallel regions, unless they touch >= PARALLEL_MIN
    elements (`numel`), where a second thread pays for itself.

    An op on a (T, N, K) tensor is microseconds of work; with two threads each one is a parallel
    region, and on a busy machine a region waits for a descheduled worker (a 51k-element multiply
    measured 2.8 ms with 2 threads against 7 us with 1 on a loaded 2-core box). The native CTC
    kernels keep the caller's thread count. The count is a process-wide setting, restored on exit.
    (A class rather than a contextlib generator: this runs several times per call.)
    """

    __slots__ = ("threads",)

    def __init__(self, numel: int = 0):
        threads = torch.get_num_threads()
        self.threads = threads if threads > 1 and numel < PARALLEL_MIN else 0

    def __enter__(self) -> None:
        if self.threads:
            torch.set_num_threads(1)

    def __exit__(self, *exc) -> None:
        if self.threads:
            torch.set_num_threads(self.threads)


def _shift_for(dtype: torch.dtype) -> float:
    if dtype not in _SHIFT:
        raise ValueError(f"CTC on the native path needs float32 or float64 log_probs, got {dtype}; cast with .float()")
    return _SHIFT[dtype]


def native_nll(lp: torch.Tensor, targets: torch.Tensor, lengths: tuple[list, list], blank: int):
    """Per-sample NLL (N,) and log_alpha from the native forward: exactly F.ctc_loss's numbers."""
    il, tl = lengths
    return _CTC_FORWARD(lp, targets, il, tl, blank, False)


def native_occupancy(
    lp: torch.Tensor, targets: torch.Tensor, lengths: tuple[list, list], blank: int, sign: float = 1.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """NLL (N,) of `lp` and sign * the occupancy y' (T, N, C') on `lp`'s columns, in log space
    (see above); sign -1 gives -y' at no extra cost (grad_out's sign).

    `lp` must not hold scores so large that exp(lp) swamps y' e^K (`occupancy_input` sees to that).
    """
    K = _shift_for(lp.dtype)
    il, tl = lengths
    with torch.no_grad():
        nll, log_alpha = _CTC_FORWARD(lp, targets, il, tl, blank, False)
        grad_out = torch.full_like(nll, -sign * math.exp(-K))
        occ = _CTC_BACKWARD(grad_out, lp, targets, il, tl, nll + K, log_alpha, blank, False)
        with one_thread():  # NaN (infeasible rows, -inf log-probs) passes through
            if sign > 0:
                occ.clamp_min_(0.0)
            else:
                occ.clamp_max_(0.0)
    return nll, occ


def occupancy_input(lp: torch.Tensor) -> tuple[torch.Tensor, bool, bool]:
    """`lp` ready for `native_occupancy`, whether it was shifted, and whether it holds -inf.

    Log-probabilities are <= 0 (log_softmax never rounds above 0) and pass unchanged. Scores
    above 0 are logits: they are shifted per frame by their maximum, which leaves the occupancy
    unchanged, keeps exp() from overflowing or swamping y' e^K, and keeps the magnitudes (and so
    float32's absolute rounding) those of log-probabilities. One reduction and one host read.
    """
    if lp.numel() == 0:
        return lp, False, False
    lo, hi = (float(v) for v in torch.aminmax(lp))
    if math.isnan(lo) or math.isnan(hi):
        # NaN somewhere (often padding past T_n, which CTC never reads): the bounds say nothing
        # about the other entries, so take the careful path for both questions.
        lo, hi = float("-inf"), float("inf")
    shifted = False
    if hi > 0:
        top = lp.amax(-1, keepdim=True)
        lp = lp - torch.where(torch.isfinite(top), top, torch.zeros_like(top))
        shifted = True
    return lp, shifted, lo == float("-inf")


def zero_where_impossible(occ: torch.Tensor, lp: torch.Tensor) -> torch.Tensor:
    """Occupancy 0 (not the native formula's NaN) where the log-prob is exactly -inf."""
    return occ.masked_fill_(torch.isneginf(lp), 0.0)


def full_occupancy(args: CTCArgs) -> tuple[torch.Tensor, torch.Tensor]:
    """Plain version: NLL (N,) of the scores as given and y' (T, N, C) over every class."""
    lp = args.log_probs.detach()
    lengths = args.host_lengths_lists
    targets = args.targets.to(lp.device)
    nll, _ = native_nll(lp, targets, lengths, args.blank)
    shifted_lp, _, has_neginf = occupancy_input(lp)
    _, occ = native_occupancy(shifted_lp, targets, lengths, args.blank)
    return nll, zero_where_impossible(occ, lp) if has_neginf else occ


@dataclass(frozen=True)
class TargetColumns:
    """Per-sample bookkeeping from the (small) targets, on the host.

    cols (N, K): the blank, then the sample's distinct target classes in class order; padding
    columns (samples with fewer distinct labels) repeat the blank and are masked out.
    """

    cols: np.ndarray  # (N, K) int64 class of each subset column
    mask: np.ndarray  # (N, K) bool, real columns
    counts: np.ndarray  # (N, K) float64 N_k, occurrences in the target (0 for the blank column and padding)
    remapped: np.ndarray  # (N, W) int64 targets as subset column numbers (padding -> 0, the blank)
    index: torch.Tensor  # (T, N, K) int64 cols expanded over time, on log_probs' device, for gather/scatter


def target_columns(args: CTCArgs) -> TargetColumns:
    """The subset columns of every sample, in numpy (an op costs ~1 us there, ~10 us in torch)."""
    T, N, C = args.log_probs.shape
    labels = args.host_labels  # (N, max U), padded with the blank
    rows = np.arange(N)[:, None]
    counts = np.bincount((labels + rows * C).ravel(), minlength=N * C).reshape(N, C)
    counts[:, args.blank] = 0  # padding is the blank: it counts nowhere
    present = counts > 0
    # Subset column of class c in sample n: the number of its present classes <= c (the blank,
    # never counted as present, is column 0), so classes stay sorted within each row.
    column = np.cumsum(present, axis=1)
    per_row = column[:, -1].copy()  # a copy: column's blank entries are zeroed below
    r, c = np.nonzero(present)
    j = column[r, c]
    k = int(per_row.max()) + 1 if N else 1
    cols = np.full((N, k), args.blank, dtype=np.int64)
    cols[r, j] = c
    sub_counts = np.zeros((N, k))
    sub_counts[r, j] = counts[r, c]
    column[:, args.blank] = 0  # the blank (and padding) is subset column 0
    index = torch.from_numpy(cols)
    if args.log_probs.device.type != "cpu":
        index = index.to(args.log_probs.device)
    return TargetColumns(cols, np.arange(k) <= per_row[:, None], sub_counts, column[rows, labels],
                         index.unsqueeze(0).expand(T, -1, -1))


@dataclass(frozen=True)
class SubsetOccupancy:
    """The native pass on the K subset columns of each sample."""

    nll: torch.Tensor  # (N,) plain per-sample NLL of the scores as given; +inf when infeasible
    lp: torch.Tensor  # (T, N, K) the scores on the subset columns (ours: callers may reuse the buffer)
    occ: torch.Tensor  # (T, N, K) y' (or -y') on the subset; 0 past T_n and on padding columns, NaN rows if infeasible
    columns: TargetColumns


def subset_occupancy(args: CTCArgs, columns: TargetColumns | None = None, sign: float = 1.0) -> SubsetOccupancy:
    """NLL and sign * y' from one native forward+backward on the subset columns."""
    columns = target_columns(args) if columns is None else columns
    lengths = args.host_lengths_lists
    with torch.no_grad():
        with one_thread():
            lp = args.log_probs.detach().gather(2, columns.index)
            targets = torch.from_numpy(columns.remapped).to(lp.device)
            ready, shifted, has_neginf = occupancy_input(lp)
        nll, occ = native_occupancy(ready, targets, lengths, 0, sign)
        if shifted:  # the loss comes from the scores as given, not from the shifted ones
            nll, _ = native_nll(lp, targets, lengths, 0)
        if has_neginf:
            with one_thread():
                zero_where_impossible(occ, lp)
    return SubsetOccupancy(nll, lp, occ, columns)


def spread(sub: torch.Tensor, columns: TargetColumns, shape: torch.Size) -> torch.Tensor:
    """(T, N, K) subset values spread to (T, N, C), zero elsewhere."""
    with one_thread(math.prod(shape)):
        full = sub.new_zeros(shape)
    with one_thread():
        # scatter_add, not scatter: padding columns alias the blank and must add 0, not overwrite.
        return full.scatter_add_(2, columns.index, sub)


def alpha_factors(
    V: np.ndarray, counts: np.ndarray, mask: np.ndarray, lengths: np.ndarray, alpha: float
) -> np.ndarray:
    """Per-sample scale factors (N, K) of the alpha rescale, from class totals V (N, K), float64.

    Column 0 is the blank: (1 - alpha) U_n / V_blank; target class k: alpha N_k / V_k (0 where
    V_k = 0: its occupancies are all 0 and the limit is 0, not NaN). Samples with U_n = 0 or no
    blank occupancy (V_blank = 0: a single alignment, or a NaN total: infeasible) keep y' (factor
    1). Each row is then divided by its maximum: the frame renormalisation that follows cancels any
    per-sample constant, and factors <= 1 keep y' * f inside float32 when V_blank is tiny
    (confident outputs): no inf, no inf * 0 = NaN.
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        f = np.where(mask & (V > 0), alpha * counts / V, 0.0)
        f[:, 0] = (1.0 - alpha) * lengths / V[:, 0]
    skip = (lengths == 0) | ~(V[:, 0] > 0)
    f = np.where(skip[:, None], mask.astype(np.float64), f)
    return f / f.max(1, keepdims=True)


def renormalise_(y: torch.Tensor) -> torch.Tensor:
    """Each frame of y (T, N, K) divided by its sum, in place; all-zero frames (past T_n) stay 0.
    (Times the reciprocal: a broadcast division costs five times a multiplication on CPU.)"""
    return y.mul_(y.sum(-1, keepdim=True).clamp_min_(torch.finfo(y.dtype).tiny).reciprocal_())
