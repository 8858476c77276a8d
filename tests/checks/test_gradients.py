"""CTC060-CTC063: one backward pass on a copy of the model."""
from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from ctcdoctor.cli import app

ROOT = Path(__file__).resolve().parents[2]
MINE = ("CTC030", "CTC031", "CTC050", "CTC051", "CTC060", "CTC061", "CTC062", "CTC063", "CTC080", "CTC091")


def findings(spec: str, select: str) -> list[dict]:
    result = CliRunner().invoke(app, ["check", spec, "--format", "json", "--select", select])
    assert result.exit_code in (0, 1), result.output
    return json.loads(result.stdout)["findings"]


@pytest.mark.parametrize(
    "name, code",
    [("grad_where_log", "CTC060"), ("grad_sigmoid_stack", "CTC061"), ("grad_detached_cnn", "CTC063"), ("init_big_head", "CTC062")],
)
def test_broken_example_raises(name, code):
    found = findings(str(ROOT / "examples/broken" / f"{name}.py"), "CTC06")
    assert code in [item["code"] for item in found]
    # The first gradient finding carries the per-layer table; all carry the numbers.
    assert "table" in found[0]["evidence"] and found[0]["evidence"]["table"]["rows"]
    assert all(item["evidence"]["layers"] for item in found)


@pytest.mark.parametrize("example", ["ocr_crnn.py", "speech_ctc.py"])
def test_healthy_examples_raise_none_of_these_codes(example):
    found = findings(str(ROOT / "examples" / example), ",".join(MINE))
    assert [item for item in found if item["severity"] in ("error", "warning")] == []


def test_user_model_is_left_exactly_as_found():
    from ctcdoctor.engine import Context
    from ctcdoctor.load.spec import load_setup

    setup = load_setup(str(ROOT / "examples/ocr_crnn.py"))
    setup.model.train()
    before = copy.deepcopy(setup.model.state_dict())
    gradients = Context(setup).get("gradients")
    assert gradients.skipped is None and gradients.global_norm > 0
    assert setup.model.training and all(module.training for module in setup.model.modules())
    assert all(parameter.grad is None for parameter in setup.model.parameters())
    after = setup.model.state_dict()
    assert all(torch.equal(before[key], after[key]) for key in before)  # weights and BatchNorm running stats


def test_layers_are_ordered_by_execution():
    from ctcdoctor.engine import Context
    from ctcdoctor.load.spec import load_setup

    setup = load_setup(str(ROOT / "examples/broken/grad_where_log.py"))
    layers = Context(setup).get("gradients").layers
    assert layers[0].name == "projection"  # registered last, runs first


def test_frozen_parameters_are_not_reported():
    from ctcdoctor.checks.gradients import parameters_without_gradient
    from ctcdoctor.engine import Context
    from ctcdoctor.load.spec import load_setup

    setup = load_setup(str(ROOT / "examples/ocr_crnn.py"))
    setup.model.cnn.requires_grad_(False)
    assert parameters_without_gradient(Context(setup).get("gradients")) == []


def test_gradient_findings_on_constant_inputs_point_at_the_inputs_not_at_detach():
    found = {item["code"]: item for item in findings(str(ROOT / "examples/broken/constant_inputs.py"), "CTC06")}
    assert found, "the all-zero inputs give no gradient finding any more: update this test"
    for item in found.values():
        assert "CTC042" in item["message"] and "constant" in item["message"]
        assert item["hint"].startswith("Fix the inputs first (CTC042)")
        assert item["evidence"]["inputs"] == "CTC042"


def test_gradient_findings_leave_healthy_inputs_alone():
    from ctcdoctor.checks.gradients import _blame_inputs
    from ctcdoctor.measure.inputs import InputStats

    healthy = InputStats(8, (), 0, 0, 0.0, 1.0, -3.0, 3.0, False, (), 800)
    assert _blame_inputs("m.", "H.", [healthy], "x") == ("m.", "H.")
    broken = InputStats(8, (2,), 1, 0, 0.0, 1.0, -3.0, 3.0, False, (), 800)
    message, hint = _blame_inputs("m.", "Remove x.", [broken], "x")
    assert "NaN/Inf (1 of 8 samples holds them)" in message and hint.startswith("Fix the inputs first (CTC040)")
