"""The spare-frames figure of `ctcdoctor scan --plot`: a pure function of the scan result."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ctcdoctor.render.figures import new_figure

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

#: How each output-lengths source reads in the title.
LENGTH_SOURCES = {
    "setup": "from Setup.output_lengths",
    "model": "returned by the model",
    "full": "all frames (every input has the same length)",
    "probed": "estimated by probing the model",
    "measured": "measured by probing the model",
    "unknown": "unknown",
}


#: A red bar lower than this share of the tallest bar would be a pixel high: the counts axis becomes logarithmic.
LOG_BELOW = 0.05


def _show_unalignable(ax: Any, bins: list[dict[str, int]], counts: list[int]) -> None:
    """Make the samples CTC cannot align visible however few they are among thousands: a logarithmic counts axis
    when their bars would be a pixel high, and their number written beside the line at -0.5."""
    red = [count for item, count in zip(bins, counts) if item["to"] < 0 and count]
    if not red:
        return
    if min(red) < LOG_BELOW * max(counts):
        from matplotlib.ticker import LogLocator, NullFormatter, ScalarFormatter

        ax.set_yscale("symlog", linthresh=1)  # log above 1 sample, linear below: a bar of 1 is as tall as a decade
        ax.set_ylim(0, max(counts) * 2)
        ax.yaxis.set_major_locator(LogLocator(base=10))
        ax.yaxis.set_major_formatter(ScalarFormatter())
        ax.yaxis.set_minor_formatter(NullFormatter())
        ax.set_ylabel("samples (log scale)")
    total = sum(red)
    ax.annotate(f"{total:,} cannot align", xy=(-0.5, 1), xycoords=("data", "axes fraction"), xytext=(-6, -6),
                textcoords="offset points", ha="right", va="top", color="#d62728", fontweight="bold")


def plot(result: dict[str, Any], ax: Any = None) -> Figure:
    """Bar chart of the spare-frames histogram (output frames minus needed frames per sample).

    Bars are centred on whole numbers of frames (a bin from 2 to 3 spans 1.5 to 3.5), so the
    line between -1 and 0 separates the samples CTC cannot align (red) from the rest.
    """
    from matplotlib.ticker import MaxNLocator

    if ax is None:
        figure, ax = new_figure(7, 3.5)
    else:
        figure = ax.figure
    bins = result.get("spare_frames", {}).get("histogram", [])
    lefts = [item["from"] - 0.5 for item in bins]
    widths = [item["to"] - item["from"] + 1 for item in bins]
    counts = [item["count"] for item in bins]
    colours = ["#d62728" if item["to"] < 0 else "#1f77b4" for item in bins]
    ax.bar(lefts, counts, width=widths, align="edge", color=colours, edgecolor="white")
    if bins:
        ax.axvline(-0.5, color="black", linewidth=1)
    ax.set_xlabel("spare frames (output frames − labels − repeats); red: cannot align")
    ax.set_ylabel("samples")
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))  # sample counts: never a tick at 1.25 samples
    _show_unalignable(ax, bins, counts)
    source = result.get("lengths_source", "unknown")
    samples, shown = result.get("samples", sum(counts)), sum(counts)
    # The histogram holds only the samples with a known output length: say so when that is not all of them.
    counted = f"{shown:,} of {samples:,} samples (the others have no known output length);\n" if bins and shown < samples \
        else f"{samples:,} samples; "
    detail = result.get("lengths_detail") if source in ("manifest", "probed", "measured") else None
    title = f"{counted}output lengths {detail or LENGTH_SOURCES.get(source, source)}"
    rejected = result.get("lengths_rejected")  # the declared ones disagree with the model (CTC003)
    if rejected:
        title += f":\n{rejected} are wrong (CTC003)" if source == "unknown" else f",\nnot {rejected} (wrong: CTC003)"
    ax.set_title(title)
    if not bins:  # no frame counts to subtract from: say so rather than draw empty axes
        ax.set_xticks([])
        ax.set_yticks([])
        why = "the output lengths are unknown" if source in ("unknown", "unavailable") else "no sample has a known output length"
        ax.text(0.5, 0.5, f"no spare frames to show: {why}", ha="center", va="center", transform=ax.transAxes)
    figure.tight_layout()
    return figure
