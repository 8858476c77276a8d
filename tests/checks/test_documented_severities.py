"""Every severity/title a check passes to `finding()` is one its code documents (`ctcdoctor codes`, docs/checks.md):
read from the source, so that variants no example triggers are held to it too."""
from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

import ctcdoctor.checks
from ctcdoctor.registry import get_code, load_builtin

MODULES = sorted(Path(ctcdoctor.checks.__file__).parent.glob("*.py"))


def _value(node: ast.expr | None, module) -> object:
    if node is None:
        return None
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Name) and hasattr(module, node.id):
        return getattr(module, node.id)
    return ...  # computed at run time: checked by the examples' test (tests/test_examples.py)


@pytest.mark.parametrize("path", MODULES, ids=lambda path: path.name)
def test_every_literal_severity_and_title_is_documented(path):
    load_builtin()
    module = importlib.import_module(f"ctcdoctor.checks.{path.stem}")
    for node in ast.walk(ast.parse(path.read_text())):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "finding"):
            continue
        if not (node.args and isinstance(node.args[0], ast.Constant)):
            continue
        code = node.args[0].value
        keywords = {item.arg: item.value for item in node.keywords}
        severity, title = _value(keywords.get("severity"), module), _value(keywords.get("title"), module)
        if severity is ... or title is ... or (severity is None and title is None):
            continue
        info = get_code(code)
        assert info is not None, code
        pair = (severity or info.severity.value, title or info.title)
        documented = {(item.value, text) for item, text in info.documented}
        assert pair in documented, f"{path.name}:{node.lineno} raises {code} as {pair}; documented: {sorted(documented)}"
