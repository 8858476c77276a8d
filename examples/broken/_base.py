"""Healthy pieces shared by the broken examples (not an example itself).

Each module in this folder is a healthy set-up with exactly one planted mistake, so
they all reuse the models of the two healthy examples, ``examples/ocr_crnn.py`` and
``examples/speech_ctc.py``. Those files are loaded by path (they are not a package);
this module is importable as ``import _base`` because ctcdoctor puts the spec's own
folder on ``sys.path`` while it loads the spec.
"""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

from torch.utils.data import DataLoader, Dataset


def _load_example(name: str) -> ModuleType:
    """Import ``examples/<name>.py`` once per process under a private module name."""
    key = f"_ctcdoctor_example_{name}"
    if key not in sys.modules:
        path = Path(__file__).resolve().parent.parent / f"{name}.py"
        spec = importlib.util.spec_from_file_location(key, path)
        assert spec is not None and spec.loader is not None, path
        module = importlib.util.module_from_spec(spec)
        sys.modules[key] = module
        spec.loader.exec_module(module)
    return sys.modules[key]


ocr = _load_example("ocr_crnn")
speech = _load_example("speech_ctc")

CRNN = ocr.CRNN
POOLS = ocr.POOLS
ocr_output_lengths = ocr.output_lengths
ocr_criterion = ocr.criterion
SpeechCTC = speech.SpeechCTC
speech_output_lengths = speech.output_lengths
speech_criterion = speech.criterion


def loader(data: Dataset, collate_fn=None, batch_size: int = 16, **kwargs) -> DataLoader:
    """The examples' loader: fixed order, so every report is reproducible."""
    collate_fn = collate_fn or getattr(data, "collate", None)
    return DataLoader(data, batch_size=batch_size, shuffle=False, collate_fn=collate_fn, **kwargs)
