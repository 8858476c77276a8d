"""One verdict for a run: the curve rules (CTC200-CTC215) plus, when the log holds the monitor's
output measurements, the output rules (CTC220-CTC224).

The training monitor calls `verdict` on its own buffers every `every` steps; `diagnose_run`
calls it on a log it has read. Both hand it a `Run` built the same way (the monitor keeps its
columns in the order the JSONL reader finds them), so `ctcdoctor logs` on the monitor's JSONL
says what the monitor said.
"""
from __future__ import annotations

import time
from dataclasses import replace

import numpy as np

from ctcdoctor.findings import CheckResult, Finding
from ctcdoctor.training.rules import RULE_TITLES, RULES, Analysis, Options
from ctcdoctor.training.rules.divergence import find_clipping
from ctcdoctor.training.rules.generalisation import check_generalisation
from ctcdoctor.training.rules.metrics import check_metric_stuck
from ctcdoctor.training.rules.outputs import Evaluations, diagnose_outputs, merge
from ctcdoctor.training.rules.schedule import check_schedule
from ctcdoctor.training.series import Curves, Run

APPLIED_GRAD_NORM = "grad_norm_applied"
"""The monitor's measurement of the gradients the optimizer holds at an evaluation (after the loop's clipping)."""


def verdict(run: Run, curves: Curves, options: Options, results: list[CheckResult] | None = None) -> list[Finding]:
    """The curve rules on `curves`, then the output rules on the run's monitor measurements; an output
    finding replaces the curve findings it explains (`rules.outputs.EXPLAINS`). `results`: a list to
    append how each rule ended (for `logs -v`)."""
    if options.clip is None:
        clip = find_clipping(curves.grad_norm, run.scalars.get(APPLIED_GRAD_NORM))
        options = replace(options, clip=clip) if clip is not None else options
    analysis = Analysis(curves, options)
    curve_findings: list[Finding] = []
    with np.errstate(divide="ignore", invalid="ignore"):
        for rule in RULES:
            started = time.perf_counter()
            found = rule(analysis)
            curve_findings += found
            _record(results, *RULE_TITLES[rule], found, started, _missing(rule, curves))
    blank = run.meta.get("blank")
    evaluations = Evaluations.from_scalars(run.scalars)
    started = time.perf_counter()
    output_findings = diagnose_outputs(analysis, evaluations, blank if isinstance(blank, int) else None)
    if evaluations is not None and len(evaluations):  # a log of ctcdoctor's monitor
        _record(results, "CTC220-225", "the outputs the monitor measured", output_findings, started)
    if run.format == "monitor":
        # The monitor records every step: few values mean a short run, not a sparse log (CTC215's "log more often").
        curve_findings = [found for found in curve_findings if found.code != "CTC215"]
    return merge(curve_findings, output_findings)


#: The series a rule judges, and how a log without it reads in `logs -v`: a rule with nothing to judge is skipped,
#: not "passed".
RULE_NEEDS = {
    check_schedule: (lambda curves: curves.lr, "no learning rate logged"),
    check_metric_stuck: (lambda curves: curves.metrics, "no error rate (CER/WER) or accuracy logged"),
    check_generalisation: (lambda curves: curves.eval_loss, "no eval loss logged"),
}


def _missing(rule, curves: Curves) -> str:  # noqa: ANN001 - a rule of RULES
    """Why `rule` had nothing to judge in `curves`, or "" when it had."""
    need = RULE_NEEDS.get(rule)
    if need is None:
        return ""
    series, reason = need
    return "" if series(curves) else reason


def _record(results: list[CheckResult] | None, code: str, title: str, found: list[Finding], started: float,
            missing: str = "") -> None:
    if results is None:
        return
    seconds = time.perf_counter() - started
    if missing and not found:
        results.append(CheckResult(title, code, "skipped", seconds, missing, applicable=False))
    else:
        results.append(CheckResult(title, code, "findings" if found else "passed", seconds))
