"""CTC001-CTC005: frames per sample against labels plus repeats."""
from __future__ import annotations

import pytest
import torch

from ctcdoctor import Setup
from ctcdoctor.checks import lengths
from ctcdoctor.engine import Options
from ctchelpers import TinyCTC, codes_of, healthy_setup, make_batches, run_codes


def test_healthy_setup_has_no_length_findings():
    findings, _ = run_codes(healthy_setup(), ("CTC00",))
    assert findings == []


def test_too_few_frames_is_ctc001_with_numbers():
    setup = healthy_setup(stride=8)  # 40 input steps -> 5 frames
    setup.output_lengths = lambda input_lengths: input_lengths // 8
    setup.loader = make_batches([40, 24], [[1, 2, 3], [1, 2, 3, 4]])
    findings, _ = run_codes(setup, ("CTC001",))
    (finding,) = findings
    assert finding.code == "CTC001" and finding.severity.value == "error"
    assert finding.evidence["count"] == 1
    worst = finding.evidence["worst"][0]
    assert worst == {"sample": 1, "frames": 3, "labels": 4, "repeats": 0, "needed": 4, "short_by": 1}
    assert "sample 1 has 3 frames for 4 labels (needs 4, 1 short)" in finding.message
    # Setup.output_lengths is L // 8: its stride is stated, not the median of L / frames (40 / 5, 24 / 3).
    assert ("The model keeps one output frame per 8 input steps (its layers downsample time ×8; frames from "
            "Setup.output_lengths).") in finding.message


def test_repeats_alone_make_a_sample_infeasible():
    setup = healthy_setup()
    # 10 input steps -> 5 frames: "aabbc" has 5 labels (fits) but 2 repeats (needs 7).
    setup.loader = make_batches([10, 10], [[1, 1, 2, 2, 3], [1, 2, 3, 4, 5]])
    findings, _ = run_codes(setup, ("CTC001",))
    (finding,) = findings
    assert finding.evidence["count"] == 1 and finding.evidence["only_repeats"] is True
    assert "without its adjacent repeated labels" in finding.message


def test_tight_budget_is_ctc002_but_not_ctc001():
    setup = healthy_setup()
    setup.loader = make_batches([10, 40], [[1, 2, 3, 4], [1, 2]])  # 5 frames for 4 needed: 1.25x is not < 1.25
    assert run_codes(setup, ("CTC002",))[0] == []
    setup.loader = make_batches([10, 40], [[1, 2, 3, 4, 5][:4] + [1], [1, 2]])[:1]  # 5 frames for 5 needed
    assert run_codes(setup, ("CTC00",))[0] and codes_of(run_codes(setup, ("CTC00",))[0]) == {"CTC002"}


def test_unknown_lengths_are_ctc003_and_probed_lengths_ctc005():
    setup = healthy_setup()
    setup.output_lengths = None
    findings, _ = run_codes(setup, ("CTC00",))
    assert codes_of(findings) == {"CTC005"}
    assert "frames = floor(L / 2)" in findings[0].message

    # Structured inputs are probed too (every tensor of the time axis cut together): lengths estimated, CTC005.
    setup = Setup(model=DictModel(), loader=[({"x": torch.randn(2, 4, 10)}, torch.tensor([[1], [2]]), torch.tensor([10, 6]), torch.tensor([1, 1]))])
    findings, _ = run_codes(setup, ("CTC003", "CTC005"))
    assert codes_of(findings) == {"CTC005"} and "frames = floor(L / 2)" in findings[0].message

    # Inputs with no axis that input_lengths can measure cannot be probed: lengths stay unknown.
    setup = Setup(model=DictModel(), loader=[({"x": torch.randn(2, 4, 10)}, torch.tensor([[1], [2]]), torch.tensor([20, 6]), torch.tensor([1, 1]))])
    findings, _ = run_codes(setup, ("CTC003",))
    assert codes_of(findings) == {"CTC003"}
    assert "Setup.output_lengths" in findings[0].hint


class DictModel(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.inner = TinyCTC()

    def forward(self, inputs):
        return self.inner(inputs["x"])


def test_raw_lengths_instead_of_downsampled_are_ctc004_with_the_measured_formula():
    setup = healthy_setup()
    setup.output_lengths = lambda input_lengths: input_lengths
    findings, _ = run_codes(setup, ("CTC003", "CTC004"))
    assert "CTC004" in codes_of(findings)
    ctc004 = next(f for f in findings if f.code == "CTC004")
    assert "raw input lengths" in ctc004.message
    assert "frames = floor(L / 2)" in ctc004.hint


def test_off_by_one_formula_is_ctc004():
    setup = healthy_setup()
    setup.output_lengths = lambda input_lengths: input_lengths // 2 + 1
    findings, _ = run_codes(setup, ("CTC004",))
    (finding,) = findings
    assert "off by one" in finding.message


def test_model_returned_lengths_longer_than_output_are_ctc003():
    class ReturnsRaw(TinyCTC):
        def forward(self, x):
            return super().forward(x), torch.full((x.shape[0],), x.shape[-1])

    setup = healthy_setup()
    setup.model = ReturnsRaw()
    setup.output_lengths = None
    findings, _ = run_codes(setup, ("CTC003",))
    assert codes_of(findings) == {"CTC003"}
    assert "8 of 8 samples have an output length longer than the output's 20 frames" in findings[0].message


def test_check_function_is_returned_unchanged_by_the_decorator():
    assert lengths.infeasible_alignment.__name__ == "infeasible_alignment"
    assert "U + R" in lengths.infeasible_alignment.__doc__


def test_ctc003_is_one_finding_across_batches():
    class ReturnsRaw(TinyCTC):
        def forward(self, x):
            return super().forward(x), torch.full((x.shape[0],), x.shape[-1])

    setup = healthy_setup()
    setup.model = ReturnsRaw()
    setup.output_lengths = None
    findings, _ = run_codes(setup, ("CTC003",), options=Options(max_batches=2))
    assert len(findings) == 1 and findings[0].evidence["count"] == 8


@pytest.mark.parametrize(("function", "stride"), [
    (lambda w: w // 16, 16),
    (lambda w: (w - 1) // 2 + 1, 2),  # a conv's formula: floor((L + 1) / 2)
    (lambda w: torch.div(w + 3, 4, rounding_mode="floor"), 4),
    (lambda w: w, None),  # no downsampling: nothing to state
    (lambda w: w // 16 + (w > 100).long(), None),  # no floor((L + k) / s) rule
    (lambda w: [int(x) // 0 for x in w], None),  # raises: no stride, no crash
])
def test_declared_stride_states_a_setup_rule_only_when_it_is_one(function, stride):
    from ctcdoctor.measure.lengths import declared_stride

    assert declared_stride(function, torch.tensor([64, 90, 131, 160])) == stride
