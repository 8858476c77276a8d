"""Trial 27 (ESPnet): a model whose returned lengths come from a padding mask subsampled by slicing, as ESPnet's
Conv2dSubsampling does (`x_mask[:, :, :-2:2][:, :, :-2:2]`), counts 1-2 frames past the end of every sample that is
padded in its batch, and agrees with the model for a sample alone. That is no CTC004 error (ESPnet trains this way):
CTC007 (info) says so, CTC001/CTC002 judge each sample by its own frames without "disagree" text, and `scan` judges
by the same frames as `check`. CTC001's fix: no "Cut that to ×1 or less", one sample per claim (or why two), and the
reminder that the returned lengths must follow a stride change.

The fixtures below are also the specs the CLI loads (`this file:function`)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn
from typer.testing import CliRunner

from ctcdoctor import Setup
from ctcdoctor.cli import app

FEATURES, WIDTH, CLASSES = 8, 16, 8


class SlicedSubsampling(nn.Module):
    """ESPnet's Conv2dSubsampling mechanics: two Conv2d(3, stride 2) over (time, feature), frames = (L - 3) // 4, and
    the padding mask subsampled by slicing, which keeps one or two positions more for a padded sample."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Sequential(nn.Conv2d(1, WIDTH, 3, 2), nn.ReLU(), nn.Conv2d(WIDTH, WIDTH, 3, 2), nn.ReLU())
        self.out = nn.Linear(WIDTH * (((FEATURES - 1) // 2 - 1) // 2), WIDTH)

    def forward(self, x: torch.Tensor, x_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.conv(x.unsqueeze(1))
        b, c, t, f = x.size()
        return self.out(x.transpose(1, 2).contiguous().view(b, t, c * f)), x_mask[:, :, :-2:2][:, :, :-2:2]


class TinyESPnet(nn.Module):
    """forward(speech (N, T, F), speech_lengths) -> (log-probs (N, T', C), lengths). `lengths`: "mask" (ESPnet's
    mask sum), "full" (every sample the whole padded output: counts the padding), "plus_one" ((L - 3) // 4 + 1, off by
    one even for a sample alone)."""

    def __init__(self, lengths: str = "mask") -> None:
        super().__init__()
        torch.manual_seed(0)
        self.embed = SlicedSubsampling()
        self.head = nn.Linear(WIDTH, CLASSES)
        self.lengths = lengths

    def forward(self, speech: torch.Tensor, speech_lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mask = (torch.arange(speech.shape[1])[None, :] < speech_lengths[:, None])[:, None, :]
        xs, masks = self.embed(speech, mask)
        if self.lengths == "mask":
            lengths = masks.squeeze(1).sum(1)
        elif self.lengths == "full":
            lengths = torch.full_like(speech_lengths, xs.shape[1])
        else:
            lengths = torch.div(speech_lengths - 3, 4, rounding_mode="floor") + 1
        return self.head(xs).log_softmax(-1), lengths


def _batches(lengths: list[int], label_counts: list[int], size: int = 4) -> list[tuple]:
    generator = torch.Generator().manual_seed(0)
    out = []
    for start in range(0, len(lengths), size):
        chunk, counts = lengths[start:start + size], label_counts[start:start + size]
        speech = torch.zeros(len(chunk), max(chunk), FEATURES)
        for row, length in enumerate(chunk):
            speech[row, :length] = torch.randn(length, FEATURES, generator=generator)
        labels = [torch.tensor([1 + (k * 3 + row) % (CLASSES - 1) for k in range(count)]) for row, count in enumerate(counts)]
        targets = nn.utils.rnn.pad_sequence(labels, batch_first=True, padding_value=-1)
        speech_lengths = torch.tensor(chunk)
        out.append(((speech, speech_lengths), targets, speech_lengths, torch.tensor(counts)))
    return out


# 100-180 steps (23-44 frames) for 3-7 labels: every sample fits with room to spare.
HEALTHY = ([120, 101, 150, 133, 180, 162, 111, 140], [5, 3, 7, 4, 6, 5, 3, 7])
# 30-62 steps (6-14 frames) for 10-20 labels: every sample is short. Sample 1 (30 steps, 15 labels) has the fewest
# input steps per needed frame, so it sets the cut: (30 - 3) / 15 = 1.8, only ×1 fits; sample 4 (62 steps, 20 labels)
# needs the most frames, so it sets the input length.
SHORT = ([44, 30, 41, 36, 62, 50, 47, 39], [12, 15, 11, 10, 20, 16, 13, 12])


def healthy() -> Setup:
    return Setup(model=TinyESPnet(), loader=_batches(*HEALTHY), blank=0)


def short() -> Setup:
    return Setup(model=TinyESPnet(), loader=_batches(*SHORT), blank=0)


def bucketed() -> Setup:  # ESPnet sorts by length: near-equal lengths per batch, the mask gives the whole output
    return Setup(model=TinyESPnet(), loader=_batches([104, 102, 101, 100, 144, 143, 141, 140], HEALTHY[1]), blank=0)


def full_lengths() -> Setup:  # returned lengths count the whole padding: a real CTC004 error
    return Setup(model=TinyESPnet("full"), loader=_batches(*HEALTHY), blank=0)


def plus_one() -> Setup:  # one frame too many even for a sample alone: a real CTC004 error
    return Setup(model=TinyESPnet("plus_one"), loader=_batches(*HEALTHY), blank=0)


def _run(command: str, function: str, *extra: str) -> tuple[int, dict]:
    result = CliRunner().invoke(app, [command, f"{Path(__file__)}:{function}", "--format", "json", *extra])
    return result.exit_code, json.loads(result.stdout)


def _by_code(document: dict) -> dict[str, dict]:
    return {item["code"]: item for item in document["findings"]}


def test_mask_sliced_lengths_on_a_healthy_model_are_info_not_a_ctc004_error():
    code, document = _run("check", "healthy")
    found = _by_code(document)
    assert code == 0, document["findings"]
    assert "CTC004" not in found
    ctc007 = found["CTC007"]
    assert ctc007["severity"] == "info"
    assert "count up to 2 frames past the end of padded samples" in ctc007["message"], ctc007["message"]
    assert "for one sample run alone (no padding) they agree" in ctc007["message"]
    assert "as ESPnet's Conv2dSubsampling does" in ctc007["message"]
    assert "usually harmless" in ctc007["message"]
    assert "frames = floor((L - 3) / 4)" in ctc007["message"]
    assert "`(L - 3) // 4` in the forward of embed (SlicedSubsampling)" in ctc007["hint"], ctc007["hint"]
    assert not any("disagree" in item["message"] + item["hint"] for item in document["findings"])


def test_ctc007_is_an_ordinary_code_to_ignore():
    code, document = _run("check", "healthy", "--ignore", "CTC007")
    assert code == 0 and {"CTC004", "CTC007"}.isdisjoint(_by_code(document))


def test_bucketed_batches_of_near_equal_lengths_are_not_a_ctc004_error_either():
    code, document = _run("check", "bucketed")
    found = _by_code(document)
    assert code == 0, document["findings"]
    assert "CTC004" not in found and found["CTC007"]["severity"] == "info"
    assert "count up to 1 frame past the end of padded samples" in found["CTC007"]["message"]


@pytest.mark.parametrize("spec", ["full_lengths", "plus_one"])
def test_lengths_that_count_the_padding_or_are_off_for_a_sample_alone_stay_a_ctc004_error(spec):
    code, document = _run("check", spec)
    found = _by_code(document)
    assert code == 1
    assert found["CTC004"]["severity"] == "error"
    assert "CTC007" not in found


def test_ctc001_and_ctc002_judge_the_models_own_frames_without_disagree_text():
    code, document = _run("check", "short")
    found = _by_code(document)
    assert code == 1
    assert "CTC004" not in found and found["CTC007"]["severity"] == "info"
    ctc001 = found["CTC001"]
    assert "disagree" not in ctc001["message"] + ctc001["hint"], ctc001
    assert "frames the model gives each sample on its own" in ctc001["message"]
    # Sample 1: 30 steps -> (30 - 3) // 4 = 6 frames (the returned mask sum says 8: it is padded to 62).
    worst = ctc001["evidence"]["worst"][0]
    assert (worst["sample"], worst["frames"]) == (1, 6), ctc001["evidence"]["worst"]
    ctc002 = found.get("CTC002")
    assert ctc002 is None or "disagree" not in ctc002["message"]


def test_ctc001_fix_names_one_sample_per_claim_no_cut_to_x1_and_the_lengths_follow_the_strides():
    _, document = _run("check", "short")
    hint = _by_code(document)["CTC001"]["hint"]
    assert "×1 or less" not in hint, hint
    assert "Sample 1 needs 15 frames and gets 6" in hint
    assert "only removing all of it gives sample 1 its 15 frames" in hint
    assert "enough for the sample that needs the most frames, sample 4: frames = floor((L - 3) / 4) must reach 20" in hint
    assert ("The model returns its own output lengths: what computes them (here the forward of embed "
            "(SlicedSubsampling), which subsamples the padding mask by slicing) must follow a stride change") in hint


def test_check_and_scan_judge_the_same_frames():
    _, checked = _run("check", "short")
    _, scanned = _run("scan", "short")
    check_worst = [(item["sample"], item["frames"]) for item in _by_code(checked)["CTC001"]["evidence"]["worst"]]
    scan_worst = [(item["sample"], item["frames"]) for item in _by_code(scanned)["CTC001"]["evidence"]["worst"]]
    assert check_worst == scan_worst
    hint = _by_code(scanned)["CTC001"]["hint"]
    assert "×1 or less" not in hint and "must follow a stride change" in hint, hint
