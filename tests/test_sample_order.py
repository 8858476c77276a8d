"""Sample numbers are data set indices even when the collate sorts each batch (deepspeech.pytorch's `_collate_fn`);
a loader that cannot be indexed and sorts its batches gets no drop-list numbered in iteration order, silently."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from ctcdoctor.cli import app
from ctcdoctor.errors import BatchError
from ctcdoctor.load.batches import iterate_batches, normalise_batch

INFEASIBLE = [3, 6, 17]  # 3 of 40 samples: fewer frames than labels (7.5%: the drop-list is written)

SPEC = '''
import torch
from torch.utils.data import DataLoader, Dataset
from ctcdoctor import Setup

INFEASIBLE = {infeasible}


class Data(Dataset):
    def __init__(self):
        g = torch.Generator().manual_seed(0)
        self.items = []
        for i in range(40):
            length = int(torch.randint(12, 30, (1,), generator=g))
            labels = (torch.randperm(5, generator=g)[:4] + 1).tolist() * 2      # 8 labels, no adjacent repeat
            if i in INFEASIBLE:
                length = 5                                                     # 5 frames for 8 labels
            self.items.append((torch.randn(length, 3, generator=g), labels))

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]


def collate(batch):                    # sorts by input length, decreasing, as deepspeech.pytorch's _collate_fn
    batch = sorted(batch, key=lambda item: item[0].shape[0], reverse=True)
    inputs = torch.nn.utils.rnn.pad_sequence([item[0] for item in batch], batch_first=True)
    targets = torch.tensor([label for item in batch for label in item[1]])
    return (inputs, targets, torch.tensor([item[0].shape[0] for item in batch]), torch.tensor([len(item[1]) for item in batch]))


class Wrapper:                          # a user class around the DataLoader: not indexable
    def __init__(self, loader):
        self.loader = loader

    def __iter__(self):
        yield from self.loader


class Bucketing:                        # a batch sampler of the user's: every index once, batches by length
    def __init__(self, data, size):
        order = sorted(range(len(data)), key=lambda i: data.items[i][0].shape[0])
        self.batches = [order[i:i + size] for i in range(0, len(order), size)]

    def __iter__(self):
        return iter(self.batches)

    def __len__(self):
        return len(self.batches)


class Packed(torch.nn.Module):          # needs its batch sorted by length, as deepspeech.pytorch's model
    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(3, 6)

    def forward(self, x, lengths):
        packed = torch.nn.utils.rnn.pack_padded_sequence(x, lengths, batch_first=True)   # enforce_sorted=True
        x, _ = torch.nn.utils.rnn.pad_packed_sequence(packed, batch_first=True, total_length=x.shape[1])
        return self.linear(x).log_softmax(-1)


def ascending_collate(batch):          # sorts shortest first
    return plain_collate(sorted(batch, key=lambda item: item[0].shape[0]))


def plain_collate(batch):               # keeps the order
    inputs = torch.nn.utils.rnn.pad_sequence([item[0] for item in batch], batch_first=True)
    targets = torch.tensor([label for item in batch for label in item[1]])
    return (inputs, targets, torch.tensor([item[0].shape[0] for item in batch]), torch.tensor([len(item[1]) for item in batch]))


def packed_collate(batch):
    inputs, targets, input_lengths, target_lengths = collate(batch)
    return (inputs, input_lengths), targets, input_lengths, target_lengths


def build():
    torch.manual_seed(0)
    model = {model}
    data = Data()
    loader = {loader}
    return Setup(model=model, loader=loader, blank=0, output_lengths=lambda lengths: lengths)
'''

LOADERS = {
    "plain": "DataLoader(data, batch_size=8, collate_fn=collate)",
    "shuffled": "DataLoader(data, batch_size=8, shuffle=True, collate_fn=collate)",
    "bucketing": "DataLoader(data, batch_sampler=Bucketing(data, 8), collate_fn=collate)",
    "wrapped": "Wrapper(DataLoader(data, batch_size=8, collate_fn=collate))",
    "subset": "DataLoader(data, batch_size=8, sampler=torch.utils.data.SubsetRandomSampler(range(30)), collate_fn=collate)",
    "packed": "DataLoader(data, batch_size=8, shuffle=True, collate_fn=packed_collate)",
    "wrapped_shuffled": "Wrapper(DataLoader(data, batch_size=8, shuffle=True, collate_fn=plain_collate))",
    "wrapped_ascending": "Wrapper(DataLoader(data, batch_size=8, collate_fn=ascending_collate))",
    "wrapped_plain": "Wrapper(DataLoader(data, batch_size=8, collate_fn=plain_collate))",
}
MODEL = "torch.nn.Sequential(torch.nn.Linear(3, 6), torch.nn.LogSoftmax(-1))"


def write_spec(tmp_path: Path, loader: str) -> Path:
    spec = tmp_path / f"sorted_{loader}.py"
    model = "Packed()" if loader == "packed" else MODEL
    spec.write_text(SPEC.format(infeasible=INFEASIBLE, loader=LOADERS[loader], model=model), encoding="utf-8")
    return spec


@pytest.mark.parametrize("loader", ["plain", "shuffled", "packed"])
def test_scan_drop_list_and_findings_hold_the_data_set_indices(tmp_path, loader):
    drop = tmp_path / "drop.txt"
    result = CliRunner().invoke(app, ["scan", str(write_spec(tmp_path, loader)), "--drop-list", str(drop), "--format", "json"])
    assert result.exit_code == 1, result.output  # CTC001
    assert [int(line) for line in drop.read_text().split()] == INFEASIBLE
    report = json.loads(result.stdout)
    assert [item["code"] for item in report["findings"] if item["severity"] == "error"] == ["CTC001"]  # no CTC999
    (found,) = [item for item in report["findings"] if item["code"] == "CTC001"]
    assert sorted(int(item["sample"]) for item in found["evidence"]["worst"]) == INFEASIBLE, found["evidence"]


def test_scan_refuses_a_drop_list_numbered_in_sorted_iteration_order(tmp_path):
    drop = tmp_path / "drop.txt"
    result = CliRunner().invoke(app, ["scan", str(write_spec(tmp_path, "wrapped")), "--drop-list", str(drop)])
    assert result.exit_code == 2, result.output
    assert "sorted by input length" in result.output and "DataLoader itself" in result.output
    assert not drop.exists()


def test_drop_anyway_does_not_write_a_list_in_sorted_iteration_order(tmp_path):
    drop = tmp_path / "drop.txt"
    result = CliRunner().invoke(app, ["scan", str(write_spec(tmp_path, "wrapped")), "--drop-list", str(drop),
                                      "--drop-anyway"])
    assert result.exit_code == 2, result.output
    assert not drop.exists()


def test_scan_without_drop_list_reads_a_wrapped_sorting_loader(tmp_path):
    result = CliRunner().invoke(app, ["scan", str(write_spec(tmp_path, "wrapped")), "--format", "json"])
    assert result.exit_code == 1, result.output


def test_a_subset_sampler_writes_the_drop_list_in_data_set_indices(tmp_path):
    # SubsetRandomSampler(range(30)): samples come in a random order of a part of the data set; each keeps its index.
    drop = tmp_path / "drop.txt"
    result = CliRunner().invoke(app, ["scan", str(write_spec(tmp_path, "subset")), "--drop-list", str(drop),
                                      "--drop-anyway"])
    assert result.exit_code == 1, result.output
    assert [int(line) for line in drop.read_text().split()] == INFEASIBLE


def test_a_bucketing_batch_sampler_keeps_its_batches_and_numbers_them_by_data_set_index(tmp_path):
    # Its batches are kept (re-batched in data set order, a dynamic sampler's could exhaust memory), and each sample
    # of them is still named by its data set index: in check, in scan's drop-list, and in overfit --sample.
    module = _spec_module(tmp_path, "bucketing")
    setup = module.build()
    mine = [sorted(batch) for batch in setup.loader.batch_sampler]
    seen = [sorted(batch.sample_id(row) for row in range(batch.size)) for batch in iterate_batches(setup.loader)]
    assert seen == mine
    spec = str(write_spec(tmp_path, "bucketing"))
    drop = tmp_path / "drop.txt"
    result = CliRunner().invoke(app, ["scan", spec, "--drop-list", str(drop), "--drop-anyway"])
    assert result.exit_code == 1, result.output
    assert [int(line) for line in drop.read_text().split()] == INFEASIBLE
    report = json.loads(CliRunner().invoke(app, ["check", spec, "--format", "json"]).stdout)
    (found,) = [item for item in report["findings"] if item["code"] == "CTC001"]
    named = sorted(int(item["sample"]) for item in found["evidence"]["worst"])
    assert named and set(named) <= set(INFEASIBLE), found
    data = module.Data()
    result = CliRunner().invoke(app, ["overfit", spec, "--sample", "9", "--steps", "1", "--format", "json"])
    overfit = json.loads(result.stdout)["result"]
    assert overfit["targets"] == [" ".join(map(str, data.items[9][1]))], overfit


def _spec_module(tmp_path, loader="plain"):
    import importlib.util

    path = write_spec(tmp_path, loader)
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_batches_stay_sorted_and_name_their_data_set_indices(tmp_path):
    module = _spec_module(tmp_path)
    setup = module.build()
    data = setup.loader.dataset
    reordered = 0
    for batch in iterate_batches(setup.loader, 3):
        assert batch.input_lengths.tolist() == sorted(batch.input_lengths.tolist(), reverse=True)  # as the collate made it
        assert sorted(batch.sample_id(row) for row in range(batch.size)) == list(range(batch.first_sample, batch.first_sample + 8))
        reordered += batch.ids is not None
        for row in range(batch.size):
            item = data[batch.sample_id(row)][0]
            assert int(batch.input_lengths[row]) == item.shape[0]
            assert torch.equal(batch.inputs[row, : item.shape[0]], item)
    assert reordered == 3


def test_a_collate_that_keeps_the_order_is_checked_once():
    from ctcdoctor.load.batches import KeepOrder

    def collate(items):
        lengths = torch.tensor([len(item) for item in items])
        targets = torch.cat([torch.tensor(item) for item in items])
        return torch.zeros(len(items), int(lengths.max()), 2), targets, lengths, lengths

    calls = []
    keep = KeepOrder(lambda items: calls.append(len(items)) or collate(items))
    for _ in range(3):
        keep([[1, 2], [1, 2, 3, 4], [3]])  # lengths 2, 4, 1: not in length order
    assert keep.state == "keeps" and calls == [3, 1, 1, 1, 3, 3]


def test_fractional_input_lengths_of_the_longest_input_say_how_to_convert():
    raw = (torch.zeros(3, 1, 4, 100), torch.tensor([1, 2, 3]), torch.tensor([1.0, 0.85, 0.5]), torch.tensor([1, 1, 1]))
    with pytest.raises(BatchError) as caught:
        normalise_batch(raw, 0, 0)
    assert "fractions of the longest input" in caught.value.args[0]
    assert "inputs.size(-1)" in caught.value.hint


def test_other_fractional_lengths_keep_the_plain_message():
    raw = (torch.zeros(2, 10), torch.tensor([1, 2]), torch.tensor([7.5, 3.0]), torch.tensor([1, 1]))
    with pytest.raises(BatchError, match="fractional values"):
        normalise_batch(raw, 0, 0)


@pytest.mark.parametrize("loader", ["plain", "shuffled"])
def test_check_names_the_data_set_indices_of_a_sorted_batch(tmp_path, loader):
    # check reads the same batches as scan: its CTC001 must name the samples scan's drop-list names, not
    # their positions in the sorted batches.
    result = CliRunner().invoke(app, ["check", str(write_spec(tmp_path, loader)), "--format", "json"])
    report = json.loads(result.stdout)
    (found,) = [item for item in report["findings"] if item["code"] == "CTC001"]
    named = sorted(int(item["sample"]) for item in found["evidence"]["worst"])
    assert named == [index for index in INFEASIBLE if index < found["evidence"]["scanned"]], found
    assert all(f"sample {index} has 5 frames" in found["message"] for index in named), found["message"]


EMPTY_SPEC = '''
import torch
from torch.utils.data import DataLoader
from ctcdoctor import Setup

EMPTY = {empty}
g = torch.Generator().manual_seed(1)
ITEMS = [(torch.randn(int(torch.randint(10, 30, (1,), generator=g)), 3, generator=g), [] if i in EMPTY else [1, 2, 3])
         for i in range(16)]


def collate(batch):                    # sorts by input length, decreasing
    batch = sorted(batch, key=lambda item: item[0].shape[0], reverse=True)
    inputs = torch.nn.utils.rnn.pad_sequence([item[0] for item in batch], batch_first=True)
    targets = torch.tensor([label for item in batch for label in item[1]], dtype=torch.long)
    return (inputs, targets, torch.tensor([item[0].shape[0] for item in batch]), torch.tensor([len(item[1]) for item in batch]))


def build():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 6), torch.nn.LogSoftmax(-1))
    return Setup(model=model, loader=DataLoader(ITEMS, batch_size=8, collate_fn=collate), blank=0,
                 output_lengths=lambda lengths: lengths)
'''


def test_check_names_the_data_set_indices_of_empty_targets_in_a_sorted_batch(tmp_path):
    empty = [2, 9, 12]
    spec = tmp_path / "empty_sorted.py"
    spec.write_text(EMPTY_SPEC.format(empty=empty), encoding="utf-8")
    report = json.loads(CliRunner().invoke(app, ["check", str(spec), "--format", "json"]).stdout)
    (found,) = [item for item in report["findings"] if item["code"] == "CTC013"]
    assert found["evidence"]["samples"] == empty, found


def test_overfit_numbers_several_samples_as_the_sorted_batch_holds_them(tmp_path):
    # The collate puts sample 4 (29 frames) before sample 0 (20 frames): each sample's number must stay with its
    # own target in the report, whatever order the batch holds them in.
    spec = write_spec(tmp_path, "plain")
    result = CliRunner().invoke(app, ["overfit", str(spec), "--samples", "0,4", "--steps", "20", "--format", "json"])
    report = json.loads(result.stdout)["result"]
    data = _spec_module(tmp_path).Data()
    assert sorted(report["samples"]) == [0, 4]
    for sample, target in zip(report["samples"], report["targets"]):
        assert target == " ".join(map(str, data.items[sample][1])), (report["samples"], report["targets"])


@pytest.mark.parametrize("loader, words", [("wrapped_shuffled", "it shuffles"), ("wrapped_ascending", "sorted by input length")])
def test_scan_refuses_a_drop_list_from_a_wrapper_that_shuffles_or_sorts_shortest_first(tmp_path, loader, words):
    drop = tmp_path / "drop.txt"
    result = CliRunner().invoke(app, ["scan", str(write_spec(tmp_path, loader)), "--drop-list", str(drop)])
    assert result.exit_code == 2, result.output
    assert words in " ".join(result.output.split()) and not drop.exists()


def test_a_wrapper_that_keeps_the_data_set_order_writes_its_drop_list(tmp_path):
    # Positions in iteration order are data set indices here: nothing to refuse.
    drop = tmp_path / "drop.txt"
    result = CliRunner().invoke(app, ["scan", str(write_spec(tmp_path, "wrapped_plain")), "--drop-list", str(drop)])
    assert result.exit_code == 1, result.output
    assert [int(line) for line in drop.read_text().split()] == INFEASIBLE


def test_batches_in_length_order_across_the_data_set_are_not_a_sorting_collate():
    from ctcdoctor.load.batches import sorted_by_length

    def batch(lengths):
        size = len(lengths)
        return normalise_batch((torch.zeros(size, max(lengths), 3), torch.ones(size, dtype=torch.long),
                                torch.tensor(lengths), torch.ones(size, dtype=torch.long)), 0, 0)

    assert not sorted_by_length([batch([3, 4, 5]), batch([5, 6, 9]), batch([9, 11, 12])])  # SortaGrad order
    assert sorted_by_length([batch([3, 7, 9]), batch([2, 5, 6])])  # each batch sorted, the data set not
    assert sorted_by_length([batch([9, 7, 3]), batch([6, 5, 2]), batch([8, 4, 1])])
