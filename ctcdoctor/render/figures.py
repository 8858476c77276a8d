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
LINE_STYLES = ("-", (0, (4, 1.5)), (0, (1, 1)), (0, (4, 1.5, 1, 1.5)))
"""Past 20 labels the colours repeat with another dash pattern, so 80 classes stay distinguishable."""


def new_figure(width: float, height: float, rows: int = 1, cols: int = 1, **subplots: Any) -> tuple[Figure, Any]:
    """A Figure and its axes (a single Axes when rows == cols == 1, else an array), no pyplot state."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=110)
    axes = figure.subplots(rows, cols, **subplots)
    return figure, axes


def label_colour(index: int) -> tuple[Any, Any]:
    """(colour, line style) of the `index`-th non-blank class shown (0-based).

    The nine saturated tab10 colours first (neighbouring labels differ in hue, not shade), then
    their nine light tab20 twins; never tab's grey, which is the blank's. Past 18 labels the
    colours repeat with another dash pattern.
    """
    import matplotlib

    tab20 = matplotlib.colormaps["tab20"].colors  # type: ignore[attr-defined]  # a ListedColormap
    strong = [tab20[2 * hue] for hue in range(10) if hue != 7]  # hue 7 is grey
    light = [tab20[2 * hue + 1] for hue in range(10) if hue != 7]
    palette = strong + light
    return palette[index % len(palette)], LINE_STYLES[(index // len(palette)) % len(LINE_STYLES)]


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
