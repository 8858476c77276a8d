"""The output rules (CTC220-CTC224) on monitor logs: a case each must catch and a near miss it must not.

The logs are written in the monitor's JSONL format and read back by `diagnose_run`, the way
`ctcdoctor logs` judges a monitor's file.
"""
from __future__ import annotations

import math

import numpy as np
import pytest

from ctcdoctor.training import diagnose_run, monitor_format

CLASSES = 27
BLANK_PHASE = {"cer": 1.0, "empty_rate": 1.0, "blank_ratio": 1.0, "blank_prob": 0.8, "entropy": 0.9}
GARBAGE = {"cer": 1.6, "empty_rate": 0.0, "blank_ratio": 0.04, "blank_prob": 0.04, "entropy": 3.25}


def learned(cer: float) -> dict[str, float]:
    return {"cer": cer, "empty_rate": 0.0, "blank_ratio": 0.7, "blank_prob": 0.68, "entropy": 0.5}


def write_run(path, steps: int, loss, evaluations, every: int = 10, patience: int = 500, **meta):
    """A monitor JSONL: `loss(step)` every step, `evaluations(step)` (a dict) at step 1 and every `every` steps."""
    rng = np.random.default_rng(0)
    lines = [monitor_format.header(classes=CLASSES, label_length=5.0, reduction="mean", blank=0, patience=patience,
                                   every=every, **meta)]
    for step in range(1, steps + 1):
        value = loss(step) * math.exp(0.03 * rng.standard_normal())
        values = {}
        if step == 1 or step % every == 0:
            values = {"evaluated": 16.0, "infeasible": 0.0, "alt_decode_rate": 1.0, **evaluations(step)}
        lines.append(monitor_format.record(step, value, **values))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def blank_plateau_loss(step: int) -> float:
    """A fast fall to CTC's content-free level (about ln 26 per label), then flat."""
    return 3.2 + 8.5 * math.exp(-step / 6)


def codes(result) -> dict[str, str]:
    return {found.code: found.severity.value for found in result.findings}


def phase_then(step: int) -> dict[str, float]:
    return GARBAGE if step == 1 else BLANK_PHASE


def test_early_blank_phase_is_an_info_within_its_budget(tmp_path):
    result = diagnose_run(write_run(tmp_path / "m.jsonl", 200, blank_plateau_loss, phase_then, patience=500))
    found = codes(result)
    assert found.get("CTC220") == "info" and "CTC221" not in found
    (info,) = [item for item in result.findings if item.code == "CTC220"]
    assert "since step 10" in info.message and "past step 510 (patience 500)" in info.message
    assert info.evidence["steps"] == [10, 200]


def test_blank_phase_past_its_budget_is_a_blank_collapse_that_replaces_ctc212(tmp_path):
    result = diagnose_run(write_run(tmp_path / "m.jsonl", 400, blank_plateau_loss, phase_then, patience=200))
    found = codes(result)
    assert found.get("CTC221") == "error" and "CTC220" not in found
    assert "CTC212" not in found and "CTC210" not in found  # the same failure seen from the loss: replaced
    (error,) = [item for item in result.findings if item.code == "CTC221"]
    assert "past the budget of 200 steps" in error.message


def test_without_a_budget_a_blank_phase_to_the_end_of_a_finished_run_is_a_collapse(tmp_path):
    result = diagnose_run(write_run(tmp_path / "m.jsonl", 200, blank_plateau_loss, phase_then), patience=0)
    assert codes(result).get("CTC221") == "error"


def test_a_healthy_run_leaves_the_blank_phase_and_raises_nothing(tmp_path):
    def loss(step: int) -> float:
        return blank_plateau_loss(step) if step < 80 else 3.2 * math.exp(-(step - 80) / 60) + 0.05

    def evaluations(step: int) -> dict[str, float]:
        if step == 1:
            return GARBAGE
        return BLANK_PHASE if step < 80 else learned(max(0.02, 0.8 - (step - 80) / 150))

    result = diagnose_run(write_run(tmp_path / "m.jsonl", 400, loss, evaluations, patience=100))
    assert not {code for code, severity in codes(result).items() if severity != "info"}
    assert not set(codes(result)) & {"CTC220", "CTC221"}


def relapse(step: int) -> dict[str, float]:
    return GARBAGE if step == 1 else learned(0.3) if step <= 100 else BLANK_PHASE


def test_blank_after_learning_is_a_collapse_after_two_evaluations(tmp_path):
    result = diagnose_run(write_run(tmp_path / "m.jsonl", 120, lambda step: 1.0 if step <= 100 else 3.2, relapse))
    (error,) = [item for item in result.findings if item.code == "CTC221"]
    assert error.evidence["relapse"] and error.evidence["emitted_at"] == 100
    assert "after the model had emitted labels at step 100" in error.message
    # one blank evaluation after learning is not yet a collapse
    once = diagnose_run(write_run(tmp_path / "once.jsonl", 110, lambda step: 1.0 if step <= 100 else 3.2, relapse))
    assert "CTC221" not in codes(once)


def test_decodes_right_only_with_the_other_blank_index(tmp_path):
    def evaluations(step: int, other: float) -> dict[str, float]:
        return {**learned(0.93), "alt_decode_rate": other}

    result = diagnose_run(write_run(tmp_path / "m.jsonl", 100, lambda step: 2 / step ** 0.5, lambda s: evaluations(s, 0.08)))
    (error,) = [item for item in result.findings if item.code == "CTC222"]
    assert "blank=26 (the last class)" in error.message and "CER 0.08" in error.message
    near = diagnose_run(write_run(tmp_path / "near.jsonl", 100, lambda step: 2 / step ** 0.5, lambda s: evaluations(s, 0.5)))
    assert "CTC222" not in codes(near)


def test_infeasible_samples_hidden_by_a_finite_loss(tmp_path):
    def evaluations(step: int) -> dict[str, float]:
        return {**learned(0.2), "infeasible": 2.0 if step in (50, 70) else 0.0}

    result = diagnose_run(write_run(tmp_path / "m.jsonl", 100, lambda step: 2 / step ** 0.5, evaluations))
    (warning,) = [item for item in result.findings if item.code == "CTC223"]
    assert warning.severity.value == "warning"
    assert warning.message.startswith("4 of 176 evaluated samples (2.3%) at steps 50-70")
    assert "zeroed (zero_infinity=True)" in warning.message
    loud = diagnose_run(write_run(tmp_path / "inf.jsonl", 100, lambda step: math.inf if step == 50 else 2 / step ** 0.5,
                                  evaluations))
    (warning,) = [item for item in loud.findings if item.code == "CTC223"]
    assert "non-finite at 1 of those steps (CTC200)" in warning.message
    clean = diagnose_run(write_run(tmp_path / "clean.jsonl", 100, lambda step: 2 / step ** 0.5, lambda s: learned(0.2)))
    assert "CTC223" not in codes(clean)


def uniform(entropy_share: float):
    def evaluations(step: int) -> dict[str, float]:
        return {**GARBAGE, "entropy": entropy_share * math.log(CLASSES), "blank_prob": 1 / CLASSES}
    return evaluations


def test_outputs_that_stay_uniform_past_the_budget(tmp_path):
    flat = lambda step: 11.5  # noqa: E731 - the loss of a model that is not trained
    result = diagnose_run(write_run(tmp_path / "m.jsonl", 300, flat, uniform(0.97), patience=200))
    found = codes(result)
    assert found.get("CTC224") == "error" and "CTC205" not in found
    (error,) = [item for item in result.findings if item.code == "CTC224"]
    assert "ln(27)" in error.message and "over steps 1-300" in error.message
    within = diagnose_run(write_run(tmp_path / "within.jsonl", 150, flat, uniform(0.97), patience=200))
    assert "CTC224" not in codes(within)
    spread = diagnose_run(write_run(tmp_path / "spread.jsonl", 300, flat, uniform(0.8), patience=200))
    assert "CTC224" not in codes(spread)


def test_outputs_still_near_uniform_while_the_loss_keeps_falling_are_no_dead_model(tmp_path):
    # From a monitor trial: a Hugging Face run whose loss fell 83.5 -> 57.8 was told "the model never left its
    # initialisation: check that the optimizer holds the model's parameters".
    falling = lambda step: 11.5 * (1 - step / 600)  # noqa: E731 - half the loss gone by step 300, still going
    result = diagnose_run(write_run(tmp_path / "m.jsonl", 300, falling, uniform(0.97), patience=200))
    assert "CTC224" not in codes(result)
    first_drop_then_flat = lambda step: 11.5 + 8 * math.exp(-step / 5)  # noqa: E731 - an untrained model's curve
    result = diagnose_run(write_run(tmp_path / "flat.jsonl", 300, first_drop_then_flat, uniform(0.97), patience=200))
    assert codes(result).get("CTC224") == "error"


def test_a_fifth_of_the_samples_unalignable_is_an_error_that_withholds_the_learning_rate_advice(tmp_path):
    # From a monitor trial: stride 8 with zero_infinity=True left 41% of the samples unalignable; the loss swung from
    # batch to batch and CTC206 said to lower the learning rate, which trained the healthy set-up fine.
    rng = np.random.default_rng(1)
    swings = np.maximum(0.36 + 0.12 * rng.standard_normal(200), 0.05)

    def evaluations(infeasible: float):
        return lambda step: {**learned(0.2), "infeasible": infeasible}

    clean = diagnose_run(write_run(tmp_path / "clean.jsonl", 200, lambda step: swings[step - 1], evaluations(0.0)))
    assert "CTC206" in codes(clean)  # the swings alone read as a learning-rate problem
    result = diagnose_run(write_run(tmp_path / "m.jsonl", 200, lambda step: swings[step - 1], evaluations(5.0)))
    (error,) = [item for item in result.findings if item.code == "CTC223"]
    assert error.severity.value == "error"
    assert "That is 31% of the evaluated samples: the loss swings from batch to batch" in error.message
    assert error.hint.endswith("Fix them before tuning the learning rate or the batch size: the curve's swings are theirs.")
    assert "CTC206" not in codes(result)
    few = diagnose_run(write_run(tmp_path / "few.jsonl", 200, lambda step: swings[step - 1], evaluations(1.0)))
    assert [item.severity.value for item in few.findings if item.code == "CTC223"] == ["warning"]
    assert "CTC206" in codes(few)


@pytest.mark.parametrize("code", ["CTC220", "CTC221", "CTC222", "CTC223", "CTC224"])
def test_every_output_code_is_documented(code):
    from ctcdoctor.registry import get_code

    info = get_code(code)
    assert info is not None and "**What it means.**" in info.doc and "**Fix.**" in info.doc


def flicker(step: int) -> dict[str, float]:
    """A small-batch run leaving the blank phase: 4 decodes per evaluation, 'empty' jumping between 25% and 100%."""
    if step == 1:
        return {**GARBAGE, "evaluated": 4.0}
    if step < 100:
        return {**BLANK_PHASE, "evaluated": 4.0}
    empty = {0: 0.25, 1: 1.0, 2: 0.75}[(step // 10) % 3]
    return {**learned(0.6 if empty <= 0.5 else 1.0), "empty_rate": empty, "blank_ratio": 0.9 + empty / 10, "evaluated": 4.0}


def test_a_few_empty_decodes_while_the_loss_falls_are_no_relapse(tmp_path):
    # Hugging Face trial: batch 4, loss at its lowest and falling, decodes 25% -> 100% -> 75% empty
    falling = lambda step: blank_plateau_loss(step) if step < 100 else 3.2 * 0.99 ** (step - 100) + 0.3  # noqa: E731
    for steps in (120, 200):
        result = diagnose_run(write_run(tmp_path / f"flicker{steps}.jsonl", steps, falling, flicker, patience=2000))
        assert not {code for code, severity in codes(result).items() if severity == "error"}, result.findings


def test_a_relapse_needs_enough_decodes_pooled_and_a_loss_that_rose(tmp_path):
    def small(step: int) -> dict[str, float]:
        return {**relapse(step), "evaluated": 4.0}

    rose = lambda step: 1.0 if step <= 100 else 3.2  # noqa: E731
    # 2 evaluations of 4 decodes: 8 decodes say little
    assert "CTC221" not in codes(diagnose_run(write_run(tmp_path / "few.jsonl", 120, rose, small)))
    # 8 evaluations of 4: 32 decodes, all empty, the loss back up at the blank level: a collapse
    result = diagnose_run(write_run(tmp_path / "many.jsonl", 180, rose, small))
    (error,) = [item for item in result.findings if item.code == "CTC221"]
    assert "100% of 32 decodes since then empty" in error.message
    assert "the loss rose from 1.0" in error.message and "there to 3.2" in error.message
    # as many empty decodes, but the loss stayed where the model had emitted labels: still learning
    flat = diagnose_run(write_run(tmp_path / "flat.jsonl", 180, lambda step: 1.0, small))
    assert "CTC221" not in codes(flat)


def test_a_finished_run_in_the_blank_phase_is_too_short_to_judge_not_nothing_to_fix(tmp_path):
    # 60 steps of blank outputs under the default budget of 2,000: while running, the early phase (info)...
    running = diagnose_run(write_run(tmp_path / "running.jsonl", 60, blank_plateau_loss, phase_then, patience=2000))
    (info,) = [item for item in running.findings if item.code == "CTC220"]
    assert info.hint.startswith("Nothing to fix yet")
    # ... once the run is over (the monitor's close() marks its last record), still the early phase (trial 27: a
    # collapse here contradicted the budget said while it ran), told as too short to judge, "train longer"
    path = write_run(tmp_path / "over.jsonl", 60, blank_plateau_loss, phase_then, patience=2000)
    lines = path.read_text().splitlines()
    lines[-1] = lines[-1][:-1] + ', "finished": true}'
    path.write_text("\n".join(lines) + "\n")
    over = diagnose_run(path)
    assert over.options.finished and codes(over).get("CTC220") == "info" and "CTC221" not in codes(over)
    (ended,) = [item for item in over.findings if item.code == "CTC220"]
    assert "Too short to judge" in ended.message and "Train longer" in ended.hint
    assert "Nothing to fix" not in " ".join(item.hint for item in over.findings)
