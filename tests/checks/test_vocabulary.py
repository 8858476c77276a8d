"""Advice in the user's vocabulary: with a tokenizer, a wrong blank is fixed by naming its pad token's id (never
"the last class", which may be `</s>`); CTC010 and CTC014 advise the same class count."""
from __future__ import annotations

import re

import torch
import torch.nn.functional as F

from ctcdoctor import Setup
from ctchelpers import TinyCTC, make_batches, run_codes

LENGTHS = [40, 40, 36, 32]


class Tokenizer:
    """The parts of a Hugging Face tokenizer ctcdoctor reads: a vocabulary with a pad token and `</s>` last."""

    pad_token, pad_token_id = "<pad>", 3

    def get_vocab(self) -> dict[str, int]:
        return {"a": 0, "b": 1, "c": 2, "<pad>": 3, "</s>": 4}

    def __len__(self) -> int:
        return 5


def letters_from_zero() -> list[tuple]:
    """Labels 0..2 ('a'..'c'), so the default blank 0 is the letter 'a'."""
    return make_batches(LENGTHS, [[0, 1, 2], [2, 2, 1], [1, 0], [0]])


def test_a_blank_that_is_a_letter_is_fixed_with_the_tokenizers_pad_id():
    torch.manual_seed(0)
    setup = Setup(model=TinyCTC(classes=5), loader=letters_from_zero(), tokenizer=Tokenizer())
    findings, _ = run_codes(setup, ("CTC011",))
    (found,) = findings
    assert "the blank index 0 ('a')" in found.message
    assert "'<pad>' (id 3)" in found.hint and "Setup.blank = 3" in found.hint
    assert "last class" not in found.hint  # class 4 is '</s>'


def test_a_criterion_with_the_pad_blank_is_named_by_its_token():
    torch.manual_seed(0)

    def criterion(output, batch):  # the training loss uses the tokenizer's pad as the blank, as it should
        _, targets, input_lengths, target_lengths = batch
        return F.ctc_loss(output, targets, input_lengths // 2, target_lengths, blank=3)

    setup = Setup(model=TinyCTC(classes=5), loader=letters_from_zero(), tokenizer=Tokenizer(), criterion=criterion)
    findings, _ = run_codes(setup, ("CTC030",))
    (found,) = findings
    assert found.evidence["mistake"] == "wrong_blank" and found.evidence["criterion_blank"] == 3
    assert "class 3 ('<pad>')" in found.message and "class 0 ('a')" in found.message
    assert "Setup.blank = 3" in found.hint


def test_ctc010_and_ctc014_advise_one_class_count():
    """Alphabet of 5, a head of 5 classes and labels up to 6: the head needs 7, whatever the alphabet says."""
    torch.manual_seed(0)
    setup = Setup(model=TinyCTC(classes=5), loader=make_batches(LENGTHS, [[1, 2, 6], [2, 5], [3], [4, 1]]),
                  alphabet="abcde")
    findings, _ = run_codes(setup, ("CTC010", "CTC014"))
    counts = {item.code: set(re.findall(r"output (\d+) classes", item.hint)) for item in findings}
    assert counts == {"CTC010": {"7"}, "CTC014": {"7"}}, [item.hint for item in findings]
    assert "labels up to 6 need 7" in findings[0].hint


def test_a_forgotten_blank_slot_gets_the_same_number_from_both():
    torch.manual_seed(0)
    setup = Setup(model=TinyCTC(classes=5), loader=make_batches(LENGTHS, [[1, 2, 5], [2, 5], [3], [4, 1]]),
                  alphabet="abcde")
    findings, _ = run_codes(setup, ("CTC010", "CTC014"))
    assert {item.code for item in findings} == {"CTC010", "CTC014"}
    assert all("output 6 classes" in item.hint for item in findings), [item.hint for item in findings]
