"""CTC080: spiky, blank-dominated outputs."""
from __future__ import annotations

from ctcdoctor.checks.spikiness import spiky_outputs
from ctcdoctor.measure.spikiness import OutputSpikiness


def test_blank_collapsed_outputs_are_reported():
    from pathlib import Path

    import torch

    from ctcdoctor.engine import Context
    from ctcdoctor.load.spec import load_setup

    setup = load_setup(str(Path(__file__).resolve().parents[2] / "examples/ocr_crnn.py"))
    context = Context(setup)
    assert spiky_outputs(context.get("output_spikiness")) == []  # at init: near uniform
    with torch.no_grad():
        setup.model.fc.bias[0] = 20.0  # blank wins every frame, confidently
    (found,) = spiky_outputs(Context(setup).get("output_spikiness"))
    assert found.evidence["blank_ratio"] > 0.99 and found.evidence["peak_prob"] > 0.99
    assert found.severity.value == "info"


def test_thresholds():
    metrics = {"blank_ratio": 0.95, "nonblank_mass": 0.1, "spike_width": 1.0, "peak_prob": 0.79, "entropy": 0.3}
    assert spiky_outputs(OutputSpikiness(metrics, 100)) == []
    assert spiky_outputs(OutputSpikiness({**metrics, "peak_prob": 0.85}, 100))
    assert spiky_outputs(OutputSpikiness({**metrics, "blank_ratio": 0.85, "peak_prob": 0.99}, 100)) == []
