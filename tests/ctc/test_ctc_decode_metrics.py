import math

import pytest
import torch

from ctcdoctor.ctc import cer, edit_distance, greedy_decode, spikiness, wer


def one_hot_lp(paths, C, eps=1e-4):
    """(T, N, C) log-probs whose argmax follows the given per-sample class paths."""
    T = len(paths[0])
    p = torch.full((T, len(paths), C), eps, dtype=torch.float64)
    for n, path in enumerate(paths):
        for t, k in enumerate(path):
            p[t, n, k] = 1.0
    return (p / p.sum(-1, keepdim=True)).log()


def test_greedy_collapses_then_drops_blanks():
    lp = one_hot_lp([[1, 1, 0, 1, 2, 2, 0], [0, 3, 3, 3, 0, 0, 2]], C=4)
    assert greedy_decode(lp) == [[1, 1, 2], [3, 2]]
    assert greedy_decode(lp, output_lengths=[7, 4]) == [[1, 1, 2], [3]]
    assert greedy_decode(lp.transpose(0, 1), layout="NTC") == [[1, 1, 2], [3, 2]]
    assert greedy_decode(lp[:, 0]) == [[1, 1, 2]]


def test_greedy_alphabet_skips_blank():
    lp = one_hot_lp([[3, 0, 1, 2, 2]], C=4)
    assert greedy_decode(lp, alphabet="abc") == ["cab"]
    # blank at index 1: class 0 -> 'a', class 2 -> 'b', class 3 -> 'c'
    lp = one_hot_lp([[0, 1, 2, 3, 1, 0]], C=4)
    assert greedy_decode(lp, blank=1, alphabet=["a", "b", "c"]) == ["abca"]


def test_edit_distances():
    assert edit_distance("kitten", "sitting") == 3
    assert edit_distance([1, 2, 3], [1, 3]) == 1
    assert cer("abd", "abcd") == pytest.approx(0.25)
    assert cer("ab", "") == 2.0
    assert wer("the cat sat", "the cat sat down") == pytest.approx(0.25)
    assert wer(["a", "b"], ["a", "c"]) == pytest.approx(0.5)


def test_spikiness_formulas():
    # Sample 0: a a _ b _ c c c ; sample 1 (4 valid frames): _ _ d _
    lp = one_hot_lp([[1, 1, 0, 2, 0, 3, 3, 3], [0, 0, 4, 0, 1, 1, 1, 1]], C=5)
    s = spikiness(lp, output_lengths=[8, 4])
    assert s.blank_ratio == pytest.approx(5 / 12)
    assert s.spike_width == pytest.approx(7 / 4)  # runs: aa, b, ccc, d
    p = lp.exp()
    assert s.peak_prob == pytest.approx(float(p.max(-1).values[0, 0]))
    frame_h = float(-(p[0, 0] * lp[0, 0]).sum())
    assert s.entropy == pytest.approx(frame_h)
    assert s.nonblank_mass == pytest.approx((7 * float(1 - p[0, 0, 0]) + 5 * float(1 - p[2, 0, 0])) / 12)
    assert s.nonblank_posterior_mass is None
    assert set(s.as_dict()) >= {"blank_ratio", "nonblank_mass", "spike_width", "peak_prob", "entropy"}


def test_spike_runs_split_on_class_change():
    lp = one_hot_lp([[1, 2, 2, 1]], C=3)
    assert spikiness(lp).spike_width == pytest.approx(4 / 3)


def test_nonblank_posterior_mass():
    lp = torch.zeros(6, 1, 3, dtype=torch.float64).log_softmax(-1)
    s = spikiness(lp, targets=torch.tensor([[1, 2, 2]]), target_lengths=[3])
    # Definition: the non-blank share of the posterior occupancy over valid frames.
    from ctcdoctor.ctc import posterior

    occ = posterior(lp, torch.tensor([[1, 2, 2]]), [6], [3])
    assert s.nonblank_posterior_mass == pytest.approx(float(1 - occ[:, 0, 0].mean()))
    assert 0 < s.nonblank_posterior_mass < 1 and not math.isnan(s.nonblank_posterior_mass)
