"""Trial 27 (ESPnet): a criterion that passes the padded width as every target length (ESPnet's -1 padding read as
labels), one that flattens the padded targets with the padding in, and a model returning more than the output whose
criterion uses the output alone, as `check --format json` reports them."""
from __future__ import annotations

import json
import textwrap

import pytest
from typer.testing import CliRunner

from ctcdoctor.cli import app

runner = CliRunner()

SPEC = textwrap.dedent('''
    import torch
    import torch.nn.functional as F
    from torch.utils.data import DataLoader

    from ctcdoctor import Setup

    C = 12
    IGNORE_ID = -1


    class Model(torch.nn.Module):
        def __init__(self, items):
            super().__init__()
            self.encoder = torch.nn.Linear(8, 16)
            self.head = torch.nn.Linear(16, C)
            self.items = items

        def forward(self, inputs):
            speech, lengths = inputs
            hs = torch.tanh(self.encoder(speech))
            log_probs = self.head(hs).log_softmax(-1)
            return (log_probs, lengths, hs) if self.items == 3 else (log_probs, lengths)


    def data():
        generator = torch.Generator().manual_seed(0)
        samples = []
        for index in range(16):
            frames = 30 + (index * 7) % 20
            labels = torch.randint(1, C - 1, (4 + (index * 5) % 7,), generator=generator)
            samples.append((torch.randn(frames, 8, generator=generator), labels))
        return samples


    def collate(batch):
        speech = torch.nn.utils.rnn.pad_sequence([b[0] for b in batch], batch_first=True)
        lengths = torch.tensor([b[0].size(0) for b in batch])
        ys_pad = torch.nn.utils.rnn.pad_sequence([b[1] for b in batch], batch_first=True, padding_value=IGNORE_ID)
        ys_lens = torch.tensor([b[1].size(0) for b in batch])
        return (speech, lengths), ys_pad, lengths, ys_lens


    def make(criterion, items=3):
        model = Model(items)
        loader = DataLoader(data(), batch_size=8, collate_fn=collate)
        return Setup(model=model, loader=loader, blank=0, criterion=criterion)


    def padded_width(output, batch):
        lp, hlens = output[0], output[1]
        _, ys_pad, _, ys_lens = batch
        tl = torch.full_like(ys_lens, ys_pad.size(1))
        return F.ctc_loss(lp.transpose(0, 1), ys_pad, hlens, tl, zero_infinity=True)


    def true_lengths(output, batch):
        lp, hlens = output[0], output[1]
        _, ys_pad, _, ys_lens = batch
        return F.ctc_loss(lp.transpose(0, 1), ys_pad, hlens, ys_lens, zero_infinity=True)


    def flattened(output, batch):
        lp, hlens = output[0], output[1]
        _, ys_pad, _, ys_lens = batch
        return F.ctc_loss(lp.transpose(0, 1), ys_pad.reshape(-1), hlens, ys_lens, zero_infinity=True)


    def with_state_term(output, batch):
        return true_lengths(output, batch) + 0.1 * output[2].pow(2).mean()


    def build_padded_width():
        return make(padded_width)


    def build_padded_width_two_items():
        return make(padded_width, items=2)


    def build_true_lengths():
        return make(true_lengths)


    def build_flattened():
        return make(flattened)


    def build_state_term():
        return make(with_state_term)
''')


@pytest.fixture(scope="module")
def spec(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("s27_padlen") / "espnet_like.py"
    path.write_text(SPEC)
    return str(path)


def _check(spec: str, build: str) -> tuple[int, dict]:
    result = runner.invoke(app, ["check", f"{spec}:{build}", "--format", "json", "--select", "CTC030"])
    assert result.exit_code in (0, 1), result.output
    return result.exit_code, json.loads(result.stdout)


def _ctc030(document: dict) -> list[dict]:
    return [item for item in document["findings"] if item["code"] == "CTC030"]


@pytest.mark.parametrize("build", ["build_padded_width", "build_padded_width_two_items"])
def test_target_lengths_of_the_padded_width_are_named_with_the_fix(spec, build):
    code, document = _check(spec, build)
    assert code == 1
    (found,) = _ctc030(document)
    assert found["severity"] == "error" and found["evidence"]["mistake"] == "padded_target_lengths", found["message"]
    assert "target lengths are the padded width" in found["message"]
    assert "padding value -1 counts as a label" in found["message"] and "the last class, 11" in found["message"]
    assert "none of the known mistakes" not in found["message"]
    assert found["hint"].startswith("Pass each sample's true label count as target_lengths (ESPnet's ys_lens, or "
                                    "(ys_pad != ignore_id).sum(-1))"), found["hint"]


def test_the_true_target_lengths_on_minus_one_padding_pass(spec):
    code, document = _check(spec, "build_true_lengths")
    assert code == 0 and not _ctc030(document), document["findings"]
    (row,) = [row for row in document["checks"] if row["code"] == "CTC030"]
    assert row["status"] == "passed", row


def test_a_criterion_that_reaches_another_returned_item_is_still_skipped(spec):
    code, document = _check(spec, "build_state_term")
    assert not _ctc030(document), document["findings"]
    (row,) = [row for row in document["checks"] if row["code"] == "CTC030"]
    assert row["status"] == "skipped" and "more outputs than the one checked" in row["reason"], row


def test_flattened_targets_with_the_padding_in_say_so(spec):
    code, document = _check(spec, "build_flattened")
    assert code == 1
    (found,) = _ctc030(document)
    assert "rows for" not in found["message"], found["message"]
    assert "the targets passed are 1-D with 80 entries while the target lengths sum to 53" in found["message"], found["message"]
    assert "the padding was left in when flattening" in found["message"]
    assert "ys_pad[ys_pad != ignore_id]" in found["hint"], found["hint"]
