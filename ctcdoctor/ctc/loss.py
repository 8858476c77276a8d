"""`ctc_loss`: a drop-in for F.ctc_loss, plus the paper's alpha (non-blank proportion) and
gamma (key-frame weighting) gradient modifications.

Which code computes it:

- alpha=None and gamma=0 on the native path: F.ctc_loss itself. Same value, same gradient, same
  edge cases, nothing to keep in sync.
- CUDA tensors with triton installed (or CTCDOCTOR_KERNEL=triton): the fused Triton kernel
  (`dispatch.triton_ctc_loss`), plain or modified.
- alpha or gamma on CPU tensors: `fast_cpu.FastModifiedCTC`, the fast path.
- alpha or gamma anywhere else: `modified.modified_gradient`, the plain definition (and the fast
  path's test oracle).

With alpha or gamma the reported loss stays the plain CTC loss (F.ctc_loss's value): alpha and
gamma change where training goes, not how we measure it. Only the gradient is modified; since
each of its rows sums to 0 for log-softmax outputs, it is also the gradient w.r.t. the
pre-log-softmax activations.
"""
from __future__ import annotations

import math
import numbers
import warnings

import torch
import torch.nn.functional as F

from ctcdoctor.ctc._args import (
    Lengths,
    blank_label_message,
    normalise,
    refuse_blank_labels,
)
from ctcdoctor.ctc._eager import eager_under_compile, user_stacklevel
from ctcdoctor.ctc.dispatch import PrecomputedCTC, kernel_path, triton_ctc_loss
from ctcdoctor.ctc.fast_cpu import FastModifiedCTC
from ctcdoctor.ctc.modified import modified_gradient

_REDUCTIONS = ("none", "mean", "sum")


class BlankLabelWarning(UserWarning):
    """A target holds the blank index: CTC cannot produce it (plain ctc_loss computes F.ctc_loss anyway)."""


def _is_real(x: object) -> bool:
    """A real number that is not a bool: Python's, numpy's (np.float32(0.5)) or any numbers.Real."""
    return type(x) is float or type(x) is int or (isinstance(x, numbers.Real) and not isinstance(x, bool))


def check_alpha(alpha: float | None) -> float | None:
    """alpha as a float (or None), after the checks."""
    if alpha is None:
        return None
    if not _is_real(alpha):
        raise ValueError(f"alpha must be None or a real number, got {type(alpha).__name__} {alpha!r}; "
                         "e.g. alpha=0.5 for half non-blank frames")
    if not 0.0 < float(alpha) < 1.0:
        raise ValueError(f"alpha={alpha!r} must be None or a number in (0, 1), e.g. 0.5 for half non-blank frames")
    return float(alpha)


def _check_options(reduction: str, alpha: float | None, gamma: float) -> tuple[float | None, float]:
    """alpha and gamma as floats, after the checks."""
    if reduction not in _REDUCTIONS:
        raise ValueError(f"reduction={reduction!r} is not one of {_REDUCTIONS}")
    if not _is_real(gamma):
        raise ValueError(f"gamma must be a real number, got {type(gamma).__name__} {gamma!r}; e.g. gamma=1.0, or 0 to disable "
                         "key-frame weighting")
    if not (gamma >= 0 and math.isfinite(gamma)):
        raise ValueError(f"gamma={gamma!r} must be a finite number >= 0 (0 disables key-frame weighting)")
    return check_alpha(alpha), float(gamma)


@eager_under_compile
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
    w_t = max_k(y''_k - y_k), mean-normalised within each sequence. The value returned is
    always the plain CTC loss; only the gradient is modified. On CUDA tensors with triton
    installed the fused Triton kernel runs (`CTCDOCTOR_KERNEL=torch|triton` forces a path).

    A target equal to the blank is refused with alpha or gamma (ValueError) and warned about
    without (BlankLabelWarning): CTC cannot produce such a label.
    """
    alpha, gamma = _check_options(reduction, alpha, gamma)
    args = normalise(log_probs, targets, input_lengths, target_lengths, blank)
    modified = alpha is not None or gamma != 0
    if modified:
        refuse_blank_labels(args)
    elif args.blank_labels:
        warnings.warn(blank_label_message(args) + " (F.ctc_loss's gradient is wrong there too)",
                      BlankLabelWarning, stacklevel=user_stacklevel())
    T, N, _ = args.log_probs.shape
    if kernel_path(args.log_probs) == "triton":
        out = triton_ctc_loss(args, reduction, zero_infinity, alpha, gamma)
    elif not modified or N == 0 or T == 0:
        # The validated, batched arguments: contiguous targets (see _args.normalise) and the same
        # accepted length types as the modified path. No sample or no frame: nothing to modify.
        out = F.ctc_loss(
            args.log_probs, args.targets, args.input_lengths, args.target_lengths,
            blank=args.blank, reduction=reduction, zero_infinity=zero_infinity,
        )
    elif args.log_probs.device.type == "cpu":
        out = FastModifiedCTC.apply(args.log_probs, args, reduction, zero_infinity, alpha, gamma)
    else:
        nll, grad = modified_gradient(args, alpha, gamma, zero_infinity)
        out = PrecomputedCTC.apply(args.log_probs, nll, grad, args.target_lengths, reduction)
    return out.squeeze(0) if args.unbatched and reduction == "none" else out
