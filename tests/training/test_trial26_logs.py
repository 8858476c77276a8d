"""Trial 26: a flat WER beside a falling CER is not CTC210; Adam at 1.0 that blows up for two steps, then sits at the
blank level, gets the learning-rate verdict (CTC206, and CTC220's hint), whether the rate was logged every step or only
at the evaluations."""
from __future__ import annotations

import numpy as np
from logcurves import ctc_level, noisy, series

from ctcdoctor.training import diagnose_run, monitor_format
from ctcdoctor.training.monitor import Monitor
from ctcdoctor.training.rules import Options, diagnose
from ctcdoctor.training.series import Curves, Metric

# ------------------------------------------------------------------------------------- CTC210: judge the finest rate


def falling_loss(n: int = 300) -> np.ndarray:
    return noisy(np.linspace(3.6, 0.75, n), np.random.default_rng(0), sigma=0.02)


def rates(cer: np.ndarray, wer: np.ndarray, steps: np.ndarray, eval: bool = True) -> tuple[Metric, ...]:
    prefix = "val_" if eval else ""
    return (Metric(series(f"{prefix}cer", cer, steps), "cer", eval=eval),
            Metric(series(f"{prefix}wer", wer, steps), "wer", eval=eval))


def test_a_flat_wer_beside_a_falling_cer_is_not_ctc210():
    """The trial's crafted log: CER 1.0 -> 0.35 while WER stays at 1.0, the loss falling (a healthy early speech run)."""
    evals = np.arange(0, 300, 10)
    metrics = rates(np.linspace(1.0, 0.35, evals.size), np.ones(evals.size), evals)
    found = diagnose(Curves(loss=series("train_loss", falling_loss()), metrics=metrics))
    assert "CTC210" not in {item.code for item in found}
    # train-side rates as the monitor logs them (DeepSpeech: CER above 1 at first, WER 1.58 -> 1.00)
    metrics = rates(np.linspace(2.4, 0.6, evals.size), np.linspace(1.58, 1.0, evals.size), evals, eval=False)
    assert "CTC210" not in {item.code for item in diagnose(Curves(loss=series("loss", falling_loss()), metrics=metrics))}


def test_ctc210_names_the_cer_when_both_are_stuck_and_a_wer_alone_is_still_judged():
    evals = np.arange(0, 300, 10)
    metrics = rates(np.full(evals.size, 0.97), np.ones(evals.size), evals)
    (item,) = [f for f in diagnose(Curves(loss=series("train_loss", falling_loss()), metrics=metrics)) if f.code == "CTC210"]
    assert item.message.startswith("val_cer stayed at 0.97") and item.evidence["series"] == "val_cer"
    alone = (Metric(series("val_wer", np.ones(evals.size), evals), "wer", eval=True),)
    assert "CTC210" in {f.code for f in diagnose(Curves(loss=series("train_loss", falling_loss()), metrics=alone))}
    # a falling train CER does not clear a held-out WER stuck at 1 (an eval decoder that does not match training)
    mixed = (Metric(series("cer", np.linspace(1.0, 0.3, evals.size), evals), "cer"),) + alone
    assert "CTC210" in {f.code for f in diagnose(Curves(loss=series("train_loss", falling_loss()), metrics=mixed))}


def test_logs_on_a_csv_with_a_falling_cer_and_a_flat_wer_finds_nothing(tmp_path):
    loss = falling_loss()
    rows = ["step,train_loss,val_cer,val_wer"]
    for index, value in enumerate(loss):
        step = 10 * index
        extra = f"{1.0 - 0.65 * index / 299:.3f},1.000" if index % 10 == 0 else ","
        rows.append(f"{step},{value:.4f},{extra}")
    path = tmp_path / "metrics.csv"
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    result = diagnose_run(path)
    assert not result.findings, [f.code for f in result.findings]


def test_the_live_monitor_does_not_stop_a_run_whose_cer_falls_while_its_wer_stays_at_1():
    monitor = Monitor(every=10, stop_on="error", echo=False)
    loss = falling_loss()
    stopped = False
    for step in range(1, 301):
        stopped = monitor.update(step, float(loss[step - 1]))
        if step % 10 == 0:
            monitor.log(step, eval_cer=1.0 - 0.65 * step / 300, eval_wer=1.0)
        if stopped:
            break
    report = monitor.close()
    assert not stopped and "CTC210" not in {f.code for f in report.findings}


# ------------------------------------------------------------------------------- Adam at 1.0: the learning-rate verdict

#: The trial's Keras run (keras-io's DeepSpeech2 on the torch backend, Adam(1.0), 32 steps): a blow-up at steps 2-3,
#: then the loss sits at the blank level U*ln(C-1) = 6.75*ln(31) = 23 with every decode empty.
KERAS_LR_1 = [168.7, 856.1, 2133.9, 327.7, 100.9, 56.3, 30.7, 20.0, 25.1, 23.3, 38.3, 43.1, 34.1, 31.3, 38.3, 31.3,
              43.8, 35.2, 34.3, 34.0, 24.2, 30.2, 34.4, 22.8, 25.9, 24.7, 20.7, 25.8, 21.9, 26.1, 29.6, 24.2]


def keras_curves(lr_steps: np.ndarray, rate: float = 1.0) -> Curves:
    steps = np.arange(1, len(KERAS_LR_1) + 1)
    return Curves(loss=series("loss", np.array(KERAS_LR_1), steps),
                  lr=series("lr", np.full(lr_steps.size, rate), lr_steps))


def test_adam_at_1_that_blows_up_for_two_steps_is_told_the_learning_rate():
    every_step, evaluations = np.arange(1, 33), np.array([1, 5, 10, 15, 20, 25, 30])
    for lr_steps in (every_step, evaluations):  # the Keras callback used to log the rate at evaluations only
        found = diagnose(keras_curves(lr_steps), Options(optimizer="Adam", trainer="keras", classes=32,
                                                          label_length=6.75, reduction="sum", finished=True))
        (item,) = [f for f in found if f.code == "CTC206"]
        assert "steps 2-3" in item.message and "at learning rate 1" in item.message
        assert item.hint.startswith("Set the learning rate to 1e-4 to 1e-3 (Adam usually trains CTC models there; "
                                    "1 is 1000x the top of that range)")
        assert "clipnorm=1.0" in item.hint and "batch size" not in item.hint
        assert item.evidence["ranges"] == [[2, 3]]


def test_a_short_blow_up_is_not_counted_at_a_usual_rate_or_an_unknown_optimizer():
    every_step = np.arange(1, 33)
    for rate, optimizer in ((1e-3, "Adam"), (0.005, "AdamW"), (1.0, "SGD"), (1.0, None)):
        found = diagnose(keras_curves(every_step, rate), Options(optimizer=optimizer))
        assert "CTC206" not in {f.code for f in found}, (rate, optimizer)


def test_healthy_noisy_curves_at_a_high_adam_rate_raise_no_short_blow_up():
    for seed in range(4):
        rng = np.random.default_rng(seed)
        loss = noisy(ctc_level(400, plateau_share=0.15), rng, sigma=0.2, spikes=0.02)
        steps = np.arange(400)
        found = diagnose(Curves(loss=series("loss", loss, steps), lr=series("lr", np.full(400, 0.05), steps)),
                         Options(optimizer="Adam"))
        assert "CTC206" not in {f.code for f in found}, seed


def test_logs_on_the_keras_monitor_log_leads_the_blank_phase_hint_with_the_rate(tmp_path):
    blank = {"evaluated": 16.0, "infeasible": 0.0, "cer": 1.0, "wer": 1.0, "blank_ratio": 1.0, "empty_rate": 1.0,
             "alt_decode_rate": 1.0}
    lines = [monitor_format.header(blank=0, patience=2000, every=5, trainer="keras", classes=32, label_length=6.75,
                                   reduction="sum", optimizer="Adam")]
    for step, value in enumerate(KERAS_LR_1, 1):
        line = monitor_format.record(step, value, lr=1.0, **(blank if step == 1 or step % 5 == 0 else {}))
        lines.append(monitor_format.finished(line) if step == len(KERAS_LR_1) else line)
    path = tmp_path / "metrics.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    found = {f.code: f for f in diagnose_run(path).findings}
    assert found["CTC206"].hint.startswith("Set the learning rate to 1e-4 to 1e-3")
    assert found["CTC220"].hint.startswith("Set the learning rate to 1e-4 to 1e-3") and "Train longer" not in found["CTC220"].hint
    assert "at a learning rate of 1, 1000x the top of Adam's usual range" in found["CTC220"].message
    assert "still learning" not in found["CTC220"].message
