"""A `path text` label list whose first line is a header row ("Filename Text") is refused with the command that
drops the row: it used to be checked as a label ('Text' outside the alphabet). A real first label is not."""
from __future__ import annotations

from typer.testing import CliRunner

from ctcdoctor.cli import app

ALPHABET = "abcdefghijklmnopqrstuvwxyz "


def run(*args: str):
    return CliRunner().invoke(app, list(args))


def test_a_header_row_above_path_text_lines_is_refused(tmp_path):
    path = tmp_path / "gt.txt"
    path.write_text("Filename Text\nimg1.png hello\nimg2.png world\n", encoding="utf-8")
    result = run("labels", str(path), "-a", ALPHABET)
    assert result.exit_code == 2, result.output
    assert "header row (Filename Text)" in result.output and "would misread" in result.output
    assert f"tail -n +2 {path} > {path.with_suffix('.labels.txt')}" in result.output
    assert "Traceback" not in result.output


def test_a_first_label_that_is_not_a_header_is_read(tmp_path):
    path = tmp_path / "gt.txt"
    path.write_text("img1.png hello\nimage text\nimg2.png world\n", encoding="utf-8")
    result = run("labels", str(path), "-a", ALPHABET)
    assert result.exit_code == 0, result.output
    assert "3 labels" in result.output
