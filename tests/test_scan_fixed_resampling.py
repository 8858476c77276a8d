"""`scan` on a model that resamples every input to one width (TPS in deep-text-recognition-benchmark) gives CTC001's
fix as `check` does: longer inputs will not help, the resampler's size will; also after `--shard` + `scan merge`.
Before, scan named the right layers but still ended its fix with "or feed longer inputs"."""
from __future__ import annotations

import json
import textwrap

import pytest
from typer.testing import CliRunner

from ctcdoctor.cli import app
from ctchelpers import ROOT

SPEC = textwrap.dedent(f'''
    import sys
    sys.path.insert(0, {str(ROOT / "tests" / "checks")!r})
    import torch
    from ctcdoctor import Setup
    from test_ctc001_fixed_resampling import LABELS, Recogniser, batches

    def build():
        torch.manual_seed(0)
        return Setup(model=Recogniser(stn=True), loader=batches(32, LABELS), blank=0)
''')


@pytest.fixture(scope="module")
def spec(tmp_path_factory):
    path = tmp_path_factory.mktemp("fixed") / "stn_spec.py"
    path.write_text(SPEC, encoding="utf-8")
    return str(path)


def ctc001(*args: str) -> dict:
    result = CliRunner().invoke(app, ["scan", *args, "--format", "json"])
    (found,) = [item for item in json.loads(result.stdout)["findings"] if item["code"] == "CTC001"]
    return found


def test_scan_says_longer_inputs_will_not_help_and_names_the_resampler(spec):
    found = ctc001(spec)
    assert "longer inputs will not help" in found["hint"] and "feed longer inputs" not in found["hint"]
    assert "TinySTN at stn resamples every input to 16 along width" in found["hint"]
    assert "to at least 24" in found["hint"]
    assert found["evidence"]["fixed_frames"]["module"] == "stn" and found["evidence"]["fixed_frames"]["needed_size"] == 24


def test_the_fixed_resampling_survives_shards_and_merge(spec, tmp_path):
    parts = []
    for index in range(2):
        part = tmp_path / f"part{index}.json"
        CliRunner().invoke(app, ["scan", spec, "--shard", f"{index}/2", "--output", str(part), "--format", "json"])
        parts.append(str(part))
    assert "longer inputs will not help" in ctc001("merge", *parts)["hint"]
