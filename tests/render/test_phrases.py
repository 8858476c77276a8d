"""Numbers agree with their nouns and verbs in findings: "line 5", "1 of 5 samples has", "batch 3"."""
from __future__ import annotations

import torch

from ctcdoctor.labels import check_labels
from ctcdoctor.render.phrases import numbered, of_total, plural
from ctchelpers import healthy_setup, make_batches, run_codes


def test_phrase_helpers_agree_with_their_count():
    assert numbered([5], "line") == "line 5" and numbered([5, 7], "line") == "lines 5, 7"
    assert numbered([3], "batch", "batches") == "batch 3" and numbered([0, 1], "batch", "batches") == "batches 0, 1"
    assert numbered(list(range(10)), "sample") == "samples 0, 1, 2, 3, 4, 5, 6, 7, … (2 more)"
    assert of_total(1, 5, "sample", "has", "have") == "1 of 5 samples has"
    assert plural(1, "batch", "batches") == "1 batch"


def test_one_empty_target_reads_in_the_singular():
    setup = healthy_setup()
    setup.loader = make_batches([10, 10, 10, 10, 10], [[1, 2], [1], [], [2, 3], [1, 3]], batch_size=5)
    findings, _ = run_codes(setup, ("CTC013",))
    (finding,) = findings
    assert finding.message == "1 of 5 samples has an empty target: sample 2."


def test_one_label_line_that_empties_reads_in_the_singular():
    findings, _ = check_labels(b"a.png\tab\nb.png\tcd\nc.png\n", "abcd")
    (empty,) = [item for item in findings if item.evidence["problem"] == "empty"]
    assert empty.message == "1 label is empty (line 3): that sample teaches the model to output only blanks."


def test_one_constant_input_reads_in_the_singular():
    setup = healthy_setup()
    batches = make_batches([10, 10, 10, 10], [[1], [2], [1, 2], [3]], batch_size=4)
    inputs = batches[0][0].clone()
    inputs[1] = 0.5  # one constant sample
    setup.loader = [(inputs, *batches[0][1:])]
    findings, _ = run_codes(setup, ("CTC042",))
    (finding,) = findings
    assert "1 of 4 samples is constant over its valid length (sample 1;" in finding.message, finding.message
    assert torch.equal(setup.loader[0][0], inputs)
