"""CTC091 (alphabet) in `check`, and the pure alphabet analysis."""
from __future__ import annotations

import pytest

from ctcdoctor.checks.alphabet import alphabet_problems
from ctcdoctor.labels import alphabet_problems as analyse
from ctcdoctor.registry import SkipCheck


def kinds(alphabet):
    return [problem.kind for problem in analyse(alphabet)]


def test_healthy_alphabets():
    assert kinds("abcdefghijklmnopqrstuvwxyz") == []
    assert kinds("abc ") == []  # a single space is the word separator
    assert kinds(["aa", "ae", "b", "sh"]) == []
    with pytest.raises(SkipCheck, match="no Setup.alphabet"):
        alphabet_problems(None)


def test_a_duplicate_is_reported_once_with_its_own_title():
    # A duplicate also fails the encode->decode round trip; reporting it twice was noise.
    assert kinds("abca") == ["duplicates"]
    (duplicates,) = alphabet_problems("abca")
    assert duplicates.code == "CTC091" and duplicates.evidence["duplicates"] == {"a": [1, 4]}
    assert duplicates.title == "duplicate symbols in the alphabet"
    assert duplicates.message.startswith("1 symbol appears more than once")


def test_whitespace_entries():
    found = analyse(["a", "b\n", "\t", ""])
    assert [problem.kind for problem in found] == ["whitespace"]
    assert found[0].evidence["empty"] == [4] and found[0].evidence["padded"] == [[2, "b\n"]]


def test_decomposed_unicode():
    assert "unicode" in kinds(["a", "e\u0301"])
    assert kinds(["a", "\u00e9"]) == []
