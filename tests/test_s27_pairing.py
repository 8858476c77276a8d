"""CTC016: a collate that reorders the inputs without their labels (sorts the features for packing and forgets the
transcripts) pairs samples with other samples' inputs; collates that move whole items, or change lengths, are fine."""
from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from ctcdoctor.cli import app

SPEC = '''
import random

import torch
from torch.utils.data import DataLoader, Dataset
from ctcdoctor import Setup


class Data(Dataset):
    def __init__(self):
        g = torch.Generator().manual_seed(0)
        self.items = []
        for i in range(24):
            length = 12 + (7 * i) % 17                                  # 12..28 steps, no two neighbours equal
            labels = (torch.randperm(5, generator=g)[:3] + 1).tolist()
            self.items.append((torch.randn(length, 3, generator=g), labels))

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]


def pack(inputs, labels):
    padded = torch.nn.utils.rnn.pad_sequence(inputs, batch_first=True)
    targets = torch.tensor([label for item in labels for label in item])
    return (padded, torch.tensor([len(x) for x in inputs]), targets, torch.tensor([len(item) for item in labels]))


def inputs_sorted_alone(batch):        # sorts the features for packing, forgets the transcripts
    inputs = sorted([item[0] for item in batch], key=lambda x: -x.shape[0])
    padded, lengths, targets, target_lengths = pack(inputs, [item[1] for item in batch])
    return padded, targets, lengths, target_lengths


def items_sorted(batch):               # sorts whole items: each input keeps its labels
    batch = sorted(batch, key=lambda item: -item[0].shape[0])
    padded, lengths, targets, target_lengths = pack([item[0] for item in batch], [item[1] for item in batch])
    return padded, targets, lengths, target_lengths


def cropped(batch):                    # random crops: lengths change, pairs do not
    inputs = [item[0][: max(10, item[0].shape[0] - random.randint(0, 3))] for item in batch]
    padded, lengths, targets, target_lengths = pack(inputs, [item[1] for item in batch])
    return padded, targets, lengths, target_lengths


class Wrapper:
    def __init__(self, loader):
        self.loader = loader

    def __iter__(self):
        yield from self.loader


def build():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 6), torch.nn.LogSoftmax(-1))
    data = Data()
    return Setup(model=model, loader={loader}, blank=0, output_lengths=lambda lengths: lengths)
'''


def report(tmp_path, loader: str) -> dict:
    spec = tmp_path / "pairing.py"
    spec.write_text(SPEC.format(loader=loader), encoding="utf-8")
    result = CliRunner().invoke(app, ["check", str(spec), "--format", "json"])
    assert result.exit_code in (0, 1), result.output
    return json.loads(result.stdout)


def test_inputs_sorted_without_their_labels_are_an_error_naming_a_real_sample(tmp_path):
    found = report(tmp_path, "DataLoader(data, batch_size=8, shuffle=True, collate_fn=inputs_sorted_alone)")
    (item,) = [f for f in found["findings"] if f["code"] == "CTC016"]
    assert item["severity"] == "error"
    example = item["evidence"]["example"]
    spec_data = {i: 12 + (7 * i) % 17 for i in range(24)}
    assert spec_data[example["sample"]] == example["own_input_length"] != example["input_length"]
    assert "the inputs are in length order, the labels are not" in item["message"]
    assert "sorted(batch" in item["hint"]


@pytest.mark.parametrize("collate", ["items_sorted", "cropped"])
def test_collates_that_keep_each_input_with_its_labels_pass(tmp_path, collate):
    found = report(tmp_path, f"DataLoader(data, batch_size=8, shuffle=True, collate_fn={collate})")
    assert not [f for f in found["findings"] if f["code"] == "CTC016"]
    assert "CTC016" in [c["code"] for c in found["checks"] if c["status"] == "passed"], found["checks"]


def test_a_loader_that_cannot_be_indexed_is_not_applicable(tmp_path):
    found = report(tmp_path, "Wrapper(DataLoader(data, batch_size=8, collate_fn=inputs_sorted_alone))")
    (entry,) = [c for c in found["checks"] if c["code"] == "CTC016"]
    assert entry["status"] != "passed" and "map-style" in json.dumps(entry)
