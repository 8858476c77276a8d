"""Trial 27 (ESPnet, bucket_sorted): CTC073 after a short --steps budget trains the worst sample alone; when that
run too ran out of steps with its loss still falling, the budget was too small, and the sample is not blamed."""
from __future__ import annotations

import json

import pytest
from test_s27_padlen import SPEC
from typer.testing import CliRunner

from ctcdoctor.cli import app

runner = CliRunner()


@pytest.fixture(scope="module")
def spec(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("s27_padlen_budget") / "espnet_like.py"
    path.write_text(SPEC)
    return f"{path}:build_true_lengths"


def _ctc073(spec: str, *options: str) -> tuple[dict, dict]:
    result = runner.invoke(app, ["overfit", spec, "--samples", "0,1,2,3", *options, "--format", "json"])
    assert result.exit_code == 1, result.output
    document = json.loads(result.stdout)
    (found,) = [item for item in document["findings"] if item["code"] == "CTC073"]
    return found, document["result"]["batch"]


def test_a_lone_run_cut_while_still_falling_blames_the_budget_not_the_sample(spec):
    found, batch = _ctc073(spec, "--steps", "20")
    assert batch["alone"]["diagnosis"] == "CTC070 budget", batch
    sample = batch["alone"]["sample"]
    assert "the sample is the problem" not in found["message"], found["message"]
    assert (f"sample {sample} does not fit alone either, but its loss was still falling when the 20-step budget ran "
            "out (CTC070 budget): the budget was too small") in found["message"], found["message"]
    assert found["hint"].startswith("Raise the step budget (--steps 1000) and run again"), found["hint"]
    assert "fix it first" not in found["hint"]


def test_a_lone_run_that_does_not_move_still_blames_the_sample(spec):
    found, batch = _ctc073(spec, "--steps", "20", "--lr", "1e-12")
    sample = batch["alone"]["sample"]
    assert f"sample {sample} does not fit alone either (" in found["message"], found["message"]
    assert "the sample is the problem" in found["message"]
    assert found["hint"] == f"Run overfit --sample {sample} for that sample's own diagnosis, and fix it first."
