"""The `simulate --plot` figure: outputs against the pseudo ground truth at snapshot steps."""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ctcdoctor.render.figures import BLANK_COLOUR, frame_curve, integer_ticks, label_colour, mark_wins, new_figure, symbol_list

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

    from ctcdoctor.simulate import SimulationResult

ONE_COLUMN = 10
"""Legend entries (the blank and nine labels) that one column beside the last panel holds; more take columns
beside the top-right panel, and the figure grows to the right to hold them, the panels keeping their size."""
TITLE_CHARS = 56
"""A panel title's length, decode included, that stays clear of the next panel's title: a longer decode is cut
to what fits, with its length, or shown by its length alone ("decode (1920 symbols)") when too little would fit."""


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

    shown = [k for k in range(result.num_classes) if k == 0 or k in result.label]  # distractors only clutter
    handles: list[Any] = []
    for a, snap in zip(axes, snaps):
        handles = _curves(a, result, snap, shown)
        a.set_title(_title(result, snap.step), fontsize=9)
        a.set_ylim(-0.03, 1.03)
        a.set_xlabel("frame")
        integer_ticks(a.xaxis)
    axes[0].set_ylabel("probability")
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
    _legend(fig, axes[:len(snaps)], handles, [legend_name(result.class_names[k]) for k in shown], own=ax is None)
    return fig


def _curves(a: Any, result: SimulationResult, snap: Any, shown: list[int]) -> list[Any]:
    """Each shown class's output (solid) and target (dashed) in one panel; the output lines, for the legend."""
    frames = range(result.frames)
    outputs = []
    for position, k in enumerate(shown):
        colour, marker = (BLANK_COLOUR, None) if k == 0 else label_colour(position - 1)
        frame_curve(a, snap.outputs[:, k], colour, "-", 1.6, label=result.class_names[k], fill=k != 0)
        line = a.get_lines()[-1]
        if marker is not None:  # past 18 labels: a repeated colour, told apart by a marker on its spikes
            line = mark_wins(line, snap.outputs[:, k].tolist(), marker)
        outputs.append(line)
        a.plot(frames, snap.target[:, k], color=colour, lw=1.2, ls="--")
    return outputs


def _title(result: SimulationResult, step: int) -> str:
    """'step 7: loss 2.37, decode 'ad'', a long decode cut (with its length) to keep clear of the next title."""
    m = result.history[step]
    decoded = m.decoded if isinstance(m.decoded, str) else " ".join(map(str, m.decoded))
    head = f"step {step}: loss {m.loss:.2f}, decode "
    if len(head + repr(decoded)) <= TITLE_CHARS:
        return head + repr(decoded)
    count = f"({len(m.decoded)} symbols)"  # symbols, not characters: index labels are joined with spaces
    room = TITLE_CHARS - len(head) - len(count) - 4  # the quotes, the ellipsis, a space
    return head + (f"{decoded[:room] + '…'!r} {count}" if room >= 8 else count)


def legend_name(name: str) -> str:
    """A class's name as the legend shows it: the space as '␣ (space)', other invisible names quoted."""
    if name == " ":
        return "␣ (space)"
    return name if name.strip() else repr(name)


def _legend(fig: Any, axes: Sequence[Any], handles: list[Any], names: list[str], own: bool) -> None:
    """Beside the panels, never on one: a legend must never cover the curves it explains.

    Handles and names go in explicitly, so a class named '_x' is listed too (matplotlib hides labels
    starting with '_'). Up to ONE_COLUMN entries: one column beside the last panel. More: columns beside the
    top-right panel, added after the layout and with the figure widened by the legend, so the panels keep
    their size (a 27-entry column laid out with them squashed all six into a strip).
    """
    style = dict(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0), frameon=False,
                 title="solid: output\ndashed: target", title_fontsize=7)
    if len(names) <= ONE_COLUMN or not own:
        columns = math.ceil(len(names) / (2 * ONE_COLUMN))
        axes[-1].legend(handles, names, ncol=columns, **style)
        fig.tight_layout()
        return
    rows = len({round(a.get_position().y0, 3) for a in axes})
    columns = math.ceil(len(names) / (ONE_COLUMN * rows))
    top_right = max(axes, key=lambda a: (round(a.get_position().y0, 3), a.get_position().x0))
    fig.tight_layout()
    legend = fig.legend(handles, names, ncol=columns, bbox_transform=top_right.transAxes, **style)
    width = fig.get_figwidth()
    grown = width + legend.get_window_extent().width / fig.dpi + 0.1
    fig.set_figwidth(grown)
    fig.tight_layout(rect=(0.0, 0.0, width / grown, 1.0))


def _label(result: SimulationResult) -> str:
    if result.text:
        return repr(result.text)
    return repr(symbol_list([result.class_names[k] for k in result.label]))
