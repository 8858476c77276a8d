"""examples/train_with_monitor.py (a plain loop) and examples/lightning_ocr.py: the learning-rate mistake is
stopped with its verdict, and `ctcdoctor logs` agrees with the monitor. (The healthy runs take 600 steps, a
minute or more of CPU: their real output is in docs/monitor.md; the monitor's healthy behaviour is tested on
small models in test_monitor.py and tests/integrations.)"""
from __future__ import annotations

import importlib.util
import json
import sys

import pytest

from ctcdoctor.training import diagnose_run
from ctchelpers import ROOT


def load(name: str):
    spec = importlib.util.spec_from_file_location(f"_example_{name}", ROOT / "examples" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_the_learning_rate_mistake_is_stopped_on_a_divergence(tmp_path, capsys):
    assert load("train_with_monitor").main(["--lr-mistake", "--out", str(tmp_path)]) == 1
    report = json.loads((tmp_path / "report.json").read_text())
    stopped = report["result"]["stopped"]
    assert stopped["code"] == "CTC203" and stopped["step"] <= 50  # at the first evaluation or two that see it
    assert {f["code"] for f in report["findings"] if f["severity"] != "info"} == {"CTC203", "CTC214"}
    assert f"ran {stopped['step']} of 600 steps" in capsys.readouterr().out
    logs = diagnose_run(tmp_path)
    assert [f.to_dict() for f in logs.findings] == report["findings"]
    assert (tmp_path / "monitor.png").stat().st_size > 10_000


def test_the_lightning_example_is_stopped_on_its_learning_rate_mistake(tmp_path):
    pytest.importorskip("lightning")
    assert load("lightning_ocr").main(["--lr-mistake", "--steps", "200", "--out", str(tmp_path)]) == 1
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["result"]["stopped"]["code"] == "CTC203" and len(report["checks"]) > 10
