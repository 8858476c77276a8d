"""Trial 26 (public speech models read with fresh eyes): CTC001's fix states the largest downsampling the data allows
and names a spectrogram's axis as time, its frame rule agrees with itself, and it names a `stride` attribute such as
torchaudio's `_TimeReduction`; CTC030 puts the softmax where it is (the model's head); CTC028 measures a model that
builds its attention mask from max(lengths) instead of skipping it with the model's assertion."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

import ctcdoctor
from ctcdoctor import Setup
from ctcdoctor.engine import Options
from ctchelpers import healthy_setup, run_codes

# ---------------------------------------------------------------- CTC001 on a spectrogram model (deepspeech.pytorch)


class SpectrogramConv(nn.Module):
    """(N, 1, F, T) normalised spectrogram -> two Conv2d, the second striding time by `time_stride` -> (N, T', C),
    as deepspeech.pytorch's front end (Conv2d(stride=(2, 2)), then Conv2d(stride=(2, 1)); the trial made it (2, 4))."""

    def __init__(self, time_stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 4, 3, stride=(2, 2), padding=1)
        self.conv2 = nn.Conv2d(4, 4, 3, stride=(2, time_stride), padding=1)
        self.fc = nn.Linear(4 * 5, 30)

    def forward(self, x):
        features = self.conv2(torch.relu(self.conv1(x)))  # (N, 4, 5, T')
        n, c, f, t = features.shape
        return self.fc(features.permute(0, 3, 1, 2).reshape(n, t, c * f)).log_softmax(-1)


#: (input frames, labels): four samples need more than ×8 leaves them; sample 0 (96 frames for 20 labels, 4.8 steps
#: per label) sets the bound: ×4 gives it 24 frames, ×5 would give it 19.
SPECTROGRAMS = [(96, 20), (100, 18), (88, 15), (80, 16), (120, 10), (120, 10), (120, 10), (120, 10)]


def spectrogram_setup(time_stride: int) -> Setup:
    generator = torch.Generator().manual_seed(0)
    batches = []
    for start in (0, 4):
        chunk = SPECTROGRAMS[start:start + 4]
        lengths = torch.tensor([length for length, _ in chunk])
        inputs = torch.randn(4, 1, 20, int(lengths.max()), generator=generator)  # standardised log-spectrogram
        labels = [torch.arange(count) % 29 + 1 for _, count in chunk]
        targets = nn.utils.rnn.pad_sequence(labels, batch_first=True)
        batches.append((inputs, targets, lengths, torch.tensor([count for _, count in chunk])))
    return Setup(model=SpectrogramConv(time_stride), loader=batches, blank=0,
                 output_lengths=lambda lengths: (lengths + time_stride * 2 - 1) // (time_stride * 2))


def ctc001(setup: Setup):
    findings, _ = run_codes(setup, ("CTC001",), Options(max_batches=2, scan_batches=32))
    return findings


def test_the_cut_is_the_largest_downsampling_the_data_allows_not_the_next_layer_off():
    torch.manual_seed(0)
    (finding,) = ctc001(spectrogram_setup(4))
    # Before: "Cut that to ×2 or less: set the stride along width to 1 in ... (stride=(2, 1))": ×4 already fits.
    assert "Cut that to ×4 or less: set the stride along time to 2 in Conv2d at conv2 (stride=(2, 2)) " \
           "(×8 → ×4, about 2 times the frames)" in finding.hint, finding.hint
    assert finding.hint.startswith("Sample 0 needs 20 frames and gets 12: the time axis is downsampled ×8 by "
                                   "Conv2d at conv1 (stride 2 along time), Conv2d at conv2 (stride 4 along time).")
    # A spectrogram's axis is time, not an image's width, in the layers and in the input length to feed.
    assert "width" not in finding.hint and "wide" not in finding.hint
    assert "feed inputs at least 153 steps long (frames = floor((L + 7) / 8) must reach 20" in finding.hint
    assert [item["axis"] for item in finding.evidence["time_strides"]] == ["time", "time"]


def test_at_the_bound_every_sample_fits():
    torch.manual_seed(0)
    assert ctc001(spectrogram_setup(2)) == []  # ×4, as the fix says


def test_images_keep_width():
    from ctcdoctor.load.batches import normalise_batch
    from ctcdoctor.measure.downsampling import is_image

    def batch(inputs):
        return normalise_batch((inputs, torch.ones(2, 1, dtype=torch.long), torch.tensor([40, 40]), torch.tensor([1, 1])), 0, 0)

    generator = torch.Generator().manual_seed(0)
    noisy = (torch.rand(2, 1, 32, 40, generator=generator) > 0.7).float() + 0.05 * torch.randn(2, 1, 32, 40, generator=generator)
    assert is_image(batch(torch.rand(2, 1, 32, 40, generator=generator)))  # scaled to [0, 1]
    assert is_image(batch(torch.randint(0, 256, (2, 3, 32, 40), generator=generator).float()))  # colour
    assert is_image(batch((noisy.clamp(0, 1) - 0.3) / 0.4))  # ink and paper clipped after noise, then standardised
    assert not is_image(batch(torch.randn(2, 1, 32, 40, generator=generator)))  # standardised features
    assert not is_image(batch(torch.randn(2, 1, 40, 32, generator=generator)))  # (N, 1, T, F): time along the height


# ---------------------------------------------------------------- CTC001 on torchaudio's Conformer set-up


class TimeReduction(nn.Module):
    """torchaudio.models.rnnt._TimeReduction as written there: `stride` frames folded into one, (output, lengths)."""

    def __init__(self, stride: int) -> None:
        super().__init__()
        self.stride = stride

    def forward(self, input, lengths):  # noqa: A002 - torchaudio's name
        B, T, D = input.shape
        num_frames = T - (T % self.stride)
        input = input[:, :num_frames, :]
        lengths = lengths.div(self.stride, rounding_mode="trunc")
        output = input.reshape(B, num_frames // self.stride, D * self.stride)
        return output.contiguous(), lengths


class ReducedCTC(nn.Module):
    def __init__(self, stride: int = 16) -> None:
        super().__init__()
        self.reduce = TimeReduction(stride)
        self.proj = nn.Linear(8 * stride, 16)
        self.head = nn.Linear(16, 6)

    def forward(self, x, lengths):
        x, lengths = self.reduce(x, lengths)
        return self.head(torch.tanh(self.proj(x))).log_softmax(-1), lengths


def reduced_setup() -> tuple[Setup, list[int], list[int]]:
    generator = torch.Generator().manual_seed(0)
    lengths = [150, 170, 190, 210, 230, 250, 160, 200]
    labels = [14, 14, 14, 15, 16, 18, 4, 4]
    batches = []
    for start in (0, 4):
        chunk = torch.tensor(lengths[start:start + 4])
        inputs = torch.randn(4, int(chunk.max()), 8, generator=generator)
        targets = nn.utils.rnn.pad_sequence([torch.arange(n) % 5 + 1 for n in labels[start:start + 4]], batch_first=True)
        batches.append(((inputs, chunk), targets, chunk, torch.tensor(labels[start:start + 4])))
    return Setup(model=ReducedCTC(), loader=batches, blank=0), lengths, labels


def test_a_stride_attribute_is_named_and_the_frame_rule_reads_alike_in_message_and_fix():
    torch.manual_seed(0)
    setup, lengths, labels = reduced_setup()
    (finding,) = ctc001(setup)
    # The median of L / frames is 16.7 here: before, "about one output frame per 17 input steps" beside
    # "frames = floor(L / 16)", and a generic "smaller pooling/stride" for a module that is neither.
    assert "one output frame per 16 input steps" in finding.message and "per 17" not in finding.message
    assert "downsampled ×16 by TimeReduction at reduce (stride 16 along time)" in finding.hint, finding.hint
    bound = min(length // count for length, count in zip(lengths, labels) if length // 16 < count)
    assert f"Cut that to ×{bound} or less: set the stride along time to {bound} in TimeReduction at reduce " \
           f"(its stride attribute: stride={bound})" in finding.hint
    assert "frames = floor(L / 16)" in finding.hint and "pooling" not in finding.hint


def test_a_probed_rule_sets_the_stride_of_the_sentence_when_no_layer_is_found():
    from ctcdoctor.checks.lengths import frame_rule_phrase
    from ctcdoctor.measure.lengths import LengthModel

    class Returned:
        source, detail = "model", "returned by the model with its output"

    rule = LengthModel(((160, 10), (320, 20)), 16, 0)
    assert frame_rule_phrase(16.7, Returned, None, None, rule) == (
        " The model keeps one output frame per 16 input steps (frames = floor(L / 16), measured by probing it; frames "
        "returned by the model with its output).")


# ---------------------------------------------------------------- CTC030 when the model's head applies softmax


def _ctc030(setup: Setup):
    return {found.code: found for found in run_codes(setup, ("CTC020", "CTC030"))[0]}


def test_probabilities_from_the_models_head_are_fixed_at_the_head_not_in_the_criterion():
    setup = healthy_setup(head="softmax")

    def criterion(output, batch):  # passes the model's probabilities on as they are
        _, targets, input_lengths, target_lengths = batch
        return F.ctc_loss(output, targets, input_lengths // 2, target_lengths)

    setup.criterion = criterion
    found = _ctc030(setup)
    assert "CTC020" in found
    ctc030 = found["CTC030"]
    assert ctc030.evidence["mistake"] == "probabilities" and ctc030.evidence["consequence_of"] == "CTC020"
    assert "where the criterion has softmax" not in ctc030.hint
    assert ctc030.hint.startswith("The model's output is already probabilities (its head applies softmax: CTC020)")
    assert "replace that softmax with log_softmax(dim=-1) at the head" in ctc030.hint
    assert "the loss receives the model's probabilities" in ctc030.message


def test_a_softmax_in_the_criterion_is_still_fixed_in_the_criterion():
    setup = healthy_setup()

    def criterion(output, batch):  # log-probabilities from the model, exp() in the loss
        _, targets, input_lengths, target_lengths = batch
        return F.ctc_loss(output.exp(), targets, input_lengths // 2, target_lengths)

    setup.criterion = criterion
    found = _ctc030(setup)
    assert "CTC020" not in found
    assert found["CTC030"].hint.startswith("Give the loss log-probabilities: log_softmax where the criterion has softmax.")
    assert "consequence_of" not in found["CTC030"].evidence


# ---------------------------------------------------------------- CTC028 on a model that masks from max(lengths)


class MaskedEncoder(nn.Module):
    """As torchaudio's Conformer: the attention's padding mask built from max(lengths), with its shape assertion,
    and a depthwise conv that reads the padding after a sample's last frame. `mix`: a GRU with batch_first=False fed
    (N, T, E), which recurs over the samples."""

    def __init__(self, mix: bool = False) -> None:
        super().__init__()
        self.proj = nn.Linear(8, 16)
        self.attention = nn.MultiheadAttention(16, 2, batch_first=True)
        self.conv = nn.Conv1d(16, 16, 5, padding=2, groups=16)
        self.rnn = nn.GRU(16, 16) if mix else None
        self.head = nn.Linear(16, 6)

    def forward(self, x, lengths):
        mask = torch.arange(int(lengths.max()))[None, :] >= lengths[:, None]
        assert mask.shape[1] == x.shape[1], f"Expected key_padded_mask.shape[1] to be {x.shape[1]}, but got {mask.shape[1]}"
        h = self.proj(x)
        h = h + self.attention(h, h, h, key_padding_mask=mask, need_weights=False)[0]
        h = h + self.conv(h.transpose(1, 2)).transpose(1, 2)
        if self.rnn is not None:
            h = h + self.rnn(h)[0]
        return self.head(h).log_softmax(-1), lengths


def masked_batches() -> list[tuple]:
    generator = torch.Generator().manual_seed(0)
    lengths = torch.tensor([20, 18, 14, 12])
    inputs = torch.randn(4, 20, 8, generator=generator) * (torch.arange(20)[None, :, None] < lengths[:, None, None])
    targets = torch.tensor([[1, 2, 3], [2, 3, 4], [3, 4, 5], [1, 3, 5]])
    return [((inputs, lengths), targets, lengths, torch.tensor([3, 3, 3, 3]))]


def ctc028(model: nn.Module):
    torch.manual_seed(0)
    report = ctcdoctor.check(Setup(model=model, loader=masked_batches()), select=["CTC028"])
    (result,) = report.checks
    return [item for item in report.findings if item.code == "CTC028"], result


def test_a_model_that_masks_from_max_lengths_is_measured_not_skipped():
    torch.manual_seed(0)
    found, result = ctc028(MaskedEncoder().eval())
    # Before: skipped, "the model cannot run one sample alone (AssertionError: Expected key_padded_mask.shape[1] ...)".
    assert found == [] and result.status == "passed", result.reason


def test_cut_to_its_own_length_such_a_model_differs_without_mixing_samples():
    # Why the sample stays in its batch: alone at its own length, its last frames no longer see the padding its
    # depthwise conv reads in the batch, so they differ although no sample reads another.
    torch.manual_seed(0)
    model = MaskedEncoder().eval()
    (inputs, lengths), *_ = masked_batches()[0]
    with torch.no_grad():
        inside = model(inputs, lengths)[0][2, :14]
        alone = model(inputs[2:3, :14], lengths[2:3])[0][0]
    assert float((inside - alone).abs().max()) > 1e-3


def test_a_model_that_masks_from_max_lengths_and_mixes_samples_is_caught():
    torch.manual_seed(0)
    (finding,), _ = ctc028(MaskedEncoder(mix=True).eval())
    assert "output changes when the other samples of batch 0 change" in finding.message
    assert "GRU 'rnn' has batch_first=False" in finding.message and finding.evidence["method"] == "others_replaced"
