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
