"""docs/ stays true to the code: every registered code is documented, with an example and a fix."""
from __future__ import annotations

import re

from ctcdoctor.registry import all_codes
from ctcdoctor.render.docgen import render
from ctchelpers import ROOT


def test_checks_md_is_generated_from_the_registry():
    page = (ROOT / "docs" / "checks.md").read_text(encoding="utf-8")
    assert page == render(), "docs/checks.md is stale: run `python -m ctcdoctor.render.docgen > docs/checks.md`"


def test_every_code_has_an_example_and_a_fix():
    for info in all_codes():
        assert "**Example.**" in info.doc, f"{info.code} documentation has no example"
        assert "**Fix.**" in info.doc, f"{info.code} documentation has no fix"


def test_every_code_mentioned_in_the_code_is_registered():
    registered = {info.code for info in all_codes()}
    mentioned = set()
    for folder in ("ctcdoctor", "checks"):
        for path in (ROOT / folder).rglob("*.py"):
            mentioned |= set(re.findall(r"\"(CTC\d{3})\"", path.read_text(encoding="utf-8")))
    assert mentioned <= registered, f"codes raised but not registered: {sorted(mentioned - registered)}"


def test_protocol_page_complete_example_runs_clean(write_module):
    import json

    from typer.testing import CliRunner

    from ctcdoctor.cli import app

    page = (ROOT / "docs" / "protocol.md").read_text(encoding="utf-8")
    source = page.split("## A complete example", 1)[1].split("```python", 1)[1].split("```", 1)[0]
    path = write_module("mytrain.py", source)
    result = CliRunner().invoke(app, ["check", str(path), "--format", "json", "--fail-on", "warning"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["summary"] == {"error": 0, "warning": 0, "info": 0}
