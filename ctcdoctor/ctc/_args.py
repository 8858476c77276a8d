"""Argument checking and normalisation shared by ctc_loss, posterior and the metrics.

F.ctc_loss fails late and cryptically on bad arguments (an out-of-range target is silently
read as garbage on CPU), so we check up front and name the fix. The checks touch only the
lengths and targets, which are tiny next to log_probs, so they cost microseconds.
"""
from __future__ import annotations

import operator
from collections.abc import Sequence, Sized
from dataclasses import dataclass

import numpy as np
import torch

Lengths = torch.Tensor | Sequence[int] | int


@dataclass(frozen=True)
class CTCArgs:
    """Batched, validated view of the CTC arguments."""

    log_probs: torch.Tensor  # (T, N, C)
    targets: torch.Tensor  # (N, S) padded or (sum U,) concatenated, int64, contiguous, on the device given
    # (N,) int64 on the host. F.ctc_loss reads lengths on the host anyway (it copies device lengths
    # back), and the Triton path copies them without a sync (pinned, non-blocking): keeping them
    # here avoids a device round trip that would stall the queue on every call.
    input_lengths: torch.Tensor
    target_lengths: torch.Tensor
    blank: int
    unbatched: bool
    # numpy views of input_lengths and target_lengths, for the bookkeeping that runs on the host.
    host_input_lengths: np.ndarray
    host_target_lengths: np.ndarray
    # The lengths as int lists (the native kernels take lists), and the targets as an (N, max U)
    # array padded with the blank past each length plus its mask: normalise builds them for
    # its range check, and target_columns reuses them instead of a second pass.
    host_lengths_lists: tuple[list[int], list[int]]
    host_labels: np.ndarray
    host_used: np.ndarray
    # (sample, position) of every real label equal to the blank, found while the labels are on the
    # host anyway; empty when there is none. See `blank_label_message`.
    blank_labels: tuple[tuple[int, int], ...] = ()


_TARGETS_FIX = "pass a padded (N, S) LongTensor, or torch.cat of the label tensors with target_lengths"


def _as_lengths(x: Lengths, name: str) -> torch.Tensor:
    if isinstance(x, torch.Tensor) and x.dtype == torch.long and x.dim() == 1 and x.device.type == "cpu":
        return x  # the common case, without four dispatches
    try:
        t = torch.as_tensor(x)
    except (TypeError, ValueError, RuntimeError) as error:  # None, ragged lists: torch's words name neither
        what = f"{name} is None" if x is None else f"{name} could not be read as integers ({error})"
        raise ValueError(f"{what}; pass a LongTensor or a list of ints, one per sample") from None
    if t.numel() == 0:
        t = t.long()  # torch.as_tensor([]) is float32: an empty batch has no lengths to judge
    if t.is_floating_point() or t.is_complex():
        raise ValueError(f"{name} must hold integers, got dtype {t.dtype}; pass a LongTensor or a list of ints")
    # One transfer if they live on a device (the checks below read them on the host).
    return t.to(device="cpu", dtype=torch.long).reshape(-1)


def _as_targets(targets: torch.Tensor | Sequence[int]) -> torch.Tensor:
    if isinstance(targets, torch.Tensor):
        return targets
    try:
        return torch.as_tensor(targets)
    except (TypeError, ValueError, RuntimeError) as error:  # torch's words ("expected sequence of length 3 at dim 1") name no fix
        raise ValueError(f"{_unreadable_targets(targets, error)}; {_TARGETS_FIX}") from None


def _unreadable_targets(targets: object, error: Exception) -> str:
    """What the targets are, for the message: the containers people pass that torch cannot make one tensor of."""
    if targets is None:
        return "targets is None"
    if isinstance(targets, (list, tuple)):
        kind = type(targets).__name__
        if any(isinstance(t, torch.Tensor) for t in targets):
            return f"targets is a {kind} of {len(targets)} tensors, which torch cannot stack into one"
        if len({len(t) for t in targets if isinstance(t, Sized)}) > 1:
            return f"targets is a {kind} of label sequences of different lengths, which torch cannot make one tensor"
    return f"targets could not be read as class indices ({error})"


def checked_blank(blank: object, C: int) -> int:
    """The blank as a plain int. Like F.ctc_loss, anything operator.index takes (numpy integers, 0-d
    integer tensors) is an index; a bool is refused (blank=True is a mistake, not class 1)."""
    index = blank if type(blank) is int else _blank_index(blank)  # the common case skips the conversion
    if not 0 <= index < C:
        raise ValueError(f"blank={index!r} is out of range for C={C} classes; pass an index in [0, {C - 1}]")
    return index


def _blank_index(blank: object) -> int:
    if isinstance(blank, bool):
        raise ValueError(f"blank={blank!r} is a bool; pass the blank's class index as an int, e.g. blank=0")
    try:
        return operator.index(blank)  # type: ignore[arg-type]  # whatever has __index__
    except TypeError:
        raise ValueError(
            f"blank must be an integer class index, got {type(blank).__name__} {blank!r}; pass an int, e.g. blank=0"
        ) from None


def count_error(name: str, count: int, N: int, frames: int | None = None, swapped: str = "") -> ValueError:
    """`name` does not give one entry per sample. When it gives one per frame instead (`frames`, T as
    log_probs was read), the time and batch axes are swapped: `swapped` says so and names the fix."""
    if count == frames and count != N:
        return ValueError(f"{name} has {count} entries for a batch of N={N}, as many as the T={frames} frames: {swapped}")
    return ValueError(f"{name} has {count} entries for a batch of N={N}; give one per sample")


def checked_output_lengths(lengths: Lengths, T: int, N: int, frames: int | None = None, swapped: str = "",
                           name: str = "output_lengths") -> torch.Tensor:
    """(N,) int64 frame counts on the host, each in [0, T]: the checks ctc_loss makes of input_lengths.
    `frames` and `swapped` as for `count_error`."""
    lens = _as_lengths(lengths, name)
    if lens.numel() != N:
        raise count_error(name, lens.numel(), N, frames, swapped)
    if N:
        _check_frame_counts(lens.tolist(), T, name)
    return lens


def check_log_probs(log_probs: torch.Tensor, blank: object) -> int:
    """Raise ValueError unless log_probs is a (T, N, C) or (T, C) float tensor; return the blank as an int."""
    if not isinstance(log_probs, torch.Tensor):
        raise ValueError(f"log_probs must be a torch.Tensor, got {type(log_probs).__name__}")
    if log_probs.dim() not in (2, 3):
        raise ValueError(
            f"log_probs must be (T, N, C) or unbatched (T, C), got {log_probs.dim()}-D shape "
            f"{tuple(log_probs.shape)}; for (N, T, C) outputs pass log_probs.transpose(0, 1)"
        )
    if not log_probs.is_floating_point():
        raise ValueError(f"log_probs must be floating point, got {log_probs.dtype}; apply log_softmax first")
    return checked_blank(blank, log_probs.shape[-1])


def normalise(
    log_probs: torch.Tensor,
    targets: torch.Tensor | Sequence[int],
    input_lengths: Lengths,
    target_lengths: Lengths,
    blank: int = 0,
) -> CTCArgs:
    """Validate CTC arguments like F.ctc_loss expects them and return a batched view."""
    blank = check_log_probs(log_probs, blank)
    targets = _as_targets(targets)
    if targets.is_floating_point() or targets.is_complex():
        raise ValueError(f"targets must hold integer class indices, got dtype {targets.dtype}")
    unbatched = log_probs.dim() == 2
    if unbatched:
        if targets.dim() != 1:
            raise ValueError(f"unbatched (T, C) log_probs need 1-D targets, got shape {tuple(targets.shape)}")
        log_probs = log_probs.unsqueeze(1)
        targets = targets.unsqueeze(0)
    T, N, C = log_probs.shape
    in_lens = _as_lengths(input_lengths, "input_lengths")
    tg_lens = _as_lengths(target_lengths, "target_lengths")
    if in_lens.numel() != N:
        swapped = (f"log_probs looks like (N, T, C) = {tuple(log_probs.shape)}; "
                   "pass log_probs.transpose(0, 1), as CTC takes (T, N, C)")
        raise count_error("input_lengths", in_lens.numel(), N, None if unbatched else T, swapped)
    if tg_lens.numel() != N:
        raise ValueError(f"target_lengths has {tg_lens.numel()} entries for a batch of N={N}; give one per sample")
    if N == 0:
        none = np.zeros((0, 0), dtype=np.int64)
        return CTCArgs(log_probs, targets.long(), in_lens, tg_lens, blank, unbatched, in_lens.numpy(),
                       tg_lens.numpy(), ([], []), none, none.astype(bool))
    il_list, tl_list = _checked_length_lists(in_lens, tg_lens, T)
    # Contiguous: PyTorch's CPU kernel indexes 1-D targets ignoring their stride, so a strided
    # view would silently be read as other labels. Targets stay on their device: the range and
    # blank checks read a host copy (one transfer for device targets: pass them on the CPU, as
    # cuDNN wants them, and the call never waits for the GPU).
    targets = targets.long().contiguous()
    labels, used = _padded_labels(targets, tg_lens.numpy(), max(tl_list), N, blank)
    # One reduction for both bounds: as unsigned, a negative label is larger than any C.
    if labels.size and labels.view(np.uint64).max() >= C:
        real = labels[used]  # the error path: report the bounds of the real labels alone
        raise ValueError(
            f"target indices must lie in [0, C={C}), got min {int(real.min())} max {int(real.max())}; "
            "check the alphabet size and the output layer width"
        )
    # Padding is the blank too: a real label equals the blank when there are more blanks than padding.
    blanks: tuple[tuple[int, int], ...] = ()
    if np.count_nonzero(labels == blank) > labels.size - sum(tl_list):
        blanks = tuple((int(n), int(j)) for n, j in np.argwhere((labels == blank) & used)[:10])
    return CTCArgs(log_probs, targets, in_lens, tg_lens, blank, unbatched, in_lens.numpy(), tg_lens.numpy(),
                   (il_list, tl_list), labels, used, blanks)


def _checked_length_lists(in_lens: torch.Tensor, tg_lens: torch.Tensor, T: int) -> tuple[list[int], list[int]]:
    """The lengths as int lists (the native kernels take lists), after the range checks; Python's
    min/max on the lists cost less than numpy reductions."""
    il_list, tl_list = in_lens.tolist(), tg_lens.tolist()
    _check_frame_counts(il_list, T, "input_lengths")
    if min(tl_list) < 0:
        raise ValueError(f"target_lengths must be >= 0, got {min(tl_list)}")
    return il_list, tl_list


def _check_frame_counts(lengths: list[int], T: int, name: str) -> None:
    low, high = min(lengths), max(lengths)
    if low < 0 or high > T:
        raise ValueError(
            f"{name} must lie in [0, T={T}], got min {low} max {high}; "
            "pass the number of output frames per sample (after any downsampling)"
        )


def _padded_labels(targets: torch.Tensor, tl: np.ndarray, width: int, N: int, blank: int
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Targets on the host as an (N, max U) int64 array, the blank past each length, and the
    (N, max U) mask of real positions. Checks the targets' shape against the lengths."""
    used = np.arange(width) < tl[:, None]
    if targets.dim() == 2:
        if targets.shape[0] != N:
            raise ValueError(f"padded targets have {targets.shape[0]} rows for a batch of N={N}")
        if width > targets.shape[1]:
            raise ValueError(f"a target length ({width}) exceeds the padded target width ({targets.shape[1]})")
        labels = targets.cpu().numpy()[:, :width]
    elif targets.dim() == 1:
        total = int(tl.sum())
        if targets.numel() < total:
            raise ValueError(
                f"concatenated 1-D targets hold {targets.numel()} labels but target_lengths sum to {total}"
            )
        tg = targets.cpu().numpy()
        # Sample n's labels start where the previous ones end; positions past a length are
        # clipped into range here and replaced below.
        starts = np.concatenate([[0], np.cumsum(tl)[:-1]]).astype(np.int64)
        idx = np.minimum(starts[:, None] + np.arange(width)[None, :], max(tg.size - 1, 0))
        labels = tg[idx] if tg.size else np.zeros_like(idx)
    else:
        raise ValueError(f"targets must be padded (N, S) or concatenated 1-D, got shape {tuple(targets.shape)}")
    # Padding beyond each length is ignored (any value), exactly as F.ctc_loss does: it becomes
    # the blank, which is in range, so the bounds of the padded array are those of the labels.
    return np.where(used, labels, blank).astype(np.int64, copy=False), used


def blank_label_message(args: CTCArgs) -> str:
    """Why a target equal to the blank is refused (or warned about), with where it sits."""
    n, j = args.blank_labels[0]
    more = f" (and {len(args.blank_labels) - 1} more shown of the first 10)" if len(args.blank_labels) > 1 else ""
    return (
        f"target of sample {n} holds the blank index {args.blank} at position {j}{more}: CTC drops blanks when it "
        "collapses a path, so no alignment can produce that label, and the occupancy is undefined there "
        "(PyTorch's own backward gives posterior rows that do not sum to 1). Encode the labels so that none "
        f"equals the blank (e.g. shift them by one with blank 0), or pass the blank index your labels reserve"
    )


def refuse_blank_labels(args: CTCArgs) -> None:
    """Raise ValueError when a target holds the blank: posterior, pseudo ground truth and the
    alpha/gamma gradient are built from the occupancy, which is undefined there."""
    if args.blank_labels:
        raise ValueError(blank_label_message(args))


def frame_mask(input_lengths: torch.Tensor, T: int, device: torch.device | None = None) -> torch.Tensor:
    """(T, N) bool on `device` (input_lengths' by default): frame t of sample n is real (t < input_lengths[n])."""
    lengths = input_lengths if device is None else input_lengths.to(device)
    return torch.arange(T, device=lengths.device)[:, None] < lengths[None, :]
