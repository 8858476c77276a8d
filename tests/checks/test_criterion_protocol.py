"""What the user's criterion is given and how it is judged: eval mode, and a softmax head whose criterion
takes the log (CTC020 becomes a warning, not an error)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ctchelpers import TinyCTC, healthy_setup, run_codes


def test_a_softmax_head_whose_criterion_takes_the_log_is_a_warning():
    setup = healthy_setup(head="softmax")

    def criterion(output, batch):
        _, targets, input_lengths, target_lengths = batch
        return F.ctc_loss(output.log(), targets, input_lengths // 2, target_lengths)

    setup.criterion = criterion
    findings, _ = run_codes(setup, ("CTC02", "CTC03"))
    (found,) = [item for item in findings if item.code == "CTC020"]
    assert found.severity.value == "warning" and found.evidence["criterion_takes_log"] is True
    assert "underflows" in found.message
    assert not [item for item in findings if item.severity.value == "error"]


def test_without_the_log_in_the_criterion_it_stays_an_error():
    setup = healthy_setup(head="softmax")

    def criterion(output, batch):
        _, targets, input_lengths, target_lengths = batch
        return F.ctc_loss(output, targets, input_lengths // 2, target_lengths)

    setup.criterion = criterion
    findings, _ = run_codes(setup, ("CTC020",))
    assert [item.severity.value for item in findings] == ["error"]


class Noisy(TinyCTC):
    """Dropout on the output: in train mode two calls differ, and differ from the eval-mode output."""

    def __init__(self) -> None:
        super().__init__()
        self.drop = nn.Dropout(0.5)

    def forward(self, x):
        return self.drop(super().forward(x).exp()).clamp_min(1e-6).log()


def test_a_criterion_that_runs_the_model_itself_sees_it_in_eval_mode():
    setup = healthy_setup()
    torch.manual_seed(0)
    model = Noisy().train()
    modes = []

    def criterion(output, batch):  # like a framework loss: the model runs inside the criterion
        inputs, targets, input_lengths, target_lengths = batch
        modes.append(model.training)
        log_probs = model(inputs).log_softmax(-1)
        return F.ctc_loss(log_probs, targets, input_lengths // 2, target_lengths)

    setup.model, setup.criterion = model, criterion
    findings, results = run_codes(setup, ("CTC030",))
    assert modes and not any(modes)
    assert findings == [] and results[0].status == "passed"
    assert model.training  # restored
