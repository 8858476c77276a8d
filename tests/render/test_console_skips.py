"""The skipped-checks line of the console report, as a user reads it after the model's forward failed."""
from __future__ import annotations

import io

import torch
from rich.console import Console

import ctcdoctor
from ctcdoctor import Setup
from ctcdoctor.render.console import RenderOptions, render_console


class Broken(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(3, 5)

    def forward(self, x):
        return self.fc(x)  # x has 4 features: the forward raises


def _console_text(report) -> str:
    buffer = io.StringIO()
    render_console(report, Console(file=buffer, width=400, color_system=None, force_terminal=False), RenderOptions())
    return buffer.getvalue()


def test_codes_skipped_because_the_model_failed_are_listed_once():
    batch = (torch.randn(2, 6, 4), torch.tensor([[1, 2], [2, 3]]), torch.tensor([6, 6]), torch.tensor([2, 2]))
    report = ctcdoctor.check(Setup(model=Broken(), loader=[batch], blank=0))
    (failure,) = [finding for finding in report.findings if finding.code == "CTC999"]
    skipped = [result.code for result in report.checks if result.status == "skipped" and result.applicable]
    assert len(skipped) > 10 and "CTC001" in failure.message
    text = _console_text(report)
    # CTC999 names every skipped code; the skipped line points to it instead of listing them again.
    assert text.count("CTC001,") == 1 and text.count("CTC050") == 1, text
    assert f"{len(skipped)} checks skipped: those CTC999 lists above" in text
