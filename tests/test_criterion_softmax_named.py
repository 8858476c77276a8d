"""A raw-logit model whose criterion applies softmax (deep-text-recognition-benchmark's train.py with
`preds.softmax(2)` for `preds.log_softmax(2)`): every finding names the criterion's softmax as the thing to change.

Before, CTC021 told the user to add log_softmax "before F.ctc_loss" as if the criterion normalised nothing, the
overfit's CTC074 blamed "the model's output is raw logits" while CTC030 beside it had found the softmax, and CTC030's
fix was the whole corrected call with no word on what differed. A criterion that raises (a missing transpose) got
CTC021 too, although it applied log_softmax itself.
"""
from __future__ import annotations

import json
import textwrap

import pytest
from typer.testing import CliRunner

from ctcdoctor.cli import app

MODULE = textwrap.dedent('''
    import torch
    import torch.nn.functional as F
    from torch import nn
    from torch.utils.data import DataLoader, TensorDataset
    from ctcdoctor import Setup

    class RawMLP(nn.Module):
        """(N, T, F) features -> (N, T, C) raw scores: the loss is meant to apply log_softmax."""
        def __init__(self):
            super().__init__()
            self.body = nn.Sequential(nn.Linear(8, 32), nn.Tanh(), nn.Linear(32, 6))

        def forward(self, x):
            return self.body(x)

    def loader():
        g = torch.Generator().manual_seed(0)
        x = torch.randn(8, 16, 8, generator=g)
        y = torch.randint(1, 6, (8, 4), generator=g)
        y[:, 1] = y[:, 0] % 5 + 1
        data = TensorDataset(x, y)
        def collate(items):
            xs, ys = zip(*items)
            return torch.stack(xs), torch.stack(ys), torch.full((len(xs),), 16), torch.full((len(xs),), 4)
        return DataLoader(data, batch_size=8, collate_fn=collate)

    def softmax_in_criterion(output, batch):
        _, targets, input_lengths, target_lengths = batch
        return F.ctc_loss(output.softmax(2).permute(1, 0, 2), targets, input_lengths, target_lengths)  # BUG: softmax

    def no_permute(output, batch):
        _, targets, input_lengths, target_lengths = batch
        return F.ctc_loss(output.log_softmax(2), targets, input_lengths, target_lengths)  # BUG: (N, T, C) into the loss

    def build_softmax():
        torch.manual_seed(0)
        return Setup(model=RawMLP(), loader=loader(), alphabet="abcde", criterion=softmax_in_criterion,
                     optimizer=lambda p: torch.optim.Adam(p, lr=1e-2))

    def build_no_permute():
        torch.manual_seed(0)
        return Setup(model=RawMLP(), loader=loader(), alphabet="abcde", criterion=no_permute)
''')


@pytest.fixture(scope="module")
def module(tmp_path_factory):
    path = tmp_path_factory.mktemp("criterion_softmax") / "rawmlp.py"
    path.write_text(MODULE, encoding="utf-8")
    return path


def findings(*arguments: str) -> dict[str, dict]:
    result = CliRunner().invoke(app, [*arguments, "--format", "json"])
    return {item["code"]: item for item in json.loads(result.stdout)["findings"]}


def test_check_names_the_criterions_softmax_in_ctc030_and_ctc021(module):
    found = findings("check", f"{module}:build_softmax")
    assert found["CTC030"]["hint"].startswith("Give the loss log-probabilities: log_softmax where the criterion has softmax.")
    raw = found["CTC021"]
    assert raw["evidence"]["consequence_of"] == "CTC030"
    assert "The criterion normalises them with softmax" in raw["message"]
    assert raw["hint"].startswith("In the criterion, apply log_softmax(dim=-1)")


def test_overfit_blames_the_criterion_not_the_models_output(module):
    found = findings("overfit", f"{module}:build_softmax", "--steps", "30")
    negative = found["CTC074"]
    assert "the criterion turns the model's raw logits into probabilities (softmax)" in negative["message"]
    assert "the model's output is raw logits" not in negative["message"]
    assert negative["hint"] == "In the criterion, apply log_softmax(dim=-1) over the classes where it applies softmax."


def test_a_criterion_that_raises_gets_no_raw_logits_advice(module):
    result = CliRunner().invoke(app, ["check", f"{module}:build_no_permute", "--format", "json"])
    report = json.loads(result.stdout)
    codes = [item["code"] for item in report["findings"]]
    assert "CTC030" in codes and "CTC021" not in codes
    skipped = {item["code"]: item for item in report["checks"] if item["status"] == "skipped"}
    assert "the criterion raised" in skipped["CTC021"]["reason"]
