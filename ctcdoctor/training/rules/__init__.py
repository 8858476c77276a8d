"""The curve rules (codes CTC200-CTC215), shared by `ctcdoctor logs` and the training monitor.

`diagnose(curves, options) -> list[Finding]` runs every rule on a `Curves` (arrays by role).
Each rule is a pure function of an `Analysis` (the curves, the options, shared facts computed
once). Cost: O(n) numpy for n logged points, then O(bins) (at most 500 bins); a run of 10^6
points is diagnosed in well under the time it takes to read it (benchmarks/logs.py).

For a run in progress (the monitor), call `diagnose` on the series so far; pass
`Options(patience=...)` so that the early blank plateau of a healthy run is not reported as a
failure before it has lasted that many steps.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ctcdoctor.findings import Finding
from ctcdoctor.registry import document, finding
from ctcdoctor.training.rules.context import Analysis, Options
from ctcdoctor.training.rules.divergence import check_divergence
from ctcdoctor.training.rules.generalisation import check_generalisation
from ctcdoctor.training.rules.metrics import check_metric_stuck
from ctcdoctor.training.rules.nonfinite import check_nonfinite
from ctcdoctor.training.rules.oscillation import check_oscillation
from ctcdoctor.training.rules.plateau import MIN_POINTS, check_plateau
from ctcdoctor.training.rules.schedule import check_schedule
from ctcdoctor.training.rules.zero import check_zero
from ctcdoctor.training.series import Curves

__all__ = ["RULES", "Analysis", "Options", "diagnose"]

document(
    "CTC215",
    "info",
    "too few logged values to judge the curve",
    """
    **What it means.** The training loss has fewer finite values than the shape rules need
    (20 for plateaus and the blank plateau, 60 for a sawtooth, 8 for a divergence, 5
    evaluations for overfitting). Non-finite, zero and negative values were still checked;
    "no finding" on the shape says little.

    **Example.** `info CTC215 only 7 finite values of loss (steps 0-6,000): the plateau,
    divergence and oscillation rules need at least 20.`

    **Fix.** Log more often (Hugging Face: `logging_steps=10`; Lightning:
    `log_every_n_steps=10`; Keras: a callback that logs per batch) or let the run go longer.
    """,
)


def check_coverage(analysis: Analysis) -> list[Finding]:
    curve = analysis.loss
    if curve.n >= MIN_POINTS:
        return []
    message = (f"only {curve.n} finite value{'s' if curve.n != 1 else ''} of {curve.tag} "
               f"({analysis.steps(curve.first_step, curve.last_step)}): the plateau, divergence and oscillation rules "
               f"need at least {MIN_POINTS}.")
    hint = "Log more often (logging_steps=10, log_every_n_steps=10) or let the run go longer."
    evidence = {"series": curve.tag, "points": curve.n, "needed": MIN_POINTS}
    return [finding("CTC215", message, hint, evidence)]


RULES: tuple[Callable[[Analysis], list[Finding]], ...] = (
    check_nonfinite,
    check_zero,
    check_divergence,
    check_schedule,
    check_oscillation,
    check_plateau,
    check_metric_stuck,
    check_generalisation,
    check_coverage,
)


RULE_TITLES: dict[Callable[[Analysis], list[Finding]], tuple[str, str]] = {
    check_nonfinite: ("CTC200-202", "NaN or inf in the logged losses"),
    check_zero: ("CTC209", "a loss of exactly 0 or below"),
    check_divergence: ("CTC203", "the loss diverged"),
    check_schedule: ("CTC213-214", "the learning rate over a plateau or a divergence"),
    check_oscillation: ("CTC206", "sawtooth or cycles without progress"),
    check_plateau: ("CTC204-205,211-212", "plateaus and the blank plateau"),
    check_metric_stuck: ("CTC210", "an error rate stuck while the loss falls"),
    check_generalisation: ("CTC207-208", "the eval loss against the train loss"),
    check_coverage: ("CTC215", "enough logged values to judge"),
}
"""Per rule: the codes it reports and what it looks at, for `logs -v` (every rule of RULES is here)."""


def diagnose(curves: Curves, options: Options | None = None) -> list[Finding]:
    """Run every curve rule; findings in rule order (the renderer sorts by severity)."""
    analysis = Analysis(curves, options)
    with np.errstate(divide="ignore", invalid="ignore"):
        return [found for rule in RULES for found in rule(analysis)]
