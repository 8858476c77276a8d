"""The `overfit --plot` figure: a pure function of an `OverfitResult`.

Top: the loss of every step (log scale) and the CER at each evaluation (eval mode, solid; the
training steps' own decode, dotted, where it differs). Bottom: for the
first chosen sample after training, the output probability of the blank and of each
target label per frame (solid), with the pseudo ground truth `ctcdoctor.ctc.posterior`
(alpha-rescaled with `--alpha`) dashed in the same colour, as in Li & Wang's figure 7:
where the two agree the model has fitted its alignment; a solid blank line at 1 with
label spikes missing is a blank collapse.

matplotlib starts as every figure does (`ctcdoctor.render.figures`); the command saves the figure.
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from ctcdoctor.render.figures import BLANK_COLOUR, frame_curve, integer_ticks, label_colour, mark_wins, new_figure

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure


def plot(result: Any, ax: Any = None) -> Figure:
    """Draw `result` (an `ctcdoctor.overfit.result.OverfitResult`) and return the Figure.

    With `ax`, only the loss/CER panel is drawn, on that Axes.
    """
    if ax is not None:
        _curves(ax, result)
        return ax.figure
    figure, (top, bottom) = new_figure(10, 7.5, 2, 1, gridspec_kw={"height_ratios": [1, 1.25]})
    samples = ("sample " if len(result.samples) == 1 else "samples ") + ", ".join(map(str, result.samples))
    verdict = "fitted" if result.fitted else f"did not fit ({result.diagnosis})" if result.trained else "not trained"
    if result.caveats and result.decode_matches:  # a matching decode that is no fit (ctcdoctor.overfit.caveats)
        from ctcdoctor.overfit.caveats import verdict as ending

        verdict = f"decode matches, but {result.caveats[0]['words']}: {ending(result.caveats[:1])}"
    targets = ", ".join(f'"{target}"' for target in result.targets)
    figure.suptitle(f"overfit {samples}: {targets} — {verdict}", fontsize=12)
    _curves(top, result)
    _frames(bottom, result)
    figure.tight_layout()
    return figure


PROBE_COLOURS = ("tab:purple", "tab:red", "tab:pink", "tab:olive")
"""The LR probe's other runs in learning-rate order: lr/10 purple, 10·lr red (too hot diverges); the main run stays blue."""


def _probe_curves(result: Any) -> list[tuple[str, list[tuple[int, float]]]]:
    """(legend label, finite (step, loss) points) of each LR probe run other than this one."""
    probe = result.lr_probe or {}
    runs = [run for run in probe.get("runs", []) if run.get("lr") != probe.get("base_lr") and run.get("curve")]
    shown = []
    for run in runs:
        outcome = f"fitted in {run['steps_to_fit']} steps" if run.get("fitted") else run.get("verdict", "did not fit")
        points = [(int(step), float(value)) for step, value in run["curve"] if math.isfinite(value)]
        shown.append((f"loss at lr {run['lr']:g} (LR probe: {outcome})", points))
    return shown


def _curves(top: Any, result: Any) -> None:
    """The loss of every step (log scale when positive), the LR probe's other runs, and the CER at each evaluation,
    on twin axes."""
    losses = list(result.losses)
    steps = list(range(1, len(losses) + 1))
    finite = [(s, v) for s, v in zip(steps, losses) if math.isfinite(v)]
    probes = _probe_curves(result)
    positive = all(v > 0 for _, v in finite) and all(v > 0 for _, points in probes for _, v in points)
    if finite:
        label = f"CTC loss at lr {result.lr:g} (this run, every step)" if probes and result.lr else "CTC loss (every step)"
        top.plot([s for s, _ in finite], [v for _, v in finite], color="tab:blue", linewidth=1.2, label=label)
    for (label, points), colour in zip(probes, PROBE_COLOURS):  # what --lr-probe compares: drawn, not only told
        top.plot([s for s, _ in points], [v for _, v in points], color=colour, linewidth=1.1, linestyle="--", label=label)
    if (finite or probes) and positive:
        top.set_yscale("log")
    if result.nonfinite_step is not None:
        top.axvline(result.nonfinite_step, color="tab:red", linestyle=":", label=f"non-finite at step {result.nonfinite_step}")
    if result.steps_to_fit is not None:
        top.axvline(result.steps_to_fit, color="tab:green", linestyle="--", linewidth=1, label=f"decode correct from step {result.steps_to_fit}")
    top.set_xlabel("step")
    integer_ticks(top.xaxis)
    top.set_ylabel("loss" + (" (log scale)" if finite and positive else ""), color="tab:blue")
    top.grid(True, alpha=0.3)
    cer_axis = top.twinx()
    evaluations = list(result.evaluations)
    if evaluations:
        cer_axis.plot([e.step for e in evaluations], [e.cer for e in evaluations], color="tab:orange", marker="o",
                      markersize=3, linewidth=1.2, label="CER (eval-mode decode, judges the fit)")
        train = [(e.step, e.train_cer) for e in evaluations if e.train_cer is not None]
        if any(cer != e.cer for (_, cer), e in zip(train, evaluations)):  # only when the modes disagree somewhere
            cer_axis.plot([step for step, _ in train], [cer for _, cer in train], color="tab:orange", linestyle=":",
                          linewidth=1.0, alpha=0.8, label="CER (training steps' own decode)")
    cer_axis.set_ylabel("CER", color="tab:orange")
    cer_axis.set_ylim(bottom=0, top=max([1.0] + [e.cer * 1.05 for e in evaluations]))
    handles, labels = top.get_legend_handles_labels()
    more_handles, more_labels = cer_axis.get_legend_handles_labels()
    if handles or more_handles:
        # Outside the axes, above them: a legend must never cover the curves it explains.
        top.legend(handles + more_handles, labels + more_labels, loc="lower left", bbox_to_anchor=(0.0, 1.02),
                   ncol=3, fontsize=8, frameon=False)


def _frames(bottom: Any, result: Any) -> None:
    """Per-frame outputs (solid) against the pseudo ground truth (dashed) of the first sample."""
    frames = result.frames
    if frames is None:
        bottom.text(0.5, 0.5, "no per-frame outputs (training skipped or outputs not finite)", ha="center", va="center",
                    transform=bottom.transAxes)
        bottom.set_axis_off()
        return
    count = len(frames.probs)
    x = list(range(count))
    groups = identical_columns(frames.probs)
    for column, name in enumerate(frames.names):
        colour, marker = (BLANK_COLOUR, None) if column == 0 else label_colour(column - 1)
        group = next(group for group in groups if column in group)
        if column == group[0]:
            values = [row[column] for row in frames.probs]
            if len(group) == 1:
                shown = "blank" if column == 0 else repr(name)  # repr: an apostrophe is shown as "'", not '''
                frame_curve(bottom, values, colour, "-", 1.6, label=None if marker else f"{shown} output",
                            fill=column != 0)
                if marker is not None:  # past 18 labels: a repeated colour, told apart by a marker on its spikes
                    proxy = mark_wins(bottom.get_lines()[-1], values, marker)
                    bottom.plot([], [], color=colour, linewidth=proxy.get_linewidth(), marker=marker, markersize=5,
                                label=f"{shown} output")
            else:  # equal on every frame (a dead head: all uniform): one line naming them all, not one hiding the rest
                names = ", ".join("blank" if k == 0 else repr(frames.names[k]) for k in group)
                frame_curve(bottom, values, "black", "-", 2.4, label=f"{names} outputs, all equal ({_level(values)})")
        if frames.pseudo is not None:
            bottom.plot(x, [row[column] for row in frames.pseudo], color=colour, linewidth=1.3, linestyle="--")
    bottom.plot([], [], color="black", linestyle="--", label="pseudo ground truth (posterior)")
    bottom.set_xlim(-0.5, count - 0.5)
    integer_ticks(bottom.xaxis)
    bottom.set_ylim(-0.03, 1.03)
    bottom.set_xlabel("output frame")
    bottom.set_ylabel("probability")
    decode = result.final_decode[0] if result.final_decode else ""
    bottom.set_title(f'sample {result.samples[0]} after training: target "{frames.target}", decode "{decode}"', fontsize=10)
    bottom.grid(True, alpha=0.3)
    bottom.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)


SAME = 1e-4
"""Two classes whose probabilities differ by less than this on every frame are drawn as one line."""


def identical_columns(rows: Any) -> list[tuple[int, ...]]:
    """The columns of a (frames, classes) table grouped by equal values on every frame, in column order."""
    groups: list[list[int]] = []
    for column in range(len(rows[0]) if rows else 0):
        for group in groups:
            if all(abs(row[column] - row[group[0]]) < SAME for row in rows):
                group.append(column)
                break
        else:
            groups.append([column])
    return [tuple(group) for group in groups]


def _level(values: list[float]) -> str:
    low, high = min(values), max(values)
    return f"{low:.3g} on every frame" if high - low < SAME else f"{low:.3g}-{high:.3g}"
