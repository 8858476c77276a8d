"""Tensor layouts real code hands over: time-major inputs (T, N, F), outputs (T, N, C), (N, T, C) and
(N, C, T), PackedSequence and named-tuple inputs; single samples cut along the right axis."""
from __future__ import annotations

import collections
import json

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence
from typer.testing import CliRunner

import ctcdoctor
from ctcdoctor import Setup
from ctcdoctor.cli import app
from ctcdoctor.engine import Context
from ctcdoctor.errors import BatchError
from ctcdoctor.load.batches import concat_inputs, find_batch_axis, index_inputs, normalise_batch, select_samples
from ctcdoctor.load.samples import pick_samples
from ctcdoctor.measure.model import move_inputs
from ctchelpers import ROOT

CLASSES = 6
LENGTHS = [12, 9, 12, 7, 10, 12]
LABELS = [[1, 2, 3], [2, 4], [5, 1, 1], [3], [4, 5], [1, 2, 3]]


def time_major_batches(features: int = 5, batch_size: int = 3, seed: int = 0) -> list[tuple]:
    """(T, N, F) inputs zero-padded in time, padded targets."""
    generator = torch.Generator().manual_seed(seed)
    batches = []
    for start in range(0, len(LENGTHS), batch_size):
        lengths = torch.tensor(LENGTHS[start:start + batch_size])
        labels = LABELS[start:start + batch_size]
        inputs = torch.randn(int(lengths.max()), len(lengths), features, generator=generator)
        for row, length in enumerate(lengths.tolist()):
            inputs[length:, row] = 0
        targets = torch.zeros(len(labels), max(map(len, labels)), dtype=torch.long)
        for row, label in enumerate(labels):
            targets[row, :len(label)] = torch.tensor(label)
        batches.append((inputs, targets, lengths, torch.tensor([len(label) for label in labels])))
    return batches


class TimeMajorRNN(nn.Module):
    def __init__(self, features: int = 5) -> None:
        super().__init__()
        self.rnn = nn.GRU(features, 16)  # batch_first=False: (T, N, F)
        self.fc = nn.Linear(16, CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.rnn(x)[0]).log_softmax(-1)  # (T, N, C)


class ConvHead(nn.Module):
    """(N, F, T) -> (N, C, T // 2), log_softmax over `dim`."""

    def __init__(self, features: int = 5, dim: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv1d(features, 16, kernel_size=2, stride=2)
        self.head = nn.Conv1d(16, CLASSES, kernel_size=1)
        self.dim = dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.tanh(self.conv(x))).log_softmax(self.dim)


def serious(report) -> list[str]:
    return [f"{item.code}: {item.message}" for item in report.findings if item.severity.value != "info"]


# ---------------------------------------------------------------- the batch axis


def test_the_batch_axis_is_found_from_the_input_lengths():
    assert find_batch_axis(torch.zeros(12, 3, 5), 3) == 1
    assert find_batch_axis(torch.zeros(3, 12, 5), 3) == 0
    assert find_batch_axis(torch.zeros(3, 3, 5), 3) == 0  # T == N: batch first unless Setup.batch_axis says
    assert find_batch_axis(torch.zeros(3, 3, 5), 3, declared=1) == 1
    assert find_batch_axis({"features": torch.zeros(12, 3, 5), "lengths": torch.zeros(3)}, 3) == 1
    with pytest.raises(BatchError, match=r"inputs have shape \(12, 4, 5\), but input_lengths has 3 samples"):
        find_batch_axis(torch.zeros(12, 4, 5), 3)
    with pytest.raises(BatchError, match="Setup.batch_axis is 1"):
        find_batch_axis(torch.zeros(3, 12, 5), 3, declared=1)


def test_a_time_major_rnn_checks_clean():
    """Before: exit 2, 'inputs have 12 samples on their first axis but input_lengths has 3'."""
    torch.manual_seed(0)
    setup = Setup(model=TimeMajorRNN(), loader=time_major_batches(), output_lengths=lambda lengths: lengths)
    report = ctcdoctor.check(setup)
    assert not serious(report), serious(report)
    context = Context(setup)
    assert context.batches[0].batch_axis == 1 and context.layout.layout == "TNC"
    assert {item.code: item.status for item in report.checks}["CTC028"] == "passed"


def test_time_major_samples_are_cut_along_axis_1():
    inputs, targets, lengths, target_lengths = time_major_batches()[0]
    batch = normalise_batch((inputs, targets, lengths, target_lengths), 0, 0)
    picked = select_samples(batch, [2, 0])
    assert torch.equal(picked.inputs, inputs[:, [2, 0]]) and picked.targets.tolist() == targets[[2, 0]].tolist()
    side = index_inputs((inputs, lengths), torch.tensor([1]), 3, axis=1)
    assert torch.equal(side[0], inputs[:, 1:2]) and side[1].tolist() == [9]


def test_overfit_takes_time_major_samples_from_any_iterable():
    batches = time_major_batches()
    raw, source = pick_samples(batches, [4, 1])  # sample 4 is in batch 1, sample 1 in batch 0
    inputs, targets, input_lengths, target_lengths = raw
    assert source == "cut from the loader's batches"
    assert inputs.shape == (12, 2, 5)  # padded to the longer one, along time (axis 0)
    assert torch.equal(inputs[:10, 0], batches[1][0][:10, 1]) and torch.equal(inputs[:9, 1], batches[0][0][:9, 1])
    assert input_lengths.tolist() == [10, 9] and targets[0, :2].tolist() == [4, 5]


def test_overfit_fits_a_time_major_sample():
    torch.manual_seed(0)
    setup = Setup(model=TimeMajorRNN(), loader=time_major_batches(), output_lengths=lambda lengths: lengths,
                  optimizer=lambda params: torch.optim.Adam(params, lr=1e-2))
    from ctcdoctor.overfit.result import OverfitOptions
    from ctcdoctor.overfit.train import run_overfit

    findings, _, result = run_overfit(setup, "", OverfitOptions(samples=(2,), steps=300))
    assert result.fitted, (findings, result.losses[-3:])
    assert result.targets == ("5 1 1",)


# ---------------------------------------------------------------- (N, C, T) outputs


def test_a_conv1d_head_is_read_as_n_c_t_by_probing_a_shorter_input():
    torch.manual_seed(0)
    setup = Setup(model=ConvHead(), loader=[(b[0].permute(1, 2, 0), *b[1:]) for b in time_major_batches()],
                  output_lengths=lambda lengths: lengths // 2)
    context = Context(setup)
    assert context.layout.layout == "NCT" and context.layout.source == "probe"
    assert context.num_classes == CLASSES
    assert tuple(context.outputs[0].shape) == (6, 3, CLASSES)  # the (T, N, C) view
    report = ctcdoctor.check(setup)
    assert not serious(report), serious(report)


def test_softmax_over_time_of_a_conv1d_head_is_ctc024_with_the_n_c_t_fix():
    torch.manual_seed(0)
    setup = Setup(model=ConvHead(dim=-1), loader=[(b[0].permute(1, 2, 0), *b[1:]) for b in time_major_batches()],
                  output_lengths=lambda lengths: lengths // 2)
    report = ctcdoctor.check(setup, select=["CTC02"])
    (found,) = [item for item in report.findings if item.code == "CTC024"]
    assert "time axis" in found.message and "dim=1" in found.hint


def test_a_declared_n_c_t_layout_is_taken_as_is():
    torch.manual_seed(0)
    batches = [(b[0].permute(1, 2, 0), *b[1:]) for b in time_major_batches()]
    context = Context(Setup(model=ConvHead(), loader=batches, layout="NCT", output_lengths=lambda n: n // 2))
    assert context.layout.source == "setup" and context.num_classes == CLASSES


def test_the_examples_run_from_the_cli():
    runner = CliRunner()
    for name in ("speech_lstm_time_major.py", "speech_conv1d_nct.py"):
        result = runner.invoke(app, ["scan", str(ROOT / "examples" / name), "--format", "json"])
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout)["result"]["samples"] == 64
    result = runner.invoke(app, ["overfit", str(ROOT / "examples" / "speech_conv1d_nct.py"), "--sample", "3",
                                 "--format", "json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["result"]["fitted"] is True


# ---------------------------------------------------------------- PackedSequence and named tuples


class PackedRNN(nn.Module):
    def __init__(self, features: int = 5) -> None:
        super().__init__()
        self.rnn = nn.LSTM(features, 16, batch_first=True)
        self.fc = nn.Linear(16, CLASSES)

    def forward(self, packed):
        hidden, lengths = pad_packed_sequence(self.rnn(packed)[0], batch_first=True)
        return self.fc(hidden).log_softmax(-1), lengths  # (N, T, C), frames per sample


def packed_batches() -> list[tuple]:
    return [(pack_padded_sequence(b[0], b[2], enforce_sorted=False), *b[1:]) for b in time_major_batches()]


def test_packed_sequence_inputs_are_checked_and_cut_per_sample():
    torch.manual_seed(0)
    batches = packed_batches()
    report = ctcdoctor.check(Setup(model=PackedRNN(), loader=batches))
    assert not serious(report), serious(report)
    assert "CTC999" not in {item.code for item in report.findings}
    raw, _ = pick_samples(batches, [1, 4])
    padded, lengths = pad_packed_sequence(raw[0], batch_first=True)
    expected, _ = pad_packed_sequence(batches[0][0], batch_first=True)
    assert lengths.tolist() == [9, 10] and torch.equal(padded[0, :9], expected[1, :9])
    alone = index_inputs(batches[0][0], torch.tensor([2]), 3)
    assert torch.equal(pad_packed_sequence(alone, batch_first=True)[0][0], expected[2])


Features = collections.namedtuple("Features", ["values", "mask"])


class NamedTupleModel(nn.Module):
    def __init__(self, features: int = 5) -> None:
        super().__init__()
        self.fc = nn.Linear(features, CLASSES)

    def forward(self, inputs: Features) -> torch.Tensor:
        return (self.fc(inputs.values) * inputs.mask[..., None]).log_softmax(-1)  # (N, T, C)


def test_named_tuple_inputs_are_moved_indexed_and_joined():
    values, mask = torch.randn(3, 12, 5), torch.ones(3, 12)
    inputs = Features(values, mask)
    assert isinstance(move_inputs(inputs, torch.device("cpu")), Features)  # type(x)(generator) used to crash
    one = index_inputs(inputs, torch.tensor([1]), 3)
    assert isinstance(one, Features) and torch.equal(one.values, values[1:2])
    joined = concat_inputs([one, index_inputs(inputs, torch.tensor([2]), 3)])
    assert isinstance(joined, Features) and torch.equal(joined.values, values[1:3])
    batches = [(Features(b[0].transpose(0, 1), torch.ones(b[0].shape[1], b[0].shape[0])), *b[1:])
               for b in time_major_batches()]
    report = ctcdoctor.check(Setup(model=NamedTupleModel(), loader=batches, output_lengths=lambda n: n))
    assert "CTC999" not in {item.code for item in report.findings}, report.findings


def test_a_criterion_sees_what_forward_returned():
    """(output, lengths) models: the criterion gets the tuple; one written for the tensor alone still works."""
    torch.manual_seed(0)
    seen = []

    def tuple_criterion(returned, batch):
        output, lengths = returned
        seen.append(type(returned).__name__)
        return F.ctc_loss(output.transpose(0, 1), batch[1], lengths, batch[3])

    def tensor_criterion(output, batch):
        return F.ctc_loss(output.transpose(0, 1), batch[1], batch[2], batch[3])

    for criterion in (tuple_criterion, tensor_criterion):
        report = ctcdoctor.check(Setup(model=PackedRNN(), loader=packed_batches(), criterion=criterion),
                                 select=["CTC03"])
        assert {item.code: item.status for item in report.checks}["CTC030"] == "passed", report.findings
        assert not report.findings
    assert seen and set(seen) == {"tuple"}


class MaskedConv(nn.Module):
    """{"features": (N, T, F), "mask": (N, T)} -> (N, T // 2, C): the mask travels beside the features."""

    def __init__(self, features: int = 5) -> None:
        super().__init__()
        self.conv = nn.Conv1d(features, CLASSES, kernel_size=2, stride=2)

    def forward(self, inputs):
        x = inputs["features"] * inputs["mask"][..., None]
        return self.conv(x.transpose(1, 2)).transpose(1, 2).log_softmax(-1)


def test_structured_inputs_are_probed_with_every_tensor_of_the_time_axis_cut_together():
    torch.manual_seed(0)
    batches = []
    for b in time_major_batches():
        features = b[0].transpose(0, 1)
        mask = (torch.arange(features.shape[1])[None] < b[2][:, None]).float()
        batches.append(({"features": features, "mask": mask}, *b[1:]))
    context = Context(Setup(model=MaskedConv(), loader=batches))
    lengths = context.output_lengths
    assert lengths.source == "probed" and context.length_model.stride == 2
    assert lengths.scanned.tolist() == [n // 2 for n in LENGTHS]
