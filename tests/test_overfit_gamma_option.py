"""`overfit --gamma inf` is refused before anything loads, naming the flag (it used to train, fail, and blame the
sample with "CTC cannot train on this sample ... run ctcdoctor check on the spec")."""
from __future__ import annotations

from typer.testing import CliRunner

from ctcdoctor.cli import app


def test_an_infinite_gamma_is_a_usage_error_before_loading(tmp_path):
    spec = tmp_path / "spec.py"
    spec.write_text("raise SystemExit('the spec must not be loaded')\ndef build():\n    pass\n", encoding="utf-8")
    result = CliRunner().invoke(app, ["overfit", str(spec), "--steps", "1", "--gamma", "inf"])
    assert result.exit_code == 2, result.output
    assert "--gamma inf: must be a finite number >= 0" in result.stderr and "Try --gamma 1" in result.stderr
    assert "CTC cannot train on this sample" not in result.output
