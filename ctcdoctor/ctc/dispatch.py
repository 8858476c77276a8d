"""Which CTC implementation runs: PyTorch's native kernels or ctcdoctor's fused Triton kernel.

Default: the Triton kernel for CUDA tensors when triton imports, PyTorch's native kernels
otherwise. `CTCDOCTOR_KERNEL=torch|triton` forces a path; forcing triton on CPU tensors needs
`TRITON_INTERPRET=1` (how CI verifies the kernel without a GPU).
"""
from __future__ import annotations

import os

import torch

ENVIRONMENT = "CTCDOCTOR_KERNEL"
CHOICES = ("auto", "torch", "triton")


def requested() -> str:
    choice = os.environ.get(ENVIRONMENT, "auto").strip().lower() or "auto"
    if choice not in CHOICES:
        raise ValueError(f"{ENVIRONMENT}={choice!r} is not one of {', '.join(CHOICES)}; unset it to choose automatically")
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
                f"{ENVIRONMENT}=triton on CPU tensors needs the Triton interpreter: set TRITON_INTERPRET=1, or move the tensors to CUDA"
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
    """Loss from per-sample NLL and a gradient the kernel already formed; backward only scales it."""

    @staticmethod
    def forward(ctx, log_probs, nll, grad, target_lengths, reduction):
        ctx.save_for_backward(grad, target_lengths)
        ctx.reduction = reduction
        if reduction == "none":
            return nll
        if reduction == "sum":
            return nll.sum()
        return (nll / target_lengths.clamp_min(1).to(nll.dtype)).mean()

    @staticmethod
    def backward(ctx, grad_out):
        grad, target_lengths = ctx.saved_tensors
        samples = grad.shape[1]
        if ctx.reduction == "none":
            factor = grad_out.to(grad.dtype)
        elif ctx.reduction == "sum":
            factor = grad_out.to(grad.dtype).expand(samples)
        else:  # "mean" as F.ctc_loss: sample n divided by max(U_n, 1), then by N
            factor = grad_out.to(grad.dtype) / (target_lengths.clamp_min(1).to(grad.dtype) * samples)
        return grad * factor.view(1, -1, 1), None, None, None, None


def triton_ctc_loss(args, reduction: str, zero_infinity: bool, alpha, gamma: float) -> torch.Tensor:
    from ctcdoctor.kernels import forward_backward

    nll, grad, _ = forward_backward(
        args.log_probs.detach(), args.targets, args.input_lengths, args.target_lengths,
        blank=args.blank, alpha=alpha, gamma=gamma,
    )
    # The loss stays float32 even for half inputs (as autocast runs CTC): per-utterance NLLs of
    # hundreds summed over a batch overflow float16.
    if zero_infinity:
        # Unconditionally, without asking the device whether any sample is infeasible: a host
        # sync per call would stall the queue.
        infeasible = torch.isinf(nll)
        nll = torch.where(infeasible, torch.zeros_like(nll), nll)
        grad = grad.masked_fill(infeasible.view(1, -1, 1), 0.0)
    return PrecomputedCTC.apply(args.log_probs, nll, grad, args.target_lengths, reduction)


def triton_posterior(args) -> tuple[torch.Tensor, torch.Tensor]:
    """Occupancy (T, N, C) in the input's dtype, and the per-sample NLL (+inf marks infeasible)."""
    from ctcdoctor.kernels import forward_backward

    nll, _, occupancy = forward_backward(
        args.log_probs.detach(), args.targets, args.input_lengths, args.target_lengths, blank=args.blank
    )
    return occupancy.to(args.log_probs.dtype), nll
