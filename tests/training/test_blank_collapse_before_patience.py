"""A run that ends in the blank phase before its patience ran out: CTC221 at the close says why it is judged now.

While the run went on, CTC220 promised "it becomes CTC221 (blank collapse) past step 2,040 (patience 2,000)"; at step
320 the run ended and CTC221 came with no word on the patience, which read as a contradiction (trial on
deep-text-recognition-benchmark with the monitor in its training loop).
"""
from __future__ import annotations

from test_monitor_rules import blank_plateau_loss, phase_then, write_run

from ctcdoctor.training import diagnose_run


def test_the_close_keeps_the_patience_said_while_the_run_went_on(tmp_path):
    # trial 27: the close now keeps the budget CTC220 stated; the run is too short to judge, not a collapse
    path = write_run(tmp_path / "over.jsonl", 60, blank_plateau_loss, phase_then, patience=2000)
    lines = path.read_text().splitlines()
    lines[-1] = lines[-1][:-1] + ', "finished": true}'
    path.write_text("\n".join(lines) + "\n")
    findings = diagnose_run(path).findings
    assert "CTC221" not in {item.code for item in findings}
    (info,) = [item for item in findings if item.code == "CTC220"]
    assert "a blank phase is judged a blank collapse once it lasts 2,000 steps (patience 2,000)" in info.message


def test_a_run_past_its_patience_keeps_the_budget_words(tmp_path):
    path = write_run(tmp_path / "long.jsonl", 400, blank_plateau_loss, phase_then, patience=100)
    (error,) = [item for item in diagnose_run(path).findings if item.code == "CTC221"]
    assert "past the budget of 100 steps" in error.message and "judged whole" not in error.message
