"""What the monitor measures on one batch of outputs, against numbers worked out by hand and float64 references."""
from __future__ import annotations

import math

import pytest
import torch

from ctcdoctor.training.outputs import measure_outputs

C = 5  # blank 0, labels 1..4 = "abcd"


def spikes(paths: list[list[int]], confidence: float = 4.0) -> torch.Tensor:
    """(T, N, C) log-probabilities whose argmax at each frame is the given class."""
    T = max(len(path) for path in paths)
    logits = torch.zeros(T, len(paths), C)
    for n, path in enumerate(paths):
        for t, c in enumerate(path):
            logits[t, n, c] = confidence
    return logits.log_softmax(-1)


def test_decodes_rates_and_blank_shares_match_the_hand_count():
    # sample 0 decodes "ab" (target "ab"), sample 1 decodes "" (target "cc"), sample 2 "aad" vs "ad"
    paths = [[0, 1, 1, 0, 2, 0], [0, 0, 0, 0, 0, 0], [1, 0, 1, 4, 0, 0]]
    targets = torch.tensor([[1, 2], [3, 3], [1, 4]])
    stats = measure_outputs(spikes(paths), targets, torch.tensor([2, 2, 2]), torch.tensor([6, 6, 5]), alphabet="abcd")
    assert stats.evaluated == 3 and stats.classes == C
    assert stats.cer == pytest.approx((0 + 2 + 1) / 6)  # edits: 0, 2 deletions, 1 insertion over 6 labels
    assert stats.empty_rate == pytest.approx(1 / 3)
    # valid frames: 6 + 6 + 5 = 17; blank argmax: 3 + 6 + 2 (frame 5 of sample 2 is past its length)
    assert stats.blank_ratio == pytest.approx(11 / 17)
    assert stats.nonblank == pytest.approx(6 / 17)
    assert stats.label_density == pytest.approx(6 / 17)
    assert stats.examples == (("ab", "ab"), ("cc", ""), ("ad", "aad"))
    assert stats.infeasible == 0 and stats.label_length == 2.0


def test_soft_blank_probability_and_entropy_against_float64():
    torch.manual_seed(0)
    log_probs = torch.randn(7, 3, C).log_softmax(-1)
    frames = torch.tensor([7, 4, 6])
    stats = measure_outputs(log_probs, torch.tensor([[1, 2], [2, 0], [3, 4]]), torch.tensor([2, 1, 2]), frames)
    p = log_probs.double().exp()
    valid = torch.arange(7)[:, None] < frames[None, :]
    assert stats.blank_prob == pytest.approx(float(p[..., 0][valid].mean()), rel=1e-6)
    entropy = -(p * p.log()).sum(-1)
    assert stats.entropy == pytest.approx(float(entropy[valid].mean()), rel=1e-6)


def test_infeasible_samples_are_counted_from_lengths_and_repeats():
    log_probs = torch.zeros(6, 3, C).log_softmax(-1)
    # "aa" needs 3 frames (a blank between the repeats): 2 frames are too few; "ab" fits in 2
    targets = torch.tensor([[1, 1], [1, 2], [1, 1]])
    stats = measure_outputs(log_probs, targets, torch.tensor([2, 2, 2]), torch.tensor([2, 2, 3]))
    assert stats.infeasible == 1 and stats.infeasible_samples == (0,)


def test_output_kinds_layouts_and_target_forms_agree():
    torch.manual_seed(1)
    logits = torch.randn(8, 4, C) * 3
    targets = torch.tensor([[1, 2, 0], [3, 0, 0], [4, 4, 1], [2, 3, 4]])
    lengths = torch.tensor([2, 1, 3, 3])
    reference = measure_outputs(logits.log_softmax(-1), targets, lengths)
    same = [
        measure_outputs(logits, targets, lengths, kind="logits"),
        measure_outputs(logits.softmax(-1), targets, lengths, kind="probs"),
        measure_outputs(logits.softmax(-1), targets, lengths, kind="auto"),
        measure_outputs(logits, targets, lengths, kind="auto"),
        measure_outputs(logits.transpose(0, 1).numpy(), targets.numpy(), lengths.numpy(), layout="NTC"),
        measure_outputs(logits.log_softmax(-1), torch.cat([targets[i, :n] for i, n in enumerate(lengths)]), lengths),
    ]
    for stats in same:
        assert stats.cer == pytest.approx(reference.cer)
        assert stats.blank_prob == pytest.approx(reference.blank_prob, rel=1e-5)
        assert stats.examples == reference.examples


def test_decoding_with_the_other_blank_tells_a_blank_mismatch():
    # the model was trained with blank = C-1 = 4: frames of class 4 are its blanks, labels are 0..3
    paths = [[4, 0, 4, 1, 4, 4], [2, 4, 4, 3, 3, 4]]
    targets = torch.tensor([[0, 1], [2, 3]])
    stats = measure_outputs(spikes(paths), targets, torch.tensor([2, 2]))
    assert stats.alt_blank == C - 1
    assert stats.alt_decode_rate == 0.0
    assert stats.cer >= 1.0  # read with blank 0, every 4-frame is a label and the 0s vanish
    assert stats.blank_in_targets == 1


def test_word_error_rate_needs_the_delimiter_in_the_alphabet():
    paths = [[1, 0, 2, 3, 1, 0, 2], [4, 0, 0, 0, 0, 0, 0]]  # "a|ab" and "c"; alphabet "ab|c": '|' is class 3
    targets = torch.tensor([[1, 3, 1, 2], [4, 3, 4, 0]])
    stats = measure_outputs(spikes(paths), targets, torch.tensor([4, 3]), alphabet="ab|c", word_delimiter="|")
    assert stats.examples[0] == ("a|ab", "ab|ab")
    # words: ["a","ab"] vs ["ab","ab"]: 1 substitution of 2; ["c","c"] vs ["c"]: 1 deletion of 2
    assert stats.wer == pytest.approx(2 / 4)
    assert measure_outputs(spikes(paths), targets, torch.tensor([4, 3]), alphabet="abxc", word_delimiter="|").wer is None


def test_samples_with_non_finite_outputs_are_counted_apart():
    log_probs = spikes([[0, 1, 0, 2], [3, 0, 3, 0]])
    log_probs[1, 0] = math.nan
    stats = measure_outputs(log_probs, torch.tensor([[1, 2], [3, 3]]), torch.tensor([2, 2]), alphabet="abcd")
    assert stats.nonfinite_outputs == 1 and stats.evaluated == 2
    assert stats.cer == 0.0 and stats.empty_rate == 0.0 and stats.examples == (("cc", "cc"),)  # sample 1 alone
    everything = measure_outputs(log_probs * math.nan, torch.tensor([[1, 2], [3, 3]]), torch.tensor([2, 2]))
    assert everything.nonfinite_outputs == 8 and math.isnan(everything.cer) and everything.examples == ()
    assert all(not isinstance(value, float) or math.isfinite(value) or math.isnan(value)
               for value in everything.record().values())


def test_bad_arguments_name_the_problem():
    with pytest.raises(ValueError, match="3 axes"):
        measure_outputs(torch.zeros(4, C), torch.tensor([[1]]), torch.tensor([1]))
    with pytest.raises(ValueError, match="blank=7"):
        measure_outputs(torch.zeros(4, 1, C), torch.tensor([[1]]), torch.tensor([1]), blank=7)
    with pytest.raises(ValueError, match="layout"):
        measure_outputs(torch.zeros(4, 1, C), torch.tensor([[1]]), torch.tensor([1]), layout="CTN")
