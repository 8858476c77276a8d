"""The Rich report, recorded as golden text at a fixed width without colour."""
from __future__ import annotations

import io
import os

from rich.console import Console

from ctcdoctor.findings import CheckResult, Finding, Report, Severity
from ctcdoctor.render.console import RenderOptions, render_console
from ctchelpers import ROOT

GOLDEN = ROOT / "tests" / "golden" / "check_report.txt"


def _report() -> Report:
    findings = (
        Finding(
            "CTC001", Severity.ERROR, "output shorter than target plus repeats: CTC cannot align it",
            "3 of 64 samples need more frames than the model gives: sample 7 has 8 frames for 10 labels + 3 repeats "
            "(needs 13, 5 short).",
            "Reduce the downsampling along time.",
            {"count": 3},
        ),
        Finding(
            "CTC063", Severity.WARNING, "trainable parameters receive no gradient",
            "2 parameters got no gradient at all: cnn.0.weight, cnn.0.bias.",
            "Remove .detach() around trainable layers.",
            {"table": {"columns": ["layer", "grad norm"], "rows": [["cnn.0", "none"], ["fc", "5.3"]]}},
        ),
        Finding("CTC080", Severity.INFO, "spiky, blank-dominated outputs", "blank ratio 0.95.", ""),
    )
    checks = (CheckResult("infeasible_alignment", "CTC001", "findings", 0.01), CheckResult("spiky_outputs", "CTC080", "findings", 0.02))
    return Report("check", "examples/model.py", findings, checks, seconds=1.5)


def render(verbose: bool) -> str:
    buffer = io.StringIO()
    render_console(_report(), Console(file=buffer, width=100, color_system=None, force_terminal=False), RenderOptions(verbose=verbose))
    return buffer.getvalue()


def test_report_matches_golden_text():
    text = render(verbose=True)
    if os.environ.get("CTCDOCTOR_UPDATE_GOLDEN"):
        GOLDEN.write_text(text, encoding="utf-8")
    assert text == GOLDEN.read_text(encoding="utf-8")


def test_errors_come_before_warnings_and_info():
    text = render(verbose=False)
    assert text.index("CTC001") < text.index("CTC063") < text.index("CTC080")
    assert "fix: Reduce the downsampling" in text
    assert "1 error, 1 warning, 1 info (2 checks in 1.5 s)" in text


def _clean(checks: tuple[CheckResult, ...]) -> str:
    buffer = io.StringIO()
    render_console(Report("check", "model.py", (), checks, seconds=0.2),
                   Console(file=buffer, width=200, color_system=None, force_terminal=False))
    return buffer.getvalue()


def test_no_problems_found_only_when_some_check_looked():
    idle = (CheckResult("hf_vocab", "CTC100", "skipped", 0.0, "not a Hugging Face transformers CTC model", applicable=False),
            CheckResult("hf_pad", "CTC101", "skipped", 0.0, "not a Hugging Face transformers CTC model", applicable=False))
    text = _clean(idle)  # what `--ignore CTC0` leaves on a plain PyTorch model
    assert "no problems found" not in text
    assert "no check ran: all 2 selected checks were skipped or not applicable (see below); nothing was examined" in text
    assert "✔ no problems found" in _clean((*idle, CheckResult("infeasible_alignment", "CTC001", "passed", 0.01)))
