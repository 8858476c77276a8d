"""What a fresh-eyes user (trial2) saw in `ctcdoctor overfit` and now sees instead: one test per problem reported.

The label set-ups are tests/overfit_cases/trial2.py (trial-a's per-frame MLP); the Hugging Face ones build a tiny random
Wav2Vec2ForCTC in the test (no download).
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ctcdoctor.cli import app

runner = CliRunner()
SPEC = Path(__file__).parent / "overfit_cases" / "trial2.py"


def _json(command: str, build: str, *args: str) -> dict:
    result = runner.invoke(app, [command, f"{SPEC}:{build}", *args, "--format", "json"])
    assert result.exit_code == 1, result.output
    return {item["code"]: item for item in json.loads(result.stdout)["findings"]}


# ----------------------------------------------------------------------------- #1: fixes from the loader's labels


def test_overfit_gives_checks_class_count_fix_not_one_read_from_a_sample_that_uses_neither_0_nor_the_top_label():
    checked = _json("check", "build_off_by_one")["CTC014"]
    found = _json("overfit", "build_off_by_one", "--sample", "0", "--steps", "5")["CTC014"]
    assert found["message"].startswith("[sample 0] the model outputs 5 classes")
    assert found["hint"] == checked["hint"]
    assert found["hint"].startswith("The blank slot is missing: make the final layer (Linear at head) output 6 classes")
    assert "alphabet[1:]" not in found["hint"] and found["evidence"]["hint_from"] == "loader"


def test_overfit_states_the_label_range_of_the_loaders_labels_not_of_the_sample():
    checked = _json("check", "build_blank_clash")["CTC011"]
    found = _json("overfit", "build_blank_clash", "--sample", "0")["CTC011"]
    assert found["message"].startswith("[sample 0] the blank index 0 appears 1 time")
    assert found["hint"] == checked["hint"]
    assert found["hint"].startswith("The labels run 0..4 (alphabet.index(ch)) and class 5 is never used")


def test_a_fix_only_the_sample_shows_says_it_was_judged_on_that_sample_alone():
    found = _json("overfit", "build_blank_clash_late", "--sample", "39")["CTC011"]
    assert found["hint"].startswith("Judged on sample 39's labels alone (the loader's batches that check reads do not "
                                    "show it). The labels run 0..2 (alphabet.index(ch))")
    assert found["evidence"]["hint_from"] == "samples"


@pytest.mark.parametrize("samples", [[3], [3, 5]])
def test_the_samples_alone_wording_names_the_samples(samples):
    from ctcdoctor.overfit.hints import _samples_alone

    assert _samples_alone(samples) == ("sample 3's labels alone" if samples == [3] else "the labels of samples 3, 5 alone")
