"""The overfit plot names a class that is an apostrophe `"'" output` in its legend, not `''' output` (seen on EasyOCR's
97-character set in the trial)."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

from ctcdoctor.overfit.result import Evaluation, FrameProbabilities, OverfitResult  # noqa: E402
from ctcdoctor.render.plot_overfit import plot  # noqa: E402

TEXT = "it's"


def _result() -> OverfitResult:
    names = ("blank", "i", "t", "'", "s")
    rows = [tuple([0.9, 0.025, 0.025, 0.025, 0.025])] + [tuple(0.96 if k == j else 0.01 for k in range(5)) for j in range(1, 5)]
    result = OverfitResult(samples=(0,), source="test", targets=(TEXT,), trained=True, fitted=True, diagnosis=None,
                           losses=[3.0, 1.0], evaluations=[Evaluation(2, 0.0, 0.0, (TEXT,), 0.5, 0.1)], final_decode=(TEXT,))
    result.frames = FrameProbabilities(classes=tuple(range(5)), names=names, probs=tuple(rows), pseudo=tuple(rows), target=TEXT)
    return result


def test_an_apostrophe_class_reads_as_one_quoted_character_in_the_legend():
    legend = [text.get_text() for text in plot(_result()).axes[1].get_legend().get_texts()]
    assert "\"'\" output" in legend and "''' output" not in legend
    assert "'i' output" in legend and "'s' output" in legend
