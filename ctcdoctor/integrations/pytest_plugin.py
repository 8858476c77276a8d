"""The pytest plugin (entry point `pytest11: ctcdoctor`): the gate as fixtures in your own test suite.

```python
def test_ctc_setup(ctcdoctor_check):
    ctcdoctor_check("train.py:build")


def test_overfits_one_sample(ctcdoctor_overfit):
    ctcdoctor_overfit("train.py:build", steps=300)
```

The fixtures are `ctcdoctor.testing.assert_ctc_ready` and `assert_can_overfit` with your project's
`[tool.ctcdoctor]` settings (fail-on, select, ignore, max-batches, scan-batches, device) applied as
the command line applies them: from the pyproject.toml nearest the spec's file, else the one of
pytest's root folder; keyword arguments win. So `pytest` and `ctcdoctor check` in CI gate on the
same rules.

pytest imports every installed plugin at the start of every session, also in projects that never
use ctcdoctor: this module imports only pytest and the typing names, and ctcdoctor's checks (with
torch) are imported when a fixture is first called. It defines no command-line option: the
settings live in `[tool.ctcdoctor]`, where `ctcdoctor check` reads them too.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:  # pragma: no cover
    from ctcdoctor.findings import Report

#: `[tool.ctcdoctor]` settings that each fixture passes on (keyword names of the testing API).
CHECK_SETTINGS = ("fail_on", "select", "ignore", "max_batches", "scan_batches", "device")
OVERFIT_SETTINGS = ("device",)


@pytest.fixture
def ctcdoctor_check(request: pytest.FixtureRequest) -> Callable[..., Report]:
    """`ctcdoctor_check(spec_or_setup, **options) -> Report`: fail the test with the rendered
    findings when the CTC set-up has a finding at or above fail-on.

    `ctcdoctor.testing.assert_ctc_ready` with the project's `[tool.ctcdoctor]` settings;
    keyword arguments (`fail_on`, `select`, `ignore`, `max_batches`, `scan_batches`, `device`)
    override them.
    """
    root = request.config.rootpath

    def check(spec_or_setup: Any, **options: Any) -> Report:
        __tracebackhide__ = True
        from ctcdoctor.testing import assert_ctc_ready

        return assert_ctc_ready(spec_or_setup, **_with_settings(spec_or_setup, root, CHECK_SETTINGS, options))

    return check


@pytest.fixture
def ctcdoctor_overfit(request: pytest.FixtureRequest) -> Callable[..., Report]:
    """`ctcdoctor_overfit(spec_or_setup, sample=0, steps=None, **options) -> Report`: fail the
    test with the findings and the overfit summary when a copy of the model cannot memorise the
    sample.

    `ctcdoctor.testing.assert_can_overfit` with the project's `[tool.ctcdoctor]` device; keyword
    arguments (`lr`, `seed`, `device`, ...) as for that function.
    """
    root = request.config.rootpath

    def overfit(spec_or_setup: Any, sample: Any = 0, steps: int | None = None, **options: Any) -> Report:
        __tracebackhide__ = True
        from ctcdoctor.testing import assert_can_overfit

        configured = _with_settings(spec_or_setup, root, OVERFIT_SETTINGS, options)
        return assert_can_overfit(spec_or_setup, sample, steps, **configured)

    return overfit


def _with_settings(spec_or_setup: Any, root: Path, names: tuple[str, ...], options: dict[str, Any]) -> dict[str, Any]:
    """The settings `names` as `[tool.ctcdoctor]` resolves them (defaults where unset), `options` on top.

    A `[tool.ctcdoctor]` table ctcdoctor cannot use (exit 2 on the command line) fails the test with its problem and
    fix, as a spec that cannot be loaded does (`ctcdoctor.testing`), not with a traceback."""
    __tracebackhide__ = True
    from ctcdoctor.config import resolve_settings, spec_folder
    from ctcdoctor.errors import UserInputError

    folder = spec_folder(spec_or_setup) if isinstance(spec_or_setup, str) else None
    problem = ""
    try:
        settings = resolve_settings(folder, root)
    except UserInputError as error:
        problem = f"ctcdoctor: could not read the settings: {error.message}" + (f"\nfix: {error.hint}" if error.hint else "")
    if problem:  # outside the except block: pytest shows no chain of exceptions
        pytest.fail(problem, pytrace=False)
    return {**{name: getattr(settings, name) for name in names}, **options}
