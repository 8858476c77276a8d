"""CTC041 does not warn about raw inputs when the model's first layer normalises them."""
from __future__ import annotations

import torch
from torch import nn

from ctcdoctor import Setup
from ctchelpers import run_codes


class Head(nn.Module):
    """(N, T, F) features -> (N, T, C) log-probabilities, with `first` applied to the input."""

    def __init__(self, first: str):
        super().__init__()
        self.first = first
        self.norm = nn.LayerNorm(8) if first == "layernorm" else nn.BatchNorm1d(8)
        self.proj = nn.Linear(8, 8)
        self.fc = nn.Linear(8, 5)

    def forward(self, x):
        if self.first == "layernorm":
            x = self.norm(x)
        elif self.first == "batchnorm":
            x = self.norm(x.transpose(1, 2)).transpose(1, 2)  # BatchNorm1d over channels of (N, F, T)
        else:
            x = self.norm(self.proj(x).transpose(1, 2)).transpose(1, 2)  # a Linear sees the raw input first
        return self.fc(x).log_softmax(-1)


def raw_log_spectrogram_setup(first: str) -> Setup:
    generator = torch.Generator().manual_seed(0)
    features = torch.randn(4, 12, 8, generator=generator) * 9 - 38  # log-spectrogram-like: mean -38, never normalised
    batch = (features, torch.tensor([[1, 2], [2, 3], [1, 4], [3, 3]]), torch.full((4,), 12), torch.tensor([2, 2, 2, 2]))
    return Setup(model=Head(first), loader=[batch], blank=0)


def test_raw_inputs_are_a_warning_when_a_linear_layer_sees_them_first():
    (finding,) = run_codes(raw_log_spectrogram_setup("linear"), ("CTC041",))[0]
    assert finding.severity.value == "warning" and "sit far below zero" in finding.message


def test_a_first_layernorm_or_batchnorm_turns_the_warning_into_info_naming_it():
    for first, layer in (("layernorm", "LayerNorm at 'norm'"), ("batchnorm", "BatchNorm1d at 'norm'")):
        (finding,) = run_codes(raw_log_spectrogram_setup(first), ("CTC041",))[0]
        assert finding.severity.value == "info", first
        assert f"the model's first layer, {layer}, normalises them" in finding.message
        assert finding.evidence["normalised_by"]["module"] == "norm"
        assert "sit far below zero" in finding.message
