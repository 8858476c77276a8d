"""examples/hf_wav2vec2.py: checks clean with no warning and `overfit` fits one sample, from the CLI."""
from __future__ import annotations

import json

import pytest

transformers = pytest.importorskip("transformers")

from hfkit import ROOT, example  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

from ctcdoctor.cli import app  # noqa: E402

SPEC = str(ROOT / "examples" / "hf_wav2vec2.py") + ":build_setup"


def test_build_returns_the_plain_model_and_loader():
    model, loader = example.build()
    assert isinstance(model, transformers.Wav2Vec2ForCTC)
    batch = next(iter(loader))
    assert set(batch) == {"input_values", "attention_mask", "labels"} and int(batch["labels"].min()) == -100


def test_check_is_clean_with_no_warning():
    result = CliRunner().invoke(app, ["check", SPEC, "--format", "json", "--fail-on", "warning"])
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["summary"] == {"error": 0, "warning": 0, "info": 0}, document["findings"]
    statuses = {item["code"]: item["status"] for item in document["checks"]}
    assert "CTC999" not in statuses and statuses["CTC030"] == statuses["CTC104"] == "passed"


def test_overfit_fits_sample_0():
    result = CliRunner().invoke(app, ["overfit", SPEC, "--sample", "0", "--format", "json"])
    assert result.exit_code == 0, result.output
    outcome = json.loads(result.stdout)["result"]
    assert outcome["fitted"] is True, outcome["history"][-3:]
    assert outcome["final_decode"] == ["the|cat|sat"]
