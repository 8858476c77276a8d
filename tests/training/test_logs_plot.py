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
    texts = {text.get_text().strip() for ax in figure.axes for text in ax.texts}
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


# ---------------------------------------------------------------------------------------------- what the trial saw
def monitor_run(tmp_path, cer_first: float = 1.23, n: int = 300, every: int = 20):
    """A monitor JSONL: the loss of a CTC run, CER and blank ratio measured every `every` steps (the first CER > 1)."""
    loss = noisy(ctc_level(n), np.random.default_rng(0))
    lines = [monitor_format.header(blank=0)]
    for step, value in enumerate(loss, 1):
        extra = {}
        if step == 1 or step % every == 0:
            extra = {"cer": cer_first if step == 1 else max(0.0, 1 - step / n), "blank_ratio": min(1.0, 0.3 + step / n)}
        lines.append(monitor_format.record(step, float(value), **extra))
    (tmp_path / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    return diagnose_run(tmp_path / "metrics.jsonl")


def right_axis(figure):
    return next(ax for ax in figure.axes if ax.get_ylabel() == "error rate / blank ratio")


def test_a_cer_above_1_extends_the_axis_and_a_huge_one_is_marked(tmp_path):
    figure = plot(monitor_run(tmp_path))
    right = right_axis(figure)
    assert right.get_ylim()[1] >= 1.23  # was clipped at 1.05
    cer = next(line for line in right.get_lines() if line.get_label() == "cer")
    assert float(cer.get_ydata()[0]) == pytest.approx(1.23)
    result = monitor_run(tmp_path, cer_first=24.9)  # CER counts insertions: an untrained model's long decodes
    assert result.curves.metrics[0].series.values[0] == 24.9  # the monitor's CER is a fraction, not a percentage
    right = right_axis(plot(result))
    assert right.get_ylim()[1] <= 2.2  # the rest stays readable
    assert any(line.get_label() == "cer > 2 (1, max 24.9)" for line in right.get_lines())


def test_blank_ratio_has_a_marker_at_every_measured_point(tmp_path):
    result = monitor_run(tmp_path)
    line = next(line for line in right_axis(plot(result)).get_lines() if line.get_label() == "blank_ratio")
    assert line.get_marker() not in (None, "None", "", " ")
    assert len(line.get_xdata()) == len(result.curves.blank_ratio) == 16


def test_the_smoothed_loss_starts_where_the_raw_loss_starts():
    result = diagnose_run(ROOT / "examples" / "runs" / "lr_too_high")
    main = plot(result).axes[0]
    lines = {line.get_label(): line for line in main.get_lines()}
    raw, smooth = lines["train_loss (every value)"], lines["train_loss (rolling median)"]
    assert float(smooth.get_ydata()[0]) == pytest.approx(float(raw.get_ydata()[0]))  # 11.7 (it was 5.4)
    assert float(smooth.get_xdata()[0]) == pytest.approx(float(raw.get_xdata()[0]))


def _with_findings(result, spans):
    import dataclasses

    from ctcdoctor.registry import finding

    found = tuple(finding(code, "m.", "h.", {"steps": list(steps)}) for code, steps in spans)
    return dataclasses.replace(result, findings=found)


def test_overlapping_findings_are_shaded_in_separate_bands_and_labels_stay_inside(tmp_path):
    result = _with_findings(monitor_run(tmp_path), [("CTC212", (40, 300)), ("CTC213", (40, 300)), ("CTC203", (290, 300))])
    figure = plot(result)
    main = figure.axes[0]
    bands = [(patch.get_bbox().y0, patch.get_bbox().y1) for patch in main.patches]
    assert len(bands) == 3 and bands[0][0] >= bands[1][1] - 1e-9  # CTC212 above CTC213, not on top of it
    figure.canvas.draw()
    frame = main.get_window_extent()
    texts = [text for ax in figure.axes for text in ax.texts]
    assert {text.get_text().strip() for text in texts} == {"CTC212", "CTC213", "CTC203"}
    for text in texts:  # the label of the range at the right edge (steps 290-300) is not cut off
        box = text.get_window_extent()
        assert frame.x0 - 1 <= box.x0 and box.x1 <= frame.x1 + 1 and box.y1 <= frame.y1 + 1, text.get_text()


@pytest.mark.parametrize("low, high", [(144.0, 160.0), (0.15, 3.6)])
def test_log_axis_ticks_read_as_plain_numbers(tmp_path, low, high):
    # A flat loss near 150 drew "1.52x10^2" on every tick; 0.15-3.6 drew "4x10^0".
    rng = np.random.default_rng(1)
    loss = np.exp(rng.uniform(np.log(low), np.log(high), 200))
    loss[0], loss[-1] = high, low
    lines = [monitor_format.header()] + [monitor_format.record(step, value) for step, value in enumerate(loss)]
    (tmp_path / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    figure = plot(diagnose_run(tmp_path))
    main = figure.axes[0]
    figure.canvas.draw()
    labels = [tick.get_text() for tick in main.get_yticklabels(minor=True) + main.get_yticklabels() if tick.get_text()]
    assert len(labels) >= 3, labels
    assert all("times" not in label and "^" not in label for label in labels), labels
    assert all(float(label) > 0 for label in labels), labels  # plain numbers: float() reads each one
