"""CTC050 / CTC051: loss at initialisation."""
from __future__ import annotations

import json
import math
from pathlib import Path

from typer.testing import CliRunner

from ctcdoctor.checks.init_loss import init_loss_too_high, nonfinite_init_loss
from ctcdoctor.cli import app
from ctcdoctor.measure.init_loss import InitLoss

ROOT = Path(__file__).resolve().parents[2]


def codes(spec: str, select: str) -> list[str]:
    result = CliRunner().invoke(app, ["check", spec, "--format", "json", "--select", select])
    assert result.exit_code in (0, 1), result.output
    return [item["code"] for item in json.loads(result.stdout)["findings"]]


def test_masked_unknown_class_gives_nonfinite_init_loss():
    assert "CTC050" in codes(str(ROOT / "examples/broken/init_masked_unknown.py"), "CTC05")


def test_saturated_head_gives_high_init_loss():
    assert codes(str(ROOT / "examples/broken/init_big_head.py"), "CTC05") == ["CTC051"]


def test_healthy_examples_raise_nothing_here():
    assert codes(str(ROOT / "examples/ocr_crnn.py"), "CTC05") == []
    assert codes(str(ROOT / "examples/speech_ctc.py"), "CTC05") == []


def test_infeasible_samples_are_left_to_ctc001():
    inf = math.inf
    data = InitLoss((0, 1), (inf, 5.0), (inf, 5.0), (3, 2), 10)
    assert nonfinite_init_loss(data) == []
    data = InitLoss((0, 1), (math.nan, 5.0), (4.0, 5.0), (3, 2), 10)
    (found,) = nonfinite_init_loss(data)
    assert found.evidence["samples"] == [0] and found.evidence["nan"] == 1


def test_threshold_is_ratio_plus_margin():
    # uniform 2.0 nats per label: threshold 1.5 * 2 + 0.5 = 3.5 per label
    below = InitLoss((0,), (3.4 * 4,), (2.0 * 4,), (4,), 10)
    above = InitLoss((0,), (3.6 * 4,), (2.0 * 4,), (4,), 10)
    assert init_loss_too_high(below) == []
    (found,) = init_loss_too_high(above)
    assert abs(found.evidence["ratio"] - 1.8) < 1e-9
