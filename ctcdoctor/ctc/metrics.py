"""Spikiness metrics: how blank-dominated and peaky a CTC model's outputs are.

Plain CTC drives outputs to one-frame spikes of a label in a sea of blanks (Li & Wang's
"suppression" then "peaking" phases); these numbers measure how far along that a model is.
All averages are over valid frames (t < T_n) pooled across the batch. Formulas: docs/ctc.md.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch

from ctcdoctor.ctc._args import Lengths, check_log_probs, checked_output_lengths, frame_mask
from ctcdoctor.ctc._eager import eager_under_compile


@dataclass(frozen=True)
class Spikiness:
    """Spikiness of CTC outputs, averaged over valid frames."""

    blank_ratio: float
    """Fraction of frames whose argmax is blank."""
    nonblank_mass: float
    """Mean over frames of 1 - p(blank): the non-blank share of the output mass."""
    spike_width: float
    """Mean length of runs of equal non-blank argmax frames (0 when there are none)."""
    peak_prob: float
    """Mean over frames of max_k p(k)."""
    entropy: float
    """Mean frame entropy, nats."""
    nonblank_posterior_mass: float | None = None
    """Non-blank share of the posterior occupancy y' (needs targets; feasible samples only)."""

    def as_dict(self) -> dict[str, float | None]:
        return asdict(self)


@eager_under_compile
def spikiness(
    log_probs: torch.Tensor,
    output_lengths: Lengths | None = None,
    blank: int = 0,
    targets: torch.Tensor | None = None,
    target_lengths: Lengths | None = None,
) -> Spikiness:
    """Spikiness metrics of (T, N, C) (or (T, C)) log-probabilities."""
    blank = check_log_probs(log_probs, blank)
    lp = log_probs.detach()
    lp3 = lp.unsqueeze(1) if lp.dim() == 2 else lp
    T, N, C = lp3.shape
    if output_lengths is None:
        lens = torch.full((N,), T, dtype=torch.long)
    else:  # the checks ctc_loss makes of input_lengths: one per sample, each in [0, T]
        swapped = f"log_probs looks like (N, T, C) = {tuple(lp.shape)}; pass log_probs.transpose(0, 1)"
        lens = checked_output_lengths(output_lengths, T, N, T if lp.dim() == 3 else None, swapped)
    lens = lens.to(lp3.device)
    valid = frame_mask(lens, T)
    n_frames = max(int(valid.sum()), 1)
    lp64 = lp3.double()
    p = lp64.exp()
    best = lp3.argmax(-1)

    is_blank = (best == blank) & valid
    nonblank = (best != blank) & valid
    # A run starts at a non-blank frame whose predecessor is blank, a different class, or absent.
    starts = nonblank.clone()
    starts[1:] &= ~(nonblank[:-1] & (best[1:] == best[:-1]))
    n_runs = int(starts.sum())
    frame_entropy = -torch.where(p > 0, p * lp64, torch.zeros_like(p)).sum(-1)

    def mean(x: torch.Tensor) -> float:
        return float(torch.where(valid, x, torch.zeros_like(x)).sum() / n_frames)

    post_mass = None
    if targets is not None:
        if target_lengths is None:
            raise ValueError("targets given without target_lengths; pass both to get nonblank_posterior_mass")
        from ctcdoctor.ctc.posterior import posterior

        batched = targets if lp.dim() == 3 else torch.as_tensor(targets).reshape(1, -1)
        occ = posterior(lp3, batched, lens, target_lengths, blank)
        feasible = valid & ~torch.isnan(occ).any(-1)
        denom = int(feasible.sum())
        nb = (1.0 - occ[..., blank].double()).where(feasible, torch.zeros((), dtype=torch.float64))
        post_mass = float(nb.sum() / denom) if denom else float("nan")

    return Spikiness(
        blank_ratio=float(is_blank.sum()) / n_frames,
        nonblank_mass=mean(1.0 - p[..., blank]),
        spike_width=float(nonblank.sum()) / n_runs if n_runs else 0.0,
        peak_prob=mean(p.amax(-1)),
        entropy=mean(frame_entropy),
        nonblank_posterior_mass=post_mass,
    )
