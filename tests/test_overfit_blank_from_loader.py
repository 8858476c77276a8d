"""`overfit` tells which class is the blank from the loader's labels, not from the one sample it trains.

The trial's case: deep-text-recognition-benchmark's converter reserves class 0 for the blank, the criterion was written
with `CTCLoss(blank=36)`, and sample 0 ("q2gwvpjum") holds no 'z' (class 36). `check` said class 36 is a label and so
cannot be the blank; `overfit --sample 0` said either class could be, and offered `Setup.blank = 36`, which breaks the
set-up (CTC011).
"""
from __future__ import annotations

import json
import textwrap

from typer.testing import CliRunner

from ctcdoctor.cli import app

MODULE = textwrap.dedent('''
    import torch
    import torch.nn.functional as F
    from torch import nn
    from ctcdoctor import Setup

    def batches():
        g = torch.Generator().manual_seed(0)
        x = torch.randn(4, 12, 8, generator=g)
        y = torch.tensor([[1, 2, 3], [5, 1, 4], [2, 5, 3], [4, 3, 5]])  # sample 0 alone never uses class 5
        return [(x, y, torch.full((4,), 12), torch.full((4,), 3))]

    def criterion(output, batch):
        _, targets, input_lengths, target_lengths = batch
        return F.ctc_loss(output.transpose(0, 1), targets, input_lengths, target_lengths, blank=5)  # BUG: blank 0

    def build():
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 6), nn.LogSoftmax(-1))
        return Setup(model=model, loader=batches(), blank=0, alphabet="abcde", criterion=criterion)
''')


def test_overfit_names_the_criterions_blank_a_label_from_the_loaders_labels(tmp_path):
    module = tmp_path / "blank_last.py"
    module.write_text(MODULE, encoding="utf-8")
    result = CliRunner().invoke(app, ["overfit", f"{module}:build", "--sample", "0", "--steps", "20", "--format", "json"])
    (audit,) = [item for item in json.loads(result.stdout)["findings"] if item["code"] == "CTC030"]
    assert "The targets use class 5 as a label, so it cannot be the blank." in audit["message"], audit["message"]
    assert "Setup.blank = 5" not in audit["hint"] and audit["hint"].startswith("Call the loss with blank=0")
