"""Lazily computed inputs that checks ask for by parameter name.

An input (running the model on a batch, probing the layout, one backward pass) is
computed once, on first request, and shared by every check that names it. A failure is
cached too, so a model that raises is run, and reported, once.

Providers are registered with `@provides(name)` in the modules of `ctcdoctor.inputs`;
adding an input never requires touching the runner or this file.
"""
from __future__ import annotations

import copy
import importlib
import pkgutil
from dataclasses import dataclass
from typing import Any, Callable, Iterator

from ctcdoctor.errors import UserInputError
from ctcdoctor.protocol import Setup

_PROVIDERS: dict[str, Callable[["Context"], Any]] = {}


def provides(name: str) -> Callable[[Callable[["Context"], Any]], Callable[["Context"], Any]]:
    def decorate(function: Callable[["Context"], Any]) -> Callable[["Context"], Any]:
        _PROVIDERS[name] = function
        return function

    return decorate


def load_providers() -> None:
    import ctcdoctor.inputs as package

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

    def __init__(self, setup: Setup, options: Options | None = None, spec: str = "") -> None:
        load_providers()
        self.setup = setup
        self.options = options or Options()
        self.spec = spec
        self._values: dict[str, Any] = {"setup": setup, "options": self.options, "context": self}
        self._errors: dict[str, InputUnavailable] = {}
        self._model = None

    @property
    def model(self):
        """The user's model, or a copy of it on `--device`; never moved in place."""
        if self._model is None:
            from ctcdoctor.devices import resolve_device

            model = self.setup.model
            if self.options.device:
                wanted = resolve_device(self.options.device)
                current = next(iter(model.parameters()), None)
                if current is None or current.device != wanted:
                    model = copy.deepcopy(model).to(wanted)
            self._model = model
        return self._model

    def get(self, name: str) -> Any:
        if name in self._values:
            return self._values[name]
        if name in self._errors:
            raise self._errors[name]
        provider = _PROVIDERS.get(name)
        if provider is None:
            raise KeyError(f"no input named {name!r}; known inputs: {sorted(set(_PROVIDERS) | set(self._values))}")
        try:
            value = provider(self)
        except UserInputError:
            # Not a batch, an empty loader: the command ends with exit 2, not a finding.
            raise
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

    def names(self) -> Iterator[str]:
        yield from sorted(set(_PROVIDERS) | set(self._values))
