"""The overfit plot past 18 distinct target classes: outputs stay solid (dashed is the pseudo ground truth), and a
label whose colour repeats carries a marker on the frames it wins, in the plot and in the legend."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

from ctcdoctor.overfit.result import Evaluation, FrameProbabilities, OverfitResult  # noqa: E402
from ctcdoctor.render.plot_overfit import plot  # noqa: E402

TEXT = "abcdefghijklmnopqrstuvwxy"  # 25 distinct labels


def _result() -> OverfitResult:
    columns = len(TEXT) + 1
    probs, pseudo = [], []
    for t in range(2 * columns - 1):
        row = [0.9] + [0.1 / (columns - 1)] * (columns - 1)
        if t % 2 == 1:  # label k wins frame 2k + 1
            row = [0.01] * columns
            row[(t + 1) // 2] = 1 - 0.01 * (columns - 1)
        probs.append(tuple(row))
        pseudo.append(tuple(row))
    result = OverfitResult(samples=(0,), source="test", targets=(TEXT,), trained=True, fitted=True, diagnosis=None,
                           losses=[3.0, 1.0], evaluations=[Evaluation(2, 0.0, 0.0, (TEXT,), 0.5, 0.1)],
                           final_decode=(TEXT,))
    result.frames = FrameProbabilities(classes=tuple(range(columns)), names=("blank", *TEXT), probs=tuple(probs),
                                       pseudo=tuple(pseudo), target=TEXT)
    return result


def test_outputs_are_solid_and_repeated_colours_carry_markers():
    frames_axes = plot(_result()).axes[1]
    outputs = [line for line in frames_axes.get_lines() if len(line.get_xdata()) and line.get_linestyle() != "--"]
    targets = [line for line in frames_axes.get_lines() if line.get_linestyle() == "--" and len(line.get_xdata())]
    assert len(targets) == len(TEXT) + 1  # one dashed pseudo ground truth per class
    assert all(line.get_linestyle() == "-" for line in outputs)
    marked = [line for line in outputs if line.get_marker() not in (None, "None", "")]
    assert len(marked) == len(TEXT) - 18  # 's' .. 'y' repeat the palette's colours
    # The marker sits on the frame the label wins: 's' (label 19) wins frame 37.
    s_line = marked[0]
    assert list(s_line.get_markevery()) == [2 * TEXT.index("s") + 1]
    legend = {text.get_text(): handle for text, handle in zip(frames_axes.get_legend().get_texts(),
                                                              frames_axes.get_legend().legend_handles)}
    assert legend["'s' output"].get_marker() == "o" and legend["'s' output"].get_linestyle() == "-"
    assert legend["'a' output"].get_marker() in (None, "None", "")
