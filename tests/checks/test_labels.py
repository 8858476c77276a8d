"""CTC010-CTC014: targets are valid class indices for this model and blank."""
from __future__ import annotations

import pytest
import torch

from ctchelpers import codes_of, healthy_setup, make_batches, run_codes


def test_healthy_setup_has_no_label_findings():
    assert run_codes(healthy_setup(), ("CTC01",))[0] == []


def test_label_equal_to_class_count_is_ctc010_with_blank_slot_hint():
    setup = healthy_setup()
    setup.loader = make_batches([20, 20], [[1, 6], [2, 3]])  # C = 6: index 6 has no column
    (finding,) = run_codes(setup, ("CTC010",))[0]
    assert finding.evidence["largest"] == 6 and finding.evidence["samples"] == [0]
    assert "forgotten blank slot" in finding.hint


def test_one_label_out_of_range_is_said_in_the_singular():
    setup = healthy_setup()
    setup.loader = make_batches([20, 20], [[1, 6], [2, 3]])
    (finding,) = run_codes(setup, ("CTC010",))[0]
    assert "1 label in 1 sample lies outside [0, 6)" in finding.message, finding.message


def test_negative_label_inside_length_is_ctc010_padding_hint():
    setup = healthy_setup()
    setup.loader = make_batches([20, 20], [[1, -1], [2, 3]])
    (finding,) = run_codes(setup, ("CTC010",))[0]
    assert finding.evidence["smallest"] == -1
    assert "padding" in finding.hint


@pytest.mark.parametrize("blank", [0, 5])
def test_blank_in_targets_is_ctc011(blank):
    setup = healthy_setup()
    setup.blank = blank
    labels = [[1, 2], [3, 4]] if blank == 0 else [[1, 2], [3, 4]]
    labels[1][0] = blank
    setup.loader = make_batches([20, 20], labels)
    (finding,) = run_codes(setup, ("CTC011",))[0]
    assert finding.evidence == {"blank": blank, "count": 1, "samples": [1]}


def test_concatenated_targets_with_wrong_sum_are_ctc012():
    setup = healthy_setup()
    inputs, targets, input_lengths, target_lengths = make_batches([20, 20], [[1, 2], [3, 4, 5]], concatenated=True)[0]
    target_lengths = target_lengths.clone()
    target_lengths[1] = 2  # sums to 4, targets hold 5
    setup.loader = [(inputs, targets, input_lengths, target_lengths)]
    (finding,) = run_codes(setup, ("CTC012",))[0]
    assert "sum to 4" in finding.message and "hold 5" in finding.message


def test_concatenated_targets_are_healthy_when_consistent():
    setup = healthy_setup()
    setup.loader = make_batches([20, 20, 18], [[1, 2], [3, 4, 5], [2]], concatenated=True)
    assert run_codes(setup, ("CTC01", "CTC00"))[0] == []


def test_target_length_past_padding_is_ctc012():
    setup = healthy_setup()
    inputs, targets, input_lengths, target_lengths = make_batches([20, 20], [[1, 2], [3, 4]])[0]
    setup.loader = [(inputs, targets, input_lengths, target_lengths + 1)]
    (finding,) = run_codes(setup, ("CTC012",))[0]
    assert "exceed the padded width 2" in finding.message


def test_ctc012_names_one_sample_in_the_singular_and_never_as_a_python_list():
    setup = healthy_setup()
    inputs, targets, input_lengths, target_lengths = make_batches([20, 20], [[1, 2], [3, 4]])[0]
    target_lengths = target_lengths.clone()
    target_lengths[1] = 3
    setup.loader = [(inputs, targets, input_lengths, target_lengths)]
    (finding,) = run_codes(setup, ("CTC012",))[0]
    assert "for sample 1" in finding.message and "[" not in finding.message, finding.message


def test_empty_target_is_ctc013_warning():
    setup = healthy_setup()
    setup.loader = make_batches([20, 20], [[], [3, 4]])
    (finding,) = run_codes(setup, ("CTC013",))[0]
    assert finding.severity.value == "warning" and finding.evidence["samples"] == [0]


def test_missing_blank_slot_is_ctc014():
    setup = healthy_setup(classes=5)  # alphabet "abcde" needs 6
    setup.loader = make_batches([20, 20], [[1, 2], [3, 4]])
    findings, _ = run_codes(setup, ("CTC014",))
    (finding,) = findings
    assert "blank slot is missing" in finding.hint
    assert finding.evidence == {"num_classes": 5, "alphabet_size": 5, "expected": 6}
    setup.alphabet = None
    assert run_codes(setup, ("CTC014",))[0] == []


@pytest.mark.parametrize("blank", [0, 5])
def test_an_alphabet_that_lists_the_blank_is_not_told_to_grow_a_correct_head(blank):
    setup = healthy_setup(classes=6)  # a correct head: 5 letters + the blank
    setup.blank = blank
    setup.alphabet = "-abcde" if blank == 0 else "abcde-"  # the blank's symbol listed too
    labels = [[1, 2], [3, 5]] if blank == 0 else [[0, 1], [2, 4]]
    setup.loader = make_batches([20, 20], labels)
    (finding,) = run_codes(setup, ("CTC014",))[0]
    drop = "alphabet[1:]" if blank == 0 else "alphabet[:-1]"
    assert f"the alphabet lists the blank itself ('-' at index {blank}" in finding.hint
    assert f"Pass the alphabet without it ({drop}, 5 symbols); do not add a class." in finding.hint
    assert "7" not in finding.hint  # never "make the final layer output 7 classes"


def test_blank_collision_with_a_free_last_class_suggests_setup_blank():
    setup = healthy_setup()  # alphabet "abcde": labels 0..4 leave class 5 free
    setup.loader = make_batches([20, 20], [[0, 1], [2, 4]])
    (finding,) = run_codes(setup, ("CTC011",))[0]
    assert finding.hint.startswith("The labels run 0..4 (alphabet.index(ch)) and class 5 is never used: if your loss uses blank=5, "
                                   "set Setup.blank = 5;")


def test_zero_based_labels_on_a_head_without_a_spare_class_never_suggest_a_class_it_lacks():
    # From a trial on HTR-best-practices: labels alphabet.index(ch), nclasses = len(alphabet), blank 0. The hint
    # used to say "class 5 is never used: ... set Setup.blank = 5", a class a 5-class head does not have (CTC015).
    setup = healthy_setup(classes=5)
    setup.loader = make_batches([20, 20], [[0, 1], [2, 4]])
    (finding,) = run_codes(setup, ("CTC011",))[0]
    assert finding.hint.startswith("The labels run 0..4 (alphabet.index(ch)) and the model outputs 5 classes (0..4): "
                                   "every class is a symbol and none is left for the blank.")
    assert "make the final layer (Linear at" in finding.hint and "output 6 classes (out_features=6) (CTC014)" in finding.hint
    assert "never used" not in finding.hint


def test_labels_index_plus_one_with_the_blank_last_name_the_exact_change():
    # The trial's TF-style set-up: blank = C - 1 = 5 = len("abcde"), labels alphabet.index(ch) + 1 in 1..5, 0 free.
    setup = healthy_setup()
    setup.blank = 5
    setup.loader = make_batches([20, 20], [[1, 5], [2, 3]])
    (finding,) = run_codes(setup, ("CTC011",))[0]
    assert finding.hint == (
        "The labels run 1..5 (alphabet.index(ch) + 1; no label is 0), so the last symbol ('e'), label 5, is read as the blank. "
        "Pass blank=0 and keep the labels as given: Setup.blank = 0 and F.ctc_loss(..., blank=0) (class 0 is free). "
        "Or keep blank=5 and subtract 1 from every label (targets - 1: index = alphabet.index(ch))."
    )


def _lengths_are_the_padded_width(batches):
    """The collate bug: target_lengths = torch.full((N,), S), padding zeros counted as labels."""
    return [(x, targets, lengths, torch.full_like(target_lengths, targets.shape[1]))
            for x, targets, lengths, target_lengths in batches]


def test_target_lengths_counting_the_padding_are_ctc012_not_a_blank_in_the_encoding():
    setup = healthy_setup()
    setup.loader = _lengths_are_the_padded_width(setup.loader)
    setup.output_lengths = lambda input_lengths: input_lengths // 8  # 5 frames: enough for the true labels only
    findings, results = run_codes(setup, ("CTC0",))
    (finding,) = [item for item in findings if item.code == "CTC012"]
    assert finding.message.startswith("target_lengths count the padding: 6 of 8 samples end in padding zeros (the blank)")
    assert "sample 4 has 1 label then 3 padding zeros, target_length 4" in finding.message
    assert "Pass the true lengths, the count before the padding" in finding.hint
    assert "CTC011" not in codes_of(findings)  # the encoding is already +1: shifting it would break the labels
    assert {item.code: item.status for item in results}["CTC011"] == "skipped"
    assert "CTC001" not in codes_of(findings)  # the padding is not counted as labels (and repeats) by the length checks


def test_a_trailing_blank_with_true_lengths_is_still_ctc011():
    setup = healthy_setup()
    setup.loader = make_batches([20, 20, 20], [[1, 0], [3, 4, 5], [2, 0]])
    codes = codes_of(run_codes(setup, ("CTC01",))[0])
    assert "CTC011" in codes and "CTC012" not in codes
