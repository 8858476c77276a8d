"""Run the selected checks, time each, and isolate failures.

A check that raises becomes a CTC999 finding and the others still run; an input that
cannot be computed (the model raises on a batch) is reported once, and the checks that
needed it are marked skipped.
"""
from __future__ import annotations

import time
import traceback
from typing import Callable, Iterable

from ctcdoctor.context import Context, InputUnavailable
from ctcdoctor.errors import UserInputError
from ctcdoctor.findings import CheckResult, Finding, Severity
from ctcdoctor.registry import CodeInfo, checks, finding, matches


def select(select_prefixes: Iterable[str] = (), ignore_prefixes: Iterable[str] = ()) -> list[CodeInfo]:
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
    return tuple(sorted(findings, key=lambda item: (-item.severity.rank, item.code)))


def run_checks(
    context: Context,
    selected: list[CodeInfo],
    on_check: Callable[[CodeInfo], None] | None = None,
) -> tuple[list[Finding], list[CheckResult]]:
    findings: list[Finding] = []
    results: list[CheckResult] = []
    failed_inputs: dict[str, tuple[InputUnavailable, list[str]]] = {}
    for info in selected:
        if on_check is not None:
            on_check(info)
        started = time.perf_counter()
        status = "passed"
        try:
            arguments = {name: context.get(name) for name in info.inputs}
            produced = list(info.check(**arguments) or [])
            findings.extend(produced)
            if produced:
                status = "findings"
        except UserInputError:
            raise
        except InputUnavailable as error:
            status = "skipped"
            failed_inputs.setdefault(str(error), (error, []))[1].append(f"{info.code} ({info.check_name})")
        except Exception as error:
            status = "crashed"
            findings.append(
                finding(
                    "CTC999",
                    f"check {info.check_name} ({info.code}) raised {type(error).__name__}: {error}",
                    "This is a bug in ctcdoctor or in an assumption it makes about your set-up: "
                    "run with --debug and report the traceback.",
                    {"check": info.check_name, "code": info.code, "exception": type(error).__name__,
                     "traceback": traceback.format_exception_only(type(error), error)[-1].strip()},
                )
            )
        results.append(CheckResult(info.check_name or info.code, info.code, status, time.perf_counter() - started))
    for error, needed_by in failed_inputs.values():
        cause = error.error
        model_failed = str(cause).startswith("model(inputs) failed")
        what = str(cause) if model_failed else f"could not compute {error.name!r}: {type(cause).__name__}: {cause}"
        findings.append(
            finding(
                "CTC999",
                f"{what}. {len(needed_by)} checks that need it were skipped ({', '.join(item.split()[0] for item in needed_by)}).",
                "Run one batch through the model by hand (model(inputs)) and fix the error, then run ctcdoctor again."
                if model_failed else
                "Fix the error above in your model or data, then run again; if it comes from ctcdoctor, report it with --debug.",
                {"input": error.name, "exception": type(cause).__name__, "skipped": needed_by},
                title="the model failed on a batch" if model_failed else f"could not compute {error.name}",
            )
        )
    return findings, results


def apply_ignore(findings: Iterable[Finding], ignore_prefixes: Iterable[str]) -> list[Finding]:
    ignored = list(ignore_prefixes)
    return [item for item in findings if not (ignored and matches(item.code, ignored))]


def worst(findings: Iterable[Finding]) -> Severity | None:
    ranked = sorted(findings, key=lambda item: -item.severity.rank)
    return ranked[0].severity if ranked else None
