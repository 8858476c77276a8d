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
from ctcdoctor.training.rules.divergence import MIN_BINS as DIVERGENCE_MIN_BINS
from ctcdoctor.training.rules.divergence import check_divergence
from ctcdoctor.training.rules.generalisation import check_generalisation
from ctcdoctor.training.rules.metrics import check_metric_stuck
from ctcdoctor.training.rules.nonfinite import check_nonfinite
from ctcdoctor.training.rules.oscillation import MIN_POINTS as OSCILLATION_MIN_POINTS
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

    **Example.** `info CTC215 only 7 finite values of loss (steps 0-6,000): the divergence
    rule needs at least 8, the plateau rules 20, the sawtooth rule 60.` Only the rules that
    could not run are named.

    **Fix.** Log more often, in the terms of what wrote the log (Hugging Face:
    `logging_steps`; Lightning: `log_every_n_steps`; Keras' per-epoch CSVLogger: a callback
    that logs per batch), or let the run go longer; a log of every step can only grow longer.
    """,
)


#: Values each shape rule needs (bins of the loss; a short log has one bin per value).
RULE_MINIMUMS = (("divergence", DIVERGENCE_MIN_BINS), ("plateau", MIN_POINTS), ("sawtooth", 3 * OSCILLATION_MIN_POINTS))


def check_coverage(analysis: Analysis) -> list[Finding]:
    curve = analysis.loss
    if curve.n >= MIN_POINTS:
        return []
    # Name only the rules that could not run: at 10 values the divergence rule did run, and may have reported.
    short = [(name, needed) for name, needed in RULE_MINIMUMS if curve.n < needed]
    rules = [f"the {name} rules" if name == "plateau" else f"the {name} rule" for name, _ in short]
    first = f"{rules[0]} {'need' if rules[0].endswith('s') else 'needs'} at least {short[0][1]}"
    needs = ", ".join([first] + [f"{rule} {needed}" for rule, (_, needed) in zip(rules[1:], short[1:])])
    message = (f"only {curve.n} finite value{'s' if curve.n != 1 else ''} of {curve.tag} "
               f"({analysis.steps(curve.first_step, curve.last_step)}): {needs}.")
    evidence = {"series": curve.tag, "points": curve.n, "needed": MIN_POINTS}
    return [finding("CTC215", message, _coverage_hint(analysis), evidence)]


def _coverage_hint(analysis: Analysis) -> str:
    """How to get more values, in the terms of what wrote the log: a log of every step can only grow longer."""
    curve = analysis.loss
    steps = curve.steps
    gaps = np.diff(steps) if steps.size > 1 else np.array([1])
    unit = analysis.unit
    trainer = analysis.options.trainer
    if unit == "epoch":  # one value per epoch (Keras' CSVLogger): per-batch values give the rules many more
        how = ("log per batch (ctcdoctor's Keras monitor callback, or a callback writing on_train_batch_end)"
               if trainer in ("keras", None) else "log per batch rather than per epoch")
        return f"{how[0].upper()}{how[1:]}, or let the run go longer."
    if steps.size < 2:
        return "Let the run go longer, or log more often."
    if int(np.median(gaps)) <= 1:
        return f"It logged every {unit}: let the run go longer (the shape rules judge {MIN_POINTS} or more values)."
    # An interval that would give about 40 values over the same steps.
    span = max(int(steps[-1] - steps[0]), 1)
    every = max(1, _round_down(span // 40))
    if trainer == "huggingface":
        how = f"log more often (TrainingArguments(logging_steps={every}))"
    elif trainer == "lightning":
        how = f"log more often (Trainer(log_every_n_steps={every}))"
    elif trainer == "loop":
        how = f"log more often (every {every} steps)"
    else:
        how = (f"log more often (every {every} steps: Hugging Face logging_steps={every}, Lightning "
               f"log_every_n_steps={every})")
    return f"{how[0].upper()}{how[1:]}, or let the run go longer."


def _round_down(value: int) -> int:
    """The largest of 1, 2, 5, 10, 20, 50, ... not above `value` (at least 1)."""
    nice = 1
    for scale in (1, 10, 100, 1000, 10000, 100000):
        for digit in (1, 2, 5):
            if digit * scale <= value:
                nice = digit * scale
    return nice


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
