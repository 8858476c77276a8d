"""Arguments a user passes to the public CTC functions, from a fresh-eyes trial: what is accepted
(numpy scalars, as F.ctc_loss takes them) and what is refused, in words that name the fix."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ctcdoctor.ctc import InfeasibleSampleWarning, ctc_loss, greedy_decode, posterior, pseudo_ground_truth, spikiness


def _log_probs(T=6, N=2, C=4, seed=0) -> torch.Tensor:
    return torch.randn(T, N, C, dtype=torch.float64, generator=torch.Generator().manual_seed(seed)).log_softmax(-1)


def _peaky(frames: list[list[int]], C: int = 4) -> torch.Tensor:
    """(T, N, C) log-probs whose argmax at frame t of sample n is frames[n][t]."""
    lp = torch.full((len(frames[0]), len(frames), C), -10.0)
    for n, row in enumerate(frames):
        for t, k in enumerate(row):
            lp[t, n, k] = 0.0
    return lp.log_softmax(-1)


# --- greedy_decode and spikiness check lengths and the alphabet as ctc_loss does ---------------------------

@pytest.mark.parametrize(("lengths", "message"), [
    ([7, 2], r"output_lengths must lie in \[0, T=6\], got min 2 max 7; pass the number of output frames per sample"),
    ([-1, 2], r"output_lengths must lie in \[0, T=6\], got min -1 max 2"),
    ([2.5, 2], r"output_lengths must hold integers, got dtype torch.float32; pass a LongTensor or a list of ints"),
    ([2], r"output_lengths has 1 entries for a batch of N=2; give one per sample"),
])
def test_greedy_decode_refuses_lengths_that_ctc_loss_refuses(lengths, message):
    with pytest.raises(ValueError, match=message):
        greedy_decode(_log_probs(), output_lengths=lengths)


@pytest.mark.parametrize(("lengths", "message"), [
    ([30, 1], r"output_lengths must lie in \[0, T=6\], got min 1 max 30"),
    ([-3, 2], r"output_lengths must lie in \[0, T=6\], got min -3 max 2"),
    (torch.tensor([2.0, 2.0]), r"output_lengths must hold integers"),
])
def test_spikiness_refuses_lengths_that_ctc_loss_refuses(lengths, message):
    with pytest.raises(ValueError, match=message):
        spikiness(_log_probs(), lengths)


def test_greedy_decode_and_spikiness_keep_valid_lengths():
    lp = _peaky([[1, 0, 1, 2, 2, 0], [3, 3, 0, 0, 1, 0]])
    assert greedy_decode(lp, output_lengths=[3, 2]) == [[1, 1], [3]]
    assert greedy_decode(lp, output_lengths=torch.tensor([6, 0])) == [[1, 1, 2], []]
    assert spikiness(lp, [2, 2]).blank_ratio == pytest.approx(1 / 4)


@pytest.mark.parametrize(("alphabet", "message"), [
    ("_abc", r"alphabet has 4 symbols for 3 non-blank classes \(C=4 with the blank\); leave the blank out"),
    ("ab", r"alphabet has 2 symbols for 3 non-blank classes \(C=4 with the blank\); give one symbol per non-blank class"),
    (["<b>", "a", "b", "c"], r"alphabet has 4 symbols for 3 non-blank classes .*leave the blank out"),
])
def test_greedy_decode_refuses_an_alphabet_of_the_wrong_size(alphabet, message):
    lp = _peaky([[1, 0, 1, 2, 2, 0], [3, 3, 0, 0, 1, 0]])
    with pytest.raises(ValueError, match=message):
        greedy_decode(lp, alphabet=alphabet)


def test_greedy_decode_maps_an_alphabet_of_the_non_blank_classes():
    lp = _peaky([[1, 0, 1, 2, 2, 0], [3, 3, 0, 0, 1, 0]])
    assert greedy_decode(lp, alphabet="abc") == ["aab", "ca"]
    assert greedy_decode(lp, alphabet=["<a>", "b", "c"]) == ["<a><a>b", "c<a>"]


# --- numpy scalars and 0-d tensors as blank, alpha, gamma ---------------------------------------------------

def _batch(C=8):
    lp = torch.randn(12, 2, C, dtype=torch.float64, generator=torch.Generator().manual_seed(1)).log_softmax(-1)
    return lp, torch.tensor([[1, 2, 3], [4, 5, 0]]), [12, 10], [3, 2]


@pytest.mark.parametrize("blank", [np.int64(0), np.int32(0), torch.tensor(0)], ids=["np.int64", "np.int32", "0-d tensor"])
def test_blank_accepts_what_f_ctc_loss_accepts(blank):
    lp, tg, il, tl = _batch()
    want = F.ctc_loss(lp, tg, il, tl, blank=0)
    torch.testing.assert_close(F.ctc_loss(lp, tg, il, tl, blank=blank), want)  # the behaviour ctc_loss copies
    torch.testing.assert_close(ctc_loss(lp, tg, il, tl, blank=blank), want)
    torch.testing.assert_close(ctc_loss(lp, tg, il, tl, blank=blank, alpha=0.5), want)
    torch.testing.assert_close(posterior(lp, tg, il, tl, blank=blank), posterior(lp, tg, il, tl))
    assert greedy_decode(lp, blank=blank) == greedy_decode(lp, blank=0)
    assert spikiness(lp, blank=blank) == spikiness(lp, blank=0)


def test_a_numpy_blank_out_of_range_is_a_range_message():
    lp, tg, il, tl = _batch()
    with pytest.raises(ValueError, match=r"blank=8 is out of range for C=8 classes; pass an index in \[0, 7\]"):
        ctc_loss(lp, tg, il, tl, blank=np.int64(8))


@pytest.mark.parametrize(("blank", "message"), [
    (0.0, r"blank must be an integer class index, got float 0.0; pass an int"),
    (np.float64(0), r"blank must be an integer class index, got float64"),
    ("0", r"blank must be an integer class index, got str '0'"),
    (True, r"blank=True is a bool; pass the blank's class index as an int"),
])
def test_blank_of_another_type_is_a_type_message(blank, message):
    lp, tg, il, tl = _batch()
    for call in (lambda: ctc_loss(lp, tg, il, tl, blank=blank), lambda: greedy_decode(lp, blank=blank)):
        with pytest.raises(ValueError, match=message):
            call()


def test_alpha_and_gamma_accept_numpy_numbers():
    lp, tg, il, tl = _batch()
    leaf = lp.clone().requires_grad_()
    ctc_loss(leaf, tg, il, tl, alpha=0.5, gamma=1.0).backward()
    numpy_leaf = lp.clone().requires_grad_()
    ctc_loss(numpy_leaf, tg, il, tl, alpha=np.float32(0.5), gamma=np.float64(1.0)).backward()
    torch.testing.assert_close(numpy_leaf.grad, leaf.grad)
    torch.testing.assert_close(pseudo_ground_truth(lp, tg, il, tl, alpha=np.float64(0.25)),
                               pseudo_ground_truth(lp, tg, il, tl, alpha=0.25))


@pytest.mark.parametrize(("options", "message"), [
    ({"alpha": "0.5"}, r"alpha must be None or a real number, got str '0.5'"),
    ({"alpha": True}, r"alpha must be None or a real number, got bool True"),
    ({"alpha": np.float32(1.5)}, r"alpha=np.float32\(1.5\) must be None or a number in \(0, 1\)"),
    ({"gamma": "1"}, r"gamma must be a real number, got str '1'"),
    ({"gamma": True}, r"gamma must be a real number, got bool True"),
    ({"gamma": np.float64(-1.0)}, r"must be a finite number >= 0"),
])
def test_alpha_and_gamma_of_another_type_are_type_messages(options, message):
    lp, tg, il, tl = _batch()
    with pytest.raises(ValueError, match=message):
        ctc_loss(lp, tg, il, tl, **options)


# --- (N, T, C) log_probs ------------------------------------------------------------------------------------

@pytest.mark.parametrize("fn", [ctc_loss, posterior], ids=["ctc_loss", "posterior"])
def test_batch_first_log_probs_are_named_with_the_transpose(fn):
    lp = torch.randn(4, 30, 8).log_softmax(-1)  # (N, T, C): 4 samples of 30 frames
    tg, il, tl = torch.randint(1, 8, (4, 5)), [30, 28, 25, 30], [5, 5, 4, 3]
    message = (r"input_lengths has 4 entries for a batch of N=30, as many as the T=4 frames: log_probs looks like "
               r"\(N, T, C\) = \(4, 30, 8\); pass log_probs.transpose\(0, 1\)")
    with pytest.raises(ValueError, match=message):
        fn(lp, tg, il, tl)
    fn(lp.transpose(0, 1), tg, il, tl)  # the fix it names works


def test_a_plain_count_mismatch_still_asks_for_one_length_per_sample():
    lp, tg, _, tl = _batch()
    with pytest.raises(ValueError, match=r"input_lengths has 3 entries for a batch of N=2; give one per sample"):
        ctc_loss(lp, tg, [12, 10, 9], tl)


def test_greedy_decode_names_the_layout_when_lengths_count_the_frames():
    lp = _log_probs(T=6, N=2)
    with pytest.raises(ValueError, match=r"as many as the T=2 frames: log_probs \(6, 2, 4\) looks like TNC; pass layout='TNC'"):
        greedy_decode(lp, output_lengths=[6, 6], layout="NTC")
    with pytest.raises(ValueError, match=r"log_probs \(2, 6, 4\) looks like NTC; pass layout='NTC'"):
        greedy_decode(lp.transpose(0, 1), output_lengths=[6, 6])


# --- the infeasible-sample warning counts repeats as CTC001 does ----------------------------------------------

def test_infeasible_warning_counts_the_repeats():
    lp = _log_probs(T=6, N=1, C=5)
    with pytest.warns(InfeasibleSampleWarning, match=r"sample 0 has 6 frames for 4 labels \+ 3 repeats \(needs 7\)"):
        posterior(lp, [[1, 1, 1, 1]], [6], [4])
    with pytest.warns(InfeasibleSampleWarning, match=r"sample 0 has 6 frames for 7 labels \(needs 7\)"):
        posterior(lp, [[1, 2, 3, 4, 1, 2, 3]], [6], [7])


def test_infeasible_warning_with_enough_frames_names_the_zero_probability():
    lp = _log_probs(T=6, N=1, C=5)
    lp[:, 0, 2] = float("-inf")  # label 2 can never be emitted
    with pytest.warns(InfeasibleSampleWarning, match=r"6 frames for 2 labels, enough, but every alignment has probability 0"):
        posterior(lp, [[1, 2]], [6], [2])


# --- Python containers for targets and lengths ----------------------------------------------------------------

TARGETS_FIX = r"pass a padded \(N, S\) LongTensor, or torch.cat of the label tensors with target_lengths"


@pytest.mark.parametrize(("targets", "what"), [
    ([[1, 2, 3], [4, 5]], r"targets is a list of label sequences of different lengths"),
    ([torch.tensor([1, 2, 3]), torch.tensor([4, 5])], r"targets is a list of 2 tensors, which torch cannot stack"),
    ([torch.tensor([1, 2]), torch.tensor([4, 5])], r"targets is a list of 2 tensors"),
    (None, r"targets is None"),
])
@pytest.mark.parametrize("fn", [ctc_loss, posterior], ids=["ctc_loss", "posterior"])
def test_target_containers_torch_cannot_read_name_the_fix(fn, targets, what):
    lp = _log_probs(T=8, N=2, C=6)
    with pytest.raises(ValueError, match=f"{what}.*; {TARGETS_FIX}"):
        fn(lp, targets, [8, 8], [3, 2])


@pytest.mark.parametrize(("name", "value", "what"), [
    ("input_lengths", None, r"input_lengths is None"),
    ("target_lengths", None, r"target_lengths is None"),
    ("input_lengths", [[8], [8, 7]], r"input_lengths could not be read as integers"),
])
def test_lengths_torch_cannot_read_name_the_fix(name, value, what):
    lp = _log_probs(T=8, N=2, C=6)
    arguments = {"input_lengths": [8, 8], "target_lengths": [3, 2], name: value}
    with pytest.raises(ValueError, match=f"{what}.*; pass a LongTensor or a list of ints, one per sample"):
        ctc_loss(lp, torch.tensor([[1, 2, 3], [4, 5, 0]]), **arguments)


def test_the_concatenated_fix_named_for_label_tensors_works():
    lp = _log_probs(T=8, N=2, C=6)
    labels = [torch.tensor([1, 2, 3]), torch.tensor([4, 5])]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = ctc_loss(lp, torch.cat(labels), [8, 8], [3, 2])
    torch.testing.assert_close(got, F.ctc_loss(lp, torch.tensor([[1, 2, 3], [4, 5, 0]]), [8, 8], [3, 2]))
