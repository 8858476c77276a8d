"""`ctcdoctor simulate` from the command line."""
from __future__ import annotations

import json

from typer.testing import CliRunner

from ctcdoctor.cli import app

runner = CliRunner()


def test_simulate_json_reports_the_paper_effect_and_writes_the_figure(tmp_path):
    figure = tmp_path / "figs" / "sim.png"
    plain = runner.invoke(app, ["simulate", "--label", "abcd", "--frames", "40", "--steps", "120", "--format", "json", "--out", str(figure)])
    assert plain.exit_code == 0, plain.output
    document = json.loads(plain.stdout)
    assert document["schema"] == 1 and document["summary"] == {"error": 0, "warning": 0, "info": 0}
    final = document["result"]["final"]
    assert final["decoded"] == "abcd" and final["blank_ratio"] > 0.6
    assert figure.stat().st_size > 10_000 and figure.read_bytes()[:4] == b"\x89PNG"
    balanced = json.loads(
        runner.invoke(app, ["simulate", "--label", "abcd", "--frames", "40", "--steps", "120", "--alpha", "0.5", "--format", "json"]).stdout
    )
    assert abs(balanced["result"]["final"]["nonblank_mass"] - 0.5) < 0.1
    assert balanced["result"]["first_correct_step"] < document["result"]["first_correct_step"]


def test_simulate_text_table_and_bad_arguments():
    text = runner.invoke(app, ["simulate", "--label", "ab", "--frames", "10", "--steps", "20", "--every", "10"])
    assert text.exit_code == 0 and "first correct greedy decode" in text.output
    too_short = runner.invoke(app, ["simulate", "--label", "aaaa", "--frames", "5"])
    assert too_short.exit_code == 2 and "use at least 7 frames" in too_short.output


def test_unwritable_figure_fails_before_the_run_and_messages_agree_in_number(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    result = runner.invoke(app, ["simulate", "--label", "ab", "--frames", "10", "--steps", "5", "--out", str(blocker / "f.png")])
    assert result.exit_code == 2 and f"--out {blocker / 'f.png'}" in result.output
    short = runner.invoke(app, ["simulate", "--label", "abb", "--frames", "3"])
    assert short.exit_code == 2 and "3 symbols with 1 repeat;" in short.output


def test_out_of_range_options_are_exit_2_naming_the_flag_and_its_range():
    cases = {
        ("--alpha", "1.5"): "--alpha 1.5: must be in (0, 1), exclusive: the share of frames the pseudo ground truth keeps non-blank",
        ("--alpha", "0"): "--alpha 0: must be in (0, 1)",
        ("--alpha", "1"): "--alpha 1: must be in (0, 1)",
        ("--gamma", "-1"): "--gamma -1: must be a finite number >= 0",
        ("--gamma", "inf"): "--gamma inf: must be a finite number >= 0",
        ("--lr", "inf"): "--lr inf: must be a finite number > 0",
        ("--lr", "0"): "--lr 0: must be a finite number > 0",
    }
    for (flag, value), message in cases.items():
        result = runner.invoke(app, ["simulate", flag, value, "--steps", "3"])
        assert result.exit_code == 2, (flag, value, result.output)
        assert message in " ".join(result.output.split()), (flag, value, result.output)
        assert "None" not in result.output and "alpha=" not in result.output
    short = runner.invoke(app, ["simulate", "--label", "aab", "--frames", "3"])
    assert "--frames 3: too few for --label 'aab', 3 symbols with 1 repeat; use at least 4 frames" in " ".join(short.output.split())


def test_the_figure_of_a_long_simulation_shows_spikes_as_bars_and_a_short_title():
    from ctcdoctor.render.plot_simulate import plot
    from ctcdoctor.simulate import simulate

    result = simulate("abcd", 200, steps=2, snapshot_steps=(0, 2))
    figure = plot(result)
    first = figure.axes[0]
    assert len(first.get_title()) < 80 and "symbols)" in first.get_title()  # step 0's 100-odd symbol decode, cut
    assert all(float(tick).is_integer() for tick in first.get_xticks())
    assert {line.get_drawstyle() for line in first.get_lines() if line.get_linestyle() == "-"} == {"steps-mid"}


def test_the_reproduce_line_keeps_every_option_that_shaped_the_run():
    result = runner.invoke(app, ["simulate", "--label", "ab", "--frames", "5", "--lr", "1e9", "--steps", "30", "--seed", "2"])
    assert result.exit_code == 0, result.output
    assert "ctcdoctor simulate --label 'ab' --frames 5 --steps 30 --lr 1e+09 --seed 2:" in result.output
    defaults = runner.invoke(app, ["simulate", "--label", "ab", "--frames", "8"])
    assert "ctcdoctor simulate --label 'ab' --frames 8:" in defaults.output  # defaults are left out
