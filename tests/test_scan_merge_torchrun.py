"""`scan merge` under torchrun: every rank would merge the same parts and write the same files at once, so it is a
usage error that rank 0 alone reports (exit 2 on every rank); without torchrun the merge is untouched."""
from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from ctcdoctor.cli import app


def torchrun_env(rank: int) -> dict[str, str]:
    return {"RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": "29555"}


@pytest.fixture
def parts(tmp_path):
    # The parts need not be valid: the refusal comes before any is read.
    paths = [tmp_path / "part0.json", tmp_path / "part1.json"]
    for path in paths:
        path.write_text("{}", encoding="utf-8")
    return [str(path) for path in paths]


def test_rank_0_refuses_a_merge_under_torchrun(parts, tmp_path):
    out = tmp_path / "merged.json"
    result = CliRunner().invoke(app, ["scan", "merge", *parts, "--output", str(out)], env=torchrun_env(0))
    assert result.exit_code == 2, result.output
    assert "scan merge runs in one process, not under torchrun" in result.stderr
    assert "ctcdoctor scan merge part*.json" in result.stderr
    assert not out.exists()


def test_other_ranks_exit_2_silently(parts):
    result = CliRunner().invoke(app, ["scan", "merge", *parts, "--format", "json"], env=torchrun_env(1))
    assert result.exit_code == 2 and result.stdout == "" and result.stderr == ""


def test_without_torchrun_the_parts_are_read(parts):
    result = CliRunner().invoke(app, ["scan", "merge", *parts, "--format", "json"],
                                env={"RANK": None, "WORLD_SIZE": None, "MASTER_ADDR": None})
    assert result.exit_code == 2
    assert "is not the JSON report of a scan" in json.loads(result.stdout)["error"]["message"]
