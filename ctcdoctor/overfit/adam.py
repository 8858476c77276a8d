"""`overfit`'s default optimizer: Adam with torch.optim.Adam's defaults and update, outside torch.optim.

Why not torch.optim.Adam itself: since torch 2.0 every torch.optim optimizer wraps
`add_param_group`, `step` and `zero_grad` in a lazily built `torch._dynamo.disable`, so the first
optimizer a process constructs imports torch._dynamo. That import alone took 1.8 s on a quiet 2-core
machine and 3.7-6.7 s under load: more than torch's own import, and more than the whole training of
a small model on one sample. Nothing here compiles, so the wrapper buys `overfit` nothing.

The update is torch's single-tensor Adam (its CPU default) with betas (0.9, 0.999), eps 1e-8, no
weight decay and no amsgrad, operation for operation, so the numbers are the same (tests hold it
equal to torch.optim.Adam). It runs as torch's `_foreach` ops: one call per stage for all the
tensors, where torch's loop makes a Python call per tensor and stage. A `Setup.optimizer` of the
user's own runs as given.
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch


class Adam:
    """The optimizer surface `overfit` uses: `param_groups` (one group; `lr` may be changed between
    steps), `step()` and `zero_grad()`."""

    def __init__(self, params: Iterable[torch.Tensor], lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8) -> None:
        params = list(params)
        if not params:
            raise ValueError("Adam got an empty parameter list")
        self.param_groups: list[dict[str, Any]] = [{"params": params, "lr": lr, "betas": betas, "eps": eps}]
        # Per parameter: (exp_avg, exp_avg_sq), created at its first gradient, and its step count
        # (a parameter without a gradient in a step is skipped, as torch does, and its count stays).
        self.state: dict[torch.Tensor, dict[str, Any]] = {}

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.param_groups[0]["params"]:
            if p.grad is None:
                continue
            if set_to_none:
                p.grad = None
            else:
                p.grad.detach_().zero_()

    @torch.no_grad()
    def step(self) -> None:
        group = self.param_groups[0]
        lr, (beta1, beta2), eps = group["lr"], group["betas"], group["eps"]
        # Parameters grouped by their step count: all of them, unless some missed a gradient once.
        by_step: dict[int, list[tuple[torch.Tensor, torch.Tensor, dict[str, Any]]]] = {}
        for p in group["params"]:
            if p.grad is None:
                continue
            if p.grad.is_sparse:
                raise RuntimeError("Adam does not support sparse gradients; set sparse=False on the embedding")
            state = self.state.get(p)
            if state is None:
                state = self.state[p] = {"step": 0, "exp_avg": torch.zeros_like(p, memory_format=torch.preserve_format),
                                         "exp_avg_sq": torch.zeros_like(p, memory_format=torch.preserve_format)}
            state["step"] += 1
            by_step.setdefault(state["step"], []).append((p, p.grad, state))
        for step, entries in by_step.items():
            params = [_real(p) for p, _, _ in entries]
            grads = [_real(g) for _, g, _ in entries]
            exp_avgs = [_real(s["exp_avg"]) for _, _, s in entries]
            exp_avg_sqs = [_real(s["exp_avg_sq"]) for _, _, s in entries]
            # torch/optim/adam.py, _single_tensor_adam, in its order of operations.
            torch._foreach_lerp_(exp_avgs, grads, 1 - beta1)
            torch._foreach_mul_(exp_avg_sqs, beta2)
            torch._foreach_addcmul_(exp_avg_sqs, grads, grads, 1 - beta2)
            bias_correction1 = 1 - beta1 ** float(step)
            bias_correction2 = 1 - beta2 ** float(step)
            denom = torch._foreach_sqrt(exp_avg_sqs)
            torch._foreach_div_(denom, bias_correction2 ** 0.5)
            torch._foreach_add_(denom, eps)
            torch._foreach_addcdiv_(params, exp_avgs, denom, -(lr / bias_correction1))


def _real(t: torch.Tensor) -> torch.Tensor:
    """Complex tensors as (..., 2) real views, as torch's Adam updates them."""
    return torch.view_as_real(t) if t.is_complex() else t
