"""Every overfit example (examples/broken/overfit_*.py) gives its documented verdict at the default budget."""
from __future__ import annotations

import json
import re

import pytest
from typer.testing import CliRunner

from ctcdoctor.cli import app
from ctchelpers import ROOT

EXAMPLES = sorted((ROOT / "examples" / "broken").glob("overfit_*.py"))


def documented(path) -> tuple[str | None, set[str], int | None]:
    """(overfit verdict "fitted" or None, expected overfit codes, expected exit) from the example's docstring."""
    text = path.read_text()
    verdict = re.search(r"^Expected overfit verdict: (\w+)", text, flags=re.MULTILINE)
    codes = set(re.findall(r"^Expected overfit finding: (CTC\d{3})", text, flags=re.MULTILINE))
    exit_code = re.search(r"^Expected exit: (\d)", text, flags=re.MULTILINE)
    return verdict.group(1) if verdict else None, codes, int(exit_code.group(1)) if exit_code else None


def test_every_overfit_example_documents_its_verdict():
    assert len(EXAMPLES) >= 5
    for path in EXAMPLES:
        verdict, codes, _ = documented(path)
        assert (verdict == "fitted") != bool(codes), f"{path.name}: document either a verdict or a finding"


@pytest.fixture(scope="module")
def default_run():
    """`ctcdoctor overfit EXAMPLE --format json` from the repository root, run once per example for this module:
    the verdict test and the masking test read the same (deterministic, seeded) run."""
    runs = {}

    def run(relative: str):
        if relative not in runs:
            with pytest.MonkeyPatch.context() as patch:
                patch.chdir(ROOT)
                runs[relative] = CliRunner().invoke(app, ["overfit", relative, "--format", "json"])
        return runs[relative]

    return run


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda path: path.name)
def test_overfit_example_gives_its_documented_verdict_at_the_default_budget(path, default_run):
    result = default_run(str(path.relative_to(ROOT)))
    assert result.exit_code in (0, 1), result.output
    document = json.loads(result.stdout)
    verdict, codes, exit_code = documented(path)
    found = {item["code"] for item in document["findings"]}
    if verdict == "fitted":
        assert document["result"]["fitted"], document["findings"]
        assert not found & {"CTC070", "CTC071", "CTC072", "CTC073"}
    else:
        assert not document["result"]["fitted"]
        assert codes <= found and document["result"]["diagnosis"] in codes, found
    if exit_code is not None:
        assert result.exit_code == exit_code, found


def test_the_masking_example_says_why_the_modes_disagree(default_run):
    result = default_run("examples/broken/overfit_masking_train_only.py")
    out = json.loads(result.stdout)["result"]
    assert out["modes_agree"] is False and out["final_decode"] == out["targets"] != out["train_decode"]
    (note,) = [note for note in out["notes"] if "train-mode" in note]
    assert "masking (augment (TimeMasking))" in note and "judged in eval mode" in note


@pytest.mark.parametrize("name,code", [("overfit_dead_relu_head.py", "CTC027"), ("overfit_softmax_own_loss.py", "CTC020")])
def test_check_reports_the_static_side_of_the_overfit_examples(name, code, monkeypatch):
    monkeypatch.chdir(ROOT)
    result = CliRunner().invoke(app, ["check", f"examples/broken/{name}", "--format", "json", "--select", "CTC02"])
    assert result.exit_code == 1, result.output
    assert code in {item["code"] for item in json.loads(result.stdout)["findings"]}
