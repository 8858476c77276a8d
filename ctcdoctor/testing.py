"""Assertions for your own test suite: the ctcdoctor gate as two lines of pytest.

```python
from ctcdoctor.testing import assert_can_overfit, assert_ctc_ready


def test_ctc_setup():
    assert_ctc_ready("train.py:build")


def test_overfits_one_sample():
    assert_can_overfit("train.py:build", steps=300)
```

A failing assertion raises `AssertionError` whose message is the report `ctcdoctor check` (or
`ctcdoctor overfit`) prints in a terminal, without colour: each finding's code, title, message with
its numbers, and fix. A passing one returns the `Report`, for further assertions of your own.

These functions take only what you pass them (like `ctcdoctor.check`); the pytest fixtures of
`ctcdoctor.integrations.pytest_plugin` also read your `pyproject.toml`'s `[tool.ctcdoctor]` table,
as the command line does. A spec that cannot be loaded (a missing file, a `build()` that raises, a
loader that yields no batches: `ctcdoctor.errors.UserInputError`, exit 2 on the command line) fails
the test with a message of its own, `ctcdoctor: could not check SPEC: <problem>` then `fix: <hint>`,
and no traceback (under pytest: `pytest.fail(..., pytrace=False)`; elsewhere an `AssertionError`).
Nothing here prints; torch is imported only when a check runs.
"""
from __future__ import annotations

import dataclasses
import io
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, NoReturn

from ctcdoctor.findings import Report, Severity, count_by_severity, fails

if TYPE_CHECKING:  # pragma: no cover
    from ctcdoctor.protocol import Setup

__all__ = ["assert_ctc_ready", "assert_can_overfit", "render_text"]

#: Wide enough that no line of the report is wrapped: the message stays one greppable line per
#: sentence, as in a CI log (the command line uses the same width outside a terminal).
TEXT_WIDTH = 100_000


def assert_ctc_ready(
    spec_or_setup: str | Setup | tuple[Any, Any],
    fail_on: Severity | str = "error",
    **check_options: Any,
) -> Report:
    """Check a set-up and fail, with the findings as the message, when one reaches `fail_on`.

    `spec_or_setup` is a spec such as `"train.py:build"` (or `"path/to/train.py"`,
    `"package.module:function"`), a `ctcdoctor.Setup`, or a `(model, loader)` pair.
    `fail_on` is `"error"` (default), `"warning"` or `"info"`. `check_options` go to
    `ctcdoctor.check`: `select` and `ignore` (codes or prefixes, e.g. `ignore=["CTC080"]`),
    `max_batches`, `scan_batches`, `device`.

    Returns the `Report` when no finding reaches `fail_on` (findings below it are in
    `report.findings`). Raises `AssertionError` otherwise, whose message is the console report
    without colour; when the spec cannot be loaded, fails with its problem and fix (see the module docstring).
    """
    __tracebackhide__ = True  # pytest: show the failure at the caller's line, not in here
    import ctcdoctor
    from ctcdoctor.errors import UserInputError

    threshold = _severity(fail_on)
    _known_options(check_options, ctcdoctor.check)
    unusable: UserInputError | None = None
    try:
        report = _named(ctcdoctor.check(spec_or_setup, **check_options), spec_or_setup)
    except UserInputError as error:
        unusable = error
    if unusable is not None:  # failed outside the except block: pytest shows no chain of exceptions
        _cannot_check(spec_or_setup, unusable)
    if fails(list(report.findings), threshold):
        reached = [finding for finding in report.findings if finding.severity.rank >= threshold.rank]
        codes = ", ".join(dict.fromkeys(finding.code for finding in reached))
        head = (f"ctcdoctor: {report.spec} is not ready to train: {_counted(reached)} at or above "
                f"fail_on={threshold.value!r} ({codes})")
        raise AssertionError(f"{head}\n\n{render_text(report)}")
    return report


def _known_options(options: dict[str, Any], function: Any) -> None:
    """A misspelt option (`max_batch=2`) is a TypeError that names the options there are and the closest one."""
    import difflib
    import inspect

    known = [name for name, parameter in inspect.signature(function).parameters.items()
             if parameter.kind is inspect.Parameter.KEYWORD_ONLY]
    for name in options:
        if name not in known:
            close = difflib.get_close_matches(name, known, n=1)
            guess = f" (did you mean {close[0]!r}?)" if close else ""
            raise TypeError(f"assert_ctc_ready() got an unexpected keyword argument {name!r}{guess}; "
                            f"it takes fail_on and {', '.join(known)}")


def assert_can_overfit(
    spec_or_setup: str | Setup | tuple[Any, Any],
    sample: int | Sequence[int] = 0,
    steps: int | None = None,
    *,
    lr: float | None = None,
    seed: int | None = None,
    device: str | None = None,
    **overfit_options: Any,
) -> Report:
    """Train a copy of the model on one sample (or a few) and fail when it cannot memorise it.

    The single-sample overfit test of `ctcdoctor overfit`: the user's model is never touched (a
    deep copy trains). `sample` is the data set index (`dataset[i]` for a DataLoader), or a
    sequence of indices trained together. `steps` is the step budget (default: the command's,
    1000, extended up to 4000 while the run is still learning; a number given is fixed; fitting stops early, so the
    budget only costs a run that fails). `lr` overrides the
    learning rate, `seed` the random seed (0), `device` where the copy trains (`"cpu"`,
    `"cuda"`; default: a GPU when there is one). Other `OverfitOptions` fields may be passed by
    name (`clip=0.0`, `eval_every=5`, ...).

    Returns the `Report` of the run when the decode matched the target (`report.result` is the
    JSON result of `ctcdoctor overfit --format json`: `steps_to_fit`, `seconds_to_fit`, ...).
    Raises `AssertionError` when it did not fit (CTC070 out of budget, CTC071 collapsed to blanks,
    CTC072 diverged, or a static error such as an infeasible length that makes training
    pointless), and when the loss went negative (CTC074: not CTC's loss, even if the decode
    matched), with the findings and the overfit summary as the message.
    """
    __tracebackhide__ = True
    from ctcdoctor.errors import UserInputError
    from ctcdoctor.load.spec import as_setup, load_setup
    from ctcdoctor.overfit.extend import budget
    from ctcdoctor.overfit.result import OverfitOptions, command_line
    from ctcdoctor.overfit.train import run_overfit
    from ctcdoctor.registry import sort_findings

    samples = tuple(int(index) for index in sample) if isinstance(sample, Sequence) else (int(sample),)  # numpy ints too
    given: dict[str, Any] = {"lr": lr, "seed": seed, "device": device}
    # Unset arguments keep OverfitOptions' own defaults (auto device); the budget is the command's: steps=None extends
    # the default while the run is still learning, a given number is fixed.
    chosen = {**{key: value for key, value in given.items() if value is not None}, **budget(steps)}
    options = OverfitOptions(samples=samples, **chosen, **overfit_options)
    name = _describe(spec_or_setup)
    unusable: UserInputError | None = None
    try:
        setup = load_setup(spec_or_setup) if isinstance(spec_or_setup, str) else as_setup(spec_or_setup)
        findings, checks, result = run_overfit(setup, name, options)
    except UserInputError as error:
        unusable = error
    if unusable is not None:
        _cannot_check(spec_or_setup, unusable)
    document = result.to_dict()
    invocation = command_line(name, options, result, setup.optimizer is not None)
    report = Report("overfit", name, tuple(sort_findings(findings)), tuple(checks), result=document,
                    seconds=document.get("seconds"), invocation=invocation)
    if not result.fitted or result.diagnosis is not None:  # a fit with a negative loss is still CTC074
        titles = [f"{finding.code} {finding.title}" for finding in report.findings if finding.code == result.diagnosis]
        what = ("samples " if len(samples) > 1 else "sample ") + ", ".join(map(str, samples))
        head = f"ctcdoctor: {name} cannot overfit {what}: {titles[0] if titles else result.diagnosis or 'did not fit'}"
        raise AssertionError(f"{head}\n\n{render_text(report)}")
    return report


def _cannot_check(spec_or_setup: Any, error: Exception) -> NoReturn:
    """Fail the test for a set-up that could not be checked (exit 2 on the command line): the problem and its fix,
    as the command line prints them, without a traceback through ctcdoctor's loader."""
    __tracebackhide__ = True
    hint, message, name = getattr(error, "hint", ""), getattr(error, "message", str(error)), _describe(spec_or_setup)
    # A spec's errors name it already ("spec 'train.py:build': no such file 'train.py'").
    text = f"ctcdoctor: could not check {message if name in message else f'{name}: {message}'}" + (f"\nfix: {hint}" if hint else "")
    if "pytest" in sys.modules:
        import pytest

        pytest.fail(text, pytrace=False)
    raise AssertionError(text) from error


def render_text(report: Report) -> str:
    """The console report as plain text: the same words `ctcdoctor` prints, without colour,
    lines never wrapped, no trailing spaces."""
    from rich.console import Console

    from ctcdoctor.render.console import render_console

    buffer = io.StringIO()
    console = Console(file=buffer, width=TEXT_WIDTH, soft_wrap=True, color_system=None, force_terminal=False,
                      force_jupyter=False, highlight=False, emoji=False)
    render_console(report, console)
    return "\n".join(line.rstrip() for line in buffer.getvalue().rstrip("\n").splitlines())


def _severity(value: Severity | str) -> Severity:
    if isinstance(value, Severity):
        return value
    try:
        return Severity.parse(str(value))
    except ValueError as error:
        raise ValueError(f"fail_on={value!r}: {error}") from None


def _counted(findings: Sequence[Any]) -> str:
    counts = count_by_severity(list(findings))
    parts = [f"{count} {name}{'s' if count != 1 and name != 'info' else ''}" for name, count in counts.items() if count]
    return ", ".join(parts)


def _describe(spec_or_setup: Any) -> str:
    """How the report names the set-up: the spec as given, else the model's class."""
    if isinstance(spec_or_setup, str):
        return spec_or_setup
    if isinstance(spec_or_setup, tuple) and spec_or_setup:
        return f"({type(spec_or_setup[0]).__name__}, {type(spec_or_setup[-1]).__name__})"
    model = getattr(spec_or_setup, "model", None)
    return f"Setup({type(model).__name__})" if model is not None else type(spec_or_setup).__name__


def _named(report: Report, spec_or_setup: Any) -> Report:
    """A report on an in-memory Setup has no spec; give it a name for the message and summary line."""
    if report.spec:
        return report
    return dataclasses.replace(report, spec=_describe(spec_or_setup))
