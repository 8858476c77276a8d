"""The `simulate --plot` figure: outputs against the pseudo ground truth at snapshot steps."""
from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ctcdoctor.render.figures import BLANK_COLOUR, frame_curve, integer_ticks, label_colour, new_figure, short, symbol_list

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

    from ctcdoctor.simulate import SimulationResult


def plot(result: SimulationResult, ax: Any = None) -> Figure:
    """Outputs (solid) and pseudo ground truth (dashed) per class over frames, one panel per
    snapshot step, like Li & Wang's figures 4-6.

    ax: None (a new figure, one panel per snapshot), one Axes (the last snapshot only), or a
    sequence of Axes (one snapshot each, the latest ones if there are fewer axes).
    """
    snaps = list(result.snapshots)
    if not snaps:
        raise ValueError("the result has no snapshots; run simulate() with snapshot_steps")
    if ax is None:
        cols = min(3, len(snaps))
        rows = -(-len(snaps) // cols)
        fig, grid = new_figure(4.2 * cols, 2.8 * rows, rows, cols, sharey=True, squeeze=False)
        axes: Sequence[Any] = list(grid.flat)
        for extra in axes[len(snaps):]:
            extra.set_visible(False)
    else:
        axes = list(ax) if isinstance(ax, (list, tuple)) or hasattr(ax, "flat") else [ax]
        axes = list(getattr(ax, "flat", axes))
        snaps = snaps[-len(axes):]
        fig = axes[0].figure

    frames = range(result.frames)
    for a, snap in zip(axes, snaps):
        shown = [k for k in range(result.num_classes) if k == 0 or k in result.label]  # distractors only clutter
        for position, k in enumerate(shown):
            colour, style = (BLANK_COLOUR, "-") if k == 0 else label_colour(position - 1)
            name = result.class_names[k]
            frame_curve(a, snap.outputs[:, k], colour, style, 1.6, label=name, fill=k != 0)
            a.plot(frames, snap.target[:, k], color=colour, lw=1.2, ls="--")
        m = result.history[snap.step]
        decoded = short(m.decoded) if isinstance(m.decoded, str) else short(" ".join(map(str, m.decoded)))
        a.set_title(f"step {snap.step}: loss {m.loss:.2f}, decode {decoded!r}", fontsize=9)
        a.set_ylim(-0.03, 1.03)
        a.set_xlabel("frame")
        integer_ticks(a.xaxis)
    axes[0].set_ylabel("probability")
    # Beside the last panel, not on one: a legend must never cover the curves it explains.
    axes[len(snaps) - 1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0), frameon=False,
                                title="solid: output\ndashed: target", title_fontsize=7)
    mods = []
    if result.alpha is not None:
        mods.append(f"alpha={result.alpha:g}")
    if result.gamma:
        mods.append(f"gamma={result.gamma:g}")
    fig.suptitle(
        f"CTC simulation: label {_label(result)}, {result.frames} frames, "
        f"lr {result.lr:g}" + (", " + ", ".join(mods) if mods else " (plain CTC)"),
        fontsize=10,
    )
    fig.tight_layout()
    return fig


def _label(result: SimulationResult) -> str:
    if result.text:
        return repr(result.text)
    return repr(symbol_list([result.class_names[k] for k in result.label]))
