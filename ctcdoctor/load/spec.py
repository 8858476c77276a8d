"""Load a user's `Setup` from a spec: `package.module:function` or `path/to/file.py:function`."""
from __future__ import annotations

import contextlib
import dataclasses
import importlib
import importlib.util
import inspect
import os
import shlex
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from ctcdoctor.errors import SpecError
from ctcdoctor.load.state import script_argv
from ctcdoctor.protocol import Setup

DEFAULT_FUNCTION = "build"

EXIT_HINT = (
    "ctcdoctor imports your module and calls the function: keep sys.exit() (and argparse with required "
    "arguments) under `if __name__ == \"__main__\":`, and return the Setup instead of exiting."
)


def _exited(what: str, error: SystemExit) -> SpecError:
    """A sys.exit() in the user's module or build(): a load error (exit 2) naming the call, never
    ctcdoctor's own exit code (sys.exit(0) would read as a green run with no report)."""
    code = error.code
    shown = "" if code is None else repr(code)
    why = " (argparse exits with 2 when the arguments it requires are missing)" if code == 2 else ""
    return SpecError(f"{what} called sys.exit({shown}){why}", EXIT_HINT)


@dataclass(frozen=True)
class ParsedSpec:
    text: str
    module: str
    """A file path (ends with .py or contains a path separator) or a dotted module name."""
    function: str
    is_file: bool


def parse_spec(spec: str) -> ParsedSpec:
    text = spec.strip()
    if not text:
        raise SpecError("the spec is empty", "Pass a module and function, e.g. `ctcdoctor check mymodel:build`.")
    module, function = text, DEFAULT_FUNCTION
    # rsplit keeps Windows drive letters ("C:\\x.py") in the module part.
    head, sep, tail = text.rpartition(":")
    if sep and "/" not in tail and "\\" not in tail and not tail.endswith(".py") and (tail or head):
        module, function = head, tail or DEFAULT_FUNCTION
    if not function.isidentifier():
        raise SpecError(
            f"spec {spec!r}: {function!r} is not a function name",
            "Write the spec as `path/to/file.py:function` or `package.module:function`.",
        )
    is_file = module.endswith(".py") or os.sep in module or "/" in module
    return ParsedSpec(text, module, function, is_file)


@contextlib.contextmanager
def _importable(*folders: Path) -> Iterator[None]:
    """Make the module's folder and the working directory importable while it loads."""
    added = [str(folder) for folder in folders if str(folder) not in sys.path]
    sys.path[:0] = added
    try:
        yield
    finally:
        for folder in added:
            with contextlib.suppress(ValueError):
                sys.path.remove(folder)


def _import_file(parsed: ParsedSpec) -> ModuleType:
    path = Path(parsed.module).expanduser()
    if path.is_dir():
        hint = ("Name the Python file that defines build(), e.g. `ctcdoctor check train.py`, or a module as "
                "`package.module:build`.")
        if (path / "__init__.py").is_file():
            hint = (f"Name the file that defines build(), e.g. `{path / '__init__.py'}`, or run from {str(path.parent)!r} "
                    f"and import it as a module: `{path.name}:build`.")
        raise SpecError(f"spec {parsed.text!r} is a folder", hint)
    if not path.is_file():
        hint = "Check the path; it is relative to the current directory."
        if path.with_suffix(".py").is_file():
            hint = f"Did you mean `{path.with_suffix('.py')}`?"
        raise SpecError(f"spec {parsed.text!r}: no such file {str(path)!r}", hint)
    path = path.resolve()
    # A unique module name: two specs with the same file stem must not collide in sys.modules.
    name = f"ctcdoctor_user_{path.stem}_{uuid.uuid4().hex[:8]}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise SpecError(f"spec {parsed.text!r}: {str(path)!r} cannot be imported as Python", "Point at a .py file.")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    with _importable(path.parent, Path.cwd()), script_argv(str(path)):
        try:
            spec.loader.exec_module(module)
        except SystemExit as error:
            sys.modules.pop(name, None)
            raise _exited(f"spec {parsed.text!r}: importing {path.name}", error) from None
        except Exception as error:
            sys.modules.pop(name, None)
            hint = f"Fix the error in your module (run `python {shlex.quote(str(path))}` to see it), or use --debug for the traceback."
            if isinstance(error, ImportError) and "relative import" in str(error):
                dotted, root = _dotted_name(path)
                hint = (
                    f"The file is part of a package: run `ctcdoctor ... {dotted}:{parsed.function}` from {shlex.quote(str(root))}."
                    if dotted else "Give the module as a dotted name (package.module:function) from the package's parent folder."
                )
            raise SpecError(f"spec {parsed.text!r}: importing {path.name} raised {type(error).__name__}: {error}", hint) from error
    return module


def _dotted_name(path: Path) -> tuple[str | None, Path]:
    """`pkg/sub/mod.py` inside packages (folders with __init__.py) -> ("pkg.sub.mod", parent of pkg)."""
    parts = [path.stem]
    folder = path.parent
    while (folder / "__init__.py").is_file():
        parts.insert(0, folder.name)
        folder = folder.parent
    return (".".join(parts), folder) if len(parts) > 1 else (None, folder)


def _module_folder(dotted: str) -> Path | None:
    """The folder of `pkg.sub.mod`'s file (`pkg/sub/mod.py` or `pkg/sub/mod/__init__.py`), searched from the working
    directory and then `sys.path` without importing anything, or None (an installed or built-in module)."""
    parts = dotted.split(".")
    for root in [Path.cwd(), *(Path(entry) for entry in sys.path if entry)]:
        folder = root.joinpath(*parts[:-1])
        if (folder / f"{parts[-1]}.py").is_file():
            return folder
        if (folder / parts[-1] / "__init__.py").is_file():
            return folder / parts[-1]
    return None


def _import_module(parsed: ParsedSpec) -> ModuleType:
    """A dotted spec: as for a file, its own folder is importable while it loads (a sibling `import _common` works)."""
    folder = _module_folder(parsed.module)
    with _importable(*([folder] if folder is not None else []), Path.cwd()), script_argv(parsed.module):
        try:
            return importlib.import_module(parsed.module)
        except SystemExit as error:
            raise _exited(f"spec {parsed.text!r}: importing {parsed.module}", error) from None
        except ModuleNotFoundError as error:
            if error.name and parsed.module.startswith(error.name):
                raise SpecError(
                    f"spec {parsed.text!r}: no module named {parsed.module!r}",
                    "Run from the folder that contains it, or give a file path such as `path/to/model.py:build`.",
                ) from error
            raise SpecError(
                f"spec {parsed.text!r}: importing {parsed.module} raised ModuleNotFoundError: {error}",
                "Install the missing package, or fix the import in your module.",
            ) from error
        except Exception as error:
            raise SpecError(
                f"spec {parsed.text!r}: importing {parsed.module} raised {type(error).__name__}: {error}",
                "Fix the error in your module, or use --debug for the traceback.",
            ) from error


def as_setup(value: Any, where: str = "the set-up", function: str = "build") -> Setup:
    """A `Setup` from what `build()` returned (a Setup or a `(model, loader)` pair), validated."""
    if isinstance(value, Setup):
        setup = value
    elif isinstance(value, (tuple, list)) and len(value) == 2:
        setup = Setup(model=value[0], loader=value[1])
    else:
        raise SpecError(
            f"{where}: {function}() returned {type(value).__name__}, not a ctcdoctor.Setup or a (model, loader) tuple",
            "Return `Setup(model=model, loader=loader, ...)` or `(model, loader)`.",
        )
    setup = _framework_setup(where, _eager_model(setup))
    _validate(where, setup)
    return setup


def _eager_model(setup: Setup) -> Setup:
    """The module that does the work, checked and trained in place of its wrappers (a new Setup: the user's object
    is left as built):

    - a torch.compile'd model (an OptimizedModule, `model._orig_mod`): the same parameters and forward, without
      Dynamo recompiling for every probe and hook the checks use (27 s instead of 4 s for the bundled CRNN with the
      eager backend, 113 s instead of 9 s with inductor on a CPU), and recognised by its own class (a compiled
      `*ForCTC` is still a Hugging Face model);
    - `nn.DataParallel` / `DistributedDataParallel` (`model.module`), as training scripts wrap their model
      (deep-text-recognition-benchmark, EasyOCR): their `forward(*inputs, **kwargs)` hides the model's own
      arguments, and one process on one device runs the module alone anyway.

    Told apart by class name: importing torch._dynamo to ask isinstance costs seconds."""
    model, inner = setup.model, _unwrapped(setup.model)
    return setup if inner is model else dataclasses.replace(setup, model=inner)


_WRAPPERS = {"OptimizedModule": "_orig_mod", "DataParallel": "module", "DistributedDataParallel": "module"}


def _unwrapped(model: Any) -> Any:
    """`model` without the wrappers of `_WRAPPERS`, however they nest (DataParallel around a compiled module)."""
    while type(model).__name__ in _WRAPPERS and getattr(model, _WRAPPERS[type(model).__name__], None) is not None:
        model = getattr(model, _WRAPPERS[type(model).__name__])
    return model


def _framework_setup(where: str, setup: Setup) -> Setup:
    """A model family's conventions turned into a plain Setup: a transformers `*ForCTC` model becomes the Hugging
    Face Setup (fields set explicitly win). Nothing is imported unless the user's code loaded transformers."""
    if sys.modules.get("transformers") is None:
        return setup
    from ctcdoctor.errors import UserInputError
    from ctcdoctor.frameworks.huggingface import adopt_setup

    try:
        adopted = adopt_setup(setup)
    except UserInputError as error:
        raise SpecError(f"{where}: {error.message}", error.hint) from error
    return setup if adopted is None else adopted


def _validate(where: str, setup: Setup) -> None:
    import torch

    if not isinstance(setup.model, torch.nn.Module):
        raise SpecError(
            f"{where}: the model is a {type(setup.model).__name__}, not a torch.nn.Module",
            "Return the network itself (an nn.Module) as the model.",
        )
    if isinstance(setup.loader, (str, bytes)) or not hasattr(setup.loader, "__iter__"):
        raise SpecError(
            f"{where}: the loader is a {type(setup.loader).__name__}, which cannot be iterated over batches",
            "Return a DataLoader, or any iterable of (inputs, targets, input_lengths, target_lengths) batches.",
        )
    if not isinstance(setup.blank, int) or isinstance(setup.blank, bool) or setup.blank < 0:
        raise SpecError(f"{where}: Setup.blank is {setup.blank!r}, not a class index", "Set blank to an int >= 0.")
    if setup.layout is not None and setup.layout not in ("TNC", "NTC", "NCT"):
        raise SpecError(
            f"{where}: Setup.layout is {setup.layout!r}",
            'Use "TNC" (time first, like F.ctc_loss), "NTC" (batch first) or "NCT" (classes in the middle, as a Conv1d '
            "head gives), or None to infer it.",
        )
    if setup.batch_axis is not None and (isinstance(setup.batch_axis, bool) or setup.batch_axis not in (0, 1)):
        raise SpecError(
            f"{where}: Setup.batch_axis is {setup.batch_axis!r}",
            "Use 0 (inputs (N, T, ...), batch first) or 1 (time-major inputs (T, N, ...)), or None to find it.",
        )
    for name in ("criterion", "output_lengths", "optimizer"):
        value = getattr(setup, name)
        if value is not None and not callable(value):
            raise SpecError(f"{where}: Setup.{name} is a {type(value).__name__}, not callable", f"Pass a function as {name}, or None.")
    if setup.alphabet is not None and not isinstance(setup.alphabet, (str, list, tuple)):
        raise SpecError(
            f"{where}: Setup.alphabet is a {type(setup.alphabet).__name__}",
            "Pass a string or a sequence of symbols for the non-blank classes, in class order.",
        )


#: Suffixes of the data files `scan --manifest` reads: given as a spec, the fix is that flag.
MANIFEST_SUFFIXES = (".json", ".jsonl", ".tsv", ".txt", ".csv", ".parquet", ".arrow")


def _not_python(parsed: ParsedSpec) -> None:
    """A folder or a data file where a Python spec belongs: say what it is (a dotted name such as `data` would
    import a folder without __init__.py as an empty namespace package and report a missing build())."""
    path = Path(parsed.module).expanduser()
    if path.is_dir() and not parsed.is_file and not (path / "__init__.py").is_file():
        raise SpecError(f"spec {parsed.text!r} is a folder",
                        "Name the Python file that defines build(), e.g. `ctcdoctor check train.py`, or a module as "
                        "`package.module:build`.")
    if path.is_file() and path.suffix.lower() != ".py":
        hint = "Point at the .py file that defines build()."
        if path.suffix.lower() in MANIFEST_SUFFIXES:
            hint = (f"A manifest or label file? Scan it with `ctcdoctor scan --manifest {path} --alphabet … --frames …` "
                    "(see `ctcdoctor scan --help`); a spec is a .py file that defines build().")
        raise SpecError(f"spec {parsed.text!r}: {str(path)!r} is not a Python file", hint)


def load_setup(spec: str) -> Setup:
    """Import the spec's module, call its function, and return the validated `Setup`."""
    parsed = parse_spec(spec)
    _not_python(parsed)
    module = _import_file(parsed) if parsed.is_file else _import_module(parsed)
    function = getattr(module, parsed.function, None)
    if function is None:
        available = sorted(
            name for name, value in vars(module).items()
            if inspect.isfunction(value) and value.__module__ == module.__name__ and not name.startswith("_")
        )
        shown = ", ".join(available[:8]) or "none"
        raise SpecError(
            f"spec {parsed.text!r}: the module has no function {parsed.function!r} (functions defined there: {shown})",
            f"Define `def {parsed.function}():` returning a Setup, or name another function after the colon.",
        )
    if not callable(function):
        raise SpecError(f"spec {parsed.text!r}: {parsed.function} is not callable", "Point the spec at a function.")
    folder = Path(module.__file__).resolve().parent if module.__file__ else Path.cwd()
    try:
        inspect.signature(function).bind()
    except TypeError as error:
        raise SpecError(
            f"spec {parsed.text!r}: {parsed.function}() cannot be called without arguments ({error})",
            "ctcdoctor calls the function with no arguments: give every parameter a default.",
        ) from error
    except ValueError:
        pass  # builtins without a signature: just call them
    with _importable(folder, Path.cwd()), script_argv(module.__file__ or parsed.module):
        try:
            value = function()
        except SystemExit as error:
            raise _exited(f"spec {parsed.text!r}: {parsed.function}()", error) from None
        except Exception as error:
            raise SpecError(
                f"spec {parsed.text!r}: {parsed.function}() raised {type(error).__name__}: {error}",
                "Fix the error in your build function; use --debug for the traceback.",
            ) from error
    return as_setup(value, f"spec {parsed.text!r}", parsed.function)
