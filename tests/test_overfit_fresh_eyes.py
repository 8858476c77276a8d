"""What a fresh-eyes user saw in `ctcdoctor overfit` (round 2) and now sees instead: one test per problem."""
from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from ctcdoctor.cli import app

runner = CliRunner()
CASES = Path(__file__).parent / "overfit_cases"


def _overfit(*args: str):
    return runner.invoke(app, ["overfit", *args])


def test_a_blank_outside_the_classes_blocks_training_instead_of_crashing():
    result = _overfit("examples/broken/blank_past_the_classes.py", "--steps", "20")
    assert result.exit_code == 1, result.output
    assert "internal error" not in result.output
    assert "CTC015" in result.output
    assert "■ overfit not run on sample 0" in result.output and "fix CTC015 above first" in result.output


def test_ctc_argument_errors_during_training_are_usage_errors_naming_the_problem():
    from ctcdoctor.errors import UserInputError
    from ctcdoctor.load.spec import load_setup
    from ctcdoctor.overfit.result import OverfitOptions
    from ctcdoctor.overfit.train import run_overfit

    setup = load_setup("examples/broken/blank_past_the_classes.py")
    with pytest.raises(UserInputError, match="blank=26 is out of range for C=26 classes"):
        run_overfit(setup, "x", OverfitOptions(steps=2, static_checks=False))  # the static checks would block it first
