"""The `simulate --plot` figure for long labels (past 18 label classes) and many frames, as a user sees it:
outputs never drawn in the targets' dashes, a legend in columns that leaves the panels their size, every class
named in it, titles clear of each other; and the `simulate` table's spike width on all-blank steps."""
from __future__ import annotations

import re

import pytest
from typer.testing import CliRunner

from ctcdoctor.cli import app
from ctcdoctor.render.plot_simulate import plot
from ctcdoctor.simulate import simulate

LONG = "the quick brown fox jumps over the lazy dog again and again"  # 26 letters and the space: 27 label classes
WIDE = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOP0123456789"  # 52 label classes


@pytest.fixture(scope="module")
def long_figure():
    figure = plot(simulate(LONG, 300, steps=30))
    figure.draw_without_rendering()
    return figure


@pytest.fixture(scope="module")
def abcd_figure():
    """The same six panels and frames with four labels: the size the panels should keep."""
    figure = plot(simulate("abcd", 300, steps=30))
    figure.draw_without_rendering()
    return figure


def _only_legend(figure):
    legends = list(figure.legends) + [a.get_legend() for a in figure.axes if a.get_legend() is not None]
    assert len(legends) == 1, legends
    return legends[0]


def _panels(figure):
    return [a for a in figure.axes if a.get_visible()]


def test_outputs_past_18_labels_are_solid_with_markers_so_only_targets_are_dashed(long_figure):
    legend = _only_legend(long_figure)
    handles = legend.legend_handles
    assert len(handles) == 28  # the blank and 27 labels
    assert {h.get_linestyle() for h in handles} == {"-"}, "an output drawn dashed reads as a target"
    looks = {(str(h.get_color()), h.get_marker()) for h in handles}
    assert len(looks) == len(handles), "two classes look the same in the legend"
    assert "solid: output" in legend.get_title().get_text() and "dashed: target" in legend.get_title().get_text()
    for panel in _panels(long_figure):  # one dashed line per class, its target; the outputs all solid
        styles = [line.get_linestyle() for line in panel.get_lines()]
        assert styles.count("--") == 28 and styles.count("-") == 28, styles
    last = _panels(long_figure)[-1]  # step 30: spikes; those of r..z carry their marker
    marked = [line for line in last.get_lines() if line.get_marker() not in (None, "None", "")]
    assert marked and all(line.get_linestyle() == "-" for line in marked)
    on_spikes = [line.get_ydata()[t] for line in marked for t in (line.get_markevery() or [])]
    assert on_spikes and min(on_spikes) > 0.5


def test_a_long_legend_takes_columns_beside_the_panels_and_they_keep_their_size(long_figure, abcd_figure):
    legend = _only_legend(long_figure)
    assert legend._ncols >= 2
    inches = long_figure.dpi
    sizes = [(a.get_window_extent().width / inches, a.get_window_extent().height / inches) for a in _panels(long_figure)]
    wanted = [(a.get_window_extent().width / inches, a.get_window_extent().height / inches) for a in _panels(abcd_figure)]
    for (width, height), (width0, height0) in zip(sizes, wanted):
        assert height >= 0.95 * height0 and width >= 0.95 * width0, (sizes, wanted)
    box = legend.get_window_extent()
    canvas = long_figure.bbox
    assert canvas.x0 <= box.x0 and box.x1 <= canvas.x1 and canvas.y0 <= box.y0 and box.y1 <= canvas.y1
    assert not any(box.overlaps(a.get_window_extent()) for a in _panels(long_figure)), "the legend covers a panel"


def test_every_class_has_a_visible_name_in_the_legend(long_figure):
    names = [text.get_text() for text in _only_legend(long_figure).get_texts()]
    assert all(name.strip() for name in names), names
    assert "␣ (space)" in names
    underscored = plot(simulate("a_b", 12, steps=2))
    assert [text.get_text() for text in _only_legend(underscored).get_texts()] == ["<b>", "_", "a", "b"]


@pytest.mark.parametrize("label,frames,steps", [(LONG, 3000, 2), (WIDE, 300, 30)])
def test_long_decodes_in_titles_stay_clear_of_the_next_title(label, frames, steps):
    figure = plot(simulate(label, frames, steps=steps))
    figure.draw_without_rendering()
    panels = _panels(figure)
    first = panels[0].get_title()
    assert re.search(r"\(\d+ symbols\)$", first), first  # step 0 decodes hundreds of symbols: cut, with the count
    for left, right in zip(panels, panels[1:]):
        if round(left.get_position().y0, 3) != round(right.get_position().y0, 3):
            continue  # the next row
        gap = (right.title.get_window_extent().x0 - left.title.get_window_extent().x1) / figure.dpi
        assert gap > 0.3, (gap, left.get_title(), right.get_title())  # inches: read as two titles, not one line
    for panel in panels:
        assert figure.bbox.x0 <= panel.title.get_window_extent().x0


def test_nine_labels_or_fewer_keep_one_column_beside_the_last_panel():
    figure = plot(simulate("héllo wörld", 60, steps=20))
    assert not figure.legends and (figure.get_figwidth(), figure.get_figheight()) == pytest.approx((12.6, 5.6))
    legend = _panels(figure)[-1].get_legend()
    assert legend is not None and legend._ncols == 1
    assert {h.get_linestyle() for h in legend.legend_handles} == {"-"}
    assert {h.get_marker() for h in legend.legend_handles} == {"None"}
    assert [text.get_text() for text in legend.get_texts()][:2] == ["<b>", "␣ (space)"]
    assert figure.axes[0].get_title().startswith("step 0: loss ") and figure.axes[0].get_title().endswith("symbols)")


def test_the_table_shows_no_spike_width_on_steps_where_blank_wins_every_frame():
    done = CliRunner().invoke(app, ["simulate", "--label", "abcd", "--frames", "40", "--steps", "40", "--every", "4"])
    assert done.exit_code == 0, done.output
    rows = [line.split() for line in done.output.splitlines() if re.match(r"\s*\d+\s+\d", line)]
    blank = [row for row in rows if row[-1] == "''"]  # decode '': blank won every frame, no spike to measure
    assert blank and all(row[4] == "—" for row in blank), rows
    spiky = [row for row in rows if row[-1] != "''"]
    assert spiky and all(re.fullmatch(r"\d+\.\d\d", row[4]) for row in spiky), rows
