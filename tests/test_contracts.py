"""The public contracts, pinned: one JSON golden per reporting command on the bundled examples,
exit 3 for ctcdoctor's own bugs, and every dotted `ctcdoctor.…` name in the docs resolving.

The goldens keep the envelope (keys, codes, titles, messages, exit codes) exact and blank out
what legitimately varies between runs: timings, the version, and the floating-point numbers
of training runs. Regenerate them with `CTCDOCTOR_UPDATE_GOLDEN=1 pytest tests/test_contracts.py`
and name every difference in the commit message.
"""
from __future__ import annotations

import importlib
import json
import os
import re
from typing import Any

import pytest
from typer.testing import CliRunner

from ctcdoctor.cli import app
from ctchelpers import ROOT

GOLDEN = ROOT / "tests" / "golden" / "json"
VOLATILE_KEYS = {"seconds", "version", "seconds_to_fit", "seconds_per_step", "samples_per_second"}
"""Timings and the version: blanked everywhere."""
OVERFIT_VOLATILE = {"losses", "loss", "history", "spikiness", "clipping", "steps", "steps_to_fit", "frames"}
"""Training-run numbers that depend on floating-point details of the machine."""

COMMANDS: dict[str, list[str]] = {
    "check_healthy": ["check", "examples/ocr_crnn.py"],
    "check_broken": ["check", "examples/broken/doubled_letters.py", "--select", "CTC00,CTC01"],
    "overfit": ["overfit", "examples/ocr_crnn.py", "--sample", "0"],
    "scan": ["scan", "examples/ocr_crnn.py"],
    "labels": ["labels", "examples/labels/gt.txt", "--alphabet", "@examples/labels/alphabet.txt"],
    "simulate": ["simulate", "--label", "aab", "--frames", "12", "--steps", "30"],
    "logs": ["logs", "examples/runs/lr_too_high"],
}


def _blank(value: Any, volatile: set[str]) -> Any:
    if isinstance(value, dict):
        return {key: ("<volatile>" if key in volatile else _blank(item, volatile)) for key, item in value.items()}
    if isinstance(value, list):
        return [_blank(item, volatile) for item in value]
    return value


def normalise(document: dict[str, Any]) -> dict[str, Any]:
    volatile = set(VOLATILE_KEYS)
    if document.get("command") in ("overfit", "simulate", "logs"):
        volatile |= OVERFIT_VOLATILE
        document = _round_floats(document)
    return _blank(document, volatile)


def _round_floats(value: Any) -> Any:
    if isinstance(value, float):
        return "<float>"
    if isinstance(value, dict):
        return {key: _round_floats(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_round_floats(item) for item in value]
    return value


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_json_envelope_matches_golden(name, monkeypatch):
    monkeypatch.chdir(ROOT)
    result = CliRunner().invoke(app, [*COMMANDS[name], "--format", "json"])
    assert result.exit_code in (0, 1), result.output
    document = json.loads(result.stdout)
    normalised = {"exit_code": result.exit_code, "document": normalise(document)}
    path = GOLDEN / f"{name}.json"
    if os.environ.get("CTCDOCTOR_UPDATE_GOLDEN"):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(normalised, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    expected = json.loads(path.read_text(encoding="utf-8"))
    assert normalised == expected


def test_every_envelope_has_the_shared_keys(monkeypatch):
    """DESIGN §4: schema, findings, summary on every reporting command (and command, spec)."""
    for name in sorted(COMMANDS):
        document = json.loads((GOLDEN / f"{name}.json").read_text(encoding="utf-8"))["document"]
        assert {"schema", "command", "spec", "findings", "summary", "checks"} <= set(document), name
        assert document["schema"] == 1


def test_an_internal_error_exits_3_with_a_report_request(monkeypatch, tmp_path):
    """Exit 3 is reserved for ctcdoctor's own bugs: simulate a bug inside the check command."""
    import ctcdoctor.engine as engine

    def broken(*_args, **_kwargs):
        raise ZeroDivisionError("planted bug")

    monkeypatch.setattr(engine, "run_checks", broken)
    monkeypatch.chdir(ROOT)
    result = CliRunner().invoke(app, ["check", "examples/ocr_crnn.py"])
    assert result.exit_code == 3, result.output
    assert "internal error: ZeroDivisionError: planted bug" in result.output
    assert "--debug" in result.output


DOTTED = re.compile(r"`(ctcdoctor(?:\.[A-Za-z_][A-Za-z0-9_]*)+)")


def _documented_names() -> list[tuple[str, str]]:
    names = []
    for path in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for match in DOTTED.finditer(path.read_text(encoding="utf-8")):
            names.append((path.name, match.group(1)))
    return sorted(set(names))


def _resolve(dotted: str) -> object:
    """Import the longest importable module prefix, then walk attributes."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            value: object = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for attribute in parts[cut:]:
            value = getattr(value, attribute)
        return value
    raise ImportError(dotted)


@pytest.mark.parametrize("where,dotted", _documented_names())
def test_every_dotted_name_in_the_docs_resolves(where, dotted):
    assert _resolve(dotted) is not None, f"{where} names {dotted}, which does not resolve"


def test_the_docs_name_some_dotted_names():
    """Guard the guard: the docs test above must have something to check."""
    assert len(_documented_names()) >= 5


def test_the_installed_command_returns_the_documented_exit_codes():
    """Through the console script and `python -m ctcdoctor`, not only through CliRunner."""
    import shutil
    import subprocess
    import sys

    script = shutil.which("ctcdoctor")
    assert script is not None
    broken = subprocess.run([script, "check", "examples/broken/no_blank_slot.py", "--select", "CTC01"], cwd=ROOT,
                            capture_output=True, text=True, timeout=300)
    assert broken.returncode == 1, broken.stdout + broken.stderr
    usage = subprocess.run([sys.executable, "-m", "ctcdoctor", "check", "no/such/file.py"], cwd=ROOT,
                           capture_output=True, text=True, timeout=300)
    assert usage.returncode == 2 and "no such file" in usage.stderr


def test_output_that_is_not_a_terminal_keeps_each_message_on_one_unpadded_line():
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-m", "ctcdoctor", "labels", "examples/labels/gt.txt", "--alphabet",
                             "@examples/labels/alphabet.txt"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    lines = result.stdout.splitlines()
    message = next(line for line in lines if "outside the alphabet (3 distinct)" in line)
    assert message.endswith("'café' → 'caf')."), message  # the whole sentence, not cut at 80 columns
    assert not [line for line in lines if line.endswith(" ")]


PATHS = re.compile(r"`((?:ctcdoctor|checks|benchmarks|examples|tests)/[\w/.-]+\.(?:py|md|json|jsonl|txt|csv))(?![\w])")


def _documented_paths() -> list[tuple[str, str]]:
    found = []
    for path in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for match in PATHS.finditer(path.read_text(encoding="utf-8")):
            found.append((path.name, match.group(1)))
    return sorted(set(found))


@pytest.mark.parametrize("where,path", _documented_paths())
def test_every_file_path_in_the_docs_exists(where, path):
    assert (ROOT / path).exists(), f"{where} names {path}, which does not exist"


@pytest.mark.parametrize("argv,expected", [
    (["check", "examples/broken/too_much_pooling.py", "--select", "CTC00"], 1),
    (["explain", "CTC001"], 0),
])
def test_a_reader_that_leaves_early_does_not_change_the_exit_code(argv, expected):
    """`ctcdoctor check ... | head -1`: the verdict is the exit code, whoever reads the report."""
    import subprocess
    import sys

    process = subprocess.Popen([sys.executable, "-m", "ctcdoctor", *argv], cwd=ROOT, stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL)
    assert process.stdout is not None
    process.stdout.close()  # the reader leaves before anything is written
    assert process.wait(timeout=300) == expected


def test_the_python_api_takes_a_code_string_as_the_command_line_does():
    import ctcdoctor
    from ctchelpers import healthy_setup

    report = ctcdoctor.check(healthy_setup(), select="CTC001,CTC002")
    assert [result.code for result in report.checks] == ["CTC001", "CTC002"]
