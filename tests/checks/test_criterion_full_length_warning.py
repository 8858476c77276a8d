"""The padded length T for every sample is a warning, not an error: deep-text-recognition-benchmark's `--PAD` and
EasyOCR's `PAD: True` train that way on replicate-padded images and decode every frame, and their models learn. The
finding still names it, says when it is fine, and gives each sample's own frame count as the fix."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from test_criterion import _prepared

from ctcdoctor.checks.criterion import criterion_disagrees
from ctcdoctor.measure.criterion import CriterionAudits, audit_criterion


def full(output, batch):
    _, targets, _, target_lengths = batch
    return F.ctc_loss(output, targets, torch.full((output.shape[1],), output.shape[0]), target_lengths)


def test_the_full_padded_length_is_a_warning_that_says_when_it_is_fine():
    targets = torch.tensor([[1, 2, 3], [3, 4, 1], [2, 5, 1], [4, 3, 2]])
    output_lengths = torch.tensor([12, 9, 7, 10])
    (found,) = criterion_disagrees(CriterionAudits((audit_criterion(full, _prepared(targets, output_lengths, output_lengths * 2),
                                                                    0, 6),)), None)
    assert found.code == "CTC030" and found.severity.value == "warning"
    assert found.title == "the criterion aligns the padding frames too"
    assert "Training still works when inference decodes every frame too" in found.message
    assert found.hint.startswith("Give the loss each sample's own frame count as its input length.")
    assert "torch.full((N,), 12)" in found.hint
