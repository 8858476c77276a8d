"""Property-based: the CPU path against the float64 formulas on peaky, confident outputs.

Deterministic (derandomize): the same examples on every run, so CI cannot flake; a few seconds.
The Triton kernel joins the comparison in tests/kernels/test_ctc_differential.py.
"""
from __future__ import annotations

import numpy as np
import torch
from hypothesis import HealthCheck, assume, given, settings
from peaky import Case, float32_reachable, peaky_cases, reference_result, rel_err

from ctcdoctor.ctc import ctc_loss, posterior

TOL = 2e-5  # float32, relative to max(1, |largest entry|): see rel_err


def cpu_result(case: Case) -> tuple[np.ndarray, np.ndarray]:
    targets, lengths, target_lengths = case.padded()
    x = case.log_probs.clone().requires_grad_()
    loss = ctc_loss(x, targets, lengths, target_lengths, blank=case.blank, reduction="none",
                    alpha=case.alpha, gamma=case.gamma)
    loss.sum().backward()
    return loss.detach().numpy(), x.grad.numpy()


@settings(max_examples=100, derandomize=True, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(peaky_cases(max_t=9, max_n=3, max_c=6, max_u=4))
def test_cpu_path_matches_the_formulas_on_confident_outputs(case):
    want_loss, want_grad, want_post = reference_result(case)
    assume(float32_reachable(case, want_post))
    loss, grad = cpu_result(case)
    scale = max(1.0, float(np.abs(want_loss[np.isfinite(want_loss)]).max(initial=0.0)))
    assert rel_err(loss, want_loss) <= TOL * scale
    # float32 CTC rounds at the scale of the NLL (the native recursions are not renormalised).
    assert rel_err(grad, want_grad) <= TOL * scale
    targets, lengths, target_lengths = case.padded()
    with np.errstate(all="ignore"), torch.no_grad():
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            post = posterior(case.log_probs, targets, lengths, target_lengths, blank=case.blank)
    assert rel_err(post.numpy(), want_post) <= TOL * scale
