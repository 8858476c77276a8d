"""`ctcdoctor.testing`: the assertions a user's test suite calls, on tiny in-memory set-ups and modules.

The end-to-end run of a user's suite through pytest (and the plugin's fixtures) is in test_pytest_plugin.py.
"""
from __future__ import annotations

import re
import sys
import textwrap

import pytest
from typer.testing import CliRunner

import ctcdoctor
from ctcdoctor.cli import app
from ctcdoctor.errors import UserInputError
from ctcdoctor.findings import Severity
from ctcdoctor.integrations.pytest_plugin import CHECK_SETTINGS, OVERFIT_SETTINGS, _with_settings
from ctcdoctor.testing import assert_can_overfit, assert_ctc_ready, render_text
from ctchelpers import healthy_setup

# A per-frame MLP over random features (as in test_overfit.py): memorises a sample in ~100 Adam steps at 1e-2.
USER_MODULE = textwrap.dedent(
    '''
    import torch
    from torch import nn
    from ctcdoctor import Setup

    class FrameMLP(nn.Module):
        def __init__(self, stride=1, head="log_softmax"):
            super().__init__()
            self.stride, self.head = stride, head
            self.body = nn.Sequential(nn.Linear(8, 32), nn.Tanh())
            self.fc = nn.Linear(32, 6)

        def forward(self, x):                      # x: (N, T, F) -> (N, T, C)
            out = self.fc(self.body(x[:, :: self.stride]))
            return out.softmax(-1) if self.head == "softmax" else out.log_softmax(-1)

    def batches():
        g = torch.Generator().manual_seed(0)
        x = torch.randn(8, 16, 8, generator=g)
        y = torch.randint(1, 6, (8, 4), generator=g)
        y[:, 1] = y[:, 0] % 5 + 1                   # no adjacent repeats in the first two labels
        return [(x[i:i + 4], y[i:i + 4], torch.full((4,), 16), torch.full((4,), 4)) for i in (0, 4)]

    def setup(make, optimizer=lambda p: torch.optim.Adam(p, lr=1e-2)):
        torch.manual_seed(0)  # before the model is made: every run reports the same numbers
        return Setup(model=make(), loader=batches(), alphabet="abcde", optimizer=optimizer)

    def build():
        return setup(FrameMLP)

    def build_softmax():
        # BUG: probabilities where CTC needs log-probabilities (CTC020).
        return setup(lambda: FrameMLP(head="softmax"))

    def build_infeasible():
        # BUG: the model keeps every 8th frame: 2 frames for 4 labels (CTC001).
        return setup(lambda: FrameMLP(stride=8))

    def build_huge_lr():
        return setup(FrameMLP, lambda p: torch.optim.SGD(p, lr=1e4))
    '''
)


@pytest.fixture()
def module(write_module):
    return write_module("ctcdoctor_user_gate.py", USER_MODULE)


def failure(call, *args, **kwargs) -> str:
    with pytest.raises(AssertionError) as raised:
        call(*args, **kwargs)
    assert type(raised.value) is AssertionError  # what pytest shows as "AssertionError: ...", nothing of ours
    return str(raised.value)


# ----------------------------------------------------------------------------- assert_ctc_ready


def test_a_ready_setup_returns_the_report_and_prints_nothing(capsys):
    report = assert_ctc_ready(healthy_setup())
    assert report.command == "check" and report.findings == () and report.checks
    assert report.spec == "Setup(TinyCTC)"  # an in-memory set-up is named by its model in messages
    assert capsys.readouterr() == ("", "")


def test_a_broken_setup_fails_with_every_failing_finding_rendered(capsys):
    setup = healthy_setup(head="softmax")
    expected = ctcdoctor.check(setup).findings
    assert [finding.code for finding in expected] == ["CTC020"]
    text = failure(assert_ctc_ready, setup)
    head, blank, *_ = text.splitlines()
    assert head == "ctcdoctor: Setup(TinyCTC) is not ready to train: 1 error at or above fail_on='error' (CTC020)"
    assert blank == ""
    for finding in expected:
        assert f"✖ error   {finding.code}  {finding.title}" in text
        assert finding.message in text and f"fix: {finding.hint}" in text
    assert "\x1b[" not in text  # no colour codes in a test log
    assert capsys.readouterr() == ("", "")


def test_the_message_is_the_text_report_of_ctcdoctor_check(module):
    spec = f"{module}:build_softmax"
    text = failure(assert_ctc_ready, spec)
    cli = CliRunner().invoke(app, ["check", spec])
    assert cli.exit_code == 1, cli.output

    def timeless(report: str) -> str:
        return re.sub(r"checks in [0-9.]+ s", "checks in _ s", report.strip())

    assert timeless(text.split("\n\n", 1)[1]) == timeless(cli.stdout)
    assert "CTC020" in text


def test_fail_on_sets_the_threshold():
    setup = healthy_setup(head="raw")  # raw logits: one warning, CTC021
    report = assert_ctc_ready(setup)
    assert [(finding.code, finding.severity) for finding in report.findings] == [("CTC021", Severity.WARNING)]
    for threshold in ("warning", Severity.WARNING, "INFO"):
        assert "1 warning at or above" in failure(assert_ctc_ready, setup, fail_on=threshold, select=["CTC02"])
    with pytest.raises(ValueError, match="fail_on='fatal'"):
        assert_ctc_ready(setup, fail_on="fatal")


def test_check_options_reach_the_checks():
    report = assert_ctc_ready(healthy_setup(head="softmax"), ignore=["CTC020"])
    assert "CTC020" not in {finding.code for finding in report.findings}
    report = assert_ctc_ready(healthy_setup(), select=["CTC01"], max_batches=1)
    assert {result.code[:5] for result in report.checks} == {"CTC01"}
    with pytest.raises(TypeError):
        assert_ctc_ready(healthy_setup(), fali_on="warning")  # a typo is not silently ignored


def test_a_model_and_loader_pair_is_accepted():
    setup = healthy_setup(head="softmax")
    text = failure(assert_ctc_ready, (setup.model, setup.loader))
    assert text.startswith("ctcdoctor: (TinyCTC, list) is not ready to train") and "CTC020" in text


def test_a_spec_that_cannot_be_loaded_fails_with_its_problem_and_fix(tmp_path, monkeypatch):
    spec = str(tmp_path / "missing.py")
    # Under pytest: pytest.fail(..., pytrace=False), the problem and the fix, no traceback through the loader.
    with pytest.raises(pytest.fail.Exception) as raised:
        assert_ctc_ready(spec)
    assert str(raised.value) == (f"ctcdoctor: could not check spec {spec!r}: no such file {spec!r}\n"
                                 "fix: Check the path; it is relative to the current directory.")
    assert raised.value.pytrace is False
    with pytest.raises(pytest.fail.Exception, match="could not check spec .*missing.py"):
        assert_can_overfit(spec)
    # Outside pytest (unittest, a script): an AssertionError with the same text, chained to the UserInputError.
    monkeypatch.delitem(sys.modules, "pytest")
    with pytest.raises(AssertionError) as plain:
        assert_ctc_ready(spec)
    assert str(plain.value).startswith("ctcdoctor: could not check spec") and isinstance(plain.value.__cause__, UserInputError)


# ----------------------------------------------------------------------------- assert_can_overfit


def test_a_healthy_model_overfits_and_the_report_holds_the_result(module, capsys):
    report = assert_can_overfit(f"{module}:build", steps=400, lr=2e-2, seed=1)
    assert report.command == "overfit" and report.result is not None
    assert report.result["fitted"] is True and 0 < report.result["steps"] < 400
    assert (report.result["lr"], report.result["seed"]) == (2e-2, 1)
    assert capsys.readouterr() == ("", "")


def test_a_diverging_model_fails_with_the_findings_and_the_overfit_summary(module):
    text = failure(assert_can_overfit, f"{module}:build_huge_lr", steps=60, clip=0.0)
    lines = text.splitlines()
    assert lines[0].startswith(f"ctcdoctor: {module}:build_huge_lr cannot overfit sample 0: CTC072 ")
    assert "✖ error   CTC072  " in text and "fix: " in text
    assert "✖ did not fit (CTC072) sample 0" in text  # the overfit summary, as `ctcdoctor overfit` prints it
    assert lines[-1].startswith(f"ctcdoctor overfit {module}:build_huge_lr --sample 0 --steps 60 ")
    assert "\x1b[" not in text


def test_a_static_error_fails_before_training(module):
    text = failure(assert_can_overfit, f"{module}:build_infeasible", sample=[1, 2], steps=50)
    assert "cannot overfit samples 1, 2: CTC001 " in text.splitlines()[0]
    assert "overfit not run on samples 1, 2" in text and "✖ error   CTC001  " in text


def test_overfit_arguments_reach_the_run(module):
    text = failure(assert_can_overfit, f"{module}:build", steps=3)  # too few steps to fit: CTC070
    assert "CTC070" in text.splitlines()[0] and "in 3 steps" in text
    with pytest.raises(TypeError):
        assert_can_overfit(f"{module}:build", stepz=3)


def test_render_text_is_plain_and_unwrapped():
    report = ctcdoctor.check(healthy_setup(head="softmax"))
    text = render_text(report)
    finding = report.findings[0]
    assert f"    {finding.message}" in text.splitlines()  # one line however long, indented as in the terminal
    assert all(line == line.rstrip() for line in text.splitlines())


# ----------------------------------------------------------------------------- the fixtures' settings


def test_fixtures_take_the_settings_of_the_nearest_pyproject_and_arguments_win(tmp_path):
    project = tmp_path / "project"
    project.mkdir()
    (project / "pyproject.toml").write_text(
        '[tool.ctcdoctor]\nfail-on = "warning"\nignore = ["CTC080"]\ndevice = "cpu"\nmax-batches = 1\n', encoding="utf-8"
    )
    spec = str(project / "train.py")
    options = _with_settings(spec, tmp_path, CHECK_SETTINGS, {})
    assert options == {"fail_on": Severity.WARNING, "select": (), "ignore": ("CTC080",), "max_batches": 1,
                       "scan_batches": 32, "device": "cpu"}
    assert _with_settings(spec, tmp_path, CHECK_SETTINGS, {"fail_on": "error"})["fail_on"] == "error"
    assert _with_settings(spec, tmp_path, OVERFIT_SETTINGS, {}) == {"device": "cpu"}
    # An in-memory set-up has no file: pytest's root folder decides.
    assert _with_settings(healthy_setup(), project, OVERFIT_SETTINGS, {}) == {"device": "cpu"}
