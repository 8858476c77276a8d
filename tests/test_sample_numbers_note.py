"""`check` on a loader it cannot index says when its sample numbers are positions that name other samples in a new
pass (a wrapper around a shuffling DataLoader, a collate that sorts each batch), and is quiet where they hold."""
from __future__ import annotations

import json

import pytest
from test_sample_order import write_spec
from typer.testing import CliRunner

from ctcdoctor.cli import app


def check(tmp_path, loader: str, *options: str):
    result = CliRunner().invoke(app, ["check", str(write_spec(tmp_path, loader)), *options])
    assert result.exit_code == 1, result.output  # CTC001 on the planted samples
    return result


@pytest.mark.parametrize("loader, words", [("wrapped_shuffled", "one shuffled pass over Wrapper"),
                                           ("wrapped", "each sorted by length")])
def test_positions_that_are_not_data_set_indices_are_named_in_the_report(tmp_path, loader, words):
    result = json.loads(check(tmp_path, loader, "--format", "json").stdout)["result"]
    assert words in result["sample_numbers"] and "Setup.loader the DataLoader itself" in result["sample_numbers"]
    text = " ".join(check(tmp_path, loader).output.split())
    assert words in text


@pytest.mark.parametrize("loader", ["wrapped_plain", "shuffled", "bucketing"])
def test_numbers_that_hold_from_pass_to_pass_get_no_note(tmp_path, loader):
    result = json.loads(check(tmp_path, loader, "--format", "json").stdout)["result"]
    assert "sample_numbers" not in result
