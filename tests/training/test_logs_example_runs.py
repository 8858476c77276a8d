"""The committed example runs (examples/runs/, made by make_runs.py) give their documented verdicts."""
from __future__ import annotations

import json

import pytest

from ctcdoctor.findings import Severity
from ctcdoctor.training import diagnose_run
from ctchelpers import ROOT

RUNS = ROOT / "examples" / "runs"
EXPECTED = {
    # run: (format read, the warnings and errors it must give, exactly)
    "healthy": ("monitor", set()),
    "lr_too_high": ("lightning", {"CTC203", "CTC214"}),
    "blank_collapse": ("tensorboard", {"CTC212"}),
    "overfitting": ("huggingface", {"CTC207"}),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_example_run_verdict(name):
    pytest.importorskip("tensorboard")
    result = diagnose_run(RUNS / name)
    form, expected = EXPECTED[name]
    assert result.format == form
    problems = {found.code for found in result.findings if found.severity != Severity.INFO}
    assert problems == expected, [found.message for found in result.findings]
    json.dumps(result.to_dict(), allow_nan=False)
    json.dumps([found.to_dict() for found in result.findings], allow_nan=False)


def test_the_verdicts_are_the_ones_the_script_documents():
    text = (RUNS / "make_runs.py").read_text(encoding="utf-8")
    for name, (_, codes) in EXPECTED.items():
        row = next(line for line in text.splitlines() if line.startswith(f"| `{name}`"))
        assert all(code in row for code in codes), row
        assert codes or "no warning, no error" in row


def test_healthy_run_ends_well():
    """The healthy example is not healthy by accident: its eval CER ends low."""
    result = diagnose_run(RUNS / "healthy")
    (cer,) = [metric for metric in result.curves.metrics if metric.series.tag == "eval_cer"]
    assert cer.series.values[-1] < 0.1


def test_the_readme_says_tensorboard_needs_its_extra_and_shows_what_is_printed_without_it(without_tensorboard):
    """The extra named in examples/runs/README.md and docs/logs.md is pyproject's, and the lines shown for a machine
    without tensorboard are what `ctcdoctor logs` prints there (exit 2)."""
    import re

    from typer.testing import CliRunner

    from ctcdoctor.cli import app

    extras = (ROOT / "pyproject.toml").read_text(encoding="utf-8").split("[project.optional-dependencies]")[1]
    assert re.search(r'^tensorboard = \["tensorboard', extras, re.MULTILINE)  # (tomllib is 3.11+; 3.10 is supported)
    readme = (RUNS / "README.md").read_text(encoding="utf-8")
    for text in (readme, (ROOT / "docs" / "logs.md").read_text(encoding="utf-8")):
        assert 'pip install "ctcdoctor[tensorboard]"' in text
    result = CliRunner().invoke(app, ["logs", str(RUNS / "blank_collapse")])
    assert result.exit_code == 2
    printed = [" ".join(line.split()) for line in result.output.splitlines() if line.startswith(("error:", "fix:"))]
    assert len(printed) == 2 and all(line in readme for line in printed), printed
    assert printed[1].endswith("(or pip install tensorboard).")  # whole lines, not a wrapped prefix
