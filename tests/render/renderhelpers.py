"""Helpers for the CI-format tests: running the real CLI, and reading its outputs the way the consumers do."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def ctcdoctor_exe() -> str:
    """The installed `ctcdoctor` console script of this environment (as CI and pre-commit call it)."""
    beside = Path(sys.executable).parent / "ctcdoctor"
    found = str(beside) if beside.exists() else shutil.which("ctcdoctor")
    assert found, "the ctcdoctor script is not installed in this environment"
    return found


def clean_env(**extra: str) -> dict[str, str]:
    """The environment without GitHub's variables (the tests may themselves run on GitHub Actions)."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("GITHUB_")}
    env.update(extra)
    return env


def run_cli(
    args: list[str], cwd: Path, env: dict[str, str] | None = None, timeout: int = 180
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [ctcdoctor_exe(), *args],
        check=False,
        cwd=cwd,
        env=env or clean_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def def_line(path: Path, name: str = "build") -> int:
    """Line of `def name` found by reading the file as text (independent of the ast-based code under test)."""
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if re.match(rf"(async\s+)?def\s+{name}\s*\(", line):
            return number
    raise AssertionError(f"no def {name} in {path}")


# ------------------------------------------------------------------------------- GitHub workflow commands


def _unescape_property(text: str) -> str:
    # The order the runner uses: everything but %25 first, so an escaped '%' cannot start a new escape.
    for escaped, char in (("%0D", "\r"), ("%0A", "\n"), ("%3A", ":"), ("%2C", ","), ("%25", "%")):
        text = text.replace(escaped, char)
    return text


def _unescape_data(text: str) -> str:
    for escaped, char in (("%0D", "\r"), ("%0A", "\n"), ("%25", "%")):
        text = text.replace(escaped, char)
    return text


def parse_workflow_command(line: str) -> tuple[str, dict[str, str], str]:
    """(command, properties, message) as the Actions runner reads `::command k=v,k=v::message`."""
    assert line.startswith("::"), line
    end = line.index("::", 2)
    head, message = line[2:end], line[end + 2 :]
    command, _, props = head.partition(" ")
    properties = {}
    for item in filter(None, props.split(",")):
        key, _, value = item.partition("=")
        properties[key] = _unescape_property(value)
    return command, properties, _unescape_data(message)


# ------------------------------------------------------------------------------- SARIF


def check_sarif_for_code_scanning(log: dict[str, Any], root: Path) -> list[dict[str, Any]]:
    """Structural checks of what GitHub code scanning needs from a SARIF 2.1.0 log; returns the results."""
    assert log["version"] == "2.1.0"
    assert isinstance(log["$schema"], str) and "sarif" in log["$schema"] and "2.1.0" in log["$schema"]
    assert isinstance(log["runs"], list) and len(log["runs"]) == 1
    run = log["runs"][0]
    driver = run["tool"]["driver"]
    assert driver["name"] == "ctcdoctor"
    rules = driver["rules"]
    ids = [rule["id"] for rule in rules]
    assert len(ids) == len(set(ids)), "rule ids must be unique"
    for rule in rules:
        assert re.fullmatch(r"CTC\d{3}", rule["id"])
        for key in ("shortDescription", "fullDescription", "help"):
            assert isinstance(rule[key]["text"], str) and rule[key]["text"].strip(), (rule["id"], key)
        assert rule["defaultConfiguration"]["level"] in ("error", "warning", "note")
    results = run["results"]
    assert len(results) <= 25_000
    for result in results:
        assert result["ruleId"] in ids
        assert ids[result["ruleIndex"]] == result["ruleId"]
        assert result["level"] in ("error", "warning", "note")
        assert isinstance(result["message"]["text"], str) and result["message"]["text"].strip()
        assert 1 <= len(result["locations"]) <= 10
        for location in result["locations"]:
            physical = location["physicalLocation"]
            uri = physical["artifactLocation"]["uri"]
            # Repository-relative: no scheme, not absolute, forward slashes, not leaving the root.
            assert not re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:", uri) and not uri.startswith("/"), uri
            assert "\\" not in uri and ".." not in uri.split("/"), uri
            start = physical["region"]["startLine"]
            assert isinstance(start, int) and start >= 1
            source = root / uri
            assert source.is_file(), uri
            assert start <= max(1, len(source.read_bytes().split(b"\n"))), (uri, start)
    json.dumps(log, allow_nan=False)  # strict JSON: no NaN/Infinity
    return results


# ------------------------------------------------------------------------------- YAML


def load_hooks_yaml(text: str) -> list[dict[str, Any]]:
    """`.pre-commit-hooks.yaml` through PyYAML when installed, else through `minimal_hooks_yaml`."""
    try:
        import yaml
    except ImportError:
        return minimal_hooks_yaml(text)
    return yaml.safe_load(text)


def _scalar(value: str) -> Any:
    value = value.strip()
    if value.startswith("[") and value.endswith("]"):
        return [_scalar(item) for item in value[1:-1].split(",") if item.strip()]
    if value[:1] in "'\"" and value[-1:] == value[:1]:
        return value[1:-1]
    return {"true": True, "false": False}.get(value, value)


def minimal_hooks_yaml(text: str) -> list[dict[str, Any]]:
    """Enough YAML for a hooks file: a list of flat mappings, plain/quoted scalars and flow lists, # comments."""
    hooks: list[dict[str, Any]] = []
    for raw in text.splitlines():
        line = raw.split(" #")[0].rstrip() if not raw.lstrip().startswith("#") else ""
        if not line.strip():
            continue
        if line.startswith("- "):
            hooks.append({})
            line = "  " + line[2:]
        key, _, value = line.strip().partition(":")
        hooks[-1][key] = _scalar(value)
    return hooks
