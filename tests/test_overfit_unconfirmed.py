"""A run whose eval-mode decode became exact just as its --steps ran out (fewer than --patience evaluations in a row).

overfit used to call it a fit "in train mode only, not in eval mode" and quote the eval decode as matching
("abc" for "abc", CER 0.00) in the same sentence: the train-mode decode matched, and the eval-mode one had not yet
matched long enough. It is now CTC070 "unconfirmed": the fit needs more steps to be confirmed, nothing else.
"""
from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from ctcdoctor.cli import app
from ctcdoctor.overfit.rules import classify_failure

SPEC = Path(__file__).parent / "overfit_cases" / "trial3.py"


def test_a_decode_exact_only_as_the_steps_run_out_is_an_unconfirmed_fit_not_an_eval_mode_problem():
    result = CliRunner().invoke(app, ["overfit", f"{SPEC}:build_double_mean", "--sample", "0", "--steps", "50",
                                      "--format", "json"])
    assert result.exit_code == 1, result.output
    report = json.loads(result.stdout)
    (found,) = [item for item in report["findings"] if item["code"] == "CTC070"]
    assert found["title"] == "overfit fitted as the step budget ran out: not yet confirmed"
    assert "train mode only" not in found["message"] and "self.training" not in found["hint"]
    assert 'is exact from step ' in found["message"] and '("abc" for "abc")' in found["message"]
    assert "exact at 3 evaluations in a row" in found["message"]
    assert "--steps 1000" in found["hint"]
    # The same sample fits when the run is long enough to confirm it.
    longer = CliRunner().invoke(app, ["overfit", f"{SPEC}:build_double_mean", "--sample", "0", "--steps", "200",
                                      "--format", "json"])
    assert longer.exit_code == 0 and json.loads(longer.stdout)["result"]["fitted"], longer.output


def test_the_rule_puts_an_unconfirmed_fit_before_the_train_mode_reading_and_a_falling_budget():
    falling = [5.0 - 0.05 * step for step in range(60)]
    verdict = classify_failure(falling, 0.5, False, None, train_fits=True, exact_from=40)
    assert (verdict.code, verdict.kind, verdict.step) == ("CTC070", "unconfirmed", 40)
    assert classify_failure(falling, 0.5, False, None, exact_from=40, samples=3).code == "CTC073"
    assert classify_failure(falling, 0.5, False, None, train_fits=True).kind == "eval_mode"
