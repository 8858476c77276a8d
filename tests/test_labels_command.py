"""`ctcdoctor labels FILE --alphabet ...` (CTC090, CTC091)."""
from __future__ import annotations

import json

from typer.testing import CliRunner

from ctcdoctor.cli import app
from ctcdoctor.labels import read_label_bytes

ALPHABET = "abcdefghijklmnopqrstuvwxyz "


def run(*args):
    result = CliRunner().invoke(app, ["labels", *args])
    return result


def test_problems_of_a_label_file(tmp_path):
    path = tmp_path / "gt.txt"
    path.write_bytes(
        b"\xef\xbb\xbfimg1.png\tcafe\n"
        b'img2.png, "Hello"\n'
        b"img3.png two words\n"
        b"img4.png\n"
        b"img5.png\tcaf\xe9\n"
        b"img6.png\t\xc3\xa9\xc3\xa9\n"
    )
    result = run(str(path), "--alphabet", ALPHABET, "--format", "json", "--fail-on", "warning")
    assert result.exit_code == 1, result.output
    report = json.loads(result.stdout)
    problems = {item["evidence"]["problem"] for item in report["findings"]}
    assert problems == {"bom", "undecodable", "outside", "empty"}
    outside = next(item for item in report["findings"] if item["evidence"]["problem"] == "outside")
    assert outside["evidence"]["symbols"]["H"] == 1 and outside["evidence"]["symbols"]["é"] == 2
    assert "'Hello' → 'ello'" in outside["message"]
    empty = next(item for item in report["findings"] if item["evidence"]["problem"] == "empty")
    assert empty["evidence"]["empty"] == [4] and empty["evidence"]["emptied"] == [6]
    assert report["result"]["lines"] == 6 and report["result"]["longest"][0]["text"] == "two words"
    assert report["summary"]["warning"] == 4


def test_alphabet_from_file_and_its_problems(tmp_path):
    labels = tmp_path / "gt.tsv"
    labels.write_text("a.png\tab\n", encoding="utf-8")
    alphabet = tmp_path / "alphabet.txt"
    alphabet.write_text("a\nb\na\n", encoding="utf-8")  # one symbol per line, 'a' twice
    result = run(str(labels), "--alphabet", f"@{alphabet}", "--format", "json")
    assert result.exit_code == 0  # warnings only; default --fail-on error
    codes = [item["code"] for item in json.loads(result.stdout)["findings"]]
    assert codes and set(codes) == {"CTC091"}


def test_clean_file_exits_0(tmp_path):
    path = tmp_path / "gt.txt"
    path.write_text("a.png\tcat\nb.png\tdog house\n", encoding="utf-8")
    result = run(str(path), "--alphabet", ALPHABET, "--fail-on", "info")
    assert result.exit_code == 0, result.output


def test_missing_file_is_a_usage_error(tmp_path):
    result = run(str(tmp_path / "nope.txt"), "--alphabet", "ab")
    assert result.exit_code == 2


def test_formats_are_detected():
    parsed = read_label_bytes(b'a.png\tx y\nb.png, "say \\"hi\\""\nc.png  z\n\n')
    assert [(line.format, line.text) for line in parsed.lines] == [("tab", "x y"), ("icdar", 'say "hi"'), ("space", "z")]
    assert parsed.blank_lines == 1


def test_duplicate_symbol_is_reported_once_and_each_finding_has_its_own_title(tmp_path):
    path = tmp_path / "gt.txt"
    path.write_bytes(b"\xef\xbb\xbfa.png\tabc\nb.png\tcaB\n")
    result = run(str(path), "--alphabet", "aab c", "--format", "json")
    findings = json.loads(result.stdout)["findings"]
    alphabet = [item for item in findings if item["code"] == "CTC091"]
    assert [item["evidence"]["problem"] for item in alphabet] == ["duplicates"]
    assert alphabet[0]["message"].startswith("1 symbol appears more than once")
    titles = {item["evidence"]["problem"]: item["title"] for item in findings}
    assert titles["duplicates"] == "duplicate symbols in the alphabet"
    assert titles["bom"] == "the label file starts with a byte-order mark"
    assert titles["outside"] == "label symbols outside the alphabet"
    assert len(set(titles.values())) == len(titles)


def test_capitals_of_a_lower_case_alphabet_get_a_case_folding_fix_even_among_other_symbols(tmp_path):
    path = tmp_path / "gt.txt"
    path.write_text("a.png\tCat 3\nb.png\tdog\nc.png\tCow!\n", encoding="utf-8")
    result = run(str(path), "--alphabet", ALPHABET, "--format", "json")
    (outside,) = [item for item in json.loads(result.stdout)["findings"] if item["evidence"]["problem"] == "outside"]
    assert outside["hint"] == (
        "'C' ×2 is an upper-case letter whose lower case is in the lower-case alphabet: lower-case the labels (text.lower()) "
        "or add the capitals to the alphabet; add the other symbols ('3', '!') to the alphabet (one output class each), "
        "or map/remove them explicitly and log it."
    )
    path.write_text("a.png\tCat\nb.png\tdoG\n", encoding="utf-8")
    result = run(str(path), "--alphabet", ALPHABET, "--format", "json")
    (outside,) = [item for item in json.loads(result.stdout)["findings"] if item["evidence"]["problem"] == "outside"]
    assert outside["hint"].startswith("'C' ×1, 'G' ×1 are upper-case letters whose lower case is in the lower-case alphabet: ")


def test_the_count_of_characters_outside_the_alphabet_takes_its_own_verb(tmp_path):
    path = tmp_path / "gt.txt"
    path.write_text("a.png\tCafé\nb.png\tdog\n", encoding="utf-8")  # 2 characters in 1 label
    (outside,) = [item for item in json.loads(run(str(path), "--alphabet", ALPHABET, "--format", "json").stdout)["findings"]
                  if item["evidence"]["problem"] == "outside"]
    assert outside["message"].startswith("2 characters in 1 of 2 labels are outside the alphabet "), outside["message"]
    path.write_text("a.png\tcafé\nb.png\tdog\n", encoding="utf-8")
    (outside,) = [item for item in json.loads(run(str(path), "--alphabet", ALPHABET, "--format", "json").stdout)["findings"]
                  if item["evidence"]["problem"] == "outside"]
    assert outside["message"].startswith("1 character in 1 of 2 labels is outside the alphabet "), outside["message"]


def test_an_alphabet_file_given_without_the_at_sign_is_exit_2_with_the_fix(tmp_path):
    (tmp_path / "alphabet.txt").write_text("abc\n", encoding="utf-8")
    path = tmp_path / "gt.txt"
    path.write_text("a.png\tcab\n", encoding="utf-8")
    result = run(str(path), "--alphabet", str(tmp_path / "alphabet.txt"))
    assert result.exit_code == 2, result.output
    assert "names a file" in result.output and f"--alphabet @{tmp_path / 'alphabet.txt'}" in " ".join(result.output.split())
    assert run(str(path), "--alphabet", f"@{tmp_path / 'alphabet.txt'}").exit_code == 0
