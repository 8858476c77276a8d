"""Learning-rate advice that fits the optimizer (CTC203, CTC206, CTC214, CTC224 and the blank-phase hints).

A good learning rate depends on the optimizer by orders of magnitude: Adam-like optimizers
(Adam, AdamW, RMSprop...) normalise the step by the gradient's scale, and CTC models train with
them at about 1e-4 to 1e-3; plain SGD needs rates 10-100x higher for the same models. So:

* optimizer known and Adam-like: an absolute target inside 1e-4 to 1e-3 when the logged rate is
  above that range (dividing 0.18 by 10 still leaves Adam 18x too high), else a relative change;
* optimizer known, not Adam-like (SGD, ...): a relative change from the logged rate;
* optimizer unknown: a relative change, plus the Adam range when the logged rate is above it.

The optimizer comes from `--optimizer` / `Monitor(optimizer=)` (the integrations fill it in) or
from the learning rate's tag (Lightning's LearningRateMonitor logs `lr-Adam`, `lr-SGD`).
"""
from __future__ import annotations

import re

from ctcdoctor.training.curve import fmt

ADAPTIVE_LOW = 1e-4
"""Adam-like optimizers: the usual CTC learning rates run from this..."""
ADAPTIVE_HIGH = 1e-3
"""... to this (peak, after warm-up)."""
ADAPTIVE_RANGE = "1e-4 to 1e-3"
ADAPTIVE = ("adam", "rmsprop", "nadam", "radam", "lamb", "lion")
"""Name fragments of optimizers whose step is normalised by the gradient scale (AdamW, Adamax, FusedAdam, adamw_torch...)."""
SGD = ("sgd", "momentum", "nesterov")


def optimizer_family(name: str | None) -> str | None:
    """"adaptive" (Adam-like), "sgd", "other" (known, no range to give), or None (unknown)."""
    if not name:
        return None
    flat = re.sub(r"[^a-z0-9]", "", name.lower())
    if any(part in flat for part in ADAPTIVE):
        return "adaptive"
    if any(part in flat for part in SGD):
        return "sgd"
    return "other"


def optimizer_in_tag(tag: str) -> str | None:
    """The optimizer named in a learning rate's tag: Lightning's `lr-AdamW/pg1` -> AdamW (Adam-like or SGD only)."""
    for part in re.split(r"[^A-Za-z0-9]+", tag):
        if part.lower() not in ("lr", "learning", "rate") and optimizer_family(part) in ("adaptive", "sgd"):
            return part
    return None


FAR_ABOVE = 10
"""An Adam-like optimizer at this many times the top of its usual range (1e-2 and up) is the likely cause of a blow-up
of a few steps (CTC206) and of a run that never leaves the blank phase (CTC220): their advice names the rate."""


def far_above_range(optimizer: str | None, current: float | None) -> bool:
    """An Adam-like optimizer at FAR_ABOVE times the top of its usual CTC range or more."""
    return optimizer_family(optimizer) == "adaptive" and current is not None and current >= FAR_ABOVE * ADAPTIVE_HIGH


def _above_adaptive(current: float | None) -> bool:
    return current is not None and current > ADAPTIVE_HIGH * 1.5


def lower_lr(optimizer: str | None, current: float | None, factors: tuple[int, ...] = (3, 10)) -> str:
    """An imperative phrase that lowers the learning rate, e.g. 'Divide the learning rate by 3-10 (0.003 -> 0.001 or 3.00e-04)'."""
    family = optimizer_family(optimizer)
    if family == "adaptive" and _above_adaptive(current):
        assert current is not None
        return (f"Set the learning rate to {ADAPTIVE_RANGE} ({optimizer} usually trains CTC models there; "
                f"{fmt(current)} is {current / ADAPTIVE_HIGH:.0f}x the top of that range)")
    by = "-".join(str(factor) for factor in factors)
    notes = []
    if current is not None and current > 0:
        notes.append(f"{fmt(current)} -> {' or '.join(fmt(current / factor) for factor in factors)}")
    if family is None and _above_adaptive(current):
        notes.append(f"with Adam or AdamW go to {ADAPTIVE_RANGE} instead, their usual range for CTC")
    elif family == "adaptive" and current is None:
        notes.append(f"{optimizer} usually trains CTC models at {ADAPTIVE_RANGE}")
    return f"Divide the learning rate by {by}" + (f" ({'; '.join(notes)})" if notes else "")


def lower_peak(optimizer: str | None, at_onset: float) -> tuple[str, float]:
    """CTC214: the phrase that lowers a warm-up's peak, and the suggested peak."""
    family = optimizer_family(optimizer)
    half = at_onset / 2
    if family == "adaptive" and half > ADAPTIVE_HIGH:
        return (f"Lower the peak learning rate to at most 1e-3 ({optimizer} usually trains CTC models at "
                f"{ADAPTIVE_RANGE}; the loss began to rise at {fmt(at_onset)})"), ADAPTIVE_HIGH
    note = f"{fmt(at_onset)} -> {fmt(half)}"
    if family is None and half > ADAPTIVE_HIGH * 1.5:
        note += f"; with Adam or AdamW at most 1e-3 instead, their usual CTC range being {ADAPTIVE_RANGE}"
    return f"Lower the peak learning rate to half the rate at which the loss began to rise ({note})", half


TOO_LOW = 10
"""A learning rate this many times below the bottom of Adam's usual range is named as the likely cause of a run
that does not move (CTC224); SGD needs higher rates than Adam, so the same bound holds for it a fortiori."""


def raise_lr(optimizer: str | None, current: float | None) -> str | None:
    """An imperative phrase naming a logged learning rate far below the usual CTC range as the cause of a run
    that does not move, e.g. 'Raise the learning rate: 1.00e-07 is 1000x below Adam's usual 1e-4 to 1e-3 for
    CTC'; None when the rate is not logged or not that low."""
    if current is None:
        return None
    if current <= 0:
        return f"Set a learning rate above 0 (the logged one is {fmt(current)}: no update moves the weights)"
    if current >= ADAPTIVE_LOW / TOO_LOW:
        return None
    family = optimizer_family(optimizer)
    times = f"{ADAPTIVE_LOW / current:.0f}x"
    if family == "adaptive":
        return f"Raise the learning rate: {fmt(current)} is {times} below {optimizer}'s usual {ADAPTIVE_RANGE} for CTC"
    if family in ("sgd", "other"):
        return (f"Raise the learning rate: {fmt(current)} is {times} below even Adam's usual {ADAPTIVE_RANGE} for CTC, "
                f"and {optimizer} needs higher rates than Adam")
    return f"Raise the learning rate: {fmt(current)} is {times} below Adam's usual {ADAPTIVE_RANGE} for CTC (SGD needs more)"


def usual_lr(optimizer: str | None) -> str:
    """What 'a learning rate in range' means for this optimizer, for hints that cannot read the rate."""
    family = optimizer_family(optimizer)
    if family == "adaptive":
        return f"{optimizer}: about {ADAPTIVE_RANGE}"
    if family in ("sgd", "other"):
        return f"{optimizer}: change it by factors of 3 from the current one; Adam's {ADAPTIVE_RANGE} does not apply"
    return f"Adam or AdamW: about {ADAPTIVE_RANGE}; SGD needs much higher"
