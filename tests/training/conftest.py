"""Fixtures shared by the training tests."""
from __future__ import annotations

import builtins
import sys

import pytest


@pytest.fixture()
def without_tensorboard(monkeypatch):
    """Imports of tensorboard fail, as on a machine without the `tensorboard` extra."""
    real_import = builtins.__import__

    def no_tensorboard(name, *args, **kwargs):
        if name.startswith("tensorboard"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_tensorboard)
    for name in [module for module in sys.modules if module.startswith("tensorboard")]:
        monkeypatch.delitem(sys.modules, name)
