"""Fixtures shared by the tests; helpers live in ctchelpers.py."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import torch

# Triton kernels run in the interpreter when there is no GPU; the variable must be set before
# triton decorates the kernels, i.e. before any test imports ctcdoctor.kernels.triton_ctc.
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")


@pytest.fixture
def write_module(tmp_path, monkeypatch):
    """Write a user module to tmp_path and return its path (cwd is tmp_path)."""
    monkeypatch.chdir(tmp_path)

    def write(name: str, source: str) -> Path:
        path = tmp_path / name
        path.write_text(source, encoding="utf-8")
        return path

    yield write
    for name in [key for key in sys.modules if key.startswith("ctcdoctor_user_")]:
        sys.modules.pop(name, None)


@pytest.fixture(scope="session")
def without_optional_dependencies():
    """ctchelpers.without_optional(), run once for the tests that read it (test_layout, frameworks/test_hf_setup,
    integrations/test_transformers_callback, kernels/test_kernels_import)."""
    from ctchelpers import without_optional

    return without_optional()
