"""The step budget grows by itself while a run is still learning, unless the user chose the budget.

A healthy but slower model (a 2-layer unidirectional LSTM, one symbol off and still improving at 1000
steps, fitted at 1590) failed the default budget as error CTC070, whose own advice was "run longer":
a false failure in CI. So when the budget runs out with the loss still clearly falling and the CER at
a new best, overfit takes that advice itself, one default budget at a time up to EXTEND_TO steps, and
says so. An explicit --steps (or `steps=` in the Python API) is a fixed budget, and a run whose static
checks already name a problem on the sample (an error, or an input finding) is not extended: the
failure names that cause at the budget instead of training four times as long first.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ctcdoctor.overfit.curve import loss_trend
from ctcdoctor.overfit.inputs import INPUT_CODES
from ctcdoctor.overfit.result import DEFAULT_STEPS

if TYPE_CHECKING:  # pragma: no cover
    from ctcdoctor.findings import Finding
    from ctcdoctor.overfit.result import Evaluation

EXTEND_TO = 4 * DEFAULT_STEPS
"""The most steps an automatically extended run trains (four default budgets: about 40 s for a small model on
one CPU thread, against 10 s; a run that fits stops as soon as it does)."""


def budget(steps: int | None) -> dict[str, Any]:
    """The options' budget for a `steps` the caller gave (fixed) or left unset (None: the default, extended while
    the run is still learning)."""
    if steps is None:
        return {"steps": DEFAULT_STEPS, "extend_to": EXTEND_TO}
    return {"steps": steps, "extend_to": None}


def still_learning(losses: Sequence[float], evaluations: Sequence[Evaluation]) -> bool:
    """The loss still clearly falling over the last quarter of the run (the verdicts' own trend: a fitted line 3
    standard errors and 2% down), and the decode improved: the last evaluation's CER is the best of the run and below
    the first's. The CER moves one symbol at a time: a healthy run one symbol off may keep the same CER for hundreds
    of steps while the loss falls, then fit, so a CER that holds its best counts. An all-blank run (CER 1 throughout)
    or a decode worse than it was is not extended."""
    recent = loss_trend(losses)
    if recent["trend"] != "falling" or not recent["to"] < recent["from"] or len(evaluations) < 2:
        return False
    last = evaluations[-1].cer
    return last <= min(item.cer for item in evaluations) and last < evaluations[0].cer


def next_budget(current: int, step_size: int, limit: int | None, losses: Sequence[float],
                evaluations: Sequence[Evaluation]) -> int:
    """The budget after the run reached `current` steps without a fit: one more `step_size` (up to `limit`) while it
    is still learning, else `current` (stop)."""
    if limit is None or current >= limit or not still_learning(losses, evaluations):
        return current
    return min(current + step_size, limit)


def blocks_extension(findings: Sequence[Finding]) -> bool:
    """The sample's static checks already name a cause (an error, or an input warning): report it at the budget."""
    on_sample = [item for item in findings if "overfit_samples" in item.evidence]
    return any(item.severity.value == "error" or (item.code in INPUT_CODES and item.severity.value == "warning")
               for item in on_sample)


def extension_note(extensions: Sequence[tuple[int, float]], final: int, limit: int | None) -> str | None:
    """The report's note on an extended budget: where it ran out still learning, and how far it went."""
    if not extensions:
        return None
    where = ", ".join(f"step {step} (CER down to {cer:.2f})" for step, cer in extensions)
    return (f"still learning when the budget ran out at {where}, the loss still falling: the budget grew to {final} steps "
            f"(the default budget grows up to {limit} steps while the run improves; --steps N fixes it)")


def cut_note(step: int, budget: int, timeout: float | None, falling: bool) -> str:
    """The report's note on a run that --timeout cut during training: judged on the steps run, and provisional while
    the loss was still falling."""
    limit = f"--timeout {timeout:g} s" if timeout is not None else "--timeout"
    note = f"training was cut by {limit} at step {step} of {budget}: the verdict is judged on the {step} steps run"
    if falling:
        note += (", and the loss was still falling, so it is provisional: rerun with a larger --timeout or fewer --steps "
                 "to see whether it fits")
    return note
