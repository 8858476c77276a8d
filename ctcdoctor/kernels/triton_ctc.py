"""Fused CTC forward-backward in Triton: loss, gradient, posterior, and the alpha/gamma reweighting.

A pass in three launches, each with one job; docs/kernels.md explains the choices:

1. ``_alpha_beta_kernel``, grid (N, 2): program (n, 0) runs the alpha recursion, program (n, 1)
   the beta recursion, concurrently, so the dependent chain is T steps long instead of 2T. The
   2U+1 extended-label states are one register vector; the s-1 / s-2 shifts are ``tl.gather``.
   Both recursions are in log space; every SHIFT_EVERY steps the vector is shifted by its maximum
   so the stored values stay near 0, where float32 resolves finest. Each writes one compact
   (T, S) row block per sample, and program (n, 0) the loss. Emissions are loaded PREFETCH frames
   ahead of their use, off the dependent chain.
2. ``_alpha_factor_kernel``, grid (N,), only with alpha: sums state occupancy over time and turns
   it into one scale factor per state (class-level sums, so repeated labels share one).
3. ``_frame_kernel``, grid (T, N), one program per frame, in one of three modes:
   GRAD writes scale_n * omega_t * exp(log_probs) over the whole row, then (after a barrier)
   overwrites the <= U+1 classes that carry occupancy with scale_n * omega_t * (y - y''); POST
   writes zeros then the occupancy of those classes; W writes only w_t = max_k (y''_k - y_k),
   which needs the occupied classes alone. Class sums over repeated labels come from a
   (labels x labels) equality tile: O(U^2 + C) per frame, no (T, N, S, C) intermediate, no atomics.

`prepare` runs launches 1-2 (and for gamma the W pass and the frame weights), `gradient` and
`posterior` run launch 3; `forward_backward` does all three for one batch. ctcdoctor.ctc's
autograd Function calls `gradient` in its backward with the incoming gradient folded into
scale_n, so the loss path moves 8 bytes per (t, n, c) in float32: log_probs read, grad written.
Everything accumulates in float32 whatever the input dtype.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import triton
import triton.language as tl

__all__ = ["forward_backward", "prepare", "gradient", "posterior", "CTCState"]

# Launch choices (docs/kernels.md): how often the chain renormalises, and how many frames ahead
# it loads emissions.
SHIFT_EVERY = 4
GRAD, POST, W = 0, 1, 2


@triton.jit
def _lse3(a, b, c):
    # log(e^a + e^b + e^c) that stays -inf (not NaN) when all three are -inf.
    m = tl.maximum(tl.maximum(a, b), c)
    m = tl.where(m == float("-inf"), 0.0, m)
    return m + tl.log(tl.exp(a - m) + tl.exp(b - m) + tl.exp(c - m))


@triton.jit
def _shift_to_zero(x):
    # Subtract the running max so values stay near 0 (float32 resolution is finest there);
    # the caller keeps the subtracted amount. An all -inf vector is left alone.
    m = tl.max(x, axis=0)
    m = tl.where(m == float("-inf"), 0.0, m)
    return x - m, m


@triton.jit
def _load_labels(tgt_ptr, tgt_base, stride_tgt, s, U, blank):
    # Extended label sequence: even states are blank, state 2u+1 is target[u].
    # Also whether the skip s-2 -> s is allowed (into s) and s -> s+2 (out of s):
    # only between label states whose labels differ.
    u = (s - 1) // 2
    is_label = (s % 2 == 1) & (u < U) & (s > 0)
    lab = tl.load(tgt_ptr + tgt_base + u * stride_tgt, mask=is_label, other=0).to(tl.int32)
    lab = tl.where(is_label, lab, blank)
    has_prev = is_label & (u >= 1)
    lab_prev = tl.load(tgt_ptr + tgt_base + (u - 1) * stride_tgt, mask=has_prev, other=0).to(tl.int32)
    skip_in = has_prev & (lab != lab_prev)
    has_next = is_label & (u + 1 < U)
    lab_next = tl.load(tgt_ptr + tgt_base + (u + 1) * stride_tgt, mask=has_next, other=0).to(tl.int32)
    skip_out = has_next & (lab != lab_next)
    return lab, skip_in, skip_out


@triton.jit
def _emission(lp_row, t, stride_lt, ok, valid):
    # The S emissions of frame t (-inf where the frame or the state does not exist).
    return tl.load(lp_row + t * stride_lt, mask=tl.where(ok, valid, False), other=float("-inf")).to(tl.float32)


@triton.jit
def _alpha_pass(lp_row, la_row, loss_ptr, n, s, valid, skip_in, T_n, U, S, S_max, stride_lt, SHIFT: tl.constexpr):
    # alpha_t(s): probability of the prefix ending in state s at frame t, emission included.
    e = _emission(lp_row, 0, stride_lt, T_n > 0, valid)
    a = tl.where(valid & (s < 2), e, float("-inf"))
    a, log_scale = _shift_to_zero(a)
    tl.store(la_row, a, mask=tl.where(T_n > 0, valid, False))
    # Emissions of the next four frames are in flight while the chain works on this one: one
    # step (~0.2 us) is shorter than a load from HBM.
    e1 = _emission(lp_row, 1, stride_lt, T_n > 1, valid)
    e2 = _emission(lp_row, 2, stride_lt, T_n > 2, valid)
    e3 = _emission(lp_row, 3, stride_lt, T_n > 3, valid)
    e4 = _emission(lp_row, 4, stride_lt, T_n > 4, valid)
    for t in range(1, T_n):
        e = e1
        e1 = e2
        e2 = e3
        e3 = e4
        e4 = _emission(lp_row, t + 4, stride_lt, t + 4 < T_n, valid)
        a1 = tl.where(s >= 1, tl.gather(a, tl.maximum(s - 1, 0), 0), float("-inf"))
        a2 = tl.where(skip_in, tl.gather(a, tl.maximum(s - 2, 0), 0), float("-inf"))
        a = tl.where(valid, _lse3(a, a1, a2) + e, float("-inf"))
        # A full max-reduction costs a cross-lane round trip; every few steps keeps the values
        # within a few frames' log-probs of 0.
        if t % SHIFT == 0:
            a, m = _shift_to_zero(a)
            log_scale += m
        tl.store(la_row + t * S_max, a, mask=valid)
    # A path may end in the last label or the trailing blank.
    final = tl.where(valid & (s >= S - 2), a, float("-inf"))
    m = tl.max(final, axis=0)
    m = tl.where(m == float("-inf"), 0.0, m)
    loss = -(log_scale + m + tl.log(tl.sum(tl.exp(final - m), axis=0)))
    # No frames: only the empty target has a (zero-length) path.
    loss = tl.where(T_n > 0, loss, tl.where(U == 0, 0.0, float("inf")))
    tl.store(loss_ptr + n, loss)


@triton.jit
def _beta_pass(lp_row, lb_row, s, valid, skip_out, T_n, S, S_max, stride_lt,
               BLOCK_S: tl.constexpr, SHIFT: tl.constexpr):
    # beta_t(s): probability of frames t+1..T_n-1 given state s at frame t, emission at t
    # excluded, so that alpha_t(s) * beta_t(s) is the joint of the path through (t, s).
    t0 = T_n - 1
    b = tl.where(valid & (s >= S - 2), 0.0, float("-inf"))
    tl.store(lb_row + t0 * S_max, b, mask=tl.where(T_n > 0, valid, False))
    e1 = _emission(lp_row, t0, stride_lt, T_n > 1, valid)
    e2 = _emission(lp_row, t0 - 1, stride_lt, T_n > 2, valid)
    e3 = _emission(lp_row, t0 - 2, stride_lt, T_n > 3, valid)
    e4 = _emission(lp_row, t0 - 3, stride_lt, T_n > 4, valid)
    for i in range(1, T_n):
        t = t0 - i
        e = e1  # emission at t + 1
        e1 = e2
        e2 = e3
        e3 = e4
        e4 = _emission(lp_row, t - 3, stride_lt, t >= 4, valid)
        x = b + e
        x1 = tl.where(s + 1 < S, tl.gather(x, tl.minimum(s + 1, BLOCK_S - 1), 0), float("-inf"))
        x2 = tl.where(skip_out, tl.gather(x, tl.minimum(s + 2, BLOCK_S - 1), 0), float("-inf"))
        b = tl.where(valid, _lse3(x, x1, x2), float("-inf"))
        if i % SHIFT == 0:
            b, m = _shift_to_zero(b)
        tl.store(lb_row + t * S_max, b, mask=valid)


@triton.jit
def _alpha_beta_kernel(
    lp_ptr, tgt_ptr, tgt_off_ptr, in_len_ptr, tgt_len_ptr,
    la_ptr, lb_ptr, loss_ptr,
    stride_lt, stride_ln, stride_lc, stride_tgt,
    T, S_max, blank,
    BLOCK_S: tl.constexpr, SHIFT: tl.constexpr,
):
    n = tl.program_id(0)
    T_n = tl.load(in_len_ptr + n)
    U = tl.load(tgt_len_ptr + n)
    S = 2 * U + 1
    s = tl.arange(0, BLOCK_S)
    valid = s < S
    lab, skip_in, skip_out = _load_labels(tgt_ptr, tl.load(tgt_off_ptr + n), stride_tgt, s, U, blank)
    lp_row = lp_ptr + n.to(tl.int64) * stride_ln + lab * stride_lc
    scratch = n.to(tl.int64) * T * S_max + s
    if tl.program_id(1) == 0:
        _alpha_pass(lp_row, la_ptr + scratch, loss_ptr, n, s, valid, skip_in, T_n, U, S, S_max, stride_lt, SHIFT)
    else:
        _beta_pass(lp_row, lb_ptr + scratch, s, valid, skip_out, T_n, S, S_max, stride_lt, BLOCK_S, SHIFT)


@triton.jit
def _frame_log_norm(la_ptr, lb_ptr, row, s, mask):
    # log sum_s alpha_t(s) beta_t(s) for one frame, from the shifted rows. Normalising per frame
    # (rather than by the total likelihood) cancels the shifts and makes each frame's occupancy
    # sum to 1 in float32. All -inf (no path through the frame) gives z = -inf: that is what
    # marks an infeasible sample.
    x = tl.load(la_ptr + row + s, mask=mask, other=float("-inf")) + \
        tl.load(lb_ptr + row + s, mask=mask, other=float("-inf"))
    m = tl.max(x, axis=0)
    m = tl.where(m == float("-inf"), 0.0, m)
    z = m + tl.log(tl.sum(tl.exp(x - m), axis=0))
    return x, z


@triton.jit
def _alpha_factor_kernel(
    la_ptr, lb_ptr, tgt_ptr, tgt_off_ptr, in_len_ptr, tgt_len_ptr, f_ptr,
    T, S_max, stride_tgt, blank, alpha,
    BLOCK_S: tl.constexpr, CH: tl.constexpr,
):
    n = tl.program_id(0)
    T_n = tl.load(in_len_ptr + n)
    U = tl.load(tgt_len_ptr + n)
    S = 2 * U + 1
    tgt_base = tl.load(tgt_off_ptr + n)
    s = tl.arange(0, BLOCK_S)
    valid = s < S
    lab, skip_in, skip_out = _load_labels(tgt_ptr, tgt_base, stride_tgt, s, U, blank)
    base = n.to(tl.int64) * T * S_max
    V = tl.zeros([BLOCK_S], dtype=tl.float32)
    for t in range(0, T_n):
        x, z = _frame_log_norm(la_ptr, lb_ptr, base + t * S_max, s, valid)
        V += tl.where(valid, tl.exp(x - z), 0.0)
    is_blank_state = valid & (s % 2 == 0)
    V_blank = tl.sum(tl.where(is_blank_state, V, 0.0), axis=0)
    # Class-level sums: a class at several states (repeated labels) is one class. The
    # (states x chunk of labels) equality tile keeps registers bounded for long targets.
    V_cls = tl.zeros([BLOCK_S], dtype=tl.float32)
    N_cls = tl.zeros([BLOCK_S], dtype=tl.float32)
    for j0 in range(0, U, CH):
        j = j0 + tl.arange(0, CH)
        jm = j < U
        lab_j = tl.load(tgt_ptr + tgt_base + j * stride_tgt, mask=jm, other=0).to(tl.int32)
        V_j = tl.gather(V, tl.minimum(2 * j + 1, BLOCK_S - 1), 0)
        eq = (lab[:, None] == lab_j[None, :]) & jm[None, :]
        V_cls += tl.sum(tl.where(eq, V_j[None, :], 0.0), axis=1)
        N_cls += tl.sum(tl.where(eq, 1.0, 0.0), axis=1)
    f_blank = (1.0 - alpha) * U.to(tl.float32) / V_blank
    # V_cls == 0 only when every occupancy of that class is 0, so the factor multiplies
    # zeros; 0 keeps it from turning them into NaN.
    f_lab = tl.where(V_cls > 0, alpha * N_cls / V_cls, 0.0)
    f = tl.where(s % 2 == 0, f_blank, f_lab)
    f = tl.where((U == 0) | ~(V_blank > 0), 1.0, f)
    # Divided by the sample's largest factor: the frame renormalisation cancels any per-sample
    # constant, and factors <= 1 cannot overflow when V_blank is tiny (confident outputs).
    f = f / tl.max(tl.where(valid, f, 0.0), axis=0)
    tl.store(f_ptr + n * S_max + s, f, mask=valid)


@triton.jit
def _dense_row(lp_row, out_row, active, bad, fill, sc, C, stride_lc, BLOCK_C: tl.constexpr, MODE: tl.constexpr):
    # The whole row: scale * exp(log_probs) (GRAD) or 0 (POST); 0 past T_n; `fill` on a bad row.
    for c0 in range(0, C, BLOCK_C):
        k = c0 + tl.arange(0, BLOCK_C)
        km = k < C
        if MODE == 0:
            y = tl.exp(tl.load(lp_row + k * stride_lc, mask=tl.where(active, km, False),
                               other=float("-inf")).to(tl.float32))
            v = tl.where(active, sc * y, 0.0)
        else:
            v = tl.zeros([BLOCK_C], dtype=tl.float32)
        v = tl.where(active & bad, fill, v)
        tl.store(out_row + k, v.to(out_row.dtype.element_ty), mask=km)


@triton.jit
def _label_classes(lp_row, out_row, tgt_ptr, tgt_base, stride_tgt, la_ptr, lb_ptr, f_ptr, row, n, z, U, S_max,
                   fix, sc, inv_norm, stride_lc, w,
                   CH: tl.constexpr, MODE: tl.constexpr, HAS_ALPHA: tl.constexpr):
    # The target labels, chunk by chunk: class sums over every state of the same label through a
    # (labels x labels) equality tile, then the GRAD / POST value of that class, or the running w.
    for j0 in range(0, U, CH):
        j = j0 + tl.arange(0, CH)
        jm = tl.where(fix, j < U, False)
        lab_j = tl.load(tgt_ptr + tgt_base + j * stride_tgt, mask=jm, other=-1).to(tl.int32)
        post_j = tl.zeros([CH], dtype=tl.float32)
        target_j = tl.zeros([CH], dtype=tl.float32)
        for i0 in range(0, U, CH):
            i = i0 + tl.arange(0, CH)
            im = tl.where(fix, i < U, False)
            lab_i = tl.load(tgt_ptr + tgt_base + i * stride_tgt, mask=im, other=-2).to(tl.int32)
            xa = tl.load(la_ptr + row + 2 * i + 1, mask=im, other=float("-inf"))
            xb = tl.load(lb_ptr + row + 2 * i + 1, mask=im, other=float("-inf"))
            occ_i = tl.where(im, tl.exp(xa + xb - z), 0.0)
            eq = (lab_j[:, None] == lab_i[None, :]) & im[None, :]
            post_j += tl.sum(tl.where(eq, occ_i[None, :], 0.0), axis=1)
            if HAS_ALPHA:
                f_i = tl.load(f_ptr + n * S_max + 2 * i + 1, mask=im, other=0.0)
                target_j += tl.sum(tl.where(eq, (occ_i * f_i)[None, :], 0.0), axis=1)
        if HAS_ALPHA:  # noqa: SIM108 - constexpr branches: Triton compiles only the one taken
            target_j = target_j * inv_norm
        else:
            target_j = post_j
        y_j = tl.exp(tl.load(lp_row + lab_j * stride_lc, mask=jm, other=float("-inf")).to(tl.float32))
        # Repeated labels write the same value to the same class: no race on the result.
        if MODE == 0:
            tl.store(out_row + lab_j, (sc * (y_j - target_j)).to(out_row.dtype.element_ty), mask=jm)
        if MODE == 1:
            tl.store(out_row + lab_j, post_j, mask=jm)
        w = tl.maximum(w, tl.max(tl.where(jm, target_j - y_j, float("-inf")), axis=0))
    return w


@triton.jit
def _frame_kernel(
    lp_ptr, tgt_ptr, tgt_off_ptr, in_len_ptr, tgt_len_ptr,
    la_ptr, lb_ptr, f_ptr, omega_ptr, scale_ptr, bad_ptr,
    out_ptr, w_ptr,
    stride_lt, stride_ln, stride_lc, stride_tgt, stride_ot, stride_on,
    T, S_max, C, blank,
    BLOCK_S: tl.constexpr, BLOCK_C: tl.constexpr, CH: tl.constexpr,
    MODE: tl.constexpr, HAS_ALPHA: tl.constexpr, HAS_OMEGA: tl.constexpr,
):
    t = tl.program_id(0)
    n = tl.program_id(1)
    T_n = tl.load(in_len_ptr + n)
    U = tl.load(tgt_len_ptr + n)
    tgt_base = tl.load(tgt_off_ptr + n)
    active = t < T_n
    s = tl.arange(0, BLOCK_S)
    smask = tl.where(active, s < 2 * U + 1, False)
    row = (n.to(tl.int64) * T + t) * S_max
    x, z = _frame_log_norm(la_ptr, lb_ptr, row, s, smask)
    occ = tl.where(smask, tl.exp(x - z), 0.0)
    # No path through this frame (infeasible sample, or NaN inputs): the whole row is NaN, like
    # F.ctc_loss's gradient there (or 0 with zero_infinity: bad_ptr holds the fill per sample).
    bad = ~(z > float("-inf"))
    fix = active & ~bad
    even = smask & (s % 2 == 0)
    post_blank = tl.sum(tl.where(even, occ, 0.0), axis=0)
    inv_norm = 1.0
    target_blank = post_blank
    if HAS_ALPHA:
        f = tl.load(f_ptr + n * S_max + s, mask=smask, other=0.0)
        inv_norm = 1.0 / tl.sum(occ * f, axis=0)
        target_blank = tl.sum(tl.where(even, occ * f, 0.0), axis=0) * inv_norm
    lp_row = lp_ptr + t.to(tl.int64) * stride_lt + n.to(tl.int64) * stride_ln
    out_row = out_ptr + t.to(tl.int64) * stride_ot + n.to(tl.int64) * stride_on
    sc = 1.0
    if MODE == 0:
        sc = tl.load(scale_ptr + n)
        if HAS_OMEGA:
            sc = sc * tl.load(omega_ptr + n * T + t)
    if MODE != 2:
        if MODE == 0:  # noqa: SIM108 - constexpr branches: Triton compiles only the one taken
            fill = tl.load(bad_ptr + n)
        else:
            fill = float("nan")
        _dense_row(lp_row, out_row, active, bad, fill, sc, C, stride_lc, BLOCK_C, MODE)
        # The fix-up below rewrites some of these addresses from other threads of this program.
        tl.debug_barrier()
    # The classes that carry occupancy: the blank, then the labels.
    y_blank = tl.exp(tl.load(lp_row + blank * stride_lc, mask=fix, other=float("-inf")).to(tl.float32))
    if MODE == 0:
        tl.store(out_row + blank, (sc * (y_blank - target_blank)).to(out_ptr.dtype.element_ty), mask=fix)
    if MODE == 1:
        tl.store(out_row + blank, post_blank, mask=fix)
    w = _label_classes(lp_row, out_row, tgt_ptr, tgt_base, stride_tgt, la_ptr, lb_ptr, f_ptr, row, n, z, U, S_max,
                       fix, sc, inv_norm, stride_lc, target_blank - y_blank, CH, MODE, HAS_ALPHA)
    if MODE == 2:
        # Elsewhere y'' = 0, so y'' - y <= 0: the max over these classes, clamped at 0 by the
        # caller, is the max over every class. NaN on a bad frame (the sample is NaN anyway).
        w = tl.where(bad, float("nan"), w)
        tl.store(w_ptr + n * T + t, tl.where(active, w, 0.0))


def _chain_warps(block_s: int) -> int:
    return 1 if block_s <= 128 else 4


def _next_pow2(x: int) -> int:
    return 1 << max(0, (int(x) - 1).bit_length())


def _target_offsets(targets, target_lengths, N):
    """Where each sample's labels start in `targets`, and the stride between labels."""
    if targets.dim() == 2:
        offsets = torch.arange(N, device=targets.device, dtype=torch.int64) * targets.stride(0)
        return offsets, targets.stride(1)
    if targets.dim() == 1:
        # Offsets count labels; scale by the stride so a strided view reads the right labels
        # (PyTorch's own CPU kernel forgets this: ctcdoctor.ctc makes targets contiguous first).
        ends = torch.cumsum(target_lengths.to(torch.int64), 0)
        return (ends - target_lengths.to(torch.int64)) * targets.stride(0), targets.stride(0)
    raise ValueError(f"targets must be 1-D (concatenated) or 2-D (padded), got shape {tuple(targets.shape)}")


def _on_device(x, device, dtype=None) -> torch.Tensor:
    """x on `device` (in `dtype`) without a host sync: host values go through pinned memory with a
    non-blocking copy (a copy from pageable memory would wait for the whole queue)."""
    t = torch.as_tensor(x)
    if dtype is not None:  # lengths: the kernels read them at unit stride
        t = t.to(dtype).contiguous()
    if t.device == device:
        return t  # strides kept: the kernels honour them
    if device.type == "cuda" and t.device.type == "cpu":
        return t.contiguous().pin_memory().to(device, non_blocking=True)
    return t.to(device)


@dataclass
class CTCState:
    """The chain pass of one batch: what `gradient` and `posterior` read."""

    log_probs: torch.Tensor
    targets: torch.Tensor
    tgt_off: torch.Tensor
    stride_tgt: int
    in_len: torch.Tensor  # (N,) int32 on the device
    tgt_len: torch.Tensor
    la: torch.Tensor  # (N, T, S_max) float32 shifted log alpha
    lb: torch.Tensor  # (N, T, S_max) float32 shifted log beta
    loss: torch.Tensor  # (N,) float32 NLL, +inf when infeasible
    f: torch.Tensor | None  # (N, S_max) alpha factors
    omega: torch.Tensor | None  # (N, T) gamma frame weights
    blank: int
    block_s: int
    s_max: int


def _check(log_probs, blank, alpha, gamma) -> None:
    if log_probs.dim() != 3:
        raise ValueError(f"log_probs must be (T, N, C), got shape {tuple(log_probs.shape)}")
    if alpha is not None and not 0.0 < float(alpha) < 1.0:
        raise ValueError(f"alpha must be None or in (0, 1), got {alpha}")
    if gamma < 0:
        raise ValueError(f"gamma must be >= 0, got {gamma}")
    if log_probs.numel() >= 2**31:
        # Output offsets are 32-bit products inside the kernels.
        raise ValueError(f"log_probs has {log_probs.numel()} elements; the kernel supports < 2**31")
    if not 0 <= blank < log_probs.shape[2]:
        raise ValueError(f"blank {blank} outside [0, {log_probs.shape[2]})")


def _new_state(log_probs, targets, input_lengths, target_lengths, blank, max_lengths) -> CTCState:
    """Arguments on the device (no host sync unless max_lengths is None) and empty scratch."""
    T, N, _ = log_probs.shape
    device = log_probs.device
    in_len = _on_device(input_lengths, device, torch.int32)
    tgt_len = _on_device(target_lengths, device, torch.int32)
    targets = _on_device(targets, device)
    if targets.numel() == 0:
        # The kernels never read it (every load is masked off), but they need a valid pointer.
        targets = torch.zeros(1, dtype=torch.int64, device=device)
        tgt_off, stride_tgt = torch.zeros(N, dtype=torch.int64, device=device), 1
    else:
        tgt_off, stride_tgt = _target_offsets(targets, tgt_len, N)
    if max_lengths is None:
        # The state-vector width must be a compile-time block size.
        max_lengths = tuple(int(v) for v in torch.stack([tgt_len.max(), in_len.max()]).tolist()) if N else (0, 0)
    u_max, t_max = max_lengths
    if t_max > T:
        raise ValueError(f"input_lengths up to {t_max} exceed the {T} frames of log_probs")
    S_max = 2 * u_max + 1
    f32 = torch.float32
    # Compact scratch: log alpha and log beta, (N, T, S_max). Unwritten rows (t >= T_n) are never read.
    la = torch.empty((N, T, S_max), dtype=f32, device=device)
    lb = torch.empty((N, T, S_max), dtype=f32, device=device)
    loss = torch.empty((N,), dtype=f32, device=device)
    return CTCState(log_probs, targets, tgt_off, stride_tgt, in_len, tgt_len, la, lb, loss, None, None,
                    blank, max(2, _next_pow2(S_max)), S_max)


def prepare(log_probs, targets, input_lengths, target_lengths, blank=0, alpha=None, gamma=0.0,
            max_lengths=None) -> CTCState:
    """Loss and everything the gradient and posterior need, without touching (T, N, C) outputs.

    max_lengths: (max target length, max input length) when the caller knows them on the host;
    otherwise they are read from the device (the one host sync of this function).
    """
    _check(log_probs, blank, alpha, gamma)
    state = _new_state(log_probs, targets, input_lengths, target_lengths, blank, max_lengths)
    T, N, _ = log_probs.shape
    if N == 0 or T == 0:
        if N:  # no frames: only the empty target has a (zero-length) path
            state.loss.copy_(torch.where(state.tgt_len == 0, 0.0, float("inf")))
        return state
    sl = log_probs.stride()
    # One warp keeps the state-vector shifts in register shuffles. Past 128 states the sm_90
    # lowering of tl.gather in one warp grows to hundreds of shuffles per step, while 4 warps
    # route it through shared memory; the crossover is a guess until measured (docs/kernels.md).
    _alpha_beta_kernel[(N, 2)](
        log_probs, state.targets, state.tgt_off, state.in_len, state.tgt_len, state.la, state.lb, state.loss,
        sl[0], sl[1], sl[2], state.stride_tgt, T, state.s_max, blank,
        BLOCK_S=state.block_s, SHIFT=SHIFT_EVERY, num_warps=_chain_warps(state.block_s))
    if alpha is not None:
        state.f = torch.empty((N, state.s_max), dtype=torch.float32, device=log_probs.device)
        _alpha_factor_kernel[(N,)](
            state.la, state.lb, state.targets, state.tgt_off, state.in_len, state.tgt_len, state.f,
            T, state.s_max, state.stride_tgt, blank, float(alpha),
            BLOCK_S=state.block_s, CH=16, num_warps=4)
    if gamma != 0:
        w = torch.empty((N, T), dtype=torch.float32, device=log_probs.device)
        _launch_frame(state, W, None, None, w)
        state.omega = _frame_weights(w, state.in_len, float(gamma))
    return state


def _launch_frame(state: CTCState, mode: int, scale, bad, out) -> None:
    lp = state.log_probs
    T, N, C = lp.shape
    sl = lp.stride()
    dummy = state.la  # never dereferenced when the matching constexpr flag is off
    out_strides = (out.stride(0), out.stride(1)) if mode != W else (0, 0)
    _frame_kernel[(T, N)](
        lp, state.targets, state.tgt_off, state.in_len, state.tgt_len, state.la, state.lb,
        state.f if state.f is not None else dummy, state.omega if state.omega is not None else dummy,
        scale if scale is not None else dummy, bad if bad is not None else dummy,
        out if mode != W else dummy, out if mode == W else dummy,
        sl[0], sl[1], sl[2], state.stride_tgt, out_strides[0], out_strides[1],
        T, state.s_max, C, state.blank,
        BLOCK_S=state.block_s, BLOCK_C=min(128, max(2, _next_pow2(C))), CH=16,
        MODE=mode, HAS_ALPHA=state.f is not None and mode != POST,
        HAS_OMEGA=state.omega is not None and mode == GRAD, num_warps=4)


def gradient(state: CTCState, scale: torch.Tensor | None = None, bad_fill: torch.Tensor | None = None,
             _poison=None) -> torch.Tensor:
    """(T, N, C) gradient in log_probs' dtype: scale_n * omega_t * (y - y''), 0 past T_n.

    scale: (N,) per-sample factor (the incoming gradient and the reduction), 1 when None.
    bad_fill: (N,) value for the rows of a sample with no alignment: NaN (as F.ctc_loss) when
    None; 0 for samples that zero_infinity drops.
    """
    lp = state.log_probs
    T, N, C = lp.shape
    grad = torch.empty((T, N, C), dtype=lp.dtype, device=lp.device)
    if _poison is not None:
        grad.fill_(_poison)
    if N == 0 or T == 0:
        return grad.zero_()
    ones = torch.ones(N, dtype=torch.float32, device=lp.device)
    scale = ones if scale is None else scale.to(torch.float32).contiguous()
    bad_fill = torch.full_like(ones, float("nan")) if bad_fill is None else bad_fill.to(torch.float32).contiguous()
    _launch_frame(state, GRAD, scale, bad_fill, grad)
    return grad


def posterior(state: CTCState, _poison=None) -> torch.Tensor:
    """(T, N, C) float32 occupancy p(pi_t = k | l, Y); 0 past T_n; NaN rows if infeasible."""
    lp = state.log_probs
    T, N, C = lp.shape
    post = torch.empty((T, N, C), dtype=torch.float32, device=lp.device)
    if _poison is not None:
        post.fill_(_poison)
    if N == 0 or T == 0:
        return post.zero_()
    _launch_frame(state, POST, None, None, post)
    return post


def forward_backward(log_probs, targets, input_lengths, target_lengths, blank=0, alpha=None, gamma=0.0,
                     _poison=None):
    """CTC loss, gradient and posterior for a batch (`prepare`, `gradient`, `posterior` in one call).

    Args:
        log_probs: (T, N, C) log-softmax outputs; float32, float16 or bfloat16 (accumulated in float32).
        targets: padded (N, S) or concatenated 1-D labels, as for ``F.ctc_loss``; none equal to blank.
        input_lengths, target_lengths: (N,) integer tensors (or sequences).
        blank: index of the blank class.
        alpha: None, or the target non-blank proportion in (0, 1) for the pseudo ground truth.
        gamma: >= 0; frame weights w_t ** gamma, mean-normalised per sequence. 0 disables.
        _poison: testing only: fill the outputs with this value before the launch, so an element
            the kernels fail to write shows up.

    Returns:
        loss: (N,) float32 negative log-likelihood (plain CTC, whatever alpha and gamma are);
            +inf for an infeasible sample.
        grad: (T, N, C), dtype of log_probs: per-sample gradient w.r.t. the pre-log-softmax
            activations, omega_t * (y - y''); 0 for t >= input_lengths[n]; NaN rows for an
            infeasible sample (the caller applies zero_infinity).
        posterior: (T, N, C) float32 occupancy p(pi_t = k | l, Y); same zero/NaN rows as grad.
    """
    state = prepare(log_probs, targets, input_lengths, target_lengths, blank, alpha, gamma)
    return state.loss, gradient(state, _poison=_poison), posterior(state, _poison=_poison)


def _frame_weights(w, in_len, gamma):
    """omega_t = w_t^gamma / sum_t' w_t'^gamma * T_n per sequence; 1 where that sum is 0.

    An (N, T) tensor: a few tiny torch ops cost less than a kernel that re-reads the row per frame.
    """
    T = w.shape[1]
    live = torch.arange(T, device=w.device)[None, :] < in_len[:, None]
    # max_k(y'' - y) >= 0 exactly (both sum to 1); clamp float32 rounding so pow stays real.
    wg = torch.where(live, w.clamp_min(0).pow(gamma), torch.zeros((), device=w.device))
    total = wg.sum(1, keepdim=True)
    omega = torch.where(total > 0, wg / total * in_len[:, None].to(w.dtype), torch.ones((), device=w.device))
    return omega.contiguous()
