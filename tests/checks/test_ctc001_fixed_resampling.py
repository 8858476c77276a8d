"""CTC001 on models whose frames do not follow the input width (a TPS-like spatial transformer that resamples every
image to a fixed width), the input width a plain CNN needs for the longest label, and CTC031 saying how many batches
it counted (from a trial on deep-text-recognition-benchmark: TPS-ResNet with imgW 32)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ctcdoctor import Setup
from ctcdoctor.engine import Options
from ctchelpers import run_codes


class TinySTN(nn.Module):
    """TPS in miniature: a localization network (pools, then an adaptive pool to 1x1) predicts an affine transform;
    grid_sample resamples the image to a fixed (8, width), whatever the input width."""

    def __init__(self, width: int | None = 16):
        super().__init__()
        self.loc = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.MaxPool2d(2), nn.Conv2d(4, 4, 3, padding=1),
                                 nn.MaxPool2d(2), nn.Conv2d(4, 4, 3, padding=1), nn.MaxPool2d(2), nn.AdaptiveAvgPool2d(1))
        self.fc = nn.Linear(4, 6)
        self.size = (8, width)

    def forward(self, x):
        theta = self.fc(self.loc(x).flatten(1)).view(-1, 2, 3)
        size = self.size if self.size[1] is not None else x.shape[2:]  # None: resample at the input's own size
        grid = F.affine_grid(theta, [x.size(0), x.size(1), *size], align_corners=False)
        return F.grid_sample(x, grid, align_corners=False)


class Recogniser(nn.Module):
    """Two MaxPool2d(2) (width / 4), with or without the transformer in front."""

    def __init__(self, stn: bool, width: int | None = 16):
        super().__init__()
        self.stn = TinySTN(width) if stn else nn.Identity()
        self.cnn = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                                 nn.Conv2d(4, 4, 3, padding=1), nn.MaxPool2d(2))
        self.fc = nn.Linear(4 * 2, 6)

    def forward(self, x):
        features = self.cnn(self.stn(x))
        n, c, h, w = features.shape
        return self.fc(features.permute(0, 3, 1, 2).reshape(n, w, c * h)).log_softmax(-1)


def batches(width: int, labels: list[list[int]], batch_size: int = 4) -> list[tuple]:
    generator = torch.Generator().manual_seed(0)
    found = []
    for start in range(0, len(labels), batch_size):
        chunk = labels[start:start + batch_size]
        images = torch.rand(len(chunk), 1, 8, width, generator=generator)
        targets = nn.utils.rnn.pad_sequence([torch.tensor(label) for label in chunk], batch_first=True)
        found.append((images, targets, torch.full((len(chunk),), width), torch.tensor([len(label) for label in chunk])))
    return found


# 4 frames for a 16-wide image; every other label needs 6 (5 labels + 1 repeat) or 3.
LABELS = [[1, 2, 3, 3, 4], [1, 2, 3]] * 4


def ctc001(model: nn.Module, width: int = 32):
    torch.manual_seed(0)
    findings, _ = run_codes(Setup(model=model, loader=batches(width, LABELS), blank=0), ("CTC001",),
                            Options(max_batches=2))
    (finding,) = findings
    return finding


def test_the_transformer_resampling_to_a_fixed_width_is_named_not_its_localization_pools():
    from ctcdoctor.measure.downsampling import measure_downsampling

    torch.manual_seed(0)
    model = Recogniser(stn=True)
    found = measure_downsampling(model, _batch())
    assert [layer.module for layer in found.layers] == ["cnn.2", "cnn.4"]
    assert found.fixed is not None and (found.fixed.module, found.fixed.frames, found.fixed.size) == ("stn", 4, 16)
    assert found.fixed.size_for(6) == 24


def test_a_transformer_that_keeps_the_input_width_leaves_only_its_localization_pools_out():
    from ctcdoctor.measure.downsampling import measure_downsampling

    torch.manual_seed(0)
    found = measure_downsampling(Recogniser(stn=True, width=None), _batch())
    assert found.fixed is None
    assert [layer.module for layer in found.layers] == ["cnn.2", "cnn.4"]


class PooledToSix(nn.Module):
    """A CNN whose adaptive pool gives 6 columns whatever the width: the pool is named, not the Sequential around it."""

    def __init__(self):
        super().__init__()
        self.cnn = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.MaxPool2d(2), nn.AdaptiveAvgPool2d((1, 6)))
        self.fc = nn.Linear(4, 6)

    def forward(self, x):
        return self.fc(self.cnn(x).squeeze(2).transpose(1, 2)).log_softmax(-1)


def test_an_adaptive_pool_to_a_fixed_width_is_the_resampler():
    from ctcdoctor.measure.downsampling import measure_downsampling

    found = measure_downsampling(PooledToSix(), _batch())
    assert found.layers == ()
    assert found.fixed is not None and (found.fixed.module, found.fixed.kind, found.fixed.frames) == \
        ("cnn.2", "AdaptiveAvgPool2d", 6)
    assert found.fixed.size_for(9) == 9


def _batch():
    from ctcdoctor.load.batches import normalise_batch

    return normalise_batch(batches(32, LABELS)[0], 0, 0)


def test_ctc001_on_a_fixed_width_model_says_longer_inputs_do_not_help():
    finding = ctc001(Recogniser(stn=True))
    assert "stn.loc" not in finding.message + finding.hint
    assert "feed longer inputs" not in finding.hint and "feed inputs" not in finding.hint
    assert "The model gives 4 frames whatever the input width: TinySTN at stn resamples every input to 16 along width" \
        in finding.message
    assert "longer inputs will not help" in finding.hint
    assert "downsampled ×4 by MaxPool2d at cnn.2 (stride 2 along width), MaxPool2d at cnn.4 (stride 2 along width)" \
        in finding.hint
    # floor(L / 4) frames after it must reach 6 (5 labels + 1 repeat): the transformer must resample to 24 or more.
    assert "Raise the size it resamples to along width to at least 24" in finding.hint
    assert "must reach 6: 5 labels + 1 repeat" in finding.hint
    assert finding.evidence["fixed_frames"]["needed_size"] == 24


def test_ctc001_on_a_plain_cnn_gives_the_input_width_that_fits_the_longest_label():
    finding = ctc001(Recogniser(stn=False), width=16)
    assert "downsampled ×4 by MaxPool2d at cnn.2 (stride 2 along width), MaxPool2d at cnn.4" in finding.hint
    assert "feed longer inputs" not in finding.hint
    # frames = floor(L / 4) must reach 6 (5 labels + 1 repeat): 24 px.
    assert "feed inputs at least 24 wide (frames = floor(L / 4) must reach 6: 5 labels + 1 repeat, sample 0)" \
        in finding.hint
    assert finding.evidence["measured_formula"] == "frames = floor(L / 4)"


def test_ctc031_says_how_many_batches_it_counted():
    def criterion(output, batch):
        _, targets, _, target_lengths = batch
        frames = torch.full((output.shape[0],), output.shape[1], dtype=torch.long)
        return F.ctc_loss(output.transpose(0, 1), targets, frames, target_lengths, zero_infinity=True)

    torch.manual_seed(0)
    setup = Setup(model=Recogniser(stn=False), loader=batches(16, LABELS), blank=0, criterion=criterion)
    findings, _ = run_codes(setup, ("CTC031",), Options(max_batches=2))
    (finding,) = findings
    assert finding.message.startswith("4 of 8 samples are infeasible in the 2 batches run through the model")
    assert finding.evidence["batches"] == 2
