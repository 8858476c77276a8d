"""Which CTC implementation runs: PyTorch's native kernels or ctcdoctor's fused Triton kernel.

Default: the Triton kernel for CUDA tensors when triton imports, PyTorch's native kernels
otherwise. `CTCDOCTOR_KERNEL=torch|triton` forces a path; forcing triton on CPU tensors needs
`TRITON_INTERPRET=1` (how CI verifies the kernel without a GPU).
"""
from __future__ import annotations

import os

import torch
from torch.autograd.function import once_differentiable

ENVIRONMENT = "CTCDOCTOR_KERNEL"
CHOICES = ("auto", "torch", "triton")


def requested() -> str:
    choice = os.environ.get(ENVIRONMENT, "auto").strip().lower() or "auto"
    if choice not in CHOICES:
        raise ValueError(
            f"{ENVIRONMENT}={choice!r} is not one of {', '.join(CHOICES)}; unset it to choose automatically"
        )
    return choice


def kernel_path(log_probs: torch.Tensor) -> str:
    """"triton" or "torch" for CTC on this tensor."""
    from ctcdoctor.kernels import triton_available

    choice = requested()
    if choice == "torch":
        return "torch"
    if choice == "triton":
        if not triton_available():
            raise RuntimeError(f"{ENVIRONMENT}=triton but triton does not import: pip install 'ctcdoctor[gpu]'")
        if not log_probs.is_cuda and os.environ.get("TRITON_INTERPRET") != "1":
            raise RuntimeError(
                f"{ENVIRONMENT}=triton on CPU tensors needs the Triton interpreter: set TRITON_INTERPRET=1, "
                "or move the tensors to CUDA"
            )
        return "triton"
    # float64 stays native: the kernel accumulates in float32, and a drop-in must not lose digits.
    if getattr(log_probs, "dtype", None) == torch.float64:
        return "torch"
    return "triton" if log_probs.is_cuda and triton_available() else "torch"


def describe_path(log_probs: torch.Tensor) -> str:
    """For reports: which implementation computed CTC on this tensor."""
    if kernel_path(log_probs) == "triton":
        where = "CUDA" if log_probs.is_cuda else "interpreter"
        return f"triton fused kernel ({where})"
    return f"torch native ({'CUDA' if log_probs.is_cuda else 'CPU'})"


class PrecomputedCTC(torch.autograd.Function):
    """Loss from per-sample NLL and a gradient already formed; backward only scales it."""

    @staticmethod
    def forward(ctx, log_probs, nll, grad, target_lengths, reduction):
        divisor = target_lengths.to(nll.device).clamp_min(1).to(nll.dtype)
        ctx.save_for_backward(grad, divisor)
        ctx.reduction = reduction
        if reduction == "none":
            return nll
        if reduction == "sum":
            return nll.sum()
        return (nll / divisor).mean()

    @staticmethod
    def backward(ctx, grad_out):
        grad, divisor = ctx.saved_tensors
        factor = _sample_factor(grad_out, divisor, ctx.reduction).to(grad.dtype)
        return grad * factor.view(1, -1, 1), None, None, None, None


def _sample_factor(grad_out: torch.Tensor, divisor: torch.Tensor, reduction: str) -> torch.Tensor:
    """(N,) d loss / d nll_n times the incoming gradient, on the device (no host sync)."""
    samples = divisor.shape[0]
    if reduction == "none":
        return grad_out.to(divisor.dtype)
    if reduction == "sum":
        return grad_out.to(divisor.dtype).expand(samples)
    return grad_out.to(divisor.dtype) / (divisor * samples)  # "mean" as F.ctc_loss: / max(U_n, 1) / N


def _prepare(args, alpha=None, gamma: float = 0.0):
    from ctcdoctor.kernels.triton_ctc import prepare

    host = args.host_lengths_lists
    return prepare(
        args.log_probs.detach(), args.targets, args.input_lengths, args.target_lengths, blank=args.blank,
        alpha=alpha, gamma=gamma, max_lengths=(max(host[1]), max(host[0])) if host else None,
    )


class TritonCTC(torch.autograd.Function):
    """The fused kernel: the chain pass in the forward, the gradient in the backward.

    The backward launches the frame kernel with the incoming gradient and the reduction folded
    into a per-sample scale, so the gradient is written once and nothing of size (T, N, C) is
    kept between the passes (the chain's (N, T, S) scratch is, as F.ctc_loss keeps log_alpha).
    No step asks the device for a value: the queue never stalls on the host.
    """

    @staticmethod
    def forward(ctx, log_probs, args, reduction, zero_infinity, alpha, gamma):
        state = _prepare(args, alpha, gamma)
        nll = state.loss  # float32 even for half inputs (as autocast runs CTC): sums of NLLs overflow float16
        infeasible = torch.isinf(nll)
        if zero_infinity:
            nll = torch.where(infeasible, torch.zeros_like(nll), nll)
        divisor = state.tgt_len.clamp_min(1).to(nll.dtype)  # already on the device
        ctx.state, ctx.reduction = state, reduction
        ctx.save_for_backward(divisor, infeasible & zero_infinity)
        if reduction == "none":
            return nll
        if reduction == "sum":
            return nll.sum()
        return (nll / divisor).mean()

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out):
        from ctcdoctor.kernels.triton_ctc import gradient

        divisor, dropped = ctx.saved_tensors
        scale = _sample_factor(grad_out, divisor, ctx.reduction)
        # Rows of a sample with no alignment: NaN as F.ctc_loss, 0 where zero_infinity drops it.
        bad_fill = torch.where(dropped, 0.0, float("nan")).to(torch.float32)
        grad = gradient(ctx.state, scale.masked_fill(dropped, 0.0), bad_fill)
        ctx.state = None  # free the scratch now rather than with the graph
        return grad, None, None, None, None, None


def triton_ctc_loss(args, reduction: str, zero_infinity: bool, alpha, gamma: float) -> torch.Tensor:
    return TritonCTC.apply(args.log_probs, args, reduction, zero_infinity, alpha, gamma)


def triton_posterior(args) -> tuple[torch.Tensor, torch.Tensor]:
    """Occupancy (T, N, C) in the input's dtype, and the per-sample NLL (+inf marks infeasible)."""
    from ctcdoctor.kernels.triton_ctc import posterior

    state = _prepare(args)
    return posterior(state).to(args.log_probs.dtype), state.loss
