"""The `logs --plot` figure: a pure function of a `LogsResult`.

Top: the train loss (every logged value, faint, and its smoothed level, bold), the eval
loss, non-finite steps marked along the top, and every finding's step range shaded in its
severity's colour and labelled with its code; error rates and the blank ratio on a right
axis. Bottom (when the learning rate is logged): the learning rate, with the same shading.

matplotlib is imported lazily; with no `ax` given a new figure is made on the Agg backend,
as Lightning's LR finder does. With `ax` the main panel is drawn into it and its figure
returned.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ctcdoctor.training.curve import Curve

COLOURS = {"error": "tab:red", "warning": "tab:orange", "info": "tab:blue"}
RAW_POINTS = 20000
"""Above this many points the faint raw line is replaced by bin medians (a figure cannot show more)."""


def _shade(ax, findings, label: bool) -> None:
    spans = [(found, found.evidence.get("steps")) for found in findings]
    spans = [(found, steps) for found, steps in spans if isinstance(steps, (list, tuple)) and len(steps) == 2]
    for row, (found, (start, end)) in enumerate(spans):
        colour = COLOURS.get(found.severity.value, "0.5")
        if end > start:
            ax.axvspan(start, end, color=colour, alpha=0.12, linewidth=0)
        else:
            ax.axvline(start, color=colour, alpha=0.6, linewidth=1.2)
        for step in (found.evidence.get("ranges") or [])[1:]:
            ax.axvspan(step[0], step[1], color=colour, alpha=0.12, linewidth=0)
        if label:
            # stack labels top-down so that overlapping ranges stay readable
            y = 0.97 - 0.075 * (row % 6)
            ax.text(start, y, f" {found.code}", transform=ax.get_xaxis_transform(), color=colour, fontsize=8,
                    fontweight="bold", va="top", ha="left", clip_on=True)


def _draw_main(ax, result: Any) -> None:
    curves = result.curves
    loss = Curve(curves.loss)
    raw_steps, raw_values = (loss.steps, loss.values) if loss.n <= RAW_POINTS else (
        loss.bin_last_step, loss.level)
    if loss.n:
        ax.plot(raw_steps, raw_values, color="tab:blue", alpha=0.3, linewidth=0.8,
                label=f"{curves.loss.tag} ({'every value' if loss.n <= RAW_POINTS else 'bin medians'})")
        ax.plot(loss.bin_last_step, loss.smooth, color="tab:blue", linewidth=1.8, label=f"{curves.loss.tag} (smoothed)")
    if curves.eval_loss is not None:
        finite = np.isfinite(curves.eval_loss.values)
        ax.plot(curves.eval_loss.steps[finite], curves.eval_loss.values[finite], color="tab:green", marker="o",
                markersize=3, linewidth=1.4, label=curves.eval_loss.tag)
    bad = ~np.isfinite(curves.loss.values)
    if bad.any():
        steps = curves.loss.steps[bad]
        ax.plot(steps, np.full(steps.shape, 0.995), transform=ax.get_xaxis_transform(), linestyle="none", marker="|",
                color="tab:red", markersize=8, label=f"{curves.loss.tag} non-finite ({int(bad.sum())})")
    positive = loss.n and loss.values.min() > 0 and (
        curves.eval_loss is None or np.nanmin(np.where(np.isfinite(curves.eval_loss.values),
                                                       curves.eval_loss.values, np.inf)) > 0)
    if positive:
        ax.set_yscale("log")
    ax.set_ylabel("loss" + (" (log scale)" if positive else ""))
    ax.grid(True, alpha=0.3)
    _shade(ax, result.findings, label=True)

    handles, labels = ax.get_legend_handles_labels()
    rates = list(curves.metrics)
    if rates or curves.blank_ratio is not None:
        right = ax.twinx()
        for index, metric in enumerate(rates[:3]):
            finite = np.isfinite(metric.series.values)
            right.plot(metric.series.steps[finite], metric.series.values[finite], color=("tab:orange", "tab:brown",
                       "tab:pink")[index], marker=".", markersize=4, linewidth=1.1, label=metric.series.tag)
        if curves.blank_ratio is not None:
            finite = np.isfinite(curves.blank_ratio.values)
            right.plot(curves.blank_ratio.steps[finite], curves.blank_ratio.values[finite], color="0.4", linestyle="--",
                       linewidth=1.1, label=curves.blank_ratio.tag)
        right.set_ylim(0, 1.05)
        right.set_ylabel("error rate / blank ratio")
        more_handles, more_labels = right.get_legend_handles_labels()
        handles, labels = handles + more_handles, labels + more_labels
    # outside the axes, right: the shaded labels sit at the top of the plot area
    ax.legend(handles, labels, loc="upper left", bbox_to_anchor=(1.07 if rates or curves.blank_ratio is not None
                                                                  else 1.01, 1.0), fontsize=8, frameon=False)


def plot(result: Any, ax: Any = None):
    """Draw `result` (a `LogsResult`) and return the matplotlib Figure."""
    if ax is not None:
        _draw_main(ax, result)
        return ax.figure
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lr = result.curves.lr
    if lr is not None and np.isfinite(lr.values).any():
        fig, (main, bottom) = plt.subplots(2, 1, figsize=(13, 7), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    else:
        fig, main = plt.subplots(1, 1, figsize=(13, 5.5))
        bottom = None
    _draw_main(main, result)
    if bottom is not None:
        finite = np.isfinite(lr.values)
        bottom.plot(lr.steps[finite], lr.values[finite], color="tab:purple", linewidth=1.4, label=lr.tag)
        if lr.values[finite].min() > 0:
            bottom.set_yscale("log")
        bottom.set_ylabel("learning rate")
        bottom.grid(True, alpha=0.3)
        _shade(bottom, result.findings, label=False)
        bottom.set_xlabel(result.curves.unit)
    else:
        main.set_xlabel(result.curves.unit)
    counts = {severity: sum(1 for found in result.findings if found.severity.value == severity)
              for severity in ("error", "warning", "info")}
    summary = ", ".join(f"{count} {severity}{'s' if count != 1 else ''}" for severity, count in counts.items() if count)
    fig.suptitle(f"{Path(result.source).name} ({result.format}): {summary or 'no findings'}", fontsize=12)
    fig.tight_layout()
    return fig
