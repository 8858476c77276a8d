"""`scan` under bad input: a model that fails on the first batch, endless loaders, --timeout, the caller's
RNG state, Setup.sample_labels (labels only) and its consistency with the loader."""
from __future__ import annotations

import json
import random
import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from ctcdoctor.cli import app, main

HEAD = """
import itertools
import torch
from ctcdoctor import Setup
BATCH = (torch.zeros(2, 40), torch.tensor([[1, 2], [3, 0]]), torch.tensor([40, 30]), torch.tensor([2, 1]))
class Quarter(torch.nn.Module):
    def forward(self, x):
        return torch.zeros(x.shape[1] // 4, x.shape[0], 5, device=x.device).log_softmax(-1)
"""
MODELS = {
    "raises": "class M(torch.nn.Module):\n    def forward(self, x):\n        raise RuntimeError('boom')\n",
    "returns_a_dict": "class M(torch.nn.Module):\n    def forward(self, x):\n        return {'logits': torch.zeros(2, 10, 5)}\n",
}


def spec(tmp_path, body: str) -> str:
    path = tmp_path / "user.py"
    path.write_text(textwrap.dedent(HEAD) + textwrap.dedent(body), encoding="utf-8")
    return str(path)


@pytest.mark.parametrize("model", sorted(MODELS))
@pytest.mark.parametrize("lengths", ["None", "lambda l: l // 4"])
def test_a_model_that_fails_on_the_first_batch_is_a_finding_not_an_internal_error(tmp_path, model, lengths):
    path = spec(tmp_path, MODELS[model] + f"def build():\n    return Setup(model=M(), loader=[BATCH] * 3, output_lengths={lengths})\n")
    result = CliRunner().invoke(app, ["scan", path, "--format", "json"])
    assert result.exit_code == 1, result.output
    report = json.loads(result.stdout)
    crash = [item for item in report["findings"] if item["code"] == "CTC999"]
    assert len(crash) == 1 and crash[0]["title"] == "the model failed on a batch"
    statuses = {item["code"]: item["status"] for item in report["checks"]}
    assert statuses["CTC010"] == "skipped" and statuses["CTC013"] == "passed"
    # With Setup.output_lengths the length checks still run over the whole data set.
    assert statuses["CTC001"] == ("passed" if lengths != "None" else "skipped")
    assert report["result"]["samples"] == 6


def test_meta_inputs_are_a_usage_error_not_an_internal_one(tmp_path):
    path = spec(tmp_path, "def build():\n    meta = (BATCH[0].to('meta'), *BATCH[1:])\n    return Setup(model=Quarter(), loader=[meta] * 2)\n")
    result = CliRunner().invoke(app, ["scan", path, "--format", "json"])
    assert result.exit_code == 2, result.output
    assert "on the meta device" in result.output


def test_an_endless_cycle_is_refused_and_max_samples_bounds_it(tmp_path):
    path = spec(tmp_path, "def build():\n    return Setup(model=Quarter(), loader=itertools.cycle([BATCH]), output_lengths=lambda l: l // 4)\n")
    refused = CliRunner().invoke(app, ["scan", path])
    assert refused.exit_code == 2 and "itertools.cycle: it never ends" in refused.output
    bounded = CliRunner().invoke(app, ["scan", path, "--max-samples", "100", "--format", "json"])
    assert bounded.exit_code == 0, bounded.output
    result = json.loads(bounded.stdout)["result"]
    assert result["samples"] == 100 and result["stopped"] == "stopped after 100 samples (--max-samples 100)"


def test_an_endless_generator_ends_at_the_timeout(tmp_path):
    path = spec(tmp_path, "def batches():\n    while True:\n        yield BATCH\n"
                          "def build():\n    return Setup(model=Quarter(), loader=batches(), output_lengths=lambda l: l // 4)\n")
    result = CliRunner().invoke(app, ["scan", path, "--timeout", "1.5"])
    assert result.exit_code == 2
    # The deadline lands in the scan's phase or inside the loader's own ("reading batch N of the loader"), as CI's
    # timing decides: either names what it was doing.
    assert re.search(r"ran past --timeout 1\.5 s while reading (the data of|batch \d+ of the loader)", result.output), \
        result.output


def test_the_timeout_ends_the_command_even_when_the_first_one_is_swallowed(tmp_path):
    # A loader that catches everything once (as an exception raised inside a finaliser is lost too):
    # the deadline must fire again rather than let the command run for ever. A subprocess, so that a
    # regression fails here instead of hanging the suite.
    path = spec(tmp_path, "import time\n"
                          "def batches():\n    swallowed = False\n    while True:\n        try:\n            time.sleep(0.05)\n"
                          "        except BaseException:\n            if swallowed:\n                raise\n            swallowed = True\n"
                          "        yield BATCH\n"
                          "def build():\n    return Setup(model=Quarter(), loader=batches(), output_lengths=lambda l: l // 4)\n")
    done = subprocess.run([sys.executable, "-m", "ctcdoctor", "scan", path, "--timeout", "1"], capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "ran past --timeout 1 s while reading " in done.stderr and "Traceback" not in done.stderr  # a batch, or the data


def test_scan_leaves_the_callers_random_state_alone(tmp_path, capsys):
    path = spec(tmp_path, "def build():\n    torch.manual_seed(123)\n    return Setup(model=Quarter(), loader=[BATCH] * 2)\n")
    random.seed(7)
    np.random.seed(7)
    torch.manual_seed(7)
    states = (random.getstate(), np.random.get_state()[1].copy(), torch.get_rng_state().clone(), torch.get_num_threads())
    assert main(["scan", path, "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["result"]["seed"] == 0
    assert random.getstate() == states[0] and (np.random.get_state()[1] == states[1]).all()
    assert torch.equal(torch.get_rng_state(), states[2]) and torch.get_num_threads() == states[3]


DATASET = """
class Items(torch.utils.data.Dataset):
    def __init__(self, wrong=False):
        self.wrong = wrong
    def __len__(self):
        return 50
    def __getitem__(self, i):
        return torch.zeros(8 + i % 30), torch.tensor([1 + (i * k) % 4 for k in range(i % 9)], dtype=torch.long)
    def labels(self, i):
        return 8 + i % 30 + (self.wrong and i == 1), [1 + (i * k) % 4 for k in range(i % 9)]
def collate(items):
    x = torch.nn.utils.rnn.pad_sequence([a for a, _ in items], batch_first=True)
    y = torch.nn.utils.rnn.pad_sequence([b for _, b in items], batch_first=True)
    return x, y, torch.tensor([len(a) for a, _ in items]), torch.tensor([len(b) for _, b in items])
def build(hook=True, wrong=False):
    data = Items(wrong)
    loader = torch.utils.data.DataLoader(data, batch_size=8, collate_fn=collate)
    return Setup(model=Quarter(), loader=loader, output_lengths=lambda l: l // 4, sample_labels=data.labels if hook else None)
def build_loader():
    return build(hook=False)
def build_wrong():
    return build(wrong=True)
"""


def test_sample_labels_reads_labels_only_and_reports_what_the_loader_does(tmp_path):
    path = spec(tmp_path, DATASET)
    by_hook = CliRunner().invoke(app, ["scan", path, "--format", "json"])
    by_loader = CliRunner().invoke(app, ["scan", f"{path}:build_loader", "--format", "json"])
    hook, loader = json.loads(by_hook.stdout), json.loads(by_loader.stdout)
    assert hook["result"]["reader"] == "sample_labels" and loader["result"]["reader"] == "loader"
    assert hook["findings"] == loader["findings"] and hook["findings"]
    assert hook["result"]["spare_frames"] == loader["result"]["spare_frames"]


def test_sample_labels_that_disagree_with_the_loader_are_a_usage_error(tmp_path):
    result = CliRunner().invoke(app, ["scan", f"{spec(tmp_path, DATASET)}:build_wrong"])
    assert result.exit_code == 2 and "Setup.sample_labels(1) gives input length 10" in result.output


def test_workers_read_the_same_data(tmp_path):
    path = f"{spec(tmp_path, DATASET)}:build_loader"
    plain = json.loads(CliRunner().invoke(app, ["scan", path, "--format", "json"]).stdout)
    workers = json.loads(CliRunner().invoke(app, ["scan", path, "--workers", "2", "--format", "json"]).stdout)
    assert workers["findings"] == plain["findings"] and workers["result"]["spare_frames"] == plain["result"]["spare_frames"]
