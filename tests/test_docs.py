"""docs/ stays true to the code: every registered code is documented, with an example and a fix."""
from __future__ import annotations

import re

from conftest import ROOT
from ctcdoctor.docgen import render
from ctcdoctor.registry import all_codes


def test_checks_md_is_generated_from_the_registry():
    page = (ROOT / "docs" / "checks.md").read_text(encoding="utf-8")
    assert page == render(), "docs/checks.md is stale: run `python -m ctcdoctor.docgen > docs/checks.md`"


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
