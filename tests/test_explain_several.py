"""`ctcdoctor explain` takes several codes (it said "Got unexpected extra argument"), and an unknown one among
them is exit 2 before any page is printed; the usage line names the argument CODE."""
from __future__ import annotations

from typer.testing import CliRunner

from ctcdoctor.cli import app


def invoke(*args: str):
    return CliRunner().invoke(app, list(args))


def test_several_codes_print_one_page_each_in_order():
    result = invoke("explain", "CTC002", "ctc1")
    assert result.exit_code == 0, result.output
    first, second = result.stdout.index("CTC002 (warning)"), result.stdout.index("CTC001 (error)")
    assert first < second


def test_an_unknown_code_among_several_is_exit_2_and_nothing_else_prints():
    result = invoke("explain", "CTC001", "CTC777", "ctc778")
    assert result.exit_code == 2
    assert "unknown codes 'CTC777', 'ctc778'" in result.stderr and "Known codes: CTC001" in result.stderr
    assert result.stdout == ""


def test_the_usage_line_names_the_argument():
    assert "explain [OPTIONS] {CODE}..." in invoke("explain", "--help").stdout


def test_labels_usage_has_one_ellipsis():
    assert "labels [OPTIONS] {FILE}..." in invoke("labels", "--help").stdout
