"""docs/frameworks.md: every code block that starts with `# file: NAME.py` runs as it is and checks clean."""
from __future__ import annotations

import json
import re

import pytest
from typer.testing import CliRunner

from ctcdoctor.cli import app
from ctchelpers import ROOT

BLOCK = re.compile(r"```python\n# file: (\S+\.py)\n(.*?)```", re.DOTALL)


def runnable_blocks() -> list[tuple[str, str]]:
    return BLOCK.findall((ROOT / "docs" / "frameworks.md").read_text(encoding="utf-8"))


def test_the_page_has_runnable_blocks():
    assert [name for name, _ in runnable_blocks()] == ["lightning_check.py"]


@pytest.mark.parametrize("name,source", runnable_blocks(), ids=lambda value: value if value.endswith(".py") else "")
def test_a_documented_build_checks_clean(name, source, write_module):
    if "import lightning" in source:
        pytest.importorskip("lightning")
    path = write_module(name, source)
    result = CliRunner().invoke(app, ["check", str(path), "--format", "json", "--fail-on", "warning"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["summary"] == {"error": 0, "warning": 0, "info": 0}
