"""CTC001's message and fix as a new user reads them: which samples are listed, the frame rule in a whole
sentence and consistent with the rule ctcdoctor used, the layers that downsample time by name, and
dropping a few outliers instead of rebuilding the model."""
from __future__ import annotations

import torch
from torch import nn

from ctcdoctor import Setup
from ctcdoctor.engine import Options
from ctchelpers import run_codes


class CRNN(nn.Module):
    """Three MaxPool2d(2) (width / 8) or four (width / 16): one frame per `stride` pixels of width."""

    def __init__(self, pools: int = 3):
        super().__init__()
        layers: list[nn.Module] = []
        for _ in range(pools):
            layers += [nn.Conv2d(1 if not layers else 4, 4, 3, padding=1), nn.MaxPool2d(2)]
        self.cnn = nn.Sequential(*layers)
        self.fc = nn.Linear(4 * (32 >> pools), 6)

    def forward(self, x):
        features = self.cnn(x)
        n, c, h, w = features.shape
        return self.fc(features.permute(0, 3, 1, 2).reshape(n, w, c * h)).log_softmax(-1)


def image_batches(widths: list[int], labels: list[list[int]], batch_size: int = 8) -> list[tuple]:
    generator = torch.Generator().manual_seed(0)
    batches = []
    for start in range(0, len(widths), batch_size):
        chunk, chunk_labels = widths[start:start + batch_size], labels[start:start + batch_size]
        images = torch.rand(len(chunk), 1, 32, max(chunk), generator=generator)
        targets = nn.utils.rnn.pad_sequence([torch.tensor(label) for label in chunk_labels], batch_first=True)
        batches.append((images, targets, torch.tensor(chunk), torch.tensor([len(label) for label in chunk_labels])))
    return batches


def ctc001(setup: Setup):
    findings, _ = run_codes(setup, ("CTC001",), Options(max_batches=2, scan_batches=32))
    (finding,) = findings
    return finding


def test_same_width_images_read_as_a_sentence_and_name_the_pools():
    # 16 px wide -> 2 frames; 7 of 8 labels need 4 or more.
    labels = [[1, 2]] + [[1, 2, 3, 4]] * 6 + [[1, 1, 2, 2]]
    finding = ctc001(Setup(model=CRNN(3), loader=image_batches([16] * 8, labels), blank=0))
    assert finding.message.startswith("7 of 8 samples need more frames than the model gives; the 5 furthest short: sample 7 has 2 frames")
    assert "(frames every input" not in finding.message
    assert "one output frame per 8 input steps (every input has the same length, so every sample gets all 2 frames)." in finding.message
    assert "downsampled ×8 by MaxPool2d at cnn.1 (stride 2 along width), MaxPool2d at cnn.3 (stride 2 along width), " \
           "MaxPool2d at cnn.5 (stride 2 along width)" in finding.hint
    # Sample 7 needs 6 frames and gets 2: at most x8 * 2/6 = x2.7, so two of the three pools lose their width stride.
    assert "Sample 7 needs 6 frames and gets 2" in finding.hint
    # ... and with the argument to write (from a trial: "along width" alone left the stride tuple to guess).
    assert ("set the stride along width to 1 in MaxPool2d at cnn.5 (stride=(2, 1)) and MaxPool2d at cnn.3 "
            "(stride=(2, 1)) (×8 → ×2") in finding.hint
    assert [item["module"] for item in finding.evidence["time_strides"]] == ["cnn.1", "cnn.3", "cnn.5"]


def test_a_probed_floor_rule_states_its_own_stride_not_a_median_ratio():
    # floor(L / 16) on widths 100..240 gives 6..15 frames: the median of L / frames is 16.7, "one per 17".
    widths = list(range(100, 241, 20))
    finding = ctc001(Setup(model=CRNN(4), loader=image_batches(widths, [[1, 2, 3, 4, 5] * 4] * 8), blank=0))
    assert ("The model keeps one output frame per 16 input steps (its layers downsample time ×16; frames estimated by "
            "probing the model: frames = floor(L / 16)).") in finding.message
    assert "per 17" not in finding.message
    assert finding.message.startswith("8 of 8 samples need more frames than the model gives; the 5 furthest short: ")
    assert "downsampled ×16" in finding.hint


def test_few_infeasible_samples_are_dropped_not_the_model_rebuilt():
    # 24 images 96 px wide (12 frames); one carries a 14-label line: 1 of 24 (4%) is an outlier.
    labels = [[1, 2, 3]] * 23 + [[1, 2, 3, 4, 5] * 2 + [1, 2, 3, 4]]
    finding = ctc001(Setup(model=CRNN(3), loader=image_batches([96] * 24, labels), blank=0))
    assert finding.message.startswith("1 of 24 samples needs more frames than the model gives: sample 23 has 12 frames for 14 labels")
    assert "Only 1 of 24 samples (4%) is too long for their input" in finding.hint
    assert "--drop-list" in finding.hint and "stride" not in finding.hint


def test_conv1d_subsampling_of_audio_features_is_found_along_time():
    from ctcdoctor.load.batches import normalise_batch
    from ctcdoctor.measure.downsampling import time_downsampling

    model = nn.Sequential(nn.Conv1d(8, 8, 3, stride=2, padding=1), nn.ReLU(), nn.Conv1d(8, 8, 3, stride=3, padding=1),
                          nn.Conv1d(8, 5, 1))  # (N, F, T) -> (N, C, T / 6)
    batch = normalise_batch((torch.randn(2, 8, 60), torch.tensor([[1], [2]]), torch.tensor([60, 48]), torch.tensor([1, 1])), 0, 0)
    layers = time_downsampling(model, batch)
    assert [layer.describe() for layer in layers] == ["Conv1d at 0 (stride 2 along time)", "Conv1d at 2 (stride 3 along time)"]


def test_probed_rule_prefers_the_layer_like_stride_and_scan_states_it_as_check_does():
    from ctcdoctor.checks.lengths import frame_rule_phrase
    from ctcdoctor.measure.lengths import _fit

    # The trial's scan probes: floor(L / 16) and floor(L / 17) give the same frames; scan said "floor(L / 17)".
    points = [(34, 2), (43, 2), (52, 3), (61, 3), (69, 4), (75, 4), (103, 6), (138, 8)]
    # Offsets -2..0 fit these probes alike: the lowest never promises more frames than the model gives between them
    # (probe_lengths pins the real offset by bisection).
    assert _fit(points) == (16, -2)

    class ScanLengths:  # a scan's output lengths keep only their source and description
        source, detail = "probed", "estimated by probing the model: frames = floor((L + 3) / 16)"

    assert frame_rule_phrase(18.4, ScanLengths) == (
        " The model keeps one output frame per 16 input steps (frames estimated by probing the model: frames = floor((L + 3) / 16)).")


def test_setup_output_lengths_state_the_measured_stride_not_a_rounded_median():
    # width // 16 from Setup.output_lengths: the median of L / frames reads 16.7 ("one per 17" next to "×16").
    widths = list(range(100, 241, 20))
    finding = ctc001(Setup(model=CRNN(4), loader=image_batches(widths, [[1, 2, 3, 4, 5] * 4] * 8), blank=0,
                           output_lengths=lambda w: w // 16))
    assert "The model keeps one output frame per 16 input steps (its layers downsample time ×16; frames from " \
           "Setup.output_lengths)." in finding.message, finding.message
    assert "per 17" not in finding.message and "×16" in finding.hint


def test_the_fix_says_why_its_sample_is_not_one_of_those_listed():
    # Five samples 5 frames short (25 labels in 20 frames, 1.25x too few) are listed; sample 5 is 1 frame short
    # but 1.5x too few (3 labels in 2 frames): it sets how far the downsampling must go, and the fix says so.
    widths = [160] * 5 + [16, 160, 160]
    labels = [[1, 2, 3, 4, 5] * 5] * 5 + [[1, 2, 3], [1, 2], [1, 2]]
    finding = ctc001(Setup(model=CRNN(3), loader=image_batches(widths, labels), blank=0))
    listed = [item["sample"] for item in finding.evidence["worst"]]
    assert 5 not in listed
    assert finding.hint.startswith("Sample 5, short by the largest factor (it needs 3 frames and gets 2, 1.5× too few): "
                                   "the time axis is downsampled ×8"), finding.hint
