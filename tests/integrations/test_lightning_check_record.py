"""Third fresh-eyes trial, #3, in a real Lightning fit: the check before training stops it, and `ctcdoctor logs` on the
metrics JSONL it leaves reports that stop (it said the file holds only a header, exit 2)."""
from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

pytest.importorskip("lightning.pytorch")

from test_lightning import Module, fit  # noqa: E402

from ctcdoctor.cli import app  # noqa: E402
from ctcdoctor.integrations.lightning import CTCDoctorCallback  # noqa: E402


def test_a_lightning_fit_the_check_stops_leaves_a_jsonl_that_logs_reads(tmp_path):
    callback = CTCDoctorCallback(every=10, echo=False, metrics_path=tmp_path / "m.jsonl")
    trainer = fit(Module(0.02, softmax=True), callback, 50)
    assert trainer.global_step == 0
    result = CliRunner().invoke(app, ["logs", str(tmp_path / "m.jsonl"), "--format", "json"])
    assert result.exit_code == 1, result.output
    document = json.loads(result.stdout)
    assert document["result"]["stopped_by_check"] == {"step": 0, "code": "CTC020"}
    assert "CTC020" in [item["code"] for item in document["findings"]]
