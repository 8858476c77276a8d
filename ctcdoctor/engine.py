"""The engine of `check`: lazily computed inputs, and running the selected checks on them.

An input (running the model on a batch, probing the layout, one backward pass) is computed
once, on first request, and shared by every check that names it; a failure is cached too, so
a model that raises is run, and reported, once. Providers are registered with
`@provides(name)` in the modules of `ctcdoctor.measure`; adding an input never requires
touching this file.

A check that raises becomes a CTC999 finding and the others still run; a check whose inputs
could not be built is reported as skipped, with the reason.
"""
from __future__ import annotations

import copy
import dataclasses
import importlib
import pkgutil
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ctcdoctor.config import Settings
from ctcdoctor.errors import BatchError, UserInputError
from ctcdoctor.findings import CheckResult, Finding, Report
from ctcdoctor.load.limits import doing
from ctcdoctor.protocol import Setup
from ctcdoctor.registry import CodeInfo, SkipCheck, apply_ignore, document, finding, select_checks, sort_findings

_PROVIDERS: dict[str, Callable[[Context], Any]] = {}

#: What computing an input means to a user, for a --timeout message ("while probing the layout").
ACTIVITIES = {
    "batches": "reading batches from the loader",
    "runs": "running the model on the model batches",
    "layout": "probing the output layout",
    "length_model": "probing the model's output lengths",
    "criterion_audit": "calling Setup.criterion",
    "training_view": "running the model in train mode (on a copy) to see the output the loss sees",
    "init_loss": "computing the loss at initialisation",
    "gradients": "one backward pass on a copy of the model",
}


def provides(name: str) -> Callable[[Callable[[Context], Any]], Callable[[Context], Any]]:
    def decorate(function: Callable[[Context], Any]) -> Callable[[Context], Any]:
        _PROVIDERS[name] = function
        return function

    return decorate


def load_providers() -> None:
    import ctcdoctor.measure as package

    for module in pkgutil.iter_modules(package.__path__):
        importlib.import_module(f"{package.__name__}.{module.name}")


@dataclass(frozen=True)
class Options:
    max_batches: int = 2
    """How many batches the model is run on."""
    scan_batches: int = 32
    """How many batches the label and length checks read (at least max_batches)."""
    device: str | None = None
    """Run the model on this device (on a copy of the model); None keeps it where it is."""


class InputUnavailable(Exception):
    """An input could not be computed; carries the original exception."""

    def __init__(self, name: str, error: BaseException) -> None:
        super().__init__(f"{name}: {type(error).__name__}: {error}")
        self.name = name
        self.error = error


class Context:
    """Everything the checks may ask for about one user set-up."""

    def __init__(self, setup: Setup, options: Options | None = None, overrides: dict[str, Any] | None = None) -> None:
        load_providers()
        self.setup = setup
        self.options = options or Options()
        self._values: dict[str, Any] = {"setup": setup, "options": self.options, **(overrides or {})}
        self._errors: dict[str, InputUnavailable] = {}
        self._local: dict[str, Callable[[], Any]] = {}
        self._model: Any = None

    def put(self, name: str, compute: Callable[[], Any]) -> None:
        """Compute input `name` this way in this context only (lazily, once), instead of its provider."""
        self._local[name] = compute

    @property
    def model(self) -> Any:
        """The user's model, or a copy of it on `--device`; never moved in place."""
        if self._model is None:
            from ctcdoctor.load.device import resolve_device

            model = self.setup.model
            if self.options.device:
                wanted = resolve_device(self.options.device)
                current = next(iter(model.parameters()), None)
                if current is None or current.device != wanted:
                    model = copy.deepcopy(model).to(wanted)
            self._model = model
        return self._model

    def known(self, name: str) -> Any:
        """Input `name` if it has been computed (successfully), else None; computes nothing."""
        return self._values.get(name)

    def get(self, name: str) -> Any:
        if name in self._values:
            return self._values[name]
        if name in self._errors:
            raise self._errors[name]
        local = self._local.get(name)
        provider = _PROVIDERS.get(name)
        if local is None and provider is None:
            raise KeyError(f"no input named {name!r}; known inputs: {sorted(set(_PROVIDERS) | set(self._values))}")
        try:
            with doing(ACTIVITIES.get(name, f"computing {name}")):
                value = local() if local is not None else provider(self)  # type: ignore[misc]
        except UserInputError:
            # Not a batch, an empty loader: the command ends with exit 2, not a finding.
            raise
        except SystemExit as error:
            # sys.exit() in the user's dataset, collate or forward: a usage error naming it, never our exit code.
            raise UserInputError(
                f"your code called sys.exit({'' if error.code is None else repr(error.code)}) while ctcdoctor was "
                f"{ACTIVITIES.get(name, f'computing {name}')}",
                "Raise an exception instead of calling sys.exit() in the model, dataset or collate function.",
            ) from None
        except InputUnavailable as error:
            # An input that depends on a failed input fails for the same reason: report the root once.
            self._errors[name] = error
            raise
        except Exception as error:
            self._errors[name] = InputUnavailable(name, error)
            raise self._errors[name] from error
        self._values[name] = value
        return value

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return self.get(name)


def _crash(info: CodeInfo, error: BaseException) -> Finding:
    return finding(
        "CTC999",
        f"check {info.check_name} ({info.code}) raised {type(error).__name__}: {error}",
        "This is a bug in ctcdoctor or in an assumption it makes about your set-up: "
        "run with --debug and report the traceback.",
        {"check": info.check_name, "code": info.code, "exception": type(error).__name__,
         "traceback": traceback.format_exception_only(type(error), error)[-1].strip()},
    )


def _unavailable(error: InputUnavailable, needed_by: list[str]) -> Finding:
    """One finding for an input that could not be built, naming the checks it took down."""
    cause = error.error
    model_failed = str(cause).startswith("model(inputs) failed")
    what = str(cause) if model_failed else f"could not compute {error.name!r}: {type(cause).__name__}: {cause}"
    return finding(
        "CTC999",
        f"{what}. {len(needed_by)} {'check that needs it was' if len(needed_by) == 1 else 'checks that need it were'} skipped "
        f"({', '.join(item.split()[0] for item in needed_by)}).",
        "Run one batch through the model by hand (model(inputs)) and fix the error, then run ctcdoctor again."
        if model_failed else
        "Fix the error above in your model or data, then run again; if it comes from ctcdoctor, report it with --debug.",
        {"input": error.name, "exception": type(cause).__name__, "skipped": needed_by},
        title="the model failed on a batch" if model_failed else f"could not compute {error.name}",
    )


def _skip_reason(error: InputUnavailable) -> str:
    cause = error.error
    text = str(cause) if str(cause).startswith("model(inputs) failed") else f"{type(cause).__name__}: {cause}"
    return f"input {error.name!r} unavailable: {text}"


def _run_one(context: Context, info: CodeInfo, failed_inputs: dict[str, tuple[InputUnavailable, list[str]]],
             findings: list[Finding]) -> CheckResult:
    """One check on the inputs it names: its findings go to `findings`; an input that failed is remembered."""
    started = time.perf_counter()
    status, reason, applicable = "passed", "", True
    try:
        with doing(f"running check {info.code} ({info.check_name})", purpose=f"check {info.code}"):
            arguments = {name: context.get(name) for name in info.inputs}
            produced = list(info.check(**arguments) or [])  # type: ignore[misc]
        findings.extend(produced)
        if produced:
            status = "findings"
    except UserInputError:
        raise
    except SkipCheck as skip:
        status, reason, applicable = "skipped", skip.reason, skip.applicable
    except InputUnavailable as error:
        status = "skipped"
        if isinstance(error.error, SkipCheck):
            # A provider said its input cannot be measured (an empty output): the check that reports why is elsewhere.
            reason, applicable = error.error.reason, error.error.applicable
        else:
            reason = _skip_reason(error)
            failed_inputs.setdefault(str(error), (error, []))[1].append(f"{info.code} ({info.check_name})")
    except Exception as error:
        status, reason = "crashed", f"{type(error).__name__}: {error}"
        findings.append(_crash(info, error))
    return CheckResult(info.check_name or info.code, info.code, status, time.perf_counter() - started, reason, applicable)


def run_checks(
    context: Context,
    selected: list[CodeInfo],
    on_check: Callable[[CodeInfo], None] | None = None,
) -> tuple[list[Finding], list[CheckResult]]:
    """Run each selected check on the inputs it names; never raises for a check's own failure."""
    findings: list[Finding] = []
    results: list[CheckResult] = []
    failed_inputs: dict[str, tuple[InputUnavailable, list[str]]] = {}
    for info in selected:
        if on_check is not None:
            on_check(info)
        results.append(_run_one(context, info, failed_inputs, findings))
    for unavailable, needed_by in failed_inputs.values():
        findings.append(_unavailable(unavailable, needed_by))
    return findings, results


def check_setup(
    setup: Setup,
    settings: Settings | None = None,
    spec: str = "",
    on_check: Callable[[CodeInfo], None] | None = None,
) -> Report:
    """Run the selected checks on a loaded set-up and return the report (findings sorted, worst first)."""
    settings = settings or Settings()
    started = time.perf_counter()
    selected = select_checks(settings.select, settings.ignore)
    if not selected:
        # A gate that runs nothing must not pass silently.
        raise UserInputError(
            f"--select {','.join(settings.select) or '-'} --ignore {','.join(settings.ignore) or '-'} leaves no check to run",
            "See `ctcdoctor codes`; CTC07x are raised by `ctcdoctor overfit`, CTC090 by `ctcdoctor labels`.",
        )
    options = Options(max_batches=settings.max_batches, scan_batches=settings.scan_batches, device=settings.device)
    if options.device:
        from ctcdoctor.load.device import resolve_device

        resolve_device(options.device)
    from ctcdoctor.load.state import CHECK_THREADS, seeded, torch_threads

    # The caller's random state and thread count come back afterwards (the loader may shuffle with
    # the global generator); seeded here too, so that a Setup built by the caller is checked the same each time.
    with seeded(settings.seed), torch_threads(CHECK_THREADS):
        context = Context(setup, options)
        # Read the batches up front: a loader that yields non-batches is a usage error (exit 2), not a finding.
        try:
            context.get("batches")
        except BatchError as error:
            raise BatchError(f"spec {spec!r}: {error.message}" if spec else error.message, error.hint) from error
        findings, results = run_checks(context, selected, on_check)
    findings = apply_ignore(findings, settings.ignore)
    from ctcdoctor.measure.summary import setup_summary

    return Report("check", spec, sort_findings(findings), tuple(results), result=setup_summary(context),
                  seconds=time.perf_counter() - started,
                  config=str(settings.config_path) if settings.config_path else None, seed=settings.seed)


def check_spec(spec: str, settings: Settings, on_check: Callable[[CodeInfo], None] | None = None) -> Report:
    """Load `spec` (`path/to/file.py[:build]` or `package.module[:build]`) and check it.

    torch, numpy and random are seeded with `settings.seed` before the module is imported, so
    the same seed builds the same model and the same batches; the caller's states come back after.
    """
    from ctcdoctor.load.spec import load_setup
    from ctcdoctor.load.state import seeded

    started = time.perf_counter()
    if settings.device:
        from ctcdoctor.load.device import resolve_device

        resolve_device(settings.device)
    # build() runs with the caller's thread count (it is the user's code); the checks set their own.
    with seeded(settings.seed):
        with doing(f"loading {spec}"):
            setup = load_setup(spec)
        report = check_setup(setup, settings, spec, on_check)
    # Wall time includes loading the spec, which the per-check timings do not.
    return dataclasses.replace(report, seconds=time.perf_counter() - started)

document(
    "CTC999",
    "error",
    "a check crashed",
    """
    **What it means.** A check, or an input it needed (running the model on a batch,
    probing the layout), raised an exception. The finding carries the exception text;
    the other checks still ran.

    **Example.** `model(inputs)` raises `RuntimeError: mat1 and mat2 shapes cannot be
    multiplied` on batch 0: every check that needs the model output is skipped and one
    CTC999 names the exception.

    **Fix.** Read the exception in the message. If it comes from your model or data, fix
    it there (run `model(inputs)` on one batch by hand); if it comes from ctcdoctor, run
    again with `--debug` and report the traceback.
    """,
)

