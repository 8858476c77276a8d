"""The spare-frames plot of `ctcdoctor scan --plot`: a pure function of the scan result.

matplotlib is imported lazily with the Agg backend (no display needed); the function
returns the Figure, and saves it when given a path.
"""
from __future__ import annotations

from typing import Any


def plot_spare_frames(result: dict[str, Any], path: str | None = None, ax=None):
    """Bar chart of the spare-frames histogram (frames minus needed frames per sample)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    bins = result.get("spare_frames", {}).get("histogram", [])
    if ax is None:
        figure = Figure(figsize=(7, 3.5), dpi=110)
        ax = figure.add_subplot(1, 1, 1)
    else:
        figure = ax.figure
    lefts = [item["from"] for item in bins]
    widths = [item["to"] - item["from"] + 1 for item in bins]
    counts = [item["count"] for item in bins]
    colours = ["#d62728" if item["to"] < 0 else "#1f77b4" for item in bins]
    ax.bar(lefts, counts, width=widths, align="edge", color=colours, edgecolor="white")
    ax.axvline(0, color="black", linewidth=1)
    ax.set_xlabel("spare frames (output frames − labels − repeats); red: cannot align")
    ax.set_ylabel("samples")
    from ctcdoctor.scan import LENGTH_SOURCES

    source = result.get("lengths_source", "unknown")
    ax.set_title(f"{result.get('samples', sum(counts)):,} samples; output lengths {LENGTH_SOURCES.get(source, source)}")
    figure.tight_layout()
    if path is not None:
        figure.savefig(path)
    return figure
