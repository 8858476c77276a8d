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
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

from ctcdoctor.findings import Finding, Severity

CODE_PATTERN = re.compile(r"^CTC\d{3}$")


class SkipCheck(Exception):
    """Raised by a check whose inputs exist but cannot support it (no criterion to audit, unknown
    output lengths): the check is reported as skipped with this reason, never as passed.

    `applicable=False` marks the ordinary case where the set-up does not give what the check
    examines (no `Setup.criterion`, no `Setup.alphabet`): nothing went wrong, and the report says
    "not applicable" quietly. Otherwise (the default) something upstream stopped the check
    (unknown output lengths, a blank outside the classes) and the report shows it as a skip worth
    reading. A provider (`ctcdoctor.engine.provides`) may raise it too: every check that needs that
    input is skipped with the reason, and no CTC999 is made (another check reports the cause).
    """

    def __init__(self, reason: str, applicable: bool = True) -> None:
        super().__init__(reason)
        self.reason = reason
        self.applicable = applicable


@dataclass(frozen=True)
class CodeInfo:
    code: str
    severity: Severity
    title: str
    doc: str
    check: Callable[..., Any] | None = None
    """The registered check function, or None for codes raised elsewhere (overfit, runner)."""
    variants: tuple[tuple[Severity, str], ...] = ()
    """Other (severity, title) pairs the code is raised with, each explained in `doc` (CTC100 is a warning when the
    head has more classes than the tokenizer has tokens). A finding never carries a pair that is not documented."""

    @property
    def documented(self) -> tuple[tuple[Severity, str], ...]:
        """Every (severity, title) a finding of this code may carry: the main pair first."""
        return ((self.severity, self.title), *self.variants)

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


F = TypeVar("F", bound=Callable[..., Any])


def _variants(code: str, variants: tuple[tuple[str, str | None], ...], title: str) -> tuple[tuple[Severity, str], ...]:
    """(severity, title or None for the main title) pairs, parsed."""
    return tuple((Severity.parse(severity), variant or title) for severity, variant in variants)


def check(code: str, severity: str, title: str, variants: tuple[tuple[str, str | None], ...] = ()) -> Callable[[F], F]:
    """Register a check that raises `code`; its docstring documents the code.

    `variants`: other (severity, title) pairs the check raises the code with (title None: the main title), each
    explained in the docstring; `finding()` refuses any other pair.

    The check's parameters name the inputs it needs (see `ctcdoctor.measure`); a parameter
    called `context` is refused, so that a check can never reach past what it declares.
    """

    def decorate(function: F) -> F:
        if "context" in inspect.signature(function).parameters:
            raise TypeError(
                f"check {function.__name__} ({code}) takes `context`: name the measured inputs it needs instead"
            )
        _register(CodeInfo(code, Severity.parse(severity), title, inspect.getdoc(function) or "", function,
                           _variants(code, variants, title)))
        return function

    return decorate


def document(code: str, severity: str, title: str, doc: str, variants: tuple[tuple[str, str | None], ...] = ()) -> None:
    """Register a code raised outside the check registry (by `overfit`, or by the runner); `variants` as for `check`."""
    _register(CodeInfo(code, Severity.parse(severity), title, inspect.cleandoc(doc), variants=_variants(code, variants, title)))


def finding(
    code: str,
    message: str,
    hint: str = "",
    evidence: dict[str, Any] | None = None,
    *,
    severity: str | None = None,
    title: str | None = None,
    consequence_of: str | None = None,
) -> Finding:
    """Build a finding for a registered code, taking its title and severity from the registry.

    `consequence_of` names the code of a finding that explains this one (CTC023 NaN outputs after
    CTC040 NaN inputs): it goes into `evidence["consequence_of"]`, the report lists the cause
    first and marks this one "(consequence of CTC040)". Pass it only when the check has measured
    that the cause accounts for what it found (the same samples), not merely that both fired.
    """
    if code not in _CODES:
        load_builtin()
    info = _CODES[code]
    evidence = dict(evidence or {})
    if consequence_of:
        evidence["consequence_of"] = consequence_of
    return Finding(
        code=code,
        severity=Severity.parse(severity) if severity else info.severity,
        title=title or info.title,
        message=message,
        hint=hint,
        evidence=evidence,
    )


def consequence_of(item: Finding) -> str | None:
    """The code a finding is marked as a consequence of, if any."""
    cause = item.evidence.get("consequence_of") if isinstance(item.evidence, dict) else None
    return str(cause) if cause else None


#: Modules that document codes raised outside the checks (with `document`), next to the code raising them.
DOCUMENTING_MODULES = ("ctcdoctor.engine", "ctcdoctor.overfit.diagnose", "ctcdoctor.training.rules", "ctcdoctor.training.rules.outputs")

_loaded = False


def load_builtin() -> None:
    """Import every module of `ctcdoctor.checks` and the modules that document other codes."""
    global _loaded
    if _loaded:
        return
    import ctcdoctor.checks as package

    for module in pkgutil.iter_modules(package.__path__):
        if not module.name.startswith("_"):
            importlib.import_module(f"{package.__name__}.{module.name}")
    for name in DOCUMENTING_MODULES:
        importlib.import_module(name)
    _loaded = True


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


def unknown_codes(prefixes: Iterable[str]) -> list[str]:
    """The codes or prefixes that match no registered code (a typo such as CTC9999 or CTC0O1)."""
    known = [info.code for info in all_codes()]
    return [prefix for prefix in prefixes if not any(code.startswith(prefix.upper()) for code in known)]


def select_checks(select_prefixes: Iterable[str] = (), ignore_prefixes: Iterable[str] = ()) -> list[CodeInfo]:
    chosen = list(select_prefixes)
    ignored = list(ignore_prefixes)
    selected = []
    for info in checks():
        if chosen and not matches(info.code, chosen):
            continue
        if ignored and matches(info.code, ignored):
            continue
        selected.append(info)
    return selected


def sort_findings(findings: Iterable[Finding]) -> tuple[Finding, ...]:
    """Worst first; within a severity, root causes before the findings marked as their consequences."""
    return tuple(sorted(findings, key=lambda item: (-item.severity.rank, consequence_of(item) is not None, item.code)))


def apply_ignore(findings: Iterable[Finding], ignore_prefixes: Iterable[str]) -> list[Finding]:
    ignored = list(ignore_prefixes)
    return [item for item in findings if not (ignored and matches(item.code, ignored))]
