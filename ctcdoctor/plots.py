"""Figures, as pure functions of result objects.

matplotlib is imported lazily (with the Agg backend) inside each function so that importing
ctcdoctor, and every check, stays free of it; each function returns the Figure and saves it
only when given a path.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

    from ctcdoctor.simulate import SimulationResult


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_simulation(
    result: "SimulationResult", path: str | Path | None = None, ax: Any = None
) -> "Figure":
    """Outputs (solid) and pseudo ground truth (dashed) per class over frames, one panel per
    snapshot step, like Li & Wang's figures 4-6.

    ax: None (a new figure, one panel per snapshot), one Axes (the last snapshot only), or a
    sequence of Axes (one snapshot each, the latest ones if there are fewer axes).
    """
    plt = _pyplot()
    snaps = list(result.snapshots)
    if not snaps:
        raise ValueError("the result has no snapshots; run simulate() with snapshot_steps")
    if ax is None:
        cols = min(3, len(snaps))
        rows = -(-len(snaps) // cols)
        fig, grid = plt.subplots(rows, cols, figsize=(4.2 * cols, 2.8 * rows), sharey=True, squeeze=False)
        axes: Sequence[Any] = list(grid.flat)
        for extra in axes[len(snaps):]:
            extra.set_visible(False)
    else:
        axes = list(ax) if isinstance(ax, (list, tuple)) or hasattr(ax, "flat") else [ax]
        axes = list(getattr(ax, "flat", axes))
        snaps = snaps[-len(axes):]
        fig = axes[0].figure

    colours = plt.get_cmap("tab10")
    frames = range(result.frames)
    for a, snap in zip(axes, snaps):
        for k in range(result.num_classes):
            if k != 0 and k not in result.label:
                continue  # distractor classes stay near zero and only clutter the panel
            c = "0.35" if k == 0 else colours((k - 1) % 10)
            name = result.class_names[k]
            a.plot(frames, snap.outputs[:, k], color=c, lw=1.6, label=name)
            a.plot(frames, snap.target[:, k], color=c, lw=1.2, ls="--")
        m = result.history[snap.step]
        a.set_title(f"step {snap.step}: loss {m.loss:.2f}, decode {m.decoded!r}", fontsize=9)
        a.set_ylim(-0.03, 1.03)
        a.set_xlabel("frame")
    axes[0].set_ylabel("probability")
    axes[0].legend(fontsize=7, loc="upper right", title="solid: output, dashed: target", title_fontsize=7)
    mods = []
    if result.alpha is not None:
        mods.append(f"alpha={result.alpha:g}")
    if result.gamma:
        mods.append(f"gamma={result.gamma:g}")
    fig.suptitle(
        f"CTC simulation: label {result.text or list(result.label)!r}, {result.frames} frames, "
        f"lr {result.lr:g}" + (", " + ", ".join(mods) if mods else " (plain CTC)"),
        fontsize=10,
    )
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=120)
    return fig
