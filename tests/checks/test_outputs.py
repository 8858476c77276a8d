"""CTC020-CTC025: what reaches the loss must be (T, N, C) float32 log-probabilities."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from ctchelpers import TinyCTC, codes_of, healthy_setup, make_batches, run_codes


def test_log_softmax_head_in_either_layout_is_healthy():
    assert run_codes(healthy_setup(), ("CTC02",))[0] == []
    assert run_codes(healthy_setup(layout="NTC"), ("CTC02",))[0] == []


def test_softmax_head_is_ctc020():
    findings, _ = run_codes(healthy_setup(head="softmax"), ("CTC02",))
    assert codes_of(findings) == {"CTC020"}


def test_raw_logits_are_ctc021_unless_the_criterion_normalises():
    setup = healthy_setup(head="none")
    assert codes_of(run_codes(setup, ("CTC02",))[0]) == {"CTC021"}

    def criterion(output, batch):
        inputs, targets, input_lengths, target_lengths = batch
        return F.ctc_loss(output.log_softmax(-1), targets, input_lengths // 2, target_lengths, zero_infinity=True)

    setup.criterion = criterion
    assert run_codes(setup, ("CTC02",))[0] == []


def test_log_softmax_over_time_is_ctc024():
    findings, _ = run_codes(healthy_setup(head="wrong_axis", layout="NTC"), ("CTC02",))
    (finding,) = findings
    assert finding.code == "CTC024" and finding.evidence["axis"] == "time"


def test_half_precision_output_is_ctc025():
    findings, _ = run_codes(healthy_setup(head="half"), ("CTC025",))
    assert codes_of(findings) == {"CTC025"}


def test_nan_output_is_ctc023():
    class Poisoned(TinyCTC):
        def forward(self, x):
            out = super().forward(x).clone()
            out[0, 0, 0] = float("nan")
            return out

    setup = healthy_setup()
    setup.model = Poisoned()
    (finding,) = run_codes(setup, ("CTC023",))[0]
    assert finding.evidence["nan"] == 2  # one per scanned batch run (2 batches)


class FixedBatch(TinyCTC):
    """A model that only runs at batch size 4 (a hard-coded view), so probing cannot help."""

    def forward(self, x):
        assert x.shape[0] == 4, "this model needs a batch of 4"
        return super().forward(x)


def test_t_equal_n_is_resolved_by_probing():
    setup = healthy_setup(layout="NTC")
    setup.loader = make_batches([8, 8, 8, 8], [[1], [2], [3], [4]])  # T = 4 = N
    assert run_codes(setup, ("CTC022",))[0] == []


def test_t_equal_n_with_a_model_that_cannot_be_probed_is_ctc022():
    setup = healthy_setup()
    setup.model = FixedBatch()
    setup.loader = make_batches([8, 8, 8, 8], [[1], [2], [3], [4]])
    (finding,) = run_codes(setup, ("CTC022",))[0]
    assert "T == N == 4" in finding.message
    setup.layout = "TNC"
    assert run_codes(setup, ("CTC022",))[0] == []


def test_layout_probe_leaves_model_modes_as_found():
    setup = healthy_setup()
    setup.model.train()
    before = {key: value.clone() for key, value in setup.model.state_dict().items()}
    run_codes(setup)
    assert setup.model.training
    after = setup.model.state_dict()
    assert all(torch.equal(before[key], after[key]) for key in before)


@pytest.mark.parametrize(("declared", "model_layout", "read_as"), [("NTC", "TNC", "TNC"), ("TNC", "NTC", "NTC")])
def test_a_setup_layout_the_shape_refutes_is_ctc029_and_the_checks_read_the_shape(declared, model_layout, read_as):
    setup = healthy_setup(layout=model_layout)  # batches of 4, 20 frames: the shape says which axis is the batch
    setup.layout = declared
    findings, _ = run_codes(setup, ("CTC0",))
    (finding,) = [item for item in findings if item.code == "CTC029"]
    assert f"Setup.layout = {declared!r} puts the batch on axis" in finding.message
    assert f'Set Setup.layout = "{read_as}"' in finding.hint and finding.evidence["read_as"] == read_as
    # Read off the shape instead, the lengths are not misjudged (no CTC003/CTC004 from a transposed tensor).
    assert codes_of(findings) == {"CTC029"}


def test_a_setup_layout_the_shape_agrees_with_is_not_ctc029():
    setup = healthy_setup(layout="NTC")
    setup.layout = "NTC"
    assert run_codes(setup, ("CTC029",))[0] == []


# ------------------------------------------------------------- CTC021 and a criterion that applies log_softmax
# The fresh-eyes trial (crnn.pytorch): CTC021 "apply log_softmax" fired whenever the criterion audit did not match
# reference CTC up to the reduction, although the criterion applied log_softmax itself.

def _logits_setup(criterion, **model_options):
    setup = healthy_setup(head="none", **model_options)
    setup.criterion = criterion
    return setup


def _ctc(output, batch, normalise=True, blank=0, scale=1.0):
    inputs, targets, input_lengths, target_lengths = batch
    scores = output.log_softmax(2) if normalise else output
    return scale * F.ctc_loss(scores, targets, input_lengths // 2, target_lengths, blank=blank, reduction="sum")


def test_a_criterion_that_applies_log_softmax_silences_ctc021_when_its_blank_is_wrong():
    setup = _logits_setup(lambda output, batch: _ctc(output, batch, blank=5))
    findings, _ = run_codes(setup, ("CTC02", "CTC03"))
    assert codes_of(findings) == {"CTC030"}
    assert findings[0].evidence["mistake"] == "wrong_blank"


def test_a_criterion_that_applies_log_softmax_silences_ctc021_when_a_scale_leaves_its_value_unexplained():
    setup = _logits_setup(lambda output, batch: _ctc(output, batch, scale=1 / 3.7))
    findings, _ = run_codes(setup, ("CTC02", "CTC03"))
    assert codes_of(findings) == {"CTC030"}
    assert findings[0].evidence["mistake"] == "unknown"


def test_a_criterion_that_applies_log_softmax_silences_ctc021_when_targets_lie_outside_the_classes():
    # The blank slot forgotten: 5 classes for an alphabet of 5, labels 1..5 (CTC010, CTC014); the audit is skipped.
    for concatenated in (False, True):
        setup = _logits_setup(lambda output, batch: _ctc(output, batch), classes=5)
        if concatenated:
            setup.loader = make_batches([40, 40, 36, 32], [[1, 2, 3], [2, 2, 4], [5, 1], [3, 4, 5, 1]], concatenated=True)
        findings, _ = run_codes(setup, ("CTC01", "CTC02", "CTC03"))
        assert "CTC021" not in codes_of(findings) and {"CTC010", "CTC014"} <= codes_of(findings), concatenated


def test_a_criterion_that_feeds_raw_logits_to_the_loss_still_gets_ctc021():
    for criterion in (
        lambda output, batch: _ctc(output, batch, normalise=False),
        lambda output, batch: _ctc(output, batch, normalise=False, scale=1 / 3.7),
        lambda output, batch: _ctc(output, batch, normalise=False, blank=5),
    ):
        assert "CTC021" in codes_of(run_codes(_logits_setup(criterion), ("CTC02", "CTC03"))[0])
    setup = _logits_setup(lambda output, batch: _ctc(output, batch, normalise=False), classes=5)
    assert "CTC021" in codes_of(run_codes(setup, ("CTC01", "CTC02", "CTC03"))[0])
