"""The alpha/gamma modified gradient, written plainly over every class: the definition.

For sample n and frame t < T_n (zero beyond), w.r.t. log_probs:

    g[t, k] = omega_t (y[t, k] - y''[t, k])

y = exp(log_probs) as given (F.ctc_loss's convention: its own gradient is y - y'), y'' = y' or
its alpha rescale, and with gamma > 0

    w_t = max_k (y''[t, k] - y[t, k]),   omega_t = T_n w_t^gamma / sum_{t' < T_n} w_t'^gamma

(omega = 1 when gamma = 0 or the sum is 0). Infeasible samples get NaN rows, or zero rows and a
zero loss with zero_infinity, as F.ctc_loss gives them. docs/ctc.md has the derivation.

This module runs on any device with a handful of full-size tensor ops; ctc_loss uses it where
neither the Triton kernel nor the CPU fast path (`fast_cpu.py`, tested against this) applies.
"""
from __future__ import annotations

import torch

from ctcdoctor.ctc._args import CTCArgs, frame_mask
from ctcdoctor.ctc.occupancy import full_occupancy, renormalise_


def alpha_rescale(occ: torch.Tensor, args: CTCArgs, alpha: float) -> torch.Tensor:
    """y'' (T, N, C): y' rescaled so that about alpha of each sample's occupancy is non-blank.

    Per sample n with U_n labels and class totals V_k = sum_{t < T_n} y'[t, k]: the blank column
    times (1 - alpha) U_n / V_blank, each target class k times alpha N_k / V_k (N_k = occurrences
    of k in the target), then every frame renormalised to sum to 1. Samples with U_n = 0 or
    V_blank = 0 (a single alignment: y' is one-hot on every frame already) keep y'. The factors
    are divided by their per-sample maximum, which the renormalisation cancels; it keeps y' * f
    inside the float range when V_blank is tiny.
    """
    T, N, C = occ.shape
    labels = torch.as_tensor(args.host_labels, device=occ.device)
    used = torch.as_tensor(args.host_used, device=occ.device, dtype=torch.float64)
    counts = torch.zeros(N, C, dtype=torch.float64, device=occ.device).scatter_add_(1, labels, used)
    counts[:, args.blank] = 0.0
    V = occ.sum(0).double()  # class totals in the input's precision, the factors in float64
    U = args.target_lengths.to(occ.device, torch.float64)
    f = torch.where((counts > 0) & (V > 0), alpha * counts / V, 0.0)
    f[:, args.blank] = (1.0 - alpha) * U / V[:, args.blank]
    keep = (U == 0) | ~(V[:, args.blank] > 0)
    f = torch.where(keep[:, None], 1.0, f)
    f = f / f.amax(1, keepdim=True)
    return renormalise_(occ * f.to(occ.dtype))


def frame_weights(target: torch.Tensor, y: torch.Tensor, valid: torch.Tensor, in_lens: torch.Tensor,
                  gamma: float) -> torch.Tensor:
    """omega (T, N): w_t^gamma mean-normalised within each sequence, 0 past T_n.

    Normalising to mean 1 (rather than sum 1, as the paper writes it) keeps the gradient's overall
    size, and so the learning rate, comparable with plain CTC and independent of T_n.
    """
    validf = valid.to(y.dtype)
    if gamma == 0:
        return validf
    # max_k (y'' - y) >= 0 on a valid frame (y'' sums to 1, y to at most 1); clamp the rounding.
    w = (target - y).amax(-1).clamp_min(0.0)
    wg = torch.where(valid, w.pow(gamma), 0.0)
    total = wg.sum(0)
    omega = wg * (in_lens.to(y.dtype) / total)
    # All-zero weights (the outputs already equal the target everywhere): uniform.
    return torch.where((total > 0)[None, :], omega, validf)


def modified_gradient(
    args: CTCArgs, alpha: float | None, gamma: float, zero_infinity: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """Plain per-sample NLL (N,) and the unreduced modified gradient (T, N, C)."""
    T = args.log_probs.shape[0]
    with torch.no_grad():
        nll, occ = full_occupancy(args)
        y = args.log_probs.detach().exp()
        target = occ if alpha is None else alpha_rescale(occ, args, alpha)
        in_lens = args.input_lengths.to(y.device)
        valid = frame_mask(in_lens, T)
        omega = frame_weights(target, y, valid, in_lens, gamma)
        grad = torch.where(valid[..., None], omega[..., None] * (y - target), 0.0)
        infeasible = torch.isinf(nll)
        rows = (valid & infeasible[None, :])[..., None]  # without asking the host: no sync
        grad = torch.where(rows, 0.0 if zero_infinity else float("nan"), grad)
        if zero_infinity:
            nll = torch.where(infeasible, 0.0, nll)
    return nll, grad
