"""examples/hf_wav2vec2.py: checks clean with no warning and `overfit` fits one sample, from the CLI,
with no adapter code: `build()` returns the transformers model, the loader and the processor."""
from __future__ import annotations

import json

import pytest

transformers = pytest.importorskip("transformers")

from hfkit import ROOT, example  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

from ctcdoctor.cli import app  # noqa: E402

SPEC = str(ROOT / "examples" / "hf_wav2vec2.py")


def test_build_returns_the_plain_training_objects():
    setup = example.build()
    assert isinstance(setup.model, transformers.Wav2Vec2ForCTC)  # the user's model, not a wrapper
    batch = next(iter(setup.loader))
    assert set(batch) == {"input_values", "attention_mask", "labels"} and int(batch["labels"].min()) == -100
    model, loader = example.build_plain()
    assert isinstance(model, transformers.Wav2Vec2ForCTC)


@pytest.mark.parametrize("function", ["build", "build_plain"])
def test_check_is_clean_with_no_warning(function):
    result = CliRunner().invoke(app, ["check", f"{SPEC}:{function}", "--format", "json", "--fail-on", "warning"])
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["summary"] == {"error": 0, "warning": 0, "info": 0}, document["findings"]
    statuses = {item["code"]: item["status"] for item in document["checks"]}
    assert "CTC999" not in statuses and statuses["CTC030"] == statuses["CTC104"] == "passed"
    # The model's own length formula agrees with the lengths measured by probing it (audio and mask cut together).
    assert statuses["CTC004"] == "passed"
    # The Hugging Face checks ran on the model's facts (the processor's tokenizer for build()); without a tokenizer
    # there is no pad id to compare config.pad_token_id with, and CTC015 checks its range.
    assert statuses["CTC015"] == "passed"
    assert statuses["CTC101"] == ("passed" if function == "build" else "skipped")


def test_overfit_fits_sample_0():
    result = CliRunner().invoke(app, ["overfit", SPEC, "--sample", "0", "--format", "json"])
    assert result.exit_code == 0, result.output
    outcome = json.loads(result.stdout)["result"]
    assert outcome["fitted"] is True, outcome["history"][-3:]
    # Decoded as the tokenizer decodes: tokens joined, the word delimiter "|" a space (not "t h e | c a t | s a t").
    assert outcome["final_decode"] == outcome["targets"] == ["the cat sat"]
