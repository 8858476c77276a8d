"""The pytest plugin and the testing API as a user meets them: a test suite in a temp folder, run by
pytest in a subprocess with the plugin installed through its `pytest11` entry point.

Issue 15's done-when: the suite fails with the rendered findings on a broken example and passes on a
healthy one, for `assert_ctc_ready` and for `assert_can_overfit`.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path

import pytest

from ctcdoctor.registry import get_code
from ctchelpers import ROOT

EXAMPLES = ROOT / "examples"

#: A user's project: a set-up whose only finding is a warning (raw logits, CTC021), and a pyproject.toml
#: whose [tool.ctcdoctor] fails on warnings, as a team's CI gate may.
RAW_LOGITS_SETUP = textwrap.dedent(
    """
    import torch
    from torch import nn
    from ctcdoctor import Setup


    def build():
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 6))  # (N, T, 8) -> raw logits (N, T, 6)
        inputs = torch.randn(4, 20, 8)
        targets = torch.tensor([[1, 2, 3], [2, 3, 4], [3, 4, 5], [4, 5, 1]])
        return Setup(model=model, loader=[(inputs, targets, torch.full((4,), 20), torch.full((4,), 3))], alphabet="abcde")
    """
)
PYPROJECT = '[tool.ctcdoctor]\nfail-on = "warning"\n\n[tool.pytest.ini_options]\naddopts = "-ra"\n'

USER_TESTS = textwrap.dedent(
    """
    from ctcdoctor.testing import assert_can_overfit, assert_ctc_ready

    EXAMPLES = {examples!r}


    def test_broken_example_is_ready():
        assert_ctc_ready(EXAMPLES + "/broken/no_blank_slot.py")


    def test_healthy_example_is_ready():
        assert_ctc_ready(EXAMPLES + "/ocr_crnn.py")


    def test_healthy_example_overfits(ctcdoctor_overfit):
        ctcdoctor_overfit(EXAMPLES + "/speech_ctc.py", steps=300)


    def test_diverging_example_overfits():
        assert_can_overfit(EXAMPLES + "/broken/overfit_diverges.py", steps=30)


    def test_a_warning_passes_the_functions_default(ctcdoctor_check):
        assert_ctc_ready("raw_logits.py")


    def test_the_fixture_fails_on_the_projects_fail_on(ctcdoctor_check):
        ctcdoctor_check("raw_logits.py")
    """
)


def run_pytest(folder: Path, *args: str, timeout: int = 240, **env: str) -> subprocess.CompletedProcess:
    """`python -m pytest` in `folder`, this environment's interpreter, none of the caller's pytest settings."""
    clean = {key: value for key, value in os.environ.items() if not key.startswith(("GITHUB_", "PYTEST_"))}
    clean.update(env)
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args], cwd=folder, env=clean,
                          capture_output=True, text=True, timeout=timeout, check=False)


@dataclass(frozen=True)
class Suite:
    done: subprocess.CompletedProcess
    outcomes: dict[str, str]
    """Test name -> passed / failed / error / skipped, from pytest's own JUnit report."""
    failures: dict[str, str]
    """Test name -> pytest's failure text (the traceback, with the `E   ` lines)."""


@pytest.fixture(scope="module")
def suite(tmp_path_factory) -> Suite:
    folder = tmp_path_factory.mktemp("user_project")
    (folder / "pyproject.toml").write_text(PYPROJECT, encoding="utf-8")
    (folder / "raw_logits.py").write_text(RAW_LOGITS_SETUP, encoding="utf-8")
    (folder / "tests").mkdir()
    (folder / "tests" / "test_ctc_gate.py").write_text(USER_TESTS.format(examples=str(EXAMPLES)), encoding="utf-8")
    done = run_pytest(folder, "--junitxml=report.xml")
    assert done.returncode in (0, 1), done.stdout + done.stderr
    outcomes, failures = {}, {}
    for case in ET.parse(folder / "report.xml").getroot().iter("testcase"):
        problem = next((child for child in case if child.tag in ("failure", "error", "skipped")), None)
        outcomes[case.get("name")] = "passed" if problem is None else problem.tag
        failures[case.get("name")] = "" if problem is None else (problem.text or "")
    return Suite(done, outcomes, failures)


def expected_codes(example: Path) -> list[str]:
    return re.findall(r"^Expected (?:overfit )?finding: (CTC\d{3})", example.read_text(encoding="utf-8"), flags=re.MULTILINE)


def test_the_suite_fails_exactly_on_the_broken_set_ups(suite):
    assert suite.outcomes == {
        "test_broken_example_is_ready": "failure",
        "test_healthy_example_is_ready": "passed",
        "test_healthy_example_overfits": "passed",
        "test_diverging_example_overfits": "failure",
        "test_a_warning_passes_the_functions_default": "passed",
        "test_the_fixture_fails_on_the_projects_fail_on": "failure",
    }, suite.done.stdout[-3000:]
    assert suite.done.returncode == 1


def _assert_rendered(text: str, codes: list[str]) -> None:
    """Each code's block as the console prints it: mark, severity, code, title; then the message and the fix."""
    for code in codes:
        info = get_code(code)
        assert info is not None
        block = re.search(rf"^E\s+✖ error   {code}  {re.escape(info.title)}\nE\s+\S.*\nE\s+fix: \S.*$", text, flags=re.MULTILINE)
        assert block, f"no rendered {code} block in:\n{text}"


def test_a_broken_example_fails_with_the_rendered_findings(suite):
    text = suite.failures["test_broken_example_is_ready"]
    codes = expected_codes(EXAMPLES / "broken" / "no_blank_slot.py")
    assert sorted(codes) == ["CTC010", "CTC014"]
    assert f"AssertionError: ctcdoctor: {EXAMPLES}/broken/no_blank_slot.py is not ready to train: 2 errors" in text
    _assert_rendered(text, codes)
    assert "27 classes" in text  # the fix names the change
    assert "\x1b[" not in text
    # The traceback stops at the user's line: ctcdoctor's own frames are hidden (__tracebackhide__).
    assert "assert_ctc_ready(EXAMPLES" in text and "testing.py" not in text


def test_a_model_that_cannot_overfit_fails_with_the_findings_and_the_summary(suite):
    text = suite.failures["test_diverging_example_overfits"]
    assert expected_codes(EXAMPLES / "broken" / "overfit_diverges.py") == ["CTC072"]
    _assert_rendered(text, ["CTC072"])
    assert "cannot overfit sample 0: CTC072" in text and "✖ did not fit (CTC072) sample 0" in text


def test_the_fixture_reads_the_projects_settings(suite):
    text = suite.failures["test_the_fixture_fails_on_the_projects_fail_on"]
    assert "1 warning at or above fail_on='warning' (CTC021)" in text
    assert re.search(r"^E\s+▲ warning CTC021  ", text, flags=re.MULTILINE), text


def test_the_failure_shown_in_docs_ci_md_is_what_pytest_prints(suite):
    page = (ROOT / "docs" / "ci.md").read_text(encoding="utf-8").split("\n## pytest\n", 1)[1]
    (shown,) = re.findall(r"```text\n(.*?)```", page.split("\n## ", 1)[0], re.DOTALL)

    def error_lines(text: str) -> list[str]:
        text = re.sub(r"checks in [0-9.]+ s", "checks in _ s", text)
        return [line.rstrip() for line in text.splitlines() if line.startswith("E ") or line == "E"]

    printed = suite.failures["test_broken_example_is_ready"].replace(f"{EXAMPLES}/broken/no_blank_slot.py", "train.py:build")
    assert len(error_lines(shown)) > 10 and error_lines(shown) == error_lines(printed)


# ----------------------------------------------------------------------------- the plugin itself


def test_the_plugin_is_registered_for_pytest():
    (plugin,) = [point for point in entry_points(group="pytest11") if point.name == "ctcdoctor"]
    assert plugin.value == "ctcdoctor.integrations.pytest_plugin"


LIGHT_TEST = textwrap.dedent(
    """
    import sys

    HEAVY = ("torch", "numpy", "rich", "typer", "matplotlib", "ctcdoctor.engine", "ctcdoctor.testing")


    def test_nothing_heavy_is_imported_before_a_fixture_is_used(request):
        assert request.config.pluginmanager.has_plugin("ctcdoctor.integrations.pytest_plugin")
        assert [name for name in HEAVY if name in sys.modules] == []
    """
)


def test_the_plugin_imports_nothing_heavy_at_start_up(tmp_path):
    """pytest imports every installed plugin in every session of every project: ours must cost nothing there.

    Other installed plugins are switched off, so that what is measured is ours alone.
    """
    (tmp_path / "pytest.ini").write_text("[pytest]\n", encoding="utf-8")
    (tmp_path / "test_light.py").write_text(LIGHT_TEST, encoding="utf-8")
    done = run_pytest(tmp_path, "-p", "ctcdoctor.integrations.pytest_plugin", "-W", "error", "-q",
                      PYTEST_DISABLE_PLUGIN_AUTOLOAD="1")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 passed" in done.stdout and "warning" not in done.stdout.lower()


def test_the_fixtures_are_listed_with_their_documentation(tmp_path):
    (tmp_path / "pytest.ini").write_text("[pytest]\n", encoding="utf-8")
    done = run_pytest(tmp_path, "--fixtures", "-q")
    assert done.returncode in (0, 5), done.stdout + done.stderr  # 5: no tests collected
    for name in ("ctcdoctor_check", "ctcdoctor_overfit"):
        assert re.search(rf"^{name} -- .*pytest_plugin.py:\d+$", done.stdout, flags=re.MULTILINE), done.stdout


UNLOADABLE_TESTS = '''
from ctcdoctor.testing import assert_ctc_ready


def test_missing_spec_with_the_function():
    assert_ctc_ready("missing.py:build")


def test_missing_spec_with_the_fixture(ctcdoctor_check):
    ctcdoctor_check("missing.py:build")


def test_build_that_raises(ctcdoctor_check):
    ctcdoctor_check("raises.py:build")
'''


def test_a_spec_that_cannot_be_loaded_fails_the_users_test_with_problem_and_fix(tmp_path):
    (tmp_path / "raises.py").write_text("def build():\n    raise ValueError(\"config key 'num_classes' missing\")\n", encoding="utf-8")
    (tmp_path / "test_gate.py").write_text(UNLOADABLE_TESTS, encoding="utf-8")
    done = run_pytest(tmp_path, "-q", CI="true")  # CI: pytest repeats messages in its short summary; counted before it
    assert done.returncode == 1 and "3 failed" in done.stdout, done.stdout + done.stderr
    failures = done.stdout.split("short test summary info")[0]
    assert failures.count("ctcdoctor: could not check spec 'missing.py:build': no such file 'missing.py'\n"
                          "fix: Check the path; it is relative to the current directory.") == 2, failures
    assert failures.count("ctcdoctor: could not check spec 'raises.py:build': build() raised ValueError: "
                          "config key 'num_classes' missing\nfix: ") == 1, failures
    # A failure with its message only: no traceback through ctcdoctor's loader, no exception class names.
    assert "Traceback" not in failures and "UserInputError" not in failures and "SpecError" not in failures
    assert "direct cause" not in failures and "During handling" not in failures, failures
    assert "ctcdoctor/load" not in failures, failures
