"""Where findings point: the spec's build function, the label file's line, the alphabet file's line."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from renderhelpers import def_line
from typer.testing import CliRunner

from ctcdoctor.cli import app
from ctcdoctor.findings import Finding, Report, Severity
from ctcdoctor.render.from_json import report_from_json
from ctcdoctor.render.locations import Location, locate, repo_root, spec_location

MODULE = '''"""A user's training script."""
import functools


def helper():
    return None


@functools.lru_cache()
def build():
    return None


def make_small():
    return None
'''

FINDING = Finding("CTC001", Severity.ERROR, "title", "message")


def test_spec_file_and_function_lines(tmp_path):
    (tmp_path / "train.py").write_text(MODULE, encoding="utf-8")
    # The decorated build(): its `def` line, not the decorator's.
    assert spec_location("train.py", tmp_path) == Location(
        (tmp_path / "train.py").resolve(), def_line(tmp_path / "train.py")
    )
    assert spec_location("train.py:make_small", tmp_path).line == def_line(tmp_path / "train.py", "make_small")
    assert spec_location(f"{tmp_path / 'train.py'}:build", Path("/")).line == 10  # absolute path, any cwd
    assert spec_location("train.py:missing", tmp_path) == Location((tmp_path / "train.py").resolve(), None)
    assert spec_location("nothere.py", tmp_path) is None


def test_module_spec_found_without_importing(tmp_path):
    package = tmp_path / "models"
    package.mkdir()
    (package / "__init__.py").write_text("raise RuntimeError('must not be imported')\n", encoding="utf-8")
    (package / "crnn.py").write_text(MODULE, encoding="utf-8")
    location = spec_location("models.crnn:build", tmp_path)
    assert location == Location((package / "crnn.py").resolve(), 10)
    assert spec_location("models.absent:build", tmp_path) is None


def test_check_overfit_scan_point_at_the_spec_other_commands_nowhere(tmp_path):
    (tmp_path / "train.py").write_text(MODULE, encoding="utf-8")
    for command in ("check", "overfit", "scan"):
        assert locate(Report(command, "train.py", (FINDING,)), FINDING, tmp_path).line == 10
    assert locate(Report("simulate", "--label 'ab' --frames 3", (FINDING,)), FINDING, tmp_path) is None


def test_relative_paths_and_repository_root(tmp_path):
    (tmp_path / "repo" / ".git").mkdir(parents=True)
    inner = tmp_path / "repo" / "src" / "deep"
    inner.mkdir(parents=True)
    assert repo_root({}, inner) == (tmp_path / "repo").resolve()
    assert repo_root({"GITHUB_WORKSPACE": str(tmp_path)}, inner) == tmp_path.resolve()
    location = Location((inner / "x.py").resolve(), 3)
    assert location.relative_to(tmp_path / "repo") == "src/deep/x.py"
    assert location.relative_to(tmp_path / "elsewhere") is None


def labels_report(tmp_path, monkeypatch, *args: str) -> Report:
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["labels", "gt.txt", "--format", "json", *args])
    assert result.exit_code in (0, 1), result.output
    return report_from_json(json.loads(result.stdout))


LABELS = (
    "\ufeffimg1.png\tcat\n"  # 1: byte-order mark
    "img2.png\tHello\n"  # 2: 'H' outside the alphabet, once
    "img3.png\tÉcole École\n"  # 3: 'É' twice: the most frequent outside symbol
    "img4.png\n"  # 4: empty label
    "img5.png\tÉté\n"  # 5: 'É' again
)


def test_label_findings_point_at_their_lines(tmp_path, monkeypatch):
    (tmp_path / "gt.txt").write_text(LABELS, encoding="utf-8")
    report = labels_report(tmp_path, monkeypatch, "--alphabet", "abcdefghijklmnopqrstuvwxyzé ")
    lines = {finding.evidence["problem"]: locate(report, finding, tmp_path) for finding in report.findings}
    gt = (tmp_path / "gt.txt").resolve()
    assert lines == {"bom": Location(gt, 1), "outside": Location(gt, 3), "empty": Location(gt, 4)}


def test_alphabet_findings_point_at_the_alphabet_file(tmp_path, monkeypatch):
    (tmp_path / "gt.txt").write_text("a.png\tab\n", encoding="utf-8")
    (tmp_path / "alphabet.txt").write_text("a\nb\nc\nb\n", encoding="utf-8")  # 'b' again on line 4
    report = labels_report(tmp_path, monkeypatch, "--alphabet", "@alphabet.txt")
    (duplicate,) = report.findings
    assert duplicate.code == "CTC091" and duplicate.evidence["problem"] == "duplicates"
    assert report.result is not None and report.result["alphabet_file"] == "alphabet.txt"
    assert locate(report, duplicate, tmp_path) == Location((tmp_path / "alphabet.txt").resolve(), 4)
    # Without the alphabet file (symbols given as a string) an alphabet problem has no place in a file.
    without = replace(report, result={**report.result, "alphabet_file": None})
    assert locate(without, duplicate, tmp_path) is None
    with_file = report
    # A one-line alphabet file holds its symbols as characters: line 1.
    (tmp_path / "alphabet.txt").write_text("abcb\n", encoding="utf-8")
    assert locate(with_file, duplicate, tmp_path).line == 1


def test_ci_renderers_do_not_import_torch(tmp_path):
    """`ctcdoctor labels` (and its pre-commit hook) stays fast with every CI format turned on: no torch, no
    rich, no matplotlib (numpy is allowed: the curve rules that document CTC2xx codes are vectorised)."""
    import subprocess
    import sys

    code = (
        "import sys, json\n"
        "from ctcdoctor.findings import Finding, Report, Severity\n"
        "from ctcdoctor.render import github, junit, sarif\n"
        "bom = Finding('CTC090', Severity.WARNING, 't', 'm', 'h', {'problem': 'bom'})\n"
        "report = Report('labels', 'gt.txt', (bom,))\n"
        "github.render_github_summary(report, Severity.ERROR); github.github_commands(report, Severity.ERROR)\n"
        "junit.render_junit(report, Severity.ERROR); sarif.render_sarif(report, Severity.ERROR)\n"
        "print(json.dumps(sorted(name for name in sys.modules if name.split('.')[0] in ('torch', 'rich', 'matplotlib'))))\n"
    )
    (tmp_path / "gt.txt").write_text("a.png\tab\n", encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=False, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == []
