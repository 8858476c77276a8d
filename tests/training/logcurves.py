"""Synthetic training curves shaped like real CTC runs, for the curve-rule tests.

A healthy CTC loss falls fast from the near-uniform start to the blank plateau (about
ln(C-1) per label), may sit there a while, then falls towards a floor. Per-step values are
noisy: multiplicative log-normal noise whose relative size grows as the loss gets small
(one wrong sample dominates a nearly fitted batch; the example runs show sigma ~0.04 of
log-loss on the plateau and ~0.4 near 0.07), plus occasional spikes (a batch of long
utterances). These shapes and noise levels were measured on the OCR example
(examples/runs/make_runs.py).
"""
from __future__ import annotations

import numpy as np

from ctcdoctor.training.series import Curves, Metric, Series


def ctc_level(
    n: int,
    *,
    init: float = 10.5,
    plateau: float = 3.3,
    drop_share: float = 0.03,
    plateau_share: float = 0.15,
    floor: float = 0.05,
    decay_share: float = 0.25,
) -> np.ndarray:
    """Noise-free healthy CTC loss level over n steps."""
    t = np.arange(n, dtype=np.float64)
    drop = max(1.0, drop_share * n)
    start_fall = plateau_share * n + drop
    level = plateau + (init - plateau) * np.exp(-t / (drop / 3))
    after = t > start_fall
    # past the plateau: a power-law fall towards the floor (keeps falling slowly to the end)
    tau = max(1.0, decay_share * n)
    level[after] = floor + (plateau - floor) / (1 + (t[after] - start_fall) / tau) ** 1.5
    return level


def noisy(level: np.ndarray, rng: np.random.Generator, sigma: float = 0.05, spikes: float = 0.01,
          reference: float = 3.3) -> np.ndarray:
    """Per-step values around `level`: log-normal noise growing as the level falls, and spikes."""
    scale = sigma * (1 + 0.5 * np.log(np.maximum(reference / level, 1.0)))
    values = level * np.exp(rng.normal(0.0, scale))
    spike = rng.random(level.size) < spikes
    values[spike] *= rng.uniform(1.5, 3.0, int(spike.sum()))
    return values


def series(tag: str, values: np.ndarray, steps: np.ndarray | None = None, every: int = 1) -> Series:
    steps = np.arange(values.size) * every if steps is None else steps
    return Series(tag, np.asarray(steps, dtype=np.int64), np.asarray(values, dtype=np.float64))


def cosine_lr(n: int, peak: float = 1e-3, warmup_share: float = 0.05, end_share: float = 0.01) -> np.ndarray:
    t = np.arange(n, dtype=np.float64)
    warm = max(1.0, warmup_share * n)
    progress = np.clip((t - warm) / max(1.0, n - warm), 0, 1)
    lr = peak * (end_share + (1 - end_share) * 0.5 * (1 + np.cos(np.pi * progress)))
    return np.where(t < warm, peak * (t + 1) / warm, lr)


def healthy_eval(steps: np.ndarray, train_level: np.ndarray, rng: np.random.Generator, gap: float = 1.3) -> np.ndarray:
    """An eval loss that tracks the train level with a gap and little noise (no overfitting)."""
    return train_level[steps] * gap * np.exp(rng.normal(0, 0.02, steps.size)) + 0.02


def curves(loss: np.ndarray, *, every: int = 1, eval_loss=None, lr=None, cer=None, grad_norm=None, blank=None,
           parts=()) -> Curves:
    """Curves from arrays; `eval_loss`/`cer`/`blank` are (steps, values) pairs, `lr`/`grad_norm` per step."""
    steps = np.arange(loss.size) * every
    return Curves(
        loss=series("loss", loss, steps),
        eval_loss=series("eval_loss", eval_loss[1], eval_loss[0]) if eval_loss is not None else None,
        lr=series("lr", lr, steps) if lr is not None else None,
        grad_norm=series("grad_norm", grad_norm, steps) if grad_norm is not None else None,
        metrics=(Metric(series("eval_cer", cer[1], cer[0]), "cer", eval=True),) if cer is not None else (),
        blank_ratio=series("blank_ratio", blank[1], blank[0]) if blank is not None else None,
        parts=tuple(series(tag, values, steps) for tag, values in parts),
    )
