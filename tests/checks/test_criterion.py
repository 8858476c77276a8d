"""CTC030 / CTC031: the criterion audit, on the broken examples and on small hand-made cases."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from typer.testing import CliRunner

from ctcdoctor.cli import app

ROOT = Path(__file__).resolve().parents[2]
BROKEN = ROOT / "examples" / "broken"
CRITERION_EXAMPLES = sorted(BROKEN.glob("criterion_*.py"))


def run_json(spec: str, *flags: str) -> tuple[int, dict]:
    result = CliRunner().invoke(app, ["check", spec, "--format", "json", *flags])
    assert result.exit_code in (0, 1), result.output
    return result.exit_code, json.loads(result.stdout)


def expected(path: Path, what: str) -> list[str]:
    return re.findall(rf"^Expected {what}: (\S+)$", path.read_text(), flags=re.M)


def test_every_mistake_has_an_example():
    mistakes = {mistake for path in CRITERION_EXAMPLES for mistake in expected(path, "mistake")}
    assert {"swapped_lengths", "layout", "wrong_blank", "probabilities", "raw_logits", "reduction"} <= mistakes


@pytest.mark.parametrize("path", CRITERION_EXAMPLES, ids=lambda path: path.stem)
def test_criterion_example_names_its_mistake(path):
    code, report = run_json(str(path), "--select", "CTC03")
    found = [item for item in report["findings"] if item["code"] == "CTC030"]
    assert len(found) == 1, report["findings"]
    (mistake,) = expected(path, "mistake")
    assert found[0]["evidence"]["mistake"] == mistake
    evidence = found[0]["evidence"]
    assert evidence["user_value"] != evidence["reference_value"]
    assert "F.ctc_loss(" in found[0]["hint"]
    if mistake == "reduction":
        assert found[0]["severity"] == "info" and code == 0  # a deliberate choice is only a note
    else:
        assert found[0]["severity"] == "error" and code == 1


def test_zero_infinity_hides_infeasible_samples():
    _, report = run_json(str(BROKEN / "zero_infinity_hides.py"), "--select", "CTC03")
    codes = [item["code"] for item in report["findings"]]
    assert codes == ["CTC031"]
    evidence = report["findings"][0]["evidence"]
    assert evidence["count"] >= 1 and evidence["samples"]
    assert evidence["reference_value"] == "inf"


# ---------------------------------------------------------------- direct, small cases

def _item(layout="TNC", T=12, N=4, C=6, seed=0):
    from ctcdoctor.load.batches import normalise_batch
    from ctcdoctor.measure.reference import Prepared

    generator = torch.Generator().manual_seed(seed)
    logits = torch.randn(T, N, C, generator=generator)
    log_probs = logits.log_softmax(-1)
    targets = torch.randint(1, C, (N, 3), generator=generator)
    lengths = torch.full((N,), T)
    target_lengths = torch.tensor([3, 2, 3, 1])[:N]
    raw = (torch.zeros(N, 1), targets, lengths, target_lengths)
    batch = normalise_batch(raw, 0, 0)
    output = log_probs if layout == "TNC" else log_probs.transpose(0, 1).contiguous()
    return Prepared(batch, output, log_probs, lengths, "log_probs", layout)


def test_agreeing_criterion_agrees():
    from ctcdoctor.measure.criterion import audit_criterion

    item = _item()

    def criterion(output, batch):
        _, targets, lengths, target_lengths = batch
        return F.ctc_loss(output, targets, lengths, target_lengths)

    audit = audit_criterion(criterion, item, 0, 6)
    assert audit.agrees and audit.mistake is None


def test_missing_transpose_that_raises_is_named_layout():
    from ctcdoctor.measure.criterion import audit_criterion

    item = _item(layout="NTC")

    def criterion(output, batch):  # batch-first output straight into F.ctc_loss: raises for T != N
        _, targets, lengths, target_lengths = batch
        return F.ctc_loss(output, targets, lengths, target_lengths)

    audit = audit_criterion(criterion, item, 0, 6)
    assert audit.mistake == "layout" and audit.user is None and audit.user_error


def test_swapped_lengths_that_raise_are_named():
    from ctcdoctor.measure.criterion import audit_criterion

    item = _item()

    def criterion(output, batch):
        _, targets, lengths, target_lengths = batch
        return F.ctc_loss(output, targets, target_lengths, lengths)

    audit = audit_criterion(criterion, item, 0, 6)
    assert audit.mistake == "swapped_lengths"


def test_criterion_that_raises_is_reported():
    from ctcdoctor.checks.criterion import criterion_disagrees
    from ctcdoctor.measure.criterion import CriterionAudits, audit_criterion

    def criterion(output, batch):
        raise KeyError("log_probs")

    audit = audit_criterion(criterion, _item(), 0, 6)
    assert audit.mistake == "raises"
    (found,) = criterion_disagrees(CriterionAudits((audit,)), None)
    assert "KeyError" in found.message and found.evidence["mistake"] == "raises"


def test_unexplained_difference_is_still_reported():
    from ctcdoctor.checks.criterion import criterion_disagrees
    from ctcdoctor.measure.criterion import CriterionAudits, audit_criterion

    def criterion(output, batch):
        return torch.tensor(123.0)

    audit = audit_criterion(criterion, _item(), 0, 6)
    (found,) = criterion_disagrees(CriterionAudits((audit,)), None)
    assert found.evidence["mistake"] == "unknown" and found.severity.value == "error"


def _prepared(targets, output_lengths, input_lengths, T=12, C=6, seed=0):
    from ctcdoctor.load.batches import normalise_batch
    from ctcdoctor.measure.reference import Prepared

    generator = torch.Generator().manual_seed(seed)
    N = targets.shape[0]
    log_probs = torch.randn(T, N, C, generator=generator).log_softmax(-1)
    target_lengths = torch.full((N,), targets.shape[1])
    batch = normalise_batch((torch.zeros(N, 1), targets, input_lengths, target_lengths), 0, 0)
    return Prepared(batch, log_probs, log_probs, output_lengths, "log_probs", "TNC")


def test_wrong_blank_names_both_indices_and_blames_setup_blank_when_the_targets_use_it():
    # Targets use 0..4 and the loss uses blank=5 (the last class): Setup.blank = 0 is what is wrong.
    from ctcdoctor.checks.criterion import criterion_disagrees
    from ctcdoctor.measure.criterion import CriterionAudits, audit_criterion

    targets = torch.tensor([[0, 1, 2], [3, 4, 0], [2, 0, 1], [4, 3, 2]])
    lengths = torch.full((4,), 12)
    item = _prepared(targets, lengths, lengths)

    def criterion(output, batch):
        _, targets, lengths, target_lengths = batch
        return F.ctc_loss(output, targets, lengths, target_lengths, blank=5)

    (found,) = criterion_disagrees(CriterionAudits((audit_criterion(criterion, item, 0, 6),)), None)
    assert "blank=5 while Setup.blank is 0" in found.message
    assert found.hint.startswith("Set Setup.blank = 5") and found.hint.endswith(".")
    assert found.evidence["criterion_blank"] == 5 and found.evidence["setup_blank"] == 0


def test_raw_input_lengths_cut_to_the_output_are_recognised():
    # The model halves the time axis; the criterion passes the raw lengths, clamped to T to avoid F.ctc_loss's error.
    from ctcdoctor.checks.criterion import criterion_disagrees
    from ctcdoctor.measure.criterion import CriterionAudits, audit_criterion

    targets = torch.tensor([[1, 2, 3], [3, 4, 1], [2, 5, 1], [4, 3, 2]])
    output_lengths = torch.tensor([12, 5, 4, 10])
    raw = output_lengths * 2  # cut to 12: [12, 10, 8, 12], not 12 for every sample (that is full_length's case)
    item = _prepared(targets, output_lengths, raw)

    def clamped(output, batch):
        _, targets, lengths, target_lengths = batch
        return F.ctc_loss(output, targets, lengths.clamp(max=output.shape[0]), target_lengths)

    audit = audit_criterion(clamped, item, 0, 6)
    assert audit.mistake == "raw_input_lengths"
    (found,) = criterion_disagrees(CriterionAudits((audit,)), None)
    assert "raw input lengths" in found.message and found.hint.endswith(".")

    def raising(output, batch):
        _, targets, lengths, target_lengths = batch
        return F.ctc_loss(output, targets, lengths, target_lengths)

    assert audit_criterion(raising, item, 0, 6).mistake == "raw_input_lengths"


# ---------------------------------------------------------------- a criterion that raises: PyTorch's own error texts


def _concatenated_item(T=12, C=6):
    from ctcdoctor.load.batches import normalise_batch
    from ctcdoctor.measure.reference import Prepared

    generator = torch.Generator().manual_seed(1)
    log_probs = torch.randn(T, 4, C, generator=generator).log_softmax(-1)
    target_lengths = torch.tensor([3, 2, 3, 1])
    targets = torch.randint(1, C, (int(target_lengths.sum()),), generator=generator)
    lengths = torch.full((4,), T)
    batch = normalise_batch((torch.zeros(4, 1), targets, lengths, target_lengths), 0, 0)
    return Prepared(batch, log_probs, log_probs, lengths, "log_probs", "TNC")


def _loss(output, targets, lengths, target_lengths, **options):
    return F.ctc_loss(output, targets, lengths, target_lengths, **options)


RAISING = {
    # name: (criterion calling the real F.ctc_loss wrongly, the mistake it must be named as, words of the hint)
    "swapped_padded": (lambda o, t, il, tl: _loss(o, t, tl, il), "swapped_lengths", "F.ctc_loss("),
    "target_lengths_past_padding": (lambda o, t, il, tl: _loss(o, t, il, tl + 1), "target_lengths", "number of real labels"),
    "target_lengths_count": (lambda o, t, il, tl: _loss(o, t, il, tl[:-1]), "target_lengths", "one target length per sample"),
    "input_lengths_count": (lambda o, t, il, tl: _loss(o, t, il[:-1], tl), "batch_axis", "(T, N, C)"),
    "float_lengths": (lambda o, t, il, tl: _loss(o, t, il.float(), tl), "float_lengths", ".long()"),
    "blank_outside": (lambda o, t, il, tl: _loss(o, t, il, tl, blank=6), "wrong_blank", "CTC015"),
    "half": (lambda o, t, il, tl: _loss(o.half(), t, il, tl), "half_precision", ".float()"),
    "integer": (lambda o, t, il, tl: _loss(o.long(), t, il, tl), "integer_output", "log_softmax"),
    "list_targets": (lambda o, t, il, tl: _loss(o, t.tolist(), il, tl), "not_tensors", "torch.tensor"),
}


@pytest.mark.parametrize("name", sorted(RAISING))
def test_a_raising_criterion_is_explained_from_pytorchs_own_error(name):
    from ctcdoctor.checks.criterion import criterion_disagrees
    from ctcdoctor.measure.criterion import CriterionAudits, audit_criterion

    call, mistake, words = RAISING[name]

    def criterion(output, batch):
        _, targets, lengths, target_lengths = batch
        return call(output, targets, lengths, target_lengths)

    audit = audit_criterion(criterion, _item(), 0, 6)
    assert audit.user_error, "the criterion must really raise in this PyTorch"
    assert audit.mistake == mistake, audit.variant
    (found,) = criterion_disagrees(CriterionAudits((audit,)), None)
    assert found.evidence["mistake"] == mistake and found.evidence["error"] == audit.user_error
    assert words in found.hint and found.hint.endswith(".")


def test_swapped_lengths_with_concatenated_targets_are_named():
    from ctcdoctor.measure.criterion import audit_criterion

    def criterion(output, batch):
        _, targets, lengths, target_lengths = batch
        return F.ctc_loss(output, targets, target_lengths, lengths)  # "Expected tensor to have size 48 at dimension 0"

    audit = audit_criterion(criterion, _concatenated_item(), 0, 6)
    assert audit.mistake == "swapped_lengths" and "size 48" in audit.user_error


def test_concatenated_targets_that_do_not_sum_up_are_named():
    from ctcdoctor.measure.criterion import audit_criterion

    def criterion(output, batch):
        _, targets, lengths, target_lengths = batch
        return F.ctc_loss(output, targets[:-1], lengths, target_lengths)

    audit = audit_criterion(criterion, _concatenated_item(), 0, 6)
    assert audit.mistake == "target_lengths" and "sum to 9 but the concatenated targets hold 8" in audit.variant


# ---------------------------------------------------------------- CTC030: an explanation must reproduce the value


def _near_uniform(scale=0.01, seed=1, T=30, C=6):
    """Near-uniform outputs, where a wrong blank moves a summed loss by only 0.075 %."""
    from ctcdoctor.load.batches import normalise_batch
    from ctcdoctor.measure.reference import Prepared

    generator = torch.Generator().manual_seed(seed)
    log_probs = (torch.randn(T, 4, C, generator=generator) * scale).log_softmax(-1)
    targets = torch.randint(1, C - 1, (4, 5), generator=generator)
    lengths, target_lengths = torch.full((4,), T), torch.tensor([5, 4, 5, 3])
    batch = normalise_batch((torch.zeros(4, 1), targets, lengths, target_lengths), 0, 0)
    return Prepared(batch, log_probs, log_probs, lengths, "log_probs", "TNC")


def test_a_wrong_blank_summed_is_not_mistaken_for_only_the_reduction():
    from ctcdoctor.checks.criterion import criterion_disagrees
    from ctcdoctor.measure.criterion import CriterionAudits, audit_criterion

    item = _near_uniform()

    def criterion(output, batch):
        _, targets, lengths, target_lengths = batch
        return F.ctc_loss(output, targets, lengths, target_lengths, blank=5, reduction="sum")

    reference_sum = float(F.ctc_loss(item.log_probs, item.batch.targets, item.lengths, item.batch.target_lengths, reduction="sum"))
    user = float(criterion(item.output, item.batch.raw))
    assert 1e-4 < abs(user - reference_sum) / reference_sum < 1e-3  # the case the old 1e-3 tolerance called "reduction"
    audit = audit_criterion(criterion, item, 0, 6)
    assert audit.mistake == "wrong_blank" and audit.reduction == "sum"
    (found,) = criterion_disagrees(CriterionAudits((audit,)), None)
    assert found.severity.value == "error"
    # The number the message says reproduces the value does reproduce it, within the stated tolerance.
    assert abs(found.evidence["explained_value"] - user) <= 1e-4 * abs(user)
    assert found.evidence["relative_difference"] <= found.evidence["tolerance"] == 1e-4
    assert "within the 1e-04 tolerance" in found.message


def test_a_value_no_mistake_reproduces_says_so_and_names_the_closest():
    from ctcdoctor.checks.criterion import criterion_disagrees
    from ctcdoctor.measure.criterion import CriterionAudits, audit_criterion

    item = _near_uniform()
    reference_sum = float(F.ctc_loss(item.log_probs, item.batch.targets, item.lengths, item.batch.target_lengths, reduction="sum"))

    def criterion(output, batch):
        return torch.tensor(reference_sum * 1.0005)  # 0.05 % off the summed loss: no known mistake

    audit = audit_criterion(criterion, item, 0, 6)
    assert audit.mistake is None and audit.closest is not None
    (found,) = criterion_disagrees(CriterionAudits((audit,)), None)
    assert found.evidence["mistake"] == "unknown"
    assert "reproduces it within 1e-04 relative; the closest" in found.message
    assert f"gives {audit.closest['explained_value']:.6g}" in found.message


def test_the_check_states_the_tolerance_the_measurement_uses():
    from ctcdoctor.checks.criterion import RTOL as stated
    from ctcdoctor.measure.reference import RTOL

    assert stated == RTOL


def test_the_full_padded_length_for_every_sample_is_named_as_such():
    # torch.full((N,), T): raw lengths cut to T give the same numbers here, but T for every sample is what was passed.
    from ctcdoctor.checks.criterion import criterion_disagrees
    from ctcdoctor.measure.criterion import CriterionAudits, audit_criterion

    targets = torch.tensor([[1, 2, 3], [3, 4, 1], [2, 5, 1], [4, 3, 2]])
    output_lengths = torch.tensor([12, 9, 7, 10])
    item = _prepared(targets, output_lengths, output_lengths * 2)  # raw lengths, cut to 12, are 12 for every sample

    def full(output, batch):
        _, targets, _, target_lengths = batch
        return F.ctc_loss(output, targets, torch.full((output.shape[1],), output.shape[0]), target_lengths)

    audit = audit_criterion(full, item, 0, 6)
    assert audit.mistake == "full_length"
    (found,) = criterion_disagrees(CriterionAudits((audit,)), None)
    assert "every sample gets the full padded length T = 12" in found.message
    assert "raw input lengths" not in found.message
    assert "not torch.full((N,), 12)" in found.hint


def _nct_item(T=10, N=3, C=6, seed=2):
    """A Conv1d head's (N, C, T) log-probabilities, with frame lengths below T."""
    from ctcdoctor.load.batches import normalise_batch
    from ctcdoctor.measure.reference import Prepared

    generator = torch.Generator().manual_seed(seed)
    log_probs = torch.randn(T, N, C, generator=generator).log_softmax(-1)
    targets = torch.randint(1, C, (N, 3), generator=generator)
    lengths, target_lengths = torch.tensor([10, 8, 9]), torch.tensor([3, 2, 3])
    batch = normalise_batch((torch.zeros(N, 4, 20), targets, lengths * 2, target_lengths), 0, 0)
    return Prepared(batch, log_probs.permute(1, 2, 0).contiguous(), log_probs, lengths, "log_probs", "NCT")


def test_a_conv1d_output_reshaped_instead_of_permuted_is_named():
    from ctcdoctor.checks.criterion import criterion_disagrees
    from ctcdoctor.measure.criterion import CriterionAudits, audit_criterion

    def reshaped(output, batch):
        _, targets, lengths, target_lengths = batch
        n, c, t = output.shape
        return F.ctc_loss(output.reshape(t, n, c), targets, lengths // 2, target_lengths)

    audit = audit_criterion(reshaped, _nct_item(), 0, 6)
    assert audit.mistake == "layout"
    (found,) = criterion_disagrees(CriterionAudits((audit,)), None)
    assert "the (N, C, T) output reshaped/viewed to (T, N, C) instead of permuted" in found.message
    assert found.hint.startswith("Permute the (N, C, T) output to (T, N, C) with .permute(2, 0, 1)")
    assert "The call: F.ctc_loss(output.permute(2, 0, 1)," in found.hint
    assert "never .view/.reshape" in found.hint


def test_a_closest_guess_that_is_not_close_is_not_named():
    # 3 % off the reference and 1.5 % off a wrong blank (the trial's Conv1d case): naming the blank misleads.
    from ctcdoctor.checks.criterion import criterion_disagrees
    from ctcdoctor.measure.criterion import CriterionAudits, audit_criterion

    item = _nct_item()
    reference = float(F.ctc_loss(item.log_probs, item.batch.targets, item.lengths, item.batch.target_lengths))

    def off(output, batch):
        return torch.tensor(reference * 1.03)

    audit = audit_criterion(off, item, 0, 6)
    assert audit.mistake is None and audit.closest is not None  # recorded in the evidence, not offered as the cause
    (found,) = criterion_disagrees(CriterionAudits((audit,)), None)
    assert "the closest" not in found.message
    assert found.message.endswith("relative; none comes within 1% of it.")


@pytest.mark.parametrize(("reduce", "grows"), [
    (lambda losses: losses.sum(), "grows with the batch size and the label lengths."),
    (lambda losses: losses.sum() / losses.shape[0], "grows with the label lengths (longer transcripts weigh more)."),
])
def test_a_deliberate_reduction_says_what_the_gradient_scale_grows_with(reduce, grows):
    from ctcdoctor.checks.criterion import criterion_disagrees
    from ctcdoctor.measure.criterion import CriterionAudits, audit_criterion

    item = _near_uniform()

    def criterion(output, batch):
        _, targets, lengths, target_lengths = batch
        return reduce(F.ctc_loss(output, targets, lengths, target_lengths, reduction="none"))

    (found,) = criterion_disagrees(CriterionAudits((audit_criterion(criterion, item, 0, 6),)), None)
    assert found.severity.value == "info" and found.message.endswith(grows), found.message
