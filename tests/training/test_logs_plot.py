"""The --plot figure shades each finding's step range and labels it with its code."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest
from logcurves import ctc_level, noisy

from ctcdoctor.training import diagnose_run, monitor_format
from ctcdoctor.training.plot import plot
from ctchelpers import ROOT


def spans(ax) -> list[tuple[float, float]]:
    """x-extent of the axvspan patches drawn into `ax`."""
    return [(float(patch.get_bbox().x0), float(patch.get_bbox().x1)) for patch in ax.patches]


def test_plot_shades_and_labels_every_finding(tmp_path):
    result = diagnose_run(ROOT / "examples" / "runs" / "lr_too_high" / "lightning_logs" / "version_0" / "metrics.csv")
    figure = plot(result)
    main = figure.axes[0]
    texts = {text.get_text().strip() for text in main.texts}
    assert {found.code for found in result.findings} <= texts
    shaded = spans(main)
    for found in result.findings:
        start, end = found.evidence["steps"]
        assert any(abs(a - start) < 1e-6 and abs(b - end) < 1e-6 for a, b in shaded), (found.code, shaded)
    assert len(figure.axes) >= 2 and figure.axes[-1].get_ylabel() in ("learning rate", "error rate / blank ratio")
    path = tmp_path / "run.png"
    figure.savefig(path)
    assert path.stat().st_size > 10_000


def test_plot_into_a_given_axes_and_marks_non_finite_steps(tmp_path):
    import matplotlib.pyplot as plt

    rng = np.random.default_rng(0)
    loss = noisy(ctc_level(300), rng)
    loss[250:] = np.nan
    lines = [monitor_format.header()] + [monitor_format.record(step, value) for step, value in enumerate(loss)]
    (tmp_path / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    result = diagnose_run(tmp_path)
    figure, ax = plt.subplots()
    assert plot(result, ax=ax) is figure
    labels = [line.get_label() for line in ax.get_lines()]
    assert any("non-finite (50)" in label for label in labels)
    assert "CTC200" in {text.get_text().strip() for text in ax.texts}
    plt.close(figure)


def test_plot_of_a_million_points_draws_bin_medians():
    from ctcdoctor.training.logs import LogsResult
    from ctcdoctor.training.plot import RAW_POINTS
    from ctcdoctor.training.rules import Options
    from ctcdoctor.training.series import Curves, Run, Series

    n = 1_000_000
    series = Series("loss", np.arange(n), noisy(ctc_level(n), np.random.default_rng(0)))
    result = LogsResult("x.jsonl", "jsonl", (), Curves(loss=series), Run("x.jsonl", "jsonl", {"loss": series}), Options())
    figure = plot(result)
    assert max(len(line.get_xdata()) for line in figure.axes[0].get_lines()) <= RAW_POINTS
    import matplotlib.pyplot as plt

    plt.close(figure)


@pytest.mark.parametrize("code", [f"CTC2{number:02d}" for number in range(16)])
def test_every_curve_code_is_documented_with_an_example_and_a_fix(code):
    import ctcdoctor.training.rules  # noqa: F401  (registers the codes)
    from ctcdoctor.registry import _CODES

    info = _CODES[code]
    assert "**What it means.**" in info.doc and "**Example.**" in info.doc and "**Fix.**" in info.doc
    assert f"{code}" in info.doc.split("**Example.**")[1].split("**Fix.**")[0]
