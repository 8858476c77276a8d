"""CTC028: a sample's output alone must equal its slice of the batch output (eval mode)."""
from __future__ import annotations

import pytest
import torch
from test_layouts import CLASSES, time_major_batches
from torch import nn

import ctcdoctor
from ctcdoctor import Setup
from ctcdoctor.checks.batching import batch_mixing
from ctcdoctor.measure.batching import BatchIndependence, SequenceLayer
from ctchelpers import healthy_setup


def batch_first_batches():
    return [(b[0].transpose(0, 1).contiguous(), *b[1:]) for b in time_major_batches()]


class RecurrentHead(nn.Module):
    """(N, T, F) -> (N, T, C) through an RNN built with `batch_first`."""

    def __init__(self, batch_first: bool) -> None:
        super().__init__()
        self.rnn = nn.LSTM(5, 16, batch_first=batch_first)
        self.fc = nn.Linear(16, CLASSES)

    def forward(self, x):
        return self.fc(self.rnn(x)[0]).log_softmax(-1)


class AttentionHead(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.attention = nn.MultiheadAttention(5, 1)  # batch_first=False: (T, N, E)
        self.fc = nn.Linear(5, CLASSES)

    def forward(self, x):  # x: (N, T, E)
        return self.fc(self.attention(x, x, x)[0]).log_softmax(-1)


class BatchCentred(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(5, CLASSES)

    def forward(self, x):
        return self.fc(x - x.mean(0, keepdim=True)).log_softmax(-1)  # statistics over the batch


def run(model, loader=None, **setup):
    torch.manual_seed(0)
    report = ctcdoctor.check(Setup(model=model, loader=loader or batch_first_batches(), output_lengths=lambda n: n,
                                   **setup), select=["CTC02"])
    status = {item.code: item.status for item in report.checks}["CTC028"]
    return [item for item in report.findings if item.code == "CTC028"], status


def test_an_lstm_with_batch_first_false_fed_batch_first_inputs_mixes_samples():
    torch.manual_seed(0)
    found, _ = run(RecurrentHead(batch_first=False))
    (finding,) = found
    assert "LSTM 'rnn' has batch_first=False and got (3, 12, 5)" in finding.message
    assert "samples on axis 0" in finding.message and "batch_first=True" in finding.hint
    assert finding.evidence["layers"] == [{"name": "rnn", "type": "LSTM", "batch_first": False, "input_shape": [3, 12, 5]}]
    assert finding.evidence["samples"] and max(finding.evidence["differences"]) > 1e-2


def test_the_same_lstm_with_batch_first_true_is_clean():
    torch.manual_seed(0)
    assert run(RecurrentHead(batch_first=True)) == ([], "passed")


def test_time_major_inputs_to_a_time_major_rnn_are_clean():
    torch.manual_seed(0)
    model = RecurrentHead(batch_first=False)
    assert run(model, time_major_batches()) == ([], "passed")


def test_attention_across_the_batch_is_named():
    torch.manual_seed(0)
    (finding,) = run(AttentionHead())[0]
    assert "MultiheadAttention 'attention'" in finding.message


def test_statistics_over_the_batch_get_the_generic_advice():
    torch.manual_seed(0)
    (finding,) = run(BatchCentred())[0]
    assert "a layer in forward() combines them" in finding.message and "statistics taken over the batch" in finding.hint


def test_batches_of_one_sample_cannot_mix_and_pass():
    torch.manual_seed(0)
    single = [(b[0][:1], b[1][:1], b[2][:1], b[3][:1]) for b in batch_first_batches()]
    assert run(RecurrentHead(batch_first=False), single) == ([], "passed")


class FixedBatch(RecurrentHead):
    def forward(self, x):
        assert x.shape[0] == 3, "hard-coded batch size"
        return super().forward(x)


def test_a_model_that_runs_at_one_batch_size_only_is_measured_with_the_other_samples_changed():
    # It cannot run one sample alone; the samples stay in their batch of 3 and the others change instead (this
    # test said "skipped" before CTC028 had that second way to measure).
    torch.manual_seed(0)
    assert run(FixedBatch(batch_first=True)) == ([], "passed")
    (finding,) = run(FixedBatch(batch_first=False))[0]
    assert "output changes when the other samples of batch 0 change" in finding.message
    assert "LSTM 'rnn' has batch_first=False" in finding.message and finding.evidence["method"] == "others_replaced"


def test_a_model_that_runs_at_one_batch_size_only_on_constant_inputs_is_skipped_with_the_reason():
    # All-zero inputs: the other samples cannot be changed by moving their values around, so nothing is measured.
    torch.manual_seed(0)
    zeros = [(torch.zeros_like(b[0]), *b[1:]) for b in batch_first_batches()]
    found, status = run(FixedBatch(batch_first=True), zeros)
    assert found == [] and status == "skipped"


def test_the_bundled_healthy_setup_is_clean():
    report = ctcdoctor.check(healthy_setup(), select=["CTC028"])
    assert not report.findings and report.checks[0].status == "passed"


@pytest.mark.parametrize("difference,expected", [(1e-5, 0), (0.5, 1)])
def test_threshold_on_hand_built_facts(difference, expected):
    independence = BatchIndependence(0, 0, (4, 10, 5), (3,), (difference,), (2.0,),
                                     layers=(SequenceLayer("rnn", "GRU", False, (4, 10, 5)),))
    assert len(batch_mixing(independence, [])) == expected


class BatchSizeRoundOff(nn.Module):
    """A float32 path that depends on the batch size, as batched kernels do: the batch output is off by 0.3 on one
    class (round-off that saturated gates amplified), while float64 gives the same values either way. No sample
    reads another."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(5, CLASSES)

    def forward(self, x):
        y = self.fc(x)
        if y.dtype == torch.float32 and x.shape[0] > 1:
            y = y + torch.nn.functional.one_hot(torch.tensor(1), CLASSES) * 0.3
        return y.log_softmax(-1)


def test_float32_round_off_that_vanishes_in_float64_is_not_mixing():
    torch.manual_seed(0)
    model = BatchSizeRoundOff()
    found, status = run(model)
    assert found == [] and status == "passed"
    assert next(model.parameters()).dtype == torch.float32  # the recheck ran on a copy


def test_real_mixing_stays_an_error_in_float64():
    torch.manual_seed(0)
    (finding,) = run(BatchCentred())[0]
    assert "in float64 too" in finding.message
    assert min(finding.evidence["float64_differences"]) > 1e-2
