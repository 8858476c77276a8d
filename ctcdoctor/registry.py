"""The registry of finding codes and of the checks that raise them.

A check is a plain function registered with `@check(CODE, severity, title)`. Its
docstring is the code's documentation (`ctcdoctor explain CODE`, docs/checks.md), and
its parameter names say which inputs it needs: the runner passes exactly those, so a
label-only check never runs the model. The decorator returns the function unchanged,
so tests call checks directly.

Nothing here imports torch: `explain` and `--help` must start fast.
"""
from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
from dataclasses import dataclass
from typing import Any, Callable, Iterable

from ctcdoctor.findings import Finding, Severity

CODE_PATTERN = re.compile(r"^CTC\d{3}$")


@dataclass(frozen=True)
class CodeInfo:
    code: str
    severity: Severity
    title: str
    doc: str
    check: Callable[..., Any] | None = None
    """The registered check function, or None for codes raised elsewhere (overfit, runner)."""

    @property
    def check_name(self) -> str | None:
        return self.check.__name__ if self.check is not None else None

    @property
    def inputs(self) -> tuple[str, ...]:
        if self.check is None:
            return ()
        return tuple(inspect.signature(self.check).parameters)


_CODES: dict[str, CodeInfo] = {}


def _register(info: CodeInfo) -> None:
    if not CODE_PATTERN.match(info.code):
        raise ValueError(f"finding code {info.code!r} must look like CTC001")
    existing = _CODES.get(info.code)
    if existing is not None and existing.check is not info.check:
        raise ValueError(f"finding code {info.code} is registered twice")
    _CODES[info.code] = info


def check(code: str, severity: str, title: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register a check that raises `code`; its docstring documents the code."""

    def decorate(function: Callable[..., Any]) -> Callable[..., Any]:
        _register(CodeInfo(code, Severity.parse(severity), title, inspect.getdoc(function) or "", function))
        return function

    return decorate


def document(code: str, severity: str, title: str, doc: str) -> None:
    """Register a code raised outside the check registry (by `overfit`, or by the runner)."""
    _register(CodeInfo(code, Severity.parse(severity), title, inspect.cleandoc(doc)))


def finding(
    code: str,
    message: str,
    hint: str = "",
    evidence: dict[str, Any] | None = None,
    *,
    severity: str | None = None,
    title: str | None = None,
) -> Finding:
    """Build a finding for a registered code, taking its title and severity from the registry."""
    if code not in _CODES:
        load_builtin()  # codes raised outside checks (overfit, runner) live in ctcdoctor.codes
    info = _CODES[code]
    return Finding(
        code=code,
        severity=Severity.parse(severity) if severity else info.severity,
        title=title or info.title,
        message=message,
        hint=hint,
        evidence=evidence or {},
    )


def load_builtin() -> None:
    """Import every module of `ctcdoctor.checks` (and the modules that document codes)."""
    import ctcdoctor.checks as package

    for module in pkgutil.iter_modules(package.__path__):
        if not module.name.startswith("_"):
            importlib.import_module(f"{package.__name__}.{module.name}")
    importlib.import_module("ctcdoctor.codes")


def all_codes() -> list[CodeInfo]:
    load_builtin()
    return [_CODES[code] for code in sorted(_CODES)]


def get_code(code: str) -> CodeInfo | None:
    load_builtin()
    return _CODES.get(code.upper())


def checks() -> list[CodeInfo]:
    """Registered checks in code order."""
    return [info for info in all_codes() if info.check is not None]


def matches(code: str, prefixes: Iterable[str]) -> bool:
    """Selection by code prefix, as flake8 does: `CTC0` selects every code from CTC001 to CTC0 followed by two digits."""
    return any(code.startswith(prefix.upper()) for prefix in prefixes)
