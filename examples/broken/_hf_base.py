"""Healthy Hugging Face pieces shared by the ``hf_*`` broken examples (not an example itself).

They reuse ``examples/hf_wav2vec2.py`` (loaded by path: the examples are not a package); this
module is importable as ``import _hf_base`` because ctcdoctor puts the spec's folder on
``sys.path`` while it loads the spec.
"""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType


def _load_example(name: str) -> ModuleType:
    key = f"_ctcdoctor_example_{name}"
    if key not in sys.modules:
        path = Path(__file__).resolve().parent.parent / f"{name}.py"
        spec = importlib.util.spec_from_file_location(key, path)
        assert spec is not None and spec.loader is not None, path
        module = importlib.util.module_from_spec(spec)
        sys.modules[key] = module
        spec.loader.exec_module(module)
    return sys.modules[key]


hf = _load_example("hf_wav2vec2")
