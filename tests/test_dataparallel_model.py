"""A model wrapped in nn.DataParallel, as deep-text-recognition-benchmark's and EasyOCR's train.py wrap theirs, is
checked as the module it wraps. DataParallel's forward(*inputs, **kwargs) hid the model's own two arguments
(forward(image, text)), so every command called model(inputs) with the tuple and stopped at CTC999."""
from __future__ import annotations

import json
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


class TwoArgumentCRNN(ocr_crnn.CRNN):
    """forward(image, text) as deep-text-recognition-benchmark's Model: the text feeds only an attention decoder."""

    def forward(self, image, text):
        return super().forward(image)


def with_text(collate):
    def collate_with_text(items):
        images, targets, widths, lengths = collate(items)
        return (images, targets), targets, widths, lengths  # the inputs are forward's two arguments
    return collate_with_text


def build():
    setup = ocr_crnn.build()
    setup.model = WRAP(TwoArgumentCRNN())
    setup.loader.collate_fn = with_text(setup.loader.collate_fn)
    BUILT.append(setup)
    return setup
'''


def write_spec(tmp_path: Path, wrap: str) -> Path:
    spec = tmp_path / "dp_spec.py"
    spec.write_text(SPEC.replace("WRAP(", wrap + "("), encoding="utf-8")
    return spec


def test_check_passes_on_a_healthy_two_argument_model_in_dataparallel(tmp_path):
    spec = write_spec(tmp_path, "torch.nn.DataParallel")
    result = CliRunner().invoke(app, ["check", str(spec), "--format", "json"])
    report = json.loads(result.stdout)
    assert [item["code"] for item in report["findings"]] == [], report["findings"]
    assert result.exit_code == 0


def test_the_wrapped_module_is_checked_and_the_users_setup_is_left_as_built(tmp_path):
    spec = write_spec(tmp_path, "torch.nn.DataParallel")
    setup = load_setup(str(spec))
    assert type(setup.model).__name__ == "TwoArgumentCRNN"
    built = next(module for module in list(sys.modules.values())
                 if getattr(module, "__file__", None) == str(spec) and hasattr(module, "BUILT")).BUILT[-1]
    assert type(built.model).__name__ == "DataParallel" and built.model.module is setup.model


def test_dataparallel_around_a_compiled_model_is_unwrapped_to_the_model(tmp_path):
    spec = write_spec(tmp_path, "(lambda m: torch.nn.DataParallel(torch.compile(m, backend='eager')))")
    assert type(load_setup(str(spec)).model).__name__ == "TwoArgumentCRNN"
