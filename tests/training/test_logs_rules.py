"""Every curve rule (CTC200-CTC215) on synthetic curves: a case it must catch and a near miss it must not."""
from __future__ import annotations

import json

import numpy as np
import pytest
from logcurves import cosine_lr, ctc_level, curves, healthy_eval, noisy, series

from ctcdoctor.findings import Severity
from ctcdoctor.training.rules import Options, diagnose
from ctcdoctor.training.series import Curves, Metric


def run(c: Curves, **options) -> dict[str, list]:
    found: dict[str, list] = {}
    for item in diagnose(c, Options(**options)):
        json.dumps(item.to_dict(), allow_nan=False)  # evidence is plain JSON (the envelope needs it)
        assert item.message.endswith(".") and item.hint.endswith(".")
        found.setdefault(item.code, []).append(item)
    return found


def healthy(n: int = 400, seed: int = 0, sigma: float = 0.05, **level) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return noisy(ctc_level(n, **level), rng, sigma=sigma)


def problems(found: dict[str, list]) -> set[str]:
    return {code for code, items in found.items() if any(item.severity != Severity.INFO for item in items)}


# ---------------------------------------------------------------------------------------------- healthy curves
@pytest.mark.parametrize("n", [60, 400, 5000])
@pytest.mark.parametrize("sigma", [0.03, 0.1, 0.2])
@pytest.mark.parametrize("seed", [0, 1])
def test_healthy_noisy_ctc_curves_raise_no_warning(n, sigma, seed):
    """A falling CTC curve with an early blank plateau, spikes and per-step noise up to about 3x what
    batch size 2 gives on the OCR example: no warning, no error, with or without eval/LR/CER/C."""
    rng = np.random.default_rng(seed)
    level = ctc_level(n, plateau_share=0.15)
    loss = noisy(level, rng, sigma=sigma, spikes=0.02)
    evals = np.arange(0, n, max(1, n // 20))
    c = curves(loss, eval_loss=(evals, healthy_eval(evals, level, rng)), lr=cosine_lr(n),
               cer=(evals, np.clip(level[evals] / 3.3, 0, 1)))
    assert problems(run(c, classes=27, label_length=6)) == set()
    assert problems(run(curves(loss))) == set()


# ---------------------------------------------------------------------------------------------- CTC200-202
def test_ctc200_loss_that_goes_nan_and_stays():
    loss = healthy()
    loss[300:] = np.nan
    (item,) = run(curves(loss))["CTC200"]
    assert item.severity == Severity.ERROR
    assert item.evidence["first_step"] == 300 and item.evidence["persistent"] is True
    assert "from step 300 to the end" in item.message and "100 of 400" in item.message


def test_ctc200_isolated_inf_steps_are_counted_and_said_to_recover():
    loss = healthy()
    loss[[120, 200, 260]] = np.inf
    (item,) = run(curves(loss))["CTC200"]
    assert item.evidence["count"] == 3 and item.evidence["persistent"] is False
    assert "finite again after each" in item.message and "scan" in item.hint


def test_ctc200_isolated_nan_steps_point_at_the_inputs_not_at_infeasible_samples():
    # CTC's own inf is a sample it cannot align; NaN comes from the numbers before the loss.
    loss = healthy()
    loss[[120, 200]] = np.nan
    (item,) = run(curves(loss))["CTC200"]
    assert item.hint.startswith("Find the batches that give NaN") and "CTC040" in item.hint
    assert "log_softmax" in item.hint and "infeasible" not in item.hint
    loss[260] = np.inf
    (both,) = run(curves(loss))["CTC200"]
    assert "for inf" in both.hint and "for NaN" in both.hint


def test_ctc200_checks_the_eval_loss_too_and_not_a_finite_run():
    loss = healthy()
    assert "CTC200" not in run(curves(loss))
    evals = np.arange(0, 400, 25)
    eval_values = np.linspace(5, 1, evals.size)
    eval_values[-3:] = np.nan
    (item,) = run(curves(loss, eval_loss=(evals, eval_values)))["CTC200"]
    assert item.evidence["series"] == "eval_loss"


def test_ctc201_names_the_part_that_went_non_finite_first():
    loss = healthy()
    ctc, att = loss * 0.3, loss * 0.7
    ctc[250:] = np.inf
    total = ctc + att
    found = run(curves(total, parts=[("loss_ctc", ctc), ("loss_att", att)]))
    (item,) = found["CTC201"]
    assert item.evidence["series"] == "loss_ctc" and item.evidence["total_first_step"] == 250
    assert "loss_att stays finite" in item.message
    assert "CTC200" in found  # the total itself


def test_ctc201_not_when_every_part_is_finite():
    loss = healthy()
    assert "CTC201" not in run(curves(loss, parts=[("loss_ctc", loss * 0.3), ("loss_att", loss * 0.7)]))


def test_ctc202_nan_gradient_norm_behind_a_clean_loss():
    loss = healthy()
    grad = np.full(400, 1.0)
    grad[[50, 51, 300]] = np.nan
    (item,) = run(curves(loss, grad_norm=grad))["CTC202"]
    assert item.evidence["count"] == 3 and item.evidence["first_step"] == 50
    assert "logging_nan_inf_filter=False" in item.hint


def test_ctc202_defers_to_ctc200_when_the_loss_is_non_finite_at_the_same_steps():
    loss = healthy()
    grad = np.full(400, 1.0)
    grad[[50, 300]] = np.nan
    loss[[50, 300]] = np.nan
    found = run(curves(loss, grad_norm=grad))
    assert "CTC202" not in found and "CTC200" in found


# ---------------------------------------------------------------------------------------------- CTC203, CTC214
def diverging(n: int = 400, best_at: int = 250, to: float = 2.0, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    level = ctc_level(n, floor=0.15)
    level[best_at:] = level[best_at] + (to - level[best_at]) * np.linspace(0, 1, n - best_at) ** 0.7
    return noisy(level, rng, sigma=0.05)


def test_ctc203_divergence_with_the_step_it_began():
    (item,) = run(curves(diverging()))["CTC203"]
    assert item.severity == Severity.ERROR
    assert 230 <= item.evidence["onset_step"] <= 300 and item.evidence["ratio"] >= 1.5
    assert "resume from the checkpoint" in item.hint


def test_ctc203_says_the_best_is_smoothed_when_single_values_went_lower():
    # The table's min (one lucky batch) and the message's best (a smoothed level) must not look contradictory.
    loss = diverging()
    loss[240] = 0.5 * loss[235:245].min()
    (item,) = run(curves(loss))["CTC203"]
    assert f"the lowest single value was {loss[240]:.3g}" in item.message
    (plain,) = run(curves(diverging()))["CTC203"]
    assert "smoothed" not in plain.message  # noise of 5% leaves the best as it reads


def test_ctc203_points_at_unnormalised_inputs_unless_the_logged_rate_is_far_too_high():
    # 2000 -> 180 -> 430 (the Keras speech report): an ordinary rate or none logged may not be the cause
    (item,) = run(curves(diverging()))["CTC203"]
    assert "normalise the inputs" in item.hint and "CTC041" in item.hint
    (item,) = run(curves(diverging(), lr=np.full(400, 1e-3)))["CTC203"]
    assert "normalise the inputs" in item.hint
    (item,) = run(curves(diverging(), lr=np.full(400, 0.5)), optimizer="Adam")["CTC203"]
    assert "Set the learning rate to 1e-4 to 1e-3" in item.hint and "normalise" not in item.hint


def test_ctc203_not_for_a_small_rebound_or_noise_near_zero():
    level = ctc_level(400, floor=0.15)
    best = level[250]
    level[250:] = best * np.linspace(1, 1.3, 150)  # ends 1.3x the best: not a divergence
    assert "CTC203" not in run(curves(noisy(level, np.random.default_rng(0), sigma=0.05)))
    near_zero = ctc_level(400, floor=0.01)
    near_zero[300:] *= np.linspace(1, 2.5, 100)  # 0.02 -> 0.05: 2.5x, but 0.3% of what the run descended
    assert "CTC203" not in run(curves(noisy(near_zero, np.random.default_rng(0), sigma=0.05)))


def test_ctc203_measures_the_way_back_against_the_first_logged_loss_not_a_smoothed_blow_up():
    # Adam at 0.5 (trial B): 6.24 first logged, a blow-up to 21.8 within the first steps, best 2.8, then back up to 5
    early = [6.24, 9.0, 15.0, 21.8, 19.0, 14.0, 9.0, 6.0, 4.5, 3.6]
    loss = np.array(early + [2.8] * 20 + list(np.linspace(2.8, 5.0, 20)) + [5.0] * 10)
    (item,) = run(curves(loss))["CTC203"]
    assert "of the way to the first logged loss 6.24" in item.message
    back = int(item.message.split("back ")[1].split("%")[0])
    assert 50 <= back <= 80  # (5 - 2.8) / (6.24 - 2.8) = 64%, not 13% of the way to the smoothed 18.9
    # Hugging Face at lr 50: the best is the first value (16.5), every later one is 1e4-1e5: no way back to quote
    blown = np.array([16.5, 62128.7, 61967.6, 737471.7, 487368.2, 161922.2, 305719.3, 141557.1, 106271.1, 82398.6])
    (item,) = run(curves(blown))["CTC203"]
    assert "best 16.5" in item.message and "of the way" not in item.message and "start" not in item.message


def test_ctc214_divergence_during_warmup_suggests_a_lower_peak():
    lr = 0.4 * np.arange(1, 401) / 800  # still rising at the end
    found = run(curves(diverging(), lr=lr))
    (item,) = found["CTC214"]
    onset = found["CTC203"][0].evidence["onset_step"]
    assert item.evidence["lr_at_onset"] == pytest.approx(lr[onset], rel=0.02)
    assert item.evidence["suggested_peak"] == pytest.approx(lr[onset] / 2, rel=0.02)
    assert "CTC203" in found and "0.0" in item.hint
    first, last = item.evidence["steps"]  # shaded on the plot: from the onset the message names to the peak rate
    assert first == onset <= last and last == item.evidence["peak_step"]
    assert f"the divergence began at step {onset} " in item.message


def test_ctc214_not_when_the_learning_rate_was_constant():
    found = run(curves(diverging(), lr=np.full(400, 1e-3)))
    assert "CTC203" in found and "CTC214" not in found
    assert "0.001 -> 3.33e-04 or 1.00e-04" in found["CTC203"][0].hint


# ---------------------------------------------------------------------------------------------- CTC204, CTC205, CTC213
def plateau_at(level_value: float, n: int = 400, from_share: float = 0.4, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    knee = int(from_share * n)
    level = np.where(t < knee, level_value + (10.5 - level_value) * np.exp(-t / (knee / 5)), level_value)
    return noisy(level, rng, sigma=0.05)


def test_ctc204_plateau_after_a_fall():
    found = run(curves(plateau_at(1.0)))
    (item,) = found["CTC204"]
    assert item.severity == Severity.WARNING
    assert item.evidence["share"] >= 0.35 and item.evidence["level"] == pytest.approx(1.0, rel=0.1)
    assert "ReduceLROnPlateau" in item.hint
    assert "CTC212" in item.message  # honest: without CER or C it cannot tell the blank plateau apart


def test_ctc204_not_when_the_loss_still_falls_or_the_schedule_has_decayed():
    falling = healthy(400, floor=0.05, decay_share=0.25)
    assert "CTC204" not in run(curves(falling))
    assert "CTC204" not in run(curves(plateau_at(1.0), lr=cosine_lr(400)))


def test_ctc213_constant_learning_rate_through_the_plateau():
    found = run(curves(plateau_at(1.0), lr=np.full(400, 3e-4)))
    (item,) = found["CTC213"]
    assert item.severity == Severity.INFO and item.evidence["lr"] == pytest.approx(3e-4)
    lr = np.full(400, 3e-4)
    lr[300:] = 1e-4  # a step decay inside the plateau: something did react
    assert "CTC213" not in run(curves(plateau_at(1.0), lr=lr))


def test_ctc205_never_left_the_start():
    rng = np.random.default_rng(0)
    loss = noisy(np.full(400, 10.5), rng, sigma=0.05)
    (item,) = run(curves(loss))["CTC205"]
    assert item.severity == Severity.ERROR and "requires_grad" in item.hint
    assert "CTC204" not in run(curves(loss))


def test_ctc205_not_after_a_real_fall():
    found = run(curves(plateau_at(6.0)))  # 10.5 -> 6: fell 43%
    assert "CTC205" not in found and "CTC204" in found


# ---------------------------------------------------------------------------------------------- CTC206
def sawtooth(n: int = 600, seed: int = 0) -> np.ndarray:
    """Stuck around 2 with teeth: a jump to ~5 every 12 steps, decaying back."""
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    level = 1.8 + 3.5 * np.exp(-(t % 12) / 2.5)
    level[:30] = np.linspace(10.5, 3.0, 30)
    return level * np.exp(rng.normal(0, 0.05, n))


def test_ctc206_sawtooth_without_progress():
    # Teeth every 12 steps: a repeating cycle, so the hint leads with the data order and ends with the rate.
    found = run(curves(sawtooth(), lr=np.full(600, 3e-3)))
    (item,) = found["CTC206"]
    assert item.evidence["kind"] == "cycles" and item.evidence["period"] == 12
    assert item.evidence["swing"] >= 0.5 * item.evidence["level"] and item.evidence["drop"] < 0.2
    assert "every 12 steps" in item.message and "jumping up at the start of each cycle" in item.message
    assert "shuffle" in item.hint and "0.003 -> 0.001" in item.hint and "batch" in item.hint
    assert "CTC204" not in found and "CTC211" not in found  # one story for the tail


def test_ctc206_irregular_sawtooth_without_progress():
    rng = np.random.default_rng(0)
    level = np.concatenate([np.linspace(10.5, 3.0, 30), np.full(570, 2.5)])
    found = run(curves(level * np.exp(rng.normal(0, 0.5, 600)), lr=np.full(600, 3e-3)))
    (item,) = [item for item in found["CTC206"] if item.evidence["kind"] == "sawtooth"]
    assert item.evidence["swing"] >= 0.5 * item.evidence["level"]
    assert "0.003 -> 0.001" in item.hint and "batch" in item.hint
    assert "CTC204" not in found


@pytest.mark.parametrize("period", [10, 25, 50])
@pytest.mark.parametrize("tooth", ["climb", "jump"])
def test_ctc206_cycle_of_an_epoch_is_named_not_read_as_plateaus_or_a_divergence(period, tooth):
    # A falling loss that repeats every `period` steps (batches in the same order every epoch): before, its flat
    # stretches read as the blank plateau (CTC211) and its last climb as a divergence (CTC203).
    t = np.arange(300)
    phase = (t % period) / period
    loss = (6 * np.exp(-t / 80) + 2 + 3 * (phase if tooth == "climb" else 1 - phase)) * np.exp(
        np.random.default_rng(period).normal(0, 0.03, 300))
    found = run(curves(loss))
    assert set(found) == {"CTC206"}, {code: [i.message for i in items] for code, items in found.items()}
    (item,) = found["CTC206"]
    assert item.evidence["kind"] == "cycles" and abs(item.evidence["period"] - period) <= 1
    assert f"every {period} steps" in item.message and "shuffle" in item.hint
    assert ("climbing through each cycle" if tooth == "climb" else "jumping up at the start") in item.message
    assert "If neither applies" not in item.hint  # the level fell across the cycles: no rate advice


def test_ctc206_cycles_that_follow_a_restarting_schedule_are_expected():
    t = np.arange(400)
    lr = 1e-3 * (0.5 + 0.5 * np.cos(np.pi * (t % 50) / 50))  # CosineAnnealingWarmRestarts(T_0=50)
    loss = 3 + 2 * ((t % 50) / 50) ** 2 + 0.5 * np.exp(-t / 100)
    found = run(curves(loss, lr=lr))
    assert "CTC206" not in found and "CTC203" not in found and "CTC211" not in found


def test_no_cycle_in_healthy_noisy_curves_or_a_smooth_decay():
    for seed in range(5):
        assert "CTC206" not in run(curves(healthy(600, seed=seed, sigma=0.1)))
    t = np.arange(300)
    assert "CTC206" not in run(curves(20 * np.exp(-t / 40) + 0.3))


def test_ctc206_blowup_that_recovers():
    loss = healthy(600, floor=0.05)
    loss[280:320] *= 6.0
    (item,) = [item for item in run(curves(loss))["CTC206"] if item.evidence["kind"] == "blowups"]
    assert item.evidence["ranges"][0][0] >= 270 and item.evidence["ranges"][0][1] <= 330
    assert "recovered" in item.message


def test_ctc206_not_for_noise_near_convergence_or_single_spikes():
    loss = healthy(600, sigma=0.2, floor=0.05)
    loss[[300, 301, 450]] *= 8.0
    assert "CTC206" not in run(curves(loss))


# ---------------------------------------------------------------------------------------------- CTC207, CTC208
def eval_curve(values: list[float], every: int = 25) -> tuple[np.ndarray, np.ndarray]:
    return np.arange(1, len(values) + 1) * every, np.array(values)


def test_ctc207_overfitting_onset_with_prechelt_stops():
    train = healthy(400, floor=0.01)
    evals = eval_curve([4.0, 3.0, 2.0, 1.2, 1.0, 0.95, 1.0, 1.05, 1.1, 1.2, 1.25, 1.3, 1.35, 1.4, 1.45])
    (item,) = run(curves(train, eval_loss=evals))["CTC207"]
    assert item.evidence["best_step"] == 150 and item.evidence["gl_end"] > 40
    assert item.evidence["gl5_step"] == 175 and item.evidence["up3_step"] == 225  # 1.0 > 1.05 * 0.95
    assert "step 150" in item.hint


def test_ctc207_says_it_in_plain_words_with_numbers():
    """No GL/UP quotients (Prechelt's jargon) in what the user reads: percent above the best, its step, the train trend."""
    train = healthy(400, floor=0.01)
    evals = eval_curve([4.0, 3.0, 2.0, 1.2, 1.0, 0.95, 1.0, 1.05, 1.1, 1.2, 1.25, 1.3, 1.35, 1.4, 1.45])
    (item,) = run(curves(train, eval_loss=evals))["CTC207"]
    assert item.message.startswith("overfitting from step 150: eval_loss is 47% above its best (0.95 at step 150; 1.4 at the end) "
                                   "while the train loss still falls (")
    assert ("stopping once it was 5% above its best would have ended the run at step 175, stopping after 3 rises in a row "
            "at step 225.") in item.message
    for jargon in ("GL", "UP3", "Prechelt"):
        assert jargon not in item.message and jargon not in item.hint


def test_ctc207_not_for_a_small_rise_or_when_the_train_loss_rises_too():
    train = healthy(400, floor=0.01)
    small = eval_curve([4.0, 3.0, 2.0, 1.2, 1.0, 0.95, 0.96, 0.98, 1.0, 0.99, 1.0, 1.01, 1.02])  # GL ~7
    assert "CTC207" not in run(curves(train, eval_loss=small))
    evals = eval_curve([4.0, 3.0, 2.0, 1.2, 1.0, 0.95, 1.0, 1.05, 1.1, 1.2, 1.25, 1.3, 1.35, 1.4, 1.45])
    assert "CTC207" not in run(curves(diverging(), eval_loss=evals))


def test_ctc208_eval_rises_from_the_first_evaluation():
    train = healthy(400, floor=0.05)
    evals = eval_curve([3.4, 3.5, 3.6, 3.8, 4.0, 4.3, 4.6, 5.0])
    found = run(curves(train, eval_loss=evals))
    (item,) = found["CTC208"]
    assert item.evidence["first"] == 3.4 and "model.eval()" in item.hint
    assert "CTC207" not in found


def test_ctc208_not_when_eval_improved_first():
    train = healthy(400, floor=0.05)
    evals = eval_curve([3.4, 3.0, 3.6, 3.8, 4.0, 4.3, 4.6, 5.0])
    found = run(curves(train, eval_loss=evals))
    assert "CTC208" not in found and "CTC207" in found


# ---------------------------------------------------------------------------------------------- CTC209
def test_ctc209_zeros_from_zero_infinity_and_negative_values():
    loss = healthy()
    loss[[100, 101, 250]] = 0.0
    (item,) = run(curves(loss))["CTC209"]
    assert item.evidence["zero"] == 3 and item.evidence["first_step"] == 100 and "zero_infinity" in item.hint
    loss = healthy()
    loss[200:] = -np.abs(loss[200:])
    (item,) = run(curves(loss))["CTC209"]
    assert item.evidence["negative"] == 200 and "log_softmax" in item.hint


def test_ctc209_not_for_a_loss_that_converges_to_zero():
    loss = np.concatenate([np.geomspace(10.5, 1e-5, 380), np.zeros(20)])
    assert "CTC209" not in run(curves(loss))


# ---------------------------------------------------------------------------------------------- CTC210, CTC212, CTC211
def test_ctc210_error_rate_stuck_while_the_loss_keeps_falling():
    loss = healthy(400, plateau_share=0.0, floor=0.2, decay_share=0.3)
    evals = np.arange(25, 401, 25)
    cer = (evals, np.full(evals.size, 0.97))
    found = run(curves(loss, cer=cer, blank=(evals, np.full(evals.size, 0.99))))
    (item,) = found["CTC210"]
    assert "blank collapse" in item.message and "CTC212" not in found


def test_ctc210_not_when_the_error_rate_comes_down():
    loss = healthy(400, plateau_share=0.0, floor=0.2, decay_share=0.3)
    evals = np.arange(25, 401, 25)
    cer = (evals, np.linspace(1.0, 0.4, evals.size))
    assert "CTC210" not in run(curves(loss, cer=cer))


def blank_plateau(n: int = 400, seed: int = 0) -> np.ndarray:
    return plateau_at(3.2, n=n, from_share=0.1, seed=seed)


def test_ctc212_blank_plateau_that_never_ends_with_cer_evidence():
    evals = np.arange(25, 401, 25)
    found = run(curves(blank_plateau(), cer=(evals, np.full(evals.size, 1.0))))
    (item,) = found["CTC212"]
    assert item.severity == Severity.ERROR and "eval_cer stayed at 1.00" in item.message
    assert "CTC204" not in found and "CTC210" not in found


def test_ctc212_from_the_content_free_level_when_classes_are_given():
    found = run(curves(blank_plateau()), classes=27, label_length=6)
    (item,) = found["CTC212"]
    assert "ln(26)" in item.message and "estimate" in item.message
    assert item.evidence["content_free"] == pytest.approx(np.log(26))
    plain = run(curves(blank_plateau()))  # neither CER nor C: only a plateau can be said
    assert "CTC212" not in plain and "CTC204" in plain


def test_ctc212_waits_for_patience_in_a_run_in_progress():
    evals = np.arange(25, 401, 25)
    c = curves(blank_plateau(), cer=(evals, np.full(evals.size, 1.0)))
    assert "CTC212" in run(c)
    assert "CTC212" not in run(c, patience=2000)


def test_ctc211_early_blank_plateau_that_ended_is_an_info():
    loss = healthy(600, plateau_share=0.25, floor=0.05)
    evals = np.arange(0, 600, 25)
    cer = (evals, np.clip(ctc_level(600, plateau_share=0.25)[evals] / 3.3, 0, 1))
    found = run(curves(loss, cer=cer), classes=27, label_length=6)
    (item,) = found["CTC211"]
    assert item.severity == Severity.INFO and "ended" in item.message
    assert 0.15 <= item.evidence["share"] <= 0.35
    assert problems(found) == set()


@pytest.mark.parametrize(("ratio", "reported"), [(0.0, False), (0.49, False), (0.5, True), (1.0, True)])
def test_ctc211_needs_blank_outputs_when_a_blank_ratio_is_logged(ratio, reported):
    """A plateau during which the logged blank ratio was 0% is not "the usual CTC blank plateau" (a monitor
    given the wrong blank index logs exactly 0%: the trial's run_b got CTC211 next to CTC222)."""
    loss = healthy(600, plateau_share=0.25, floor=0.05)
    evals = np.arange(0, 600, 20)
    found = run(curves(loss, blank=(evals, np.full(evals.size, ratio))))
    assert ("CTC211" in found) is reported
    if reported:
        assert f"blank_ratio was {ratio:.0%} (median)" in found["CTC211"][0].message or ratio < 0.9


def test_ctc211_on_the_trials_run_with_a_blank_ratio_of_0(tmp_path):
    """The monitor's JSONL of a run whose blank_ratio stayed at 0 while the loss sat at 1.9, then fell."""
    from ctcdoctor.training import diagnose_run, monitor_format

    loss = healthy(300, plateau_share=0.25, floor=0.2, plateau=1.9, init=6.5)
    lines = [monitor_format.header(blank=0, classes=6, reduction="mean")]
    lines += [monitor_format.record(step, loss=float(value), **({"blank_ratio": 0.0} if step % 20 == 0 else {}))
              for step, value in enumerate(loss, 1)]
    (tmp_path / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    assert "CTC211" not in {item.code for item in diagnose_run(tmp_path / "metrics.jsonl").findings}
    lines = [line.replace('"blank_ratio": 0.0', '"blank_ratio": 0.98') for line in lines]
    (tmp_path / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    assert "CTC211" in {item.code for item in diagnose_run(tmp_path / "metrics.jsonl").findings}


def test_ctc211_not_without_a_plateau():
    t = np.arange(600)
    level = 0.05 + 10.5 / (1 + t / 30) ** 1.5  # one smooth fall, never flat
    assert "CTC211" not in run(curves(noisy(level, np.random.default_rng(0), sigma=0.05)))


# ---------------------------------------------------------------------------------------------- CTC215
def test_ctc215_too_few_values_to_judge_and_enough():
    assert "CTC215" in run(curves(healthy(7)))
    assert "CTC215" not in run(curves(healthy(20)))


def test_ctc215_names_only_the_rules_that_could_not_run_beside_a_divergence_they_did_find():
    # From a monitor trial: 10 values of a Trainer at lr 50 gave CTC203 (diverged) and a CTC215 that said the
    # divergence rule needs at least 20, with "log more often (logging_steps=10)" for a log of every step.
    loss = np.array([83.5, 60.0, 40.0, 30.0, 80.0, 6e6, 4e6, 3e6, 2.9e6, 2.88e6])
    found = run(curves(loss), trainer="huggingface")
    assert "CTC203" in found
    (item,) = found["CTC215"]
    assert item.message == ("only 10 finite values of loss (steps 0-9): the plateau rules need at least 20, "
                            "the sawtooth rule 60.")
    assert item.hint == "It logged every step: let the run go longer (the shape rules judge 20 or more values)."


@pytest.mark.parametrize(("trainer", "advice"), [
    ("huggingface", "Log more often (TrainingArguments(logging_steps=100)), or let the run go longer."),
    ("lightning", "Log more often (Trainer(log_every_n_steps=100)), or let the run go longer."),
    (None, "Log more often (every 100 steps: Hugging Face logging_steps=100, Lightning log_every_n_steps=100), "
           "or let the run go longer."),
])
def test_ctc215_advice_fits_what_wrote_the_log(trainer, advice):
    (item,) = run(curves(healthy(7), every=1000), trainer=trainer)["CTC215"]
    assert item.message.startswith("only 7 finite values of loss (steps 0-6,000): the divergence rule needs at least 8, ")
    assert item.hint == advice


def test_ctc215_on_a_log_of_epochs_asks_for_values_per_batch():
    c = curves(healthy(8))
    c = Curves(loss=c.loss, unit="epoch")
    (item,) = run(c, trainer="keras")["CTC215"]
    assert "(epochs 0-7)" in item.message
    assert item.hint.startswith("Log per batch (ctcdoctor's Keras monitor callback")


def test_accuracy_is_read_as_one_minus_error():
    evals = np.arange(25, 401, 25)
    accuracy = Metric(series("val_accuracy", np.full(evals.size, 0.02), evals), "accuracy", eval=True)
    c = Curves(loss=series("loss", blank_plateau()), metrics=(accuracy,))
    (item,) = run(c)["CTC212"]
    assert "val_accuracy stayed at 0.02" in item.message


def test_rules_are_fast_on_a_million_points():
    import time

    rng = np.random.default_rng(0)
    loss = noisy(ctc_level(1_000_000), rng, sigma=0.1)
    c = curves(loss, lr=cosine_lr(1_000_000))
    started = time.perf_counter()
    diagnose(c)
    assert time.perf_counter() - started < 2.0


@pytest.mark.parametrize("seed", range(40))
def test_rules_never_crash_on_odd_curves(seed):
    """Empty, constant, all-NaN, zero, negative, one-point and spiky series: findings, never an exception."""
    rng = np.random.default_rng(seed)
    n = int(rng.choice([0, 1, 2, 5, 19, 20, 61, 300]))
    loss = rng.choice([rng.normal(1, 1, n), np.full(n, 3.0), np.full(n, np.nan), np.zeros(n),
                       np.exp(rng.normal(0, 3, n)), -np.abs(rng.normal(0, 1, n))])
    loss = np.where(rng.random(n) < 0.1, rng.choice([np.nan, np.inf, -np.inf, 0.0]), loss)
    evals = np.arange(0, n, 7)
    c = curves(loss, eval_loss=(evals, rng.choice([np.abs(rng.normal(1, 1, evals.size)), np.full(evals.size, np.nan)])),
               lr=rng.choice([np.full(n, 1e-3), np.zeros(n), np.abs(rng.normal(0, 1, n))]),
               cer=(evals, np.clip(rng.normal(0.9, 0.2, evals.size), 0, 1.5)), grad_norm=rng.normal(1, 1, n),
               blank=(evals, rng.random(evals.size)), parts=[("loss_ctc", loss * 0.5)])
    for options in ({}, {"classes": 27, "label_length": 6.0}, {"patience": 100}):
        run(c, **options)


def late_flat_then_fall(n: int = 600) -> np.ndarray:
    """A healthy run (trial B, plain loop): a fast fall to 0.08 by 35% of the run, flat to 45%, then down to 0.01."""
    t = np.arange(n, dtype=np.float64)
    level = np.where(t < 0.35 * n, 0.08 + 6.2 * np.exp(-t / (0.05 * n)), 0.08)
    level = np.where(t > 0.45 * n, 0.08 * np.exp(-(t - 0.45 * n) / (0.1 * n)) + 0.005, level)
    return noisy(level, np.random.default_rng(0), sigma=0.03, spikes=0.0)


def test_ctc211_not_for_a_flat_stretch_of_a_model_that_already_decodes():
    loss = late_flat_then_fall()
    # far below ln(C-1) = 2.3 per label: not the blank plateau, whatever the outputs
    assert "CTC211" not in run(curves(loss), classes=11, reduction="mean")
    # C unknown: the evaluations around it show the model decoding (CER 0.03, blank 21-26%)
    evals = np.arange(0, 600, 50)
    assert "CTC211" not in run(curves(loss, cer=(evals, np.full(evals.size, 0.03))))
    assert "CTC211" not in run(curves(loss, blank=(evals, np.linspace(0.21, 0.26, evals.size))))
    assert "CTC211" in run(curves(loss))  # nothing says what it is: the shape alone (the near miss)


def test_ctc211_not_for_the_recovery_after_a_blow_up():
    # Adam at 0.5 in Lightning (trial B): 6.2, down to 2, a blow-up to 21.8, a stretch at 4.3, then down to 1
    rng = np.random.default_rng(0)
    level = np.concatenate([np.linspace(6.2, 2.0, 4), np.full(6, 20.0), np.linspace(20, 4.3, 6), np.full(30, 4.3),
                            np.linspace(4.3, 1.0, 20), np.full(34, 1.0)])
    # C and U known, the reduction not (Lightning): the level 4.3 lies between ln(10) and U*ln(10)
    assert "CTC211" not in run(curves(level * np.exp(rng.normal(0, 0.02, level.size))), classes=11, label_length=3.9)


def test_ctc211_not_for_a_steady_exponential_decay_with_noise():
    # 20 e^(-t/40) + 0.3 with noise: a 15-step stretch looked flat within +-10% and "fell to 0.28" after it,
    # which read as the blank plateau at 4% of the first loss; a least-squares slope sees the steady fall.
    t = np.arange(300)
    for seed in range(5):
        loss = 20 * np.exp(-t / 40) + 0.3 + np.random.default_rng(seed).normal(0, 0.05, 300)
        assert "CTC211" not in run(curves(np.abs(loss)))


def _epoch_cycles(n: int, period: int, swing: float, seed: int = 0) -> np.ndarray:
    """A falling per-step loss whose batches come in the same order every `period` steps: each epoch climbs `swing`x."""
    t = np.arange(n)
    return (5 + 95 * np.exp(-t / (n / 4))) * swing ** ((t % period) / period) * np.exp(
        np.random.default_rng(seed).normal(0, 0.05, n))


def test_ctc206_cycle_length_in_a_log_longer_than_the_bins():
    # 2,000 steps are cut into 500 bins of 4: an epoch of 50 steps is 12.5 bins, found on the bins as 25 (two
    # epochs, "every 100 steps"); the period is refined on the points themselves. A fresh-eyes trial.
    (item,) = run(curves(_epoch_cycles(2000, 50, 1.5)))["CTC206"]
    assert item.evidence["kind"] == "cycles" and abs(item.evidence["period"] - 50) <= 1, item.message
    assert "every 50 steps" in item.message


def test_ctc206_cycle_that_a_restarting_schedule_logs_in_a_long_log_is_expected():
    t = np.arange(2000)
    lr = 1e-3 * (0.5 + 0.5 * np.cos(np.pi * (t % 50) / 50))  # CosineAnnealingWarmRestarts(T_0=50)
    assert "CTC206" not in run(curves(_epoch_cycles(2000, 50, 2.0), lr=lr))


def test_ctc206_cycle_length_and_its_schedule_in_a_log_longer_than_the_refinement_limit():
    # 200,000 points (bins of 400, refined on medians of 10 points): an epoch of 1,000 steps is 2.5 bins.
    (item,) = run(curves(_epoch_cycles(200_000, 1000, 1.5)))["CTC206"]
    assert abs(item.evidence["period"] - 1000) <= 20, item.message
    t = np.arange(200_000)
    lr = 1e-3 * (0.5 + 0.5 * np.cos(np.pi * (t % 1000) / 1000))
    assert "CTC206" not in run(curves(_epoch_cycles(200_000, 1000, 2.0), lr=lr))


def test_ctc213_not_beside_a_loss_that_never_left_its_start():
    # CTC205 says "try a 10x larger learning rate": a constant-rate note advising ReduceLROnPlateau
    # (factor 0.1) would tell the reader the opposite in the same report.
    rng = np.random.default_rng(3)
    stuck = noisy(np.full(400, 150.0), rng, sigma=0.02)
    found = run(curves(stuck, lr=np.full(400, 1e-4)))
    assert "CTC205" in found and "CTC213" not in found
