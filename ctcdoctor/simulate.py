"""The paper's CTC training simulator, as pure logic (no printing; the CLI and plots render it).

Li & Wang strip CTC training down to its core: one label sequence, a free (T, C) logit
matrix standing in for the network, plain gradient descent on those logits. Because the CTC
gradient w.r.t. the logits is y - y' (outputs minus pseudo ground truth), every step moves
the outputs towards the current posterior occupancy, which then moves in turn: training is
iterative fitting. Watching it shows plain CTC's "suppression" phase (blank takes over every
frame) and "peaking" phase (labels come back as one-frame spikes), and how the alpha
(non-blank proportion) and gamma (key-frame weighting) modifications change the path.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch

from ctcdoctor.ctc import (
    ctc_loss,
    edit_distance,
    greedy_decode,
    pseudo_ground_truth,
    spikiness,
)
from ctcdoctor.render.phrases import plural

BLANK = 0


@dataclass(frozen=True)
class StepMetrics:
    """Measurements of the outputs at one step (step 0 = before any update)."""

    step: int
    loss: float
    """Plain CTC loss (-log p(label)), also when alpha/gamma modify the gradient."""
    blank_ratio: float
    """Fraction of frames whose argmax is blank."""
    nonblank_mass: float
    """Mean over frames of 1 - p(blank)."""
    spike_width: float
    """Mean run length of equal non-blank argmax frames."""
    peak_prob: float
    """Mean over frames of the largest class probability."""
    entropy: float
    """Mean frame entropy, nats."""
    decoded: str | tuple[int, ...]
    """Greedy decode of the outputs (text when the label was text)."""
    edit_distance: int
    """Edit distance from `decoded` to the label."""


@dataclass(frozen=True)
class Snapshot:
    """Outputs and pseudo ground truth at one step, for plotting."""

    step: int
    outputs: np.ndarray
    """(T, C) softmax outputs y."""
    target: np.ndarray
    """(T, C) pseudo ground truth the gradient pulls towards: y', alpha-rescaled when alpha is set."""


@dataclass(frozen=True)
class SimulationResult:
    """Everything a simulation produced; a pure function of its arguments."""

    label: tuple[int, ...]
    """Target class indices (blank is class 0)."""
    text: str | None
    """The label as text, when it was given as text."""
    class_names: tuple[str, ...]
    """A display name per class; class 0 is the blank."""
    frames: int
    num_classes: int
    steps: int
    alpha: float | None
    gamma: float
    lr: float
    seed: int
    history: tuple[StepMetrics, ...]
    """Metrics at steps 0..steps."""
    snapshots: tuple[Snapshot, ...] = field(repr=False)
    """Outputs and pseudo ground truth at the chosen steps."""
    first_correct_step: int | None
    """First step whose greedy decode equals the label (None if never)."""

    @property
    def final(self) -> StepMetrics:
        return self.history[-1]

    def as_dict(self, history: bool = True, snapshots: bool = False) -> dict:
        """JSON-serialisable view (the CLI's `result` object)."""
        out: dict[str, Any] = {
            "label": list(self.label),
            "text": self.text,
            "frames": self.frames,
            "num_classes": self.num_classes,
            "steps": self.steps,
            "alpha": self.alpha,
            "gamma": self.gamma,
            "lr": self.lr,
            "seed": self.seed,
            "first_correct_step": self.first_correct_step,
            "final": _metrics_dict(self.final),
        }
        if history:
            out["history"] = [_metrics_dict(m) for m in self.history]
        if snapshots:
            out["snapshots"] = [
                {"step": s.step, "outputs": s.outputs.tolist(), "target": s.target.tolist()} for s in self.snapshots
            ]
        return out


def _metrics_dict(m: StepMetrics) -> dict:
    d = asdict(m)
    if isinstance(m.decoded, tuple):
        d["decoded"] = list(m.decoded)
    return d


def default_snapshot_steps(steps: int) -> tuple[int, ...]:
    """Six panels: the start, early steps (where suppression happens) and the end."""
    return tuple(sorted({0, steps // 16, steps // 8, steps // 4, steps // 2, steps}))


def encode_label(label: Sequence[int] | str, num_classes: int | None = None) -> tuple[list[int], tuple[str, ...], int]:
    """(class indices, class names, C) for a text or index label; blank is class 0."""
    if isinstance(label, str):
        if not label:
            raise ValueError("label is empty; give at least one symbol, e.g. --label hello")
        alphabet = sorted(set(label))
        ids = [alphabet.index(ch) + 1 for ch in label]
        names = ("<b>", *alphabet)
    else:
        ids = [int(c) for c in label]
        if not ids:
            raise ValueError("label is empty; give at least one class index")
        if min(ids) < 1:
            raise ValueError(f"label indices must be >= 1 (0 is the blank), got {min(ids)}")
        names = ("<b>", *(str(k) for k in range(1, max(ids) + 1)))
    c = len(names)
    if num_classes is not None:
        if num_classes < c:
            raise ValueError(f"num_classes={num_classes} is too small for this label; it needs at least {c}")
        names = names + tuple(f"x{k}" for k in range(c, num_classes))  # distractor classes
        c = num_classes
    return ids, names, c


def simulate(
    label: Sequence[int] | str,
    frames: int,
    steps: int = 200,
    alpha: float | None = None,
    gamma: float = 0.0,
    lr: float = 1.0,
    seed: int = 0,
    num_classes: int | None = None,
    snapshot_steps: Sequence[int] | None = None,
    init_scale: float = 0.01,
    on_step: Callable[[StepMetrics], None] | None = None,
) -> SimulationResult:
    """Train a free (frames, C) logit matrix on one label by SGD under (modified) CTC.

    label: text (classes = its sorted distinct characters, blank 0) or class indices >= 1.
    Each step: y = softmax(logits); logits -= lr * d(sum CTC loss)/d logits, which is
    omega_t (y - y'). Metrics are recorded at steps 0..steps (step s = after s updates);
    `on_step` sees each StepMetrics as it is made (for a progress bar). init_scale: std of
    the random initial logits; small values start near-uniform, as the paper does, and let
    the suppression phase show.
    """
    ids, names, C = encode_label(label, num_classes)
    repeats = sum(a == b for a, b in zip(ids, ids[1:]))
    if frames < len(ids) + repeats:
        raise ValueError(
            f"{frames} frames cannot hold a label of {plural(len(ids), 'symbol')} with {plural(repeats, 'repeat')}; "
            f"use at least {len(ids) + repeats} frames"
        )
    if steps < 0:
        raise ValueError(f"steps must be >= 0, got {steps}")
    if not lr > 0:
        raise ValueError(f"lr must be > 0, got {lr}")
    snaps_at = set(default_snapshot_steps(steps) if snapshot_steps is None else (int(s) for s in snapshot_steps))
    text = label if isinstance(label, str) else None
    alphabet = list(names[1:]) if text is not None else None
    want: str | tuple[int, ...] = text if text is not None else tuple(ids)

    threads = torch.get_num_threads()
    # A (T, C) matrix is far below the size where threads pay off, and on a busy machine each
    # OpenMP region in the native CTC kernel can stall for a scheduler tick (~8 ms measured),
    # which made 300 steps take 10 s instead of 0.6 s. Restored in `finally`.
    torch.set_num_threads(1)
    try:
        return _run(ids, names, C, frames, steps, alpha, gamma, lr, seed, snaps_at, init_scale, text, alphabet, want, on_step)
    finally:
        torch.set_num_threads(threads)


def _run(ids, names, C, frames, steps, alpha, gamma, lr, seed, snaps_at, init_scale, text, alphabet, want, on_step):
    g = torch.Generator().manual_seed(seed)
    # float64: the matrix is tiny, and the run should not depend on rounding.
    logits = init_scale * torch.randn(frames, C, generator=g, dtype=torch.float64)
    targets = torch.tensor([ids])
    in_len, tg_len = torch.tensor([frames]), torch.tensor([len(ids)])

    history: list[StepMetrics] = []
    snapshots: list[Snapshot] = []
    first_correct: int | None = None
    for step in range(steps + 1):
        leaf = logits.requires_grad_()
        lp = torch.log_softmax(leaf, -1)
        lp3 = lp.unsqueeze(1)
        loss = ctc_loss(lp3, targets, in_len, tg_len, blank=BLANK, reduction="sum", alpha=alpha, gamma=gamma)

        out = lp3.detach()
        sp = spikiness(out, blank=BLANK)
        best = greedy_decode(out, blank=BLANK, alphabet=alphabet)[0]
        decoded: str | tuple[int, ...] = best if isinstance(best, str) else tuple(best)
        m = StepMetrics(
            step=step,
            loss=float(loss.detach()),
            blank_ratio=sp.blank_ratio,
            nonblank_mass=sp.nonblank_mass,
            spike_width=sp.spike_width,
            peak_prob=sp.peak_prob,
            entropy=sp.entropy,
            decoded=decoded,
            edit_distance=edit_distance(decoded, want),
        )
        history.append(m)
        if first_correct is None and decoded == want:
            first_correct = step
        if step in snaps_at:
            target = pseudo_ground_truth(out, targets, in_len, tg_len, blank=BLANK, alpha=alpha)[:, 0]
            snapshots.append(Snapshot(step, out[:, 0].exp().numpy().copy(), target.numpy().copy()))
        if on_step is not None:
            on_step(m)
        if step == steps:
            break
        (grad,) = torch.autograd.grad(loss, leaf)
        logits = (leaf.detach() - lr * grad).detach()

    return SimulationResult(
        label=tuple(ids),
        text=text,
        class_names=names,
        frames=frames,
        num_classes=C,
        steps=steps,
        alpha=alpha,
        gamma=float(gamma),
        lr=float(lr),
        seed=seed,
        history=tuple(history),
        snapshots=tuple(snapshots),
        first_correct_step=first_correct,
    )
