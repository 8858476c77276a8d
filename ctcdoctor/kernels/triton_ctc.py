"""Fused CTC forward-backward in Triton: loss, gradient, posterior, and the alpha/gamma reweighting.

Three launches (four with gamma), each with one job; docs/kernels.md explains the choices:

1. ``_alpha_beta_kernel``, grid (N, 2): program (n, 0) runs the alpha recursion, program (n, 1)
   the beta recursion, concurrently, so the dependent chain is T steps long instead of 2T. The
   2U+1 extended-label states are one register vector; the s-1 / s-2 shifts are ``tl.gather``
   (register shuffles within a warp). Both recursions are in log space, shifted by their maximum
   each step so the stored values stay near 0, where float32 has its finest resolution. Each
   writes one compact (T, S) row block per sample; nothing of size C is touched here except the
   S emissions gathered per frame.
2. ``_alpha_factor_kernel``, grid (N,), only with alpha: sums state occupancy over time and
   turns it into one scale factor per state (class-level sums, so repeated labels share one).
3. ``_dense_kernel``, grid (T, N): one program per frame recomputes the frame's occupancy from
   the compact alpha/beta rows, scatters it onto classes by a small (labels x classes) equality
   tile, reads log_probs once and writes posterior and grad once. No (T, N, S, C) intermediate.
   With gamma it runs twice: first for the per-frame w_t (which needs every class of the frame),
   then, after a per-sequence normalisation in torch on an (N, T) tensor, for the grad.

Everything accumulates in float32 whatever the input dtype.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

__all__ = ["forward_backward"]

NEG_INF = float("-inf")


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
def _alpha_beta_kernel(
    lp_ptr, tgt_ptr, tgt_off_ptr, in_len_ptr, tgt_len_ptr,
    la_ptr, lb_ptr, loss_ptr,
    stride_lt, stride_ln, stride_lc, stride_tgt,
    T, S_max, blank,
    BLOCK_S: tl.constexpr,
):
    n = tl.program_id(0)
    direction = tl.program_id(1)
    T_n = tl.load(in_len_ptr + n)
    U = tl.load(tgt_len_ptr + n)
    S = 2 * U + 1
    tgt_base = tl.load(tgt_off_ptr + n)
    s = tl.arange(0, BLOCK_S)
    valid = s < S
    lab, skip_in, skip_out = _load_labels(tgt_ptr, tgt_base, stride_tgt, s, U, blank)
    lp_row = lp_ptr + n.to(tl.int64) * stride_ln + lab * stride_lc
    scratch = n.to(tl.int64) * T * S_max + s

    if direction == 0:
        # alpha_t(s): probability of the prefix ending in state s at frame t, emission included.
        e = tl.load(lp_row, mask=tl.where(T_n > 0, valid, False), other=float("-inf")).to(tl.float32)
        a = tl.where(valid & (s < 2), e, float("-inf"))
        a, log_scale = _shift_to_zero(a)
        tl.store(la_ptr + scratch, a, mask=tl.where(T_n > 0, valid, False))
        # Prefetch one frame ahead: the emission load is off the dependent chain.
        e_next = tl.load(lp_row + stride_lt, mask=tl.where(T_n > 1, valid, False),
                         other=float("-inf")).to(tl.float32)
        for t in range(1, T_n):
            e = e_next
            e_next = tl.load(lp_row + (t + 1) * stride_lt, mask=tl.where(t + 1 < T_n, valid, False),
                             other=float("-inf")).to(tl.float32)
            a1 = tl.where(s >= 1, tl.gather(a, tl.maximum(s - 1, 0), 0), float("-inf"))
            a2 = tl.where(skip_in, tl.gather(a, tl.maximum(s - 2, 0), 0), float("-inf"))
            a = tl.where(valid, _lse3(a, a1, a2) + e, float("-inf"))
            a, m = _shift_to_zero(a)
            log_scale += m
            tl.store(la_ptr + scratch + t * S_max, a, mask=valid)
        # A path may end in the last label or the trailing blank.
        final = tl.where(valid & (s >= S - 2), a, float("-inf"))
        m = tl.max(final, axis=0)
        m = tl.where(m == float("-inf"), 0.0, m)
        log_p = log_scale + m + tl.log(tl.sum(tl.exp(final - m), axis=0))
        loss = -log_p
        # No frames: only the empty target has a (zero-length) path.
        loss = tl.where(T_n > 0, loss, tl.where(U == 0, 0.0, float("inf")))
        tl.store(loss_ptr + n, loss)
    else:
        # beta_t(s): probability of frames t+1..T_n-1 given state s at frame t, emission at t
        # excluded, so that alpha_t(s) * beta_t(s) is the joint of the path through (t, s).
        t0 = T_n - 1
        b = tl.where(valid & (s >= S - 2), 0.0, float("-inf"))
        tl.store(lb_ptr + scratch + t0 * S_max, b, mask=tl.where(T_n > 0, valid, False))
        e_next = tl.load(lp_row + t0 * stride_lt, mask=tl.where(T_n > 1, valid, False),
                         other=float("-inf")).to(tl.float32)
        for i in range(1, T_n):
            t = t0 - i
            e = e_next
            e_next = tl.load(lp_row + t * stride_lt, mask=tl.where(t >= 1, valid, False),
                             other=float("-inf")).to(tl.float32)
            x = b + e
            x1 = tl.where(s + 1 < S, tl.gather(x, tl.minimum(s + 1, BLOCK_S - 1), 0), float("-inf"))
            x2 = tl.where(skip_out, tl.gather(x, tl.minimum(s + 2, BLOCK_S - 1), 0), float("-inf"))
            b = tl.where(valid, _lse3(x, x1, x2), float("-inf"))
            b, m = _shift_to_zero(b)
            tl.store(lb_ptr + scratch + t * S_max, b, mask=valid)


@triton.jit
def _frame_log_norm(la_ptr, lb_ptr, row, s, mask):
    # log sum_s alpha_t(s) beta_t(s) for one frame, from the shifted rows. Normalising per frame
    # (rather than by the total likelihood) cancels the per-step shifts and makes each frame's
    # occupancy sum to 1 in float32. All -inf (no path through the frame) gives z = -inf:
    # that is what marks an infeasible sample.
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
    f = tl.where((U == 0) | (V_blank == 0), 1.0, f)
    tl.store(f_ptr + n * S_max + s, f, mask=valid)


@triton.jit
def _dense_kernel(
    lp_ptr, tgt_ptr, tgt_off_ptr, in_len_ptr, tgt_len_ptr,
    la_ptr, lb_ptr, f_ptr, omega_ptr,
    post_ptr, grad_ptr, w_ptr,
    stride_lt, stride_ln, stride_lc, stride_tgt,
    stride_ot, stride_on, stride_gt, stride_gn,
    T, S_max, C, blank,
    BLOCK_S: tl.constexpr, BLOCK_C: tl.constexpr, CH: tl.constexpr,
    HAS_ALPHA: tl.constexpr, HAS_OMEGA: tl.constexpr,
    WRITE_POST: tl.constexpr, WRITE_GRAD: tl.constexpr, WRITE_W: tl.constexpr,
):
    t = tl.program_id(0)
    n = tl.program_id(1)
    T_n = tl.load(in_len_ptr + n)
    U = tl.load(tgt_len_ptr + n)
    S = 2 * U + 1
    tgt_base = tl.load(tgt_off_ptr + n)
    active = t < T_n
    s = tl.arange(0, BLOCK_S)
    smask = tl.where(active, s < S, False)
    row = (n.to(tl.int64) * T + t) * S_max
    x, z = _frame_log_norm(la_ptr, lb_ptr, row, s, smask)
    occ = tl.where(smask, tl.exp(x - z), 0.0)
    # NaN occupancy = no path through this frame (infeasible sample, or -inf log_probs on
    # every path): the whole row is NaN, like F.ctc_loss's gradient there.
    bad = ~(z > float("-inf"))  # -inf, or NaN from NaN inputs
    even = smask & (s % 2 == 0)
    post_blank = tl.sum(tl.where(even, occ, 0.0), axis=0)
    if HAS_ALPHA:
        f = tl.load(f_ptr + n * S_max + s, mask=smask, other=0.0)
        inv_norm = 1.0 / tl.sum(occ * f, axis=0)
        mod_blank = tl.sum(tl.where(even, occ * f, 0.0), axis=0) * inv_norm
    if HAS_OMEGA:
        omega = tl.load(omega_ptr + n * T + t)
    else:
        omega = 1.0
    w = tl.full([], float("-inf"), tl.float32)
    lp_row = lp_ptr + t.to(tl.int64) * stride_lt + n.to(tl.int64) * stride_ln
    for c0 in range(0, C, BLOCK_C):
        k = c0 + tl.arange(0, BLOCK_C)
        km = k < C
        post = tl.where(k == blank, post_blank, 0.0)
        if HAS_ALPHA:
            mod = tl.where(k == blank, mod_blank, 0.0)
        # Scatter label-state occupancies onto this block of classes; duplicate labels add up.
        for j0 in range(0, U, CH):
            j = j0 + tl.arange(0, CH)
            jm = tl.where(active, j < U, False)
            lab_j = tl.load(tgt_ptr + tgt_base + j * stride_tgt, mask=jm, other=-1).to(tl.int32)
            lab_j = tl.where(jm, lab_j, -1)
            xa = tl.load(la_ptr + row + 2 * j + 1, mask=jm, other=float("-inf"))
            xb = tl.load(lb_ptr + row + 2 * j + 1, mask=jm, other=float("-inf"))
            occ_j = tl.where(jm, tl.exp(xa + xb - z), 0.0)
            eq = lab_j[:, None] == k[None, :]
            post += tl.sum(tl.where(eq, occ_j[:, None], 0.0), axis=0)
            if HAS_ALPHA:
                f_j = tl.load(f_ptr + n * S_max + 2 * j + 1, mask=jm, other=0.0)
                mod += tl.sum(tl.where(eq, (occ_j * f_j * inv_norm)[:, None], 0.0), axis=0)
        post = tl.where(bad, float("nan"), post)
        if HAS_ALPHA:
            target = tl.where(bad, float("nan"), mod)
        else:
            target = post
        kmask = tl.where(active, km, False)
        y = tl.exp(tl.load(lp_row + k * stride_lc, mask=kmask, other=float("-inf")).to(tl.float32))
        if WRITE_POST:
            tl.store(post_ptr + t * stride_ot + n * stride_on + k, tl.where(active, post, 0.0), mask=km)
        if WRITE_W:
            w = tl.maximum(w, tl.max(tl.where(km, target - y, float("-inf")), axis=0))
        if WRITE_GRAD:
            g = tl.where(active, (y - target) * omega, 0.0)
            tl.store(grad_ptr + t * stride_gt + n * stride_gn + k, g.to(grad_ptr.dtype.element_ty), mask=km)
    if WRITE_W:
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


def forward_backward(log_probs, targets, input_lengths, target_lengths, blank=0, alpha=None, gamma=0.0,
                     _poison=None):
    """CTC loss, gradient and posterior for a batch, in one fused pass.

    Args:
        log_probs: (T, N, C) log-softmax outputs; float32, float16 or bfloat16 (accumulated in float32).
        targets: padded (N, S) or concatenated 1-D labels, as for ``F.ctc_loss``.
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
            activations, omega_t * (y - y'); 0 for t >= input_lengths[n]; NaN rows for an
            infeasible sample (the caller applies zero_infinity).
        posterior: (T, N, C) float32 occupancy p(pi_t = k | l, Y); same zero/NaN rows as grad.
    """
    if log_probs.dim() != 3:
        raise ValueError(f"log_probs must be (T, N, C), got shape {tuple(log_probs.shape)}")
    if alpha is not None and not 0.0 < float(alpha) < 1.0:
        raise ValueError(f"alpha must be None or in (0, 1), got {alpha}")
    if gamma < 0:
        raise ValueError(f"gamma must be >= 0, got {gamma}")
    T, N, C = log_probs.shape
    device = log_probs.device
    if log_probs.numel() >= 2**31:
        # Output offsets are 32-bit products inside the kernels.
        raise ValueError(f"log_probs has {log_probs.numel()} elements; the kernel supports < 2**31")
    if not 0 <= blank < C:
        raise ValueError(f"blank {blank} outside [0, {C})")
    in_len = torch.as_tensor(input_lengths, device=device).to(torch.int32).contiguous()
    tgt_len = torch.as_tensor(target_lengths, device=device).to(torch.int32).contiguous()
    targets = torch.as_tensor(targets, device=device)
    if targets.numel() == 0:
        # The kernels never read it (every load is masked off), but they need a valid pointer.
        targets = torch.zeros(1, dtype=torch.int64, device=device)
        tgt_off, stride_tgt = torch.zeros(N, dtype=torch.int64, device=device), 1
    else:
        tgt_off, stride_tgt = _target_offsets(targets, tgt_len, N)
    # One host sync: the state-vector width must be a compile-time block size.
    u_max, t_max = (int(v) for v in torch.stack([tgt_len.max(), in_len.max()]).tolist()) if N else (0, 0)
    if t_max > T:
        raise ValueError(f"input_lengths up to {t_max} exceed the {T} frames of log_probs")
    S_max = 2 * u_max + 1
    BLOCK_S = max(2, _next_pow2(S_max))
    BLOCK_C = min(128, max(2, _next_pow2(C)))
    CH = 16

    f32 = torch.float32
    fill = float("nan") if _poison is None else _poison
    loss = torch.full((N,), fill, dtype=f32, device=device)
    post = torch.full((T, N, C), fill, dtype=f32, device=device)
    grad = torch.full((T, N, C), fill, dtype=log_probs.dtype, device=device)
    if N == 0 or T == 0:
        return loss, grad, post
    # Compact scratch: log alpha and log beta, (N, T, S_max). Unwritten rows (t >= T_n) are never read.
    la = torch.empty((N, T, S_max), dtype=f32, device=device)
    lb = torch.empty((N, T, S_max), dtype=f32, device=device)
    sl = log_probs.stride()
    # One warp keeps the state-vector shifts in register shuffles. Past 128 states the sm_90
    # lowering of tl.gather in one warp grows to hundreds of shuffles per step (281 at 256
    # states), while 4 warps route it through shared memory (~35 shuffles, 17 barriers); the
    # crossover is a guess until measured on a GPU (docs/kernels.md).
    chain_warps = _chain_warps(BLOCK_S)
    _alpha_beta_kernel[(N, 2)](
        log_probs, targets, tgt_off, in_len, tgt_len, la, lb, loss,
        sl[0], sl[1], sl[2], stride_tgt, T, S_max, blank,
        BLOCK_S=BLOCK_S, num_warps=chain_warps)

    f = None
    if alpha is not None:
        f = torch.empty((N, S_max), dtype=f32, device=device)
        _alpha_factor_kernel[(N,)](
            la, lb, targets, tgt_off, in_len, tgt_len, f, T, S_max, stride_tgt, blank, float(alpha),
            BLOCK_S=BLOCK_S, CH=CH, num_warps=4)

    def dense(omega, write_post, write_grad, write_w):
        w = torch.full((N, T), fill, dtype=f32, device=device) if write_w else None
        dummy = la  # never dereferenced when the matching constexpr flag is off
        _dense_kernel[(T, N)](
            log_probs, targets, tgt_off, in_len, tgt_len, la, lb,
            f if f is not None else dummy, omega if omega is not None else dummy,
            post, grad, w if w is not None else dummy,
            sl[0], sl[1], sl[2], stride_tgt,
            post.stride(0), post.stride(1), grad.stride(0), grad.stride(1),
            T, S_max, C, blank,
            BLOCK_S=BLOCK_S, BLOCK_C=BLOCK_C, CH=CH,
            HAS_ALPHA=f is not None, HAS_OMEGA=omega is not None,
            WRITE_POST=write_post, WRITE_GRAD=write_grad, WRITE_W=write_w, num_warps=4)
        return w

    if gamma == 0:
        dense(None, True, True, False)
    else:
        w = dense(None, True, False, True)
        dense(_frame_weights(w, in_len, float(gamma)), False, True, False)
    return loss, grad, post


def _frame_weights(w, in_len, gamma):
    """omega_t = w_t^gamma / sum_t' w_t'^gamma * T_n per sequence; 1 where that sum is 0.

    An (N, T) tensor: a few tiny torch ops cost less than a kernel that re-reads the row per frame.
    """
    T = w.shape[1]
    live = torch.arange(T, device=w.device)[None, :] < in_len[:, None]
    # max_k(y' - y) >= 0 exactly (both sum to 1); clamp float32 rounding so pow stays real.
    wg = torch.where(live, w.clamp_min(0).pow(gamma), torch.zeros((), device=w.device))
    total = wg.sum(1, keepdim=True)
    omega = torch.where(total > 0, wg / total * in_len[:, None].to(w.dtype), torch.ones((), device=w.device))
    return omega.contiguous()
