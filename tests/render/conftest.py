"""Real reports for the CI-format tests: today's `ctcdoctor check --format json` on the bundled broken examples
(and on a model that fails on its batch, so checks are skipped), rebuilt into `Report`s."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import pytest
from renderhelpers import ROOT
from typer.testing import CliRunner

from ctcdoctor.cli import app
from ctcdoctor.findings import Report, Severity
from ctcdoctor.render.from_json import report_from_json

#: Broken examples whose findings the formats are tested on: an error and a warning with evidence rows
#: (CTC001, CTC002), three errors (NaN inputs), and two errors on a model without a blank slot.
EXAMPLES = ("too_much_pooling", "nan_inputs", "no_blank_slot")

MODEL_FAILS = """
import torch
from torch import nn


class Broken(nn.Module):
    def __init__(self):
        super().__init__()
        self.head = nn.Linear(4, 5)

    def forward(self, inputs):
        raise RuntimeError("mat1 and mat2 shapes cannot be multiplied (planted)")


def build():
    inputs = torch.randn(2, 10, 4)
    targets = torch.tensor([[1, 2], [3, 4]])
    return Broken(), [(inputs, targets, torch.tensor([10, 10]), torch.tensor([2, 2]))]
"""


@dataclass(frozen=True)
class Run:
    """One real `ctcdoctor check --format json` run."""

    exit_code: int
    document: dict
    report: Report
    cwd: Path
    spec_file: Path
    fail_on: Severity


def _run(spec: str, cwd: Path, spec_file: Path) -> Run:
    """The command in this process (CliRunner), from `cwd`, without GitHub's variables: these tests are about the
    report, and importing torch once more per run cost seconds each; the installed script's own process is tested
    where it is the point (test_cli_on_github_actions_keeps_stdout_json, test_ci_recipes, test_precommit_hooks)."""
    unset = {key: None for key in os.environ if key.startswith("GITHUB_")}
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(cwd)
        done = CliRunner().invoke(app, ["check", spec, "--format", "json"], env=unset)
    assert done.exit_code in (0, 1), done.output
    document = json.loads(done.stdout)  # stdout is the JSON document alone
    # examples/broken/pyproject.toml sets fail-on = "warning"; elsewhere the default is error.
    fail_on = Severity.WARNING if spec_file.parent == ROOT / "examples" / "broken" else Severity.ERROR
    return Run(done.exit_code, document, report_from_json(document), cwd, spec_file, fail_on)


@pytest.fixture(scope="session")
def example_runs() -> dict[str, Run]:
    runs = {}
    for name in EXAMPLES:
        relative = f"examples/broken/{name}.py"
        runs[name] = _run(relative, ROOT, ROOT / relative)
    return runs


@pytest.fixture(scope="session")
def model_fails_run(tmp_path_factory) -> Run:
    folder = tmp_path_factory.mktemp("model_fails")
    (folder / ".git").mkdir()  # a repository root, as in a user's checkout
    path = folder / "train.py"
    path.write_text(MODEL_FAILS, encoding="utf-8")
    return _run("train.py:build", folder, path)
