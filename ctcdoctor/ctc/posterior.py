"""`posterior` (the occupancy y', the paper's pseudo ground truth) and `pseudo_ground_truth`
(y' or its alpha rescale y''), from one native forward+backward (see occupancy.py).

Both take log-probabilities or unnormalised scores: the occupancy does not change when a frame's
scores are shifted by a constant, so logits give the posterior of their log_softmax.
"""
from __future__ import annotations

import warnings

import numpy as np
import torch

from ctcdoctor.ctc._args import CTCArgs, Lengths, normalise, refuse_blank_labels
from ctcdoctor.ctc._eager import eager_under_compile, user_stacklevel
from ctcdoctor.ctc.occupancy import (
    SubsetOccupancy,
    full_occupancy,
    spread,
    subset_occupancy,
)


class InfeasibleSampleWarning(UserWarning):
    """Some samples need more frames than they have: no CTC alignment exists for them."""


def _warn_infeasible(infeasible: np.ndarray, args: CTCArgs) -> None:
    idx = np.flatnonzero(infeasible).tolist()
    shown = ", ".join(map(str, idx[:10])) + (", ..." if len(idx) > 10 else "")
    warnings.warn(
        f"{len(idx)} sample(s) cannot be aligned by CTC: indices [{shown}]; e.g. {_why_infeasible(idx[0], args)}. "
        "Their posterior rows are NaN.",
        InfeasibleSampleWarning,
        stacklevel=user_stacklevel(),
    )


def _why_infeasible(n: int, args: CTCArgs) -> str:
    """Sample n's frames against what its labels need, counted as CTC001 counts them: a label equal
    to its neighbour needs a blank frame between the two, so U labels + R repeats need U + R frames."""
    frames, labels = int(args.host_input_lengths[n]), int(args.host_target_lengths[n])
    row = args.host_labels[n, :labels]
    repeats = int(np.count_nonzero(row[1:] == row[:-1]))
    counted = f"{_count(frames, 'frame')} for {_count(labels, 'label')}" + (f" + {_count(repeats, 'repeat')}" if repeats else "")
    if frames < labels + repeats:
        return f"sample {n} has {counted} (needs {labels + repeats})"
    # Enough frames: every path crosses a frame where a label it needs has probability 0 (log_probs -inf).
    return f"sample {n} has {counted}, enough, but every alignment has probability 0 (-inf log-probabilities where it needs a label)"


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'s' * (n != 1)}"


def _finish(sub: SubsetOccupancy, args: CTCArgs, values: torch.Tensor) -> torch.Tensor:
    """Subset values (T, N, K) spread to (T, N, C); an infeasible sample's rows NaN, and a warning."""
    return _mark_infeasible(spread(values, sub.columns, args.log_probs.shape), sub.nll, args)


def _mark_infeasible(full: torch.Tensor, nll: torch.Tensor, args: CTCArgs) -> torch.Tensor:
    infeasible = np.isinf(nll.cpu().numpy())
    if infeasible.any():
        rows = torch.from_numpy(np.arange(full.shape[0])[:, None] < args.host_input_lengths[None, :])
        rows = rows & torch.from_numpy(infeasible)[None, :]
        full.masked_fill_(rows.to(full.device).unsqueeze(-1), float("nan"))
        _warn_infeasible(infeasible, args)
    return full.squeeze(1) if args.unbatched else full


def _empty(args: CTCArgs) -> torch.Tensor:
    full = args.log_probs.new_zeros(args.log_probs.shape)
    return full.squeeze(1) if args.unbatched else full


@eager_under_compile
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
    `InfeasibleSampleWarning` naming it, rather than silently zero rows. Unnormalised scores give
    the posterior of their log_softmax. A target holding the blank is a ValueError.
    """
    args = normalise(log_probs, targets, input_lengths, target_lengths, blank)
    refuse_blank_labels(args)
    from ctcdoctor.ctc.dispatch import kernel_path, triton_posterior

    T, N, _ = args.log_probs.shape
    if N == 0 or T == 0:
        return _empty(args)
    if kernel_path(args.log_probs) == "triton":
        full, nll = triton_posterior(args)
        infeasible = np.isinf(nll.cpu().numpy())
        if infeasible.any():
            _warn_infeasible(infeasible, args)
        return full.squeeze(1) if args.unbatched else full
    sub = subset_occupancy(args)
    return _finish(sub, args, sub.occ)


@eager_under_compile
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
    from ctcdoctor.ctc.loss import check_alpha

    alpha = check_alpha(alpha)
    args = normalise(log_probs, targets, input_lengths, target_lengths, blank)
    refuse_blank_labels(args)
    T, N, _ = args.log_probs.shape
    if N == 0 or T == 0:
        return _empty(args)
    if alpha is not None and args.log_probs.device.type != "cpu":
        from ctcdoctor.ctc.modified import (
            alpha_rescale,  # the plain definition, on any device
        )

        nll, occ = full_occupancy(args)
        return _mark_infeasible(alpha_rescale(occ, args, alpha), nll, args)
    sub = subset_occupancy(args)
    if alpha is None:
        return _finish(sub, args, sub.occ)
    from ctcdoctor.ctc.fast_cpu import alpha_rescale_cpu

    alpha_rescale_cpu(sub, args, alpha)  # rescales sub.occ in place
    return _finish(sub, args, sub.occ)
