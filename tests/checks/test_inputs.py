"""CTC040-CTC042: inputs finite, varied and normalised."""
from __future__ import annotations

from ctchelpers import codes_of, healthy_setup, make_batches, run_codes

LABELS = [[1, 2], [3, 4], [2, 5], [1]]


def test_standardised_inputs_are_healthy():
    assert run_codes(healthy_setup(), ("CTC04",))[0] == []


def test_raw_pixels_are_ctc041():
    setup = healthy_setup()
    batches = make_batches([20] * 4, LABELS, scale=0.0)
    for inputs, *_ in batches:
        inputs.copy_((inputs.new_empty(inputs.shape).uniform_(0, 255)).round())
    setup.loader = batches
    (finding,) = run_codes(setup, ("CTC04",))[0]
    assert finding.code == "CTC041" and "0-255" in finding.message and "x / 255" in finding.hint


def test_very_negative_log_spectrograms_are_ctc041():
    setup = healthy_setup()
    setup.loader = make_batches([20] * 4, LABELS, scale=8.0, offset=-40.0)
    (finding,) = run_codes(setup, ("CTC04",))[0]
    assert finding.code == "CTC041" and "below zero" in finding.message


def test_nan_inputs_are_ctc040_naming_samples():
    setup = healthy_setup()
    batches = make_batches([20] * 4, LABELS)
    batches[0][0][2, 1, 3] = float("nan")
    setup.loader = batches
    findings, _ = run_codes(setup, ("CTC040",))
    (finding,) = findings
    assert finding.evidence["samples"] == [2] and finding.evidence["nan"] == 1


def test_padding_is_not_judged_but_constant_samples_are_ctc042():
    setup = healthy_setup()
    batches = make_batches([20, 10, 20, 20], LABELS)
    batches[0][0][1, :, 10:] = 123.0  # padding past sample 1's length: ignored
    batches[0][0][3].zero_()  # a silent clip
    setup.loader = batches
    findings, _ = run_codes(setup, ("CTC04",))
    assert codes_of(findings) == {"CTC042"}
    assert findings[0].evidence["samples"] == [3]
