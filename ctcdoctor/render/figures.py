"""How every figure starts and ends: matplotlib imported lazily on the Agg backend, a Figure
object without pyplot's global state, one palette, one way to save.

Plots are pure functions `plot(result, ax=None) -> Figure` in the `plot_*` modules; the command
saves the figure with `save`.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from ctcdoctor.errors import UserInputError

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

BLANK_COLOUR = "0.45"
"""The blank is always grey; no label colour is grey (see `label_colour`)."""
MARKERS = (None, "o", "s", "^")
"""Past 18 labels the colours repeat with a marker on the frames each label wins, one marker per round of the
palette, so 72 classes stay distinguishable. Not a dash pattern: in every figure a dashed line is a target."""


def new_figure(width: float, height: float, rows: int = 1, cols: int = 1, **subplots: Any) -> tuple[Figure, Any]:
    """A Figure and its axes (a single Axes when rows == cols == 1, else an array), no pyplot state."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=110)
    axes = figure.subplots(rows, cols, **subplots)
    return figure, axes


def label_colour(index: int) -> tuple[Any, str | None]:
    """(colour, marker or None) of the `index`-th non-blank class shown (0-based); its output is a solid line.

    The nine saturated tab10 colours first (neighbouring labels differ in hue, not shade), then
    their nine light tab20 twins; never tab's grey, which is the blank's. Past 18 labels the
    colours repeat with a marker (`MARKERS`; see `mark_wins`).
    """
    import matplotlib

    tab20 = matplotlib.colormaps["tab20"].colors  # type: ignore[attr-defined]  # a ListedColormap
    strong = [tab20[2 * hue] for hue in range(10) if hue != 7]  # hue 7 is grey
    light = [tab20[2 * hue + 1] for hue in range(10) if hue != 7]
    palette = strong + light
    return palette[index % len(palette)], MARKERS[(index // len(palette)) % len(MARKERS)]


def mark_wins(line: Any, values: Any, marker: str) -> Any:
    """Put `marker` on the frames where the class wins (p > 0.5: its spikes) of an output line; returns a plain
    marked line for the legend (a legend entry cannot take the curve's per-frame marker positions)."""
    from matplotlib.lines import Line2D

    wins = [t for t, value in enumerate(list(values)) if value > 0.5]
    line.set(marker=marker, markevery=wins, markersize=5)
    return Line2D([], [], color=line.get_color(), linewidth=line.get_linewidth(), marker=marker, markersize=5)


MANY_FRAMES = 60
"""Past this many frames a one-frame spike is a pixel or two wide as a line: outputs are drawn as steps (each frame
a flat top one frame wide) with the labels' winning frames filled, so a spike shows as a coloured bar."""


def integer_ticks(axis: Any) -> None:
    """Whole-number ticks on an Axis (frames, steps): never "2.5 frames"."""
    from matplotlib.ticker import MaxNLocator

    axis.set_major_locator(MaxNLocator(integer=True))


def frame_curve(ax: Any, values: Any, colour: Any, style: Any, width: float, label: str | None = None,
                fill: bool = False) -> None:
    """One class's probability per frame: a line for a few frames; for many, steps one frame wide, `fill` shading
    the frames where the class wins (for label outputs, whose spikes are a frame or two wide)."""
    values = list(values)
    frames = list(range(len(values)))
    if len(values) <= MANY_FRAMES:
        ax.plot(frames, values, color=colour, linestyle=style, linewidth=width, label=label)
        return
    ax.plot(frames, values, color=colour, linestyle=style, linewidth=max(width, 1.2), label=label, drawstyle="steps-mid")
    if fill:  # only the frames the class wins outright (p > 0.5): spikes, not the low hum of a near-uniform start
        wins = [value > 0.5 for value in values]
        ax.fill_between(frames, values, where=wins, step="mid", color=colour, alpha=0.45, linewidth=0)


def symbol_list(symbols: list[str] | tuple[str, ...]) -> str:
    """Symbols for a title: joined as text when each is one character, space-separated otherwise
    ("dinner", but "▁the ca t" would misread for word pieces: "'▁the' 'ca' 't'")."""
    if all(len(symbol) == 1 for symbol in symbols):
        return "".join(symbols)
    return " ".join(repr(symbol) for symbol in symbols)


def save(figure: Figure, path: Path) -> None:
    """Write the figure; an unwritable path is a usage error naming it."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(path, dpi=110, bbox_inches="tight")
    except OSError as error:
        raise UserInputError(f"cannot write --plot {path}: {error.strerror or error}", "Choose a writable path.") from error
