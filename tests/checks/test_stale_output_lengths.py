"""Setup.output_lengths out of date with the model (a new-user trial): the measured rule must be right at every
input length, not only at the data's (all multiples of 4), and CTC001/CTC002 judge the model on the frames it
really gives, pointing at the length rule when only the rule is wrong."""
from __future__ import annotations

import torch
from torch import nn

from ctcdoctor import Setup
from ctcdoctor.engine import Context, Options
from ctchelpers import codes_of, run_codes


class Pools(nn.Module):
    """(N, F, L) -> (T, N, C) through MaxPool1d layers: `pools` of stride 2, then `trims` of stride 1 and a Conv1d
    of kernel 2; four stride-1 steps after two halvings give frames = L // 4 - 3 = floor((L - 12) / 4)."""

    def __init__(self, pools: int = 2, trims: int = 2, features: int = 4, classes: int = 6):
        super().__init__()
        layers: list[nn.Module] = [nn.MaxPool1d(2) for _ in range(pools)]
        layers += [nn.MaxPool1d(2, stride=1) for _ in range(trims)]
        self.cnn = nn.Sequential(*layers, nn.Conv1d(features, 8, 2))
        self.fc = nn.Linear(8, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.cnn(x).transpose(1, 2)).log_softmax(-1).transpose(0, 1)


def frames_of(model: nn.Module, length: int) -> int:
    with torch.no_grad():
        return int(model(torch.zeros(1, 4, length)).shape[0])


def batches(lengths: list[int], labels: list[list[int]], batch_size: int = 8) -> list[tuple]:
    generator = torch.Generator().manual_seed(0)
    out = []
    for start in range(0, len(lengths), batch_size):
        chunk, chunk_labels = lengths[start:start + batch_size], labels[start:start + batch_size]
        targets = nn.utils.rnn.pad_sequence([torch.tensor(label) for label in chunk_labels], batch_first=True)
        out.append((torch.randn(len(chunk), 4, max(chunk), generator=generator), targets, torch.tensor(chunk),
                    torch.tensor([len(label) for label in chunk_labels])))
    return out


# The trial's widths: 12 * letters + 8, all multiples of 4 (44..128).
WIDTHS = [12 * letters + 8 for letters in (3, 5, 7, 9, 10, 4, 6, 8)] * 2
LABELS = [[1 + k % 5 for k in range((width - 8) // 12)] for width in WIDTHS]


def setup_for(model: nn.Module, output_lengths=None, widths=WIDTHS, labels=LABELS) -> Setup:
    torch.manual_seed(0)
    return Setup(model=model, loader=batches(widths, labels), blank=0, output_lengths=output_lengths)


def test_the_measured_rule_is_right_at_every_length_not_only_the_datas_residue():
    # floor((L - 9) / 4) fits every multiple of 4 as well, but gives W=45 9 frames where the model gives 8.
    model = Pools()
    findings, _ = run_codes(setup_for(model, lambda w: w // 16 - 1), ("CTC004",))
    (ctc004,) = findings
    assert "frames = floor((L - 12) / 4)" in ctc004.hint, ctc004.hint
    context = Context(setup_for(model, lambda w: w // 16 - 1), Options())
    rule = context.length_model
    assert all(int(rule(torch.tensor([length]))) == frames_of(model, length) for length in range(44, 300))


def test_a_single_sample_pins_the_same_rule_as_the_whole_batch():
    # overfit probes one sample (two lengths): it said floor((L - 13) / 17) for a floor((L - 16) / 16) model.
    model = Pools(pools=4, trims=0)
    context = Context(setup_for(model, widths=[92], labels=[[1, 2, 3]]), Options(max_batches=1))
    rule = context.length_model
    assert rule.describe() == "frames = floor((L - 16) / 16)", rule.probed
    assert all(int(rule(torch.tensor([length]))) == frames_of(model, length) for length in range(44, 300))


def test_no_rule_fits_says_so_and_gives_the_measured_frames():
    class Switches(nn.Module):
        """One frame per 4 steps up to 100 steps, one per 2 beyond: no floor((L + k) / s) rule."""

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            length = x.shape[-1]
            frames = length // 4 if length < 100 else length // 2
            return torch.zeros(frames, x.shape[0], 6).log_softmax(-1)

    findings, _ = run_codes(setup_for(Switches(), lambda w: w), ("CTC004",))
    (ctc004,) = findings
    assert ctc004.hint.startswith("No floor((L + k) / s) rule fits the frames your model gives (44->11, "), ctc004.hint
    assert "frames = floor" not in ctc004.hint


def test_stale_lengths_shorter_than_the_model_blame_the_rule_not_the_pooling():
    # The trial: pooling cut from x16 to x4 as CTC001 advised, output_lengths left at w // 16 - 1.
    findings, _ = run_codes(setup_for(Pools(), lambda w: w // 16 - 1), ("CTC001", "CTC002"))
    (ctc001,) = findings
    assert "samples need more frames than Setup.output_lengths gives" in ctc001.message, ctc001.message
    assert ("These frames come from Setup.output_lengths, which disagree with the model (CTC004): the model itself "
            "gives every sample enough frames") in ctc001.message
    assert ctc001.hint.startswith("Set Setup.output_lengths (and the output lengths your loss uses) to the model's "
                                  "rule: frames = floor((L - 12) / 4) (in Python `(L - 12) // 4`)"), ctc001.hint
    assert "stride" not in ctc001.hint and "downsampl" not in ctc001.message
    assert ctc001.evidence["model_frames_suffice"] is True
    assert ctc001.evidence["measured_formula"] == "frames = floor((L - 12) / 4)"


def test_stale_lengths_longer_than_the_output_still_show_the_infeasible_samples():
    # Pooling raised to x16, output_lengths left at the x4 rule: CTC003/CTC004 fire, and CTC001 on the real frames.
    setup = setup_for(Pools(pools=4, trims=0), lambda w: w // 4 + 1)
    findings, _ = run_codes(setup, ("CTC001", "CTC003", "CTC004"))
    assert codes_of(findings) == {"CTC001", "CTC003", "CTC004"}
    ctc001 = next(item for item in findings if item.code == "CTC001")
    assert ctc001.message.startswith("16 of 16 samples need more frames than the model gives"), ctc001.message
    assert ("frames measured by probing the model, not from Setup.output_lengths (CTC004): "
            "frames = floor((L - 16) / 16))") in ctc001.message
    assert "the time axis is downsampled ×16" in ctc001.hint
    assert ("Setup.output_lengths disagree with the model as well (CTC004): today the model gives frames = "
            "floor((L - 16) / 16) (in Python `(L - 16) // 16`)") in ctc001.hint
    assert ctc001.evidence["lengths_source"] == "probed"


def test_the_budget_is_the_models_when_the_declared_lengths_disagree():
    # x4 model, 9 to 29 frames; labels of 8 to 28 fit but tightly. Declared w // 2 (plenty) is not the model's.
    labels = [[1 + k % 5 for k in range(frames_of(Pools(), width) - 1)] for width in WIDTHS]
    labels = [[1, 2] * (len(label) // 2) + [1] * (len(label) % 2) for label in labels]  # no adjacent repeats
    findings, _ = run_codes(setup_for(Pools(), lambda w: w // 2, labels=labels), ("CTC001", "CTC002"))
    (ctc002,) = findings
    assert ctc002.code == "CTC002"
    assert "Frames measured by probing the model, not from Setup.output_lengths (CTC004)" in ctc002.message
    assert ctc002.evidence["measured_formula"] == "frames = floor((L - 12) / 4)"


def test_a_model_that_takes_only_some_lengths_keeps_a_rule_that_never_promises_too_many_frames():
    class MultiplesOfFour(Pools):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if x.shape[-1] % 4:
                raise ValueError("width must be a multiple of 4")
            return super().forward(x)

    model = MultiplesOfFour()
    findings, _ = run_codes(setup_for(model, lambda w: w // 16 - 1), ("CTC004",))
    (ctc004,) = findings
    # floor((L - 9) / 4) to floor((L - 12) / 4) all fit the multiples of 4: the lowest offset is kept.
    assert "frames = floor((L - 12) / 4)" in ctc004.hint, ctc004.hint
