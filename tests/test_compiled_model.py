"""A spec that returns a torch.compile'd model is checked and overfit as the module it wraps: the same parameters
and forward, without Dynamo recompiling for every probe (27 s instead of about 4 s for the bundled CRNN), and the
user's Setup is left as built."""
from __future__ import annotations

import sys
from pathlib import Path

from typer.testing import CliRunner

from ctcdoctor.cli import app
from ctcdoctor.load.spec import load_setup

ROOT = Path(__file__).resolve().parents[1]

SPEC = f'''
import sys
sys.path.insert(0, {str(ROOT / "examples")!r})
import torch
import ocr_crnn

BUILT = []

def build():
    setup = ocr_crnn.build()
    setup.model = torch.compile(setup.model, backend="eager")
    BUILT.append(setup)
    return setup
'''


def test_the_compiled_module_is_checked_as_the_module_it_wraps(tmp_path):
    spec = tmp_path / "compiled_spec.py"
    spec.write_text(SPEC, encoding="utf-8")
    setup = load_setup(str(spec))
    assert type(setup.model).__name__ == "CRNN"
    built = _built(spec)
    assert type(built.model).__name__ == "OptimizedModule" and built.model._orig_mod is setup.model


def _built(spec: Path):
    """The Setup the spec's build() returned, as the spec module recorded it."""
    module = next(module for module in list(sys.modules.values())
                  if getattr(module, "__file__", None) == str(spec) and hasattr(module, "BUILT"))
    return module.BUILT[-1]


def test_check_passes_on_a_compiled_healthy_model(tmp_path):
    spec = tmp_path / "compiled_spec.py"
    spec.write_text(SPEC, encoding="utf-8")
    result = CliRunner().invoke(app, ["check", str(spec), "--format", "json"])
    assert result.exit_code == 0, result.output
