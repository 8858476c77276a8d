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

import math
from pathlib import Path
from typing import Any

import numpy as np

from ctcdoctor.training.curve import SMOOTH_MAX_SHARE, SMOOTH_POINTS, Curve

COLOURS = {"error": "tab:red", "warning": "tab:orange", "info": "tab:blue"}
RAW_POINTS = 20000
"""Above this many points the faint raw line is replaced by bin medians (a figure cannot show more)."""
RATE_CAP = 2.0
"""The right axis (error rates, blank ratio) extends above 1 to show CER > 1 (insertions) up to this; values above
it are drawn as triangles at the cap, so one CER of 25 at step 1 does not flatten the rest."""


def _spans(findings) -> list[tuple[Any, float, float]]:
    found = [(item, item.evidence.get("steps")) for item in findings]
    return [(item, float(steps[0]), float(steps[1])) for item, steps in found if isinstance(steps, (list, tuple)) and len(steps) == 2]


def lanes(spans: list[tuple[Any, float, float]]) -> list[int]:
    """A lane per span such that spans in one lane do not overlap (greedy by start): overlapping findings are
    shaded in separate horizontal bands instead of on top of each other."""
    rank = {"error": 0, "warning": 1, "info": 2}
    order = sorted(range(len(spans)), key=lambda index: (spans[index][1], rank.get(getattr(getattr(spans[index][0], "severity", None),
                                                                                       "value", ""), 3), spans[index][2]))
    ends: list[float] = []
    lane = [0] * len(spans)
    for index in order:
        _, start, end = spans[index]
        free = next((k for k, last in enumerate(ends) if last <= start), None)  # touching spans share a lane
        if free is None:
            ends.append(end)
            free = len(ends) - 1
        ends[free] = end
        lane[index] = free
    return lane


def _shade(ax, findings, label_ax=None) -> None:
    """Shade each finding's steps; with `label_ax` (the top-most axes, so no curve crosses a label) label it."""
    spans = _spans(findings)
    lane_of = lanes(spans)
    count = max(lane_of, default=0) + 1
    x0, x1 = ax.get_xlim()
    for (found, start, end), lane in zip(spans, lane_of):
        colour = COLOURS.get(found.severity.value, "0.5")
        top, bottom = 1 - lane / count, 1 - (lane + 1) / count
        if end > start:
            ax.axvspan(start, end, ymin=bottom, ymax=top, color=colour, alpha=0.12, linewidth=0)
        else:
            ax.axvline(start, ymin=bottom, ymax=top, color=colour, alpha=0.6, linewidth=1.2)
        for step in (found.evidence.get("ranges") or [])[1:]:
            ax.axvspan(step[0], step[1], ymin=bottom, ymax=top, color=colour, alpha=0.12, linewidth=0)
        if label_ax is not None:
            # inside the plot: a label that would run past the right edge is right-aligned to the span's end
            where = (start - x0) / (x1 - x0) if x1 > x0 else 0.0
            right = where > 0.9
            x = min((end - x0) / (x1 - x0), 0.995) if right else max(where, 0.005)
            label_ax.text(x, top - 0.015, f" {found.code} ", transform=ax.transAxes, color=colour, fontsize=8,
                          fontweight="bold", va="top", ha="right" if right else "left", zorder=10,
                          bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.8, "pad": 1.0})


def _draw_loss(ax, curves: Any) -> bool:
    """The train loss (raw and smoothed), the eval loss and non-finite marks; True when drawn on a log scale."""
    loss = Curve(curves.loss)
    raw_steps, raw_values = (loss.steps, loss.values) if loss.n <= RAW_POINTS else (_centres(loss), loss.level)
    if loss.n:
        ax.plot(raw_steps, raw_values, color="tab:blue", alpha=0.3, linewidth=0.8,
                label=f"{curves.loss.tag} ({'every value' if loss.n <= RAW_POINTS else 'bin medians'})")
        # a bin's smoothed level belongs to the middle of its steps (the rolling median is centred)
        # a median (robust to spikes, what the rules read): flat-topped where values alternate, as on a sawtooth
        ax.plot(_centres(loss), smoothed(loss), color="tab:blue", linewidth=1.8,
                label=f"{curves.loss.tag} (rolling median)")
    if curves.eval_loss is not None:
        finite = np.isfinite(curves.eval_loss.values)
        ax.plot(curves.eval_loss.steps[finite], curves.eval_loss.values[finite], color="tab:green", marker="o",
                markersize=3, linewidth=1.4, label=curves.eval_loss.tag)
    bad = ~np.isfinite(curves.loss.values)
    if bad.any():
        steps = curves.loss.steps[bad]
        ax.plot(steps, np.full(steps.shape, 0.995), transform=ax.get_xaxis_transform(), linestyle="none", marker="|",
                color="tab:red", markersize=8, label=f"{curves.loss.tag} non-finite ({int(bad.sum())})")
    positive = bool(loss.n and loss.values.min() > 0 and (
        curves.eval_loss is None or np.nanmin(np.where(np.isfinite(curves.eval_loss.values),
                                                       curves.eval_loss.values, np.inf)) > 0))
    if positive:
        ax.set_yscale("log")
        _plain_log_ticks(ax)
    return positive


def _plain_log_ticks(ax) -> None:
    """Log-axis tick labels as plain numbers (0.3, 150), not matplotlib's 3x10^-1 or 1.52x10^2. Within a
    decade every tick is labelled (no decade tick may fall inside); up to three decades the 2s and 5s too."""
    from matplotlib.ticker import FuncFormatter

    def plain(value: float, _position: Any) -> str:
        return f"{value:.4g}"

    def twos_and_fives(value: float, _position: Any) -> str:
        mantissa = value / 10 ** math.floor(math.log10(value) + 1e-9) if value > 0 else 0
        return f"{value:.4g}" if round(mantissa, 6) in (2.0, 5.0) else ""

    ax.yaxis.set_major_formatter(FuncFormatter(plain))
    low, high = ax.get_ylim()
    decades = math.log10(high / low) if low > 0 and high > low else math.inf
    minor = plain if decades <= 1 else twos_and_fives if decades <= 3 else (lambda value, _position: "")
    ax.yaxis.set_minor_formatter(FuncFormatter(minor))


def smoothed(curve: Curve) -> np.ndarray:
    """The rules' rolling median of the bin levels, with its window narrowed symmetrically near the ends: the
    rules' one-sided end windows put the first point at the median of the first few bins (5 where a CTC loss
    starts at 12), so the drawn line would start below and after the raw curve."""
    levels = curve.level
    window = max(1, min(math.ceil(SMOOTH_POINTS / curve.bin_size), curve.bins // SMOOTH_MAX_SHARE)) | 1
    half = window // 2
    out = curve.smooth.copy()
    for index in [*range(min(half, levels.size)), *range(max(levels.size - half, half), levels.size)]:
        reach = min(index, levels.size - 1 - index)
        out[index] = float(np.median(levels[index - reach : index + reach + 1]))
    return out


def _centres(curve: Curve) -> np.ndarray:
    return (curve.bin_first_step + curve.bin_last_step) / 2.0


def _draw_rates(ax, curves: Any) -> Any:
    """Error rates and the blank ratio on a right axis that extends above 1 when a rate does (CER > 1)."""
    rates = list(curves.metrics)
    if not rates and curves.blank_ratio is None:
        return None
    right = ax.twinx()
    drawn = [(metric.series, ("tab:orange", "tab:brown", "tab:pink")[index], ".") for index, metric in enumerate(rates[:3])]
    if curves.blank_ratio is not None:
        drawn.append((curves.blank_ratio, "0.4", "s"))
    highest = 1.0
    for series, colour, marker in drawn:
        finite = np.isfinite(series.values)
        steps, values = series.steps[finite], series.values[finite]
        dashed = series is curves.blank_ratio
        # every measured point is marked: the monitor measures these only at its evaluations
        right.plot(steps, np.minimum(values, RATE_CAP), color=colour, marker=marker, markersize=3.5 if dashed else 4,
                   linestyle="--" if dashed else "-", linewidth=1.1, label=series.tag)
        above = values > RATE_CAP
        if above.any():
            right.plot(steps[above], np.full(int(above.sum()), RATE_CAP), color=colour, marker="^", markersize=8,
                       linestyle="none", clip_on=False, label=f"{series.tag} > {RATE_CAP:g} ({int(above.sum())}, max {values.max():.3g})")
        if values.size:
            highest = max(highest, float(min(values.max(), RATE_CAP)))
    right.set_ylim(0, highest * 1.05)
    if highest > 1.0:
        right.axhline(1.0, color="0.5", linestyle=":", linewidth=0.8)
    right.set_ylabel("error rate / blank ratio")
    return right


def _draw_main(ax, result: Any) -> None:
    curves = result.curves
    if curves.unit == "step":  # steps are whole: no tick at step 2.5 on a short run
        from matplotlib.ticker import MaxNLocator

        ax.xaxis.set_major_locator(MaxNLocator(nbins="auto", steps=[1, 2, 2.5, 5, 10], integer=True))  # as AutoLocator
    positive = _draw_loss(ax, curves)
    ax.set_ylabel("loss" + (" (log scale)" if positive else ""))
    ax.grid(True, alpha=0.3)
    right = _draw_rates(ax, curves)
    _shade(ax, result.findings, label_ax=right if right is not None else ax)
    handles, labels = ax.get_legend_handles_labels()
    if right is not None:
        more_handles, more_labels = right.get_legend_handles_labels()
        handles, labels = handles + more_handles, labels + more_labels
    # outside the axes, right: the shaded labels sit at the top of the plot area
    ax.legend(handles, labels, loc="upper left", bbox_to_anchor=(1.07 if right is not None else 1.01, 1.0), fontsize=8,
              frameon=False)


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
        _shade(bottom, result.findings)
        bottom.set_xlabel(result.curves.unit)
    else:
        main.set_xlabel(result.curves.unit)
    counts = {severity: sum(1 for found in result.findings if found.severity.value == severity)
              for severity in ("error", "warning", "info")}
    summary = ", ".join(f"{count} {severity}{'s' if count != 1 else ''}" for severity, count in counts.items() if count)
    fig.suptitle(f"{Path(result.source).name} ({result.format}): {summary or 'no findings'}", fontsize=12)
    fig.tight_layout()
    return fig
