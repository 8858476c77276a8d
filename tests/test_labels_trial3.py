"""Fresh-eyes trial s23, the label-file and text-decoding findings: what the user sees (output, exit code, files).

Items 1, 3, 4, 8, 9, 10 and part of 13 of the trial report: text that is not UTF-8 (exit 2 naming file, line and
the iconv fix, never an internal error), empty label files, the path<TAB>width<TAB>text format, several files, formats
`labels` does not read, NFD labels, `--alphabet ''`, binary files, the pre-commit hook's file pattern.
"""
from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

from typer.testing import CliRunner

from ctcdoctor.cli import app

ALPHABET = "abcdefghijklmnopqrstuvwxyz '"
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 40
ROOT = Path(__file__).resolve().parents[1]


def run(*args: str, env: dict[str, str] | None = None):
    return CliRunner().invoke(app, list(args), env=env)


def refused(result, *needles: str) -> str:
    """An exit-2 refusal: error and fix lines, no traceback, every needle in the output."""
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and "internal error" not in result.output, result.output
    for needle in needles:
        assert needle in result.output, (needle, result.output)
    return result.output


# ------------------------------------------------------------------------- 1: text that is not UTF-8


def test_a_cp1252_alphabet_file_is_exit_2_naming_file_line_and_iconv_in_labels_and_scan(tmp_path):
    """It said: error: internal error: UnicodeDecodeError ... rc=3."""
    alphabet = tmp_path / "alpha_cp.txt"
    alphabet.write_bytes(b"abc\n\xe9\n")
    labels = tmp_path / "gt.tsv"
    labels.write_text("a.png\tabc\n", encoding="utf-8")
    manifest = tmp_path / "m.jsonl"
    manifest.write_text('{"duration": 1.0, "text": "abc"}\n', encoding="utf-8")
    for args in (["labels", str(labels)], ["scan", "--manifest", str(manifest), "--frames", "L*100"]):
        refused(run(*args, "-a", f"@{alphabet}"), str(alphabet), "line 2", "iconv -f cp1252 -t UTF-8")


def test_a_png_given_as_the_alphabet_or_the_label_file_gets_one_short_refusal(tmp_path):
    """It said: internal error for -a @some.png; a multi-kilobyte message repeating a binary line for the label file."""
    image = tmp_path / "man.png"
    image.write_bytes(PNG)
    labels = tmp_path / "gt.tsv"
    labels.write_text("a.png\tabc\n", encoding="utf-8")
    refused(run("labels", str(labels), "-a", f"@{image}"), "not a text file (a PNG image)")
    output = refused(run("labels", str(image), "-a", ALPHABET), "not a text file (a PNG image)")
    assert len(output) < 400, output
    named_like_magic = tmp_path / "gt.txt"
    named_like_magic.write_text("ID3_001.png\thello\nRIFF_2.png\tworld\n", encoding="utf-8")  # text, not an MP3
    assert run("labels", str(named_like_magic), "-a", ALPHABET, "--fail-on", "info").exit_code == 0


def test_a_cp1252_jsonl_manifest_is_exit_2_at_its_line(tmp_path):
    manifest = tmp_path / "cp.jsonl"
    manifest.write_bytes(b'{"duration": 1.0, "text": "abc"}\n{"duration": 1.0, "text": "caf\xe9"}\n')
    refused(run("scan", "--manifest", str(manifest), "-a", "abc", "--frames", "L*100"),
            f"{manifest}, line 2", "not UTF-8", f"iconv -f cp1252 -t UTF-8 {manifest}")


def test_utf16_manifests_are_exit_2_with_the_utf16_conversion(tmp_path):
    """PowerShell's > writes UTF-16 LE with a byte-order mark."""
    jsonl = tmp_path / "utf16.jsonl"
    jsonl.write_bytes('{"duration": 1.0, "text": "hi"}\n'.encode("utf-16"))
    tsv = tmp_path / "u16.tsv"
    tsv.write_bytes("a.png\t40\thi\n".encode("utf-16"))
    for path in (jsonl, tsv):
        output = refused(run("scan", "--manifest", str(path), "-a", "hi", "--frames", "L*100"), str(path), "UTF-16",
                         f"iconv -f UTF-16 -t UTF-8 {path}")
        assert "utf-8-sig" not in output


def test_a_cp1252_label_file_manifest_names_the_line_not_a_block_offset(tmp_path):
    """It said: not UTF-8 (invalid continuation byte at byte 12 of a block)."""
    manifest = tmp_path / "cp.tsv"
    manifest.write_bytes(b"a.png\t40\tabc\nb.png\t40\tcaf\xe9\n")
    output = refused(run("scan", "--manifest", str(manifest), "-a", "abcf", "--frames", "L"), "line 2", "iconv")
    assert "of a block" not in output


# ------------------------------------------------------------------------- 3: nothing to check


def test_an_empty_label_file_or_one_of_blank_lines_is_exit_2(tmp_path):
    """It said: ✔ no problems found ... 0 labels, rc=0."""
    empty = tmp_path / "empty.tsv"
    empty.write_bytes(b"")
    blank = tmp_path / "blank.tsv"
    blank.write_bytes(b"\n\n  \r\n")
    refused(run("labels", str(empty), "-a", ALPHABET), str(empty), "no labels", "is empty")
    refused(run("labels", str(blank), "-a", ALPHABET), str(blank), "no labels", "blank lines")
    good = tmp_path / "good.tsv"
    good.write_text("a.png\tabc\n", encoding="utf-8")
    refused(run("labels", str(good), str(empty), "-a", ALPHABET), str(empty))  # one empty file among several


# ------------------------------------------------------------------------- 4: path<TAB>width<TAB>text


def test_the_scan_format_with_widths_is_read_as_its_text_column(tmp_path):
    """It said: '\\t' (U+0009) ×2 (line 1: '120\\thello' → 'hello'); '1' ×1 ... fix: Add these symbols to the alphabet."""
    path = tmp_path / "three.tsv"
    path.write_text("img/a.png\t120\thello\nimg/b.png\t96\tworld\n", encoding="utf-8")
    result = run("labels", str(path), "-a", ALPHABET, "--fail-on", "info", "--format", "json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["findings"] == []
    assert [item["text"] for item in report["result"]["longest"]] == ["hello", "world"]
    assert report["result"]["formats"] == {"tab-width": 2}


def test_a_label_holding_a_tab_is_still_reported(tmp_path):
    path = tmp_path / "tab.tsv"
    path.write_text("img/1.png\thello\tworld\n", encoding="utf-8")
    result = run("labels", str(path), "-a", ALPHABET, "--format", "json")
    assert json.loads(result.stdout)["findings"][0]["evidence"]["symbols"] == {"\t": 1}


# ------------------------------------------------------------------------- 8: several files


def several(tmp_path: Path) -> list[str]:
    unknown = tmp_path / "unknown.tsv"
    unknown.write_text("img/1.png\thello\nimg/2.png\tHELLO\n", encoding="utf-8")
    bom = tmp_path / "bom_crlf.tsv"
    bom.write_bytes(b"\xef\xbb\xbfimg/1.png\thello\r\n")
    return [str(unknown), str(bom)]


def test_with_several_files_every_finding_names_its_file_in_the_terminal(tmp_path):
    files = several(tmp_path)
    result = run("labels", *files, "-a", ALPHABET)
    blocks = [block for block in result.stdout.split("\n\n") if "CTC090" in block]
    assert len(blocks) == 3, result.stdout
    for block in blocks:
        named = [file for file in files if file in block]
        assert len(named) == 1, block
    assert any("byte-order mark" in block and files[1] in block for block in blocks)


def test_github_annotations_and_junit_attribute_each_file_its_own_findings(tmp_path):
    """It said: the BOM of bom_crlf.tsv folded into ::warning file=data/unknown.tsv,...(×3); JUnit the same."""
    files = several(tmp_path)
    junit = tmp_path / "l.xml"
    env = {"GITHUB_ACTIONS": "true", "GITHUB_WORKSPACE": str(tmp_path), "GITHUB_STEP_SUMMARY": ""}
    result = run("labels", *files, "-a", ALPHABET, "--fail-on", "warning", "--junit-xml", str(junit), env=env)
    assert result.exit_code == 1, result.output
    annotations = [line for line in result.stderr.splitlines() if line.startswith("::warning")]
    bom = [line for line in annotations if "byte-order mark" in line.split("::")[1]]
    assert len(bom) == 1 and "file=bom_crlf.tsv,line=1" in bom[0], annotations
    assert all("bom_crlf" not in line for line in annotations if "file=unknown.tsv" in line), annotations
    cases = {case.get("file"): case for case in ET.parse(junit).iter("testcase")}
    assert {"unknown.tsv", "bom_crlf.tsv"} <= set(cases)
    assert "starts with a UTF-8 byte-order mark" in cases["bom_crlf.tsv"].find("failure").text
    assert "byte-order mark" not in cases["unknown.tsv"].find("failure").text


# ------------------------------------------------------------------------- 9: formats labels does not read


def test_a_common_voice_tsv_is_refused_with_the_conversion(tmp_path):
    """It said: '\\t' ×24 ... fix: Add these symbols to the alphabet."""
    path = tmp_path / "validated.tsv"
    path.write_text(
        "client_id\tpath\tsentence\tup_votes\tdown_votes\tage\tgender\taccents\tlocale\tsegment\n"
        "abc123\tcommon_voice_en_1.mp3\tThe quick brown fox.\t2\t0\t\t\t\ten\t\n",
        encoding="utf-8",
    )
    output = refused(run("labels", str(path), "-a", ALPHABET), "Common Voice", "header row", "cut -f2,3")
    assert "Add these symbols" not in output


def test_a_csv_with_a_header_is_refused(tmp_path):
    path = tmp_path / "hf.csv"
    path.write_text("file,text\na.wav,hello\n", encoding="utf-8")
    refused(run("labels", str(path), "-a", ALPHABET), "header row (file, text)", "path<TAB>text")


def test_iam_lines_are_refused_and_comment_lines_never_become_labels(tmp_path):
    """It said: '#' comment lines and the `ok 154 19 ...` columns read as labels; "empty labels" on comment lines."""
    iam = tmp_path / "lines.txt"
    iam.write_text(
        "#--- lines.txt ---#\n#\n"
        "a01-000u-00 ok 154 19 408 746 1661 89 A|MOVE|to|stop|Mr.|Gaitskell|from\n"
        "a01-000u-01 ok 156 19 395 932 1850 105 nominating|any|more|Labour|life|Peers\n",
        encoding="utf-8",
    )
    refused(run("labels", str(iam), "-a", ALPHABET), "IAM", "awk")
    commented = tmp_path / "gt.txt"
    commented.write_text("# written by export.py\na.png hello\n", encoding="utf-8")
    result = run("labels", str(commented), "-a", ALPHABET, "--fail-on", "info", "--format", "json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["result"]["lines"] == 1


def test_librispeech_transcripts_still_work(tmp_path):
    path = tmp_path / "84-121123.trans.txt"
    path.write_text("84-121123-0000 GO DO YOU HEAR\n84-121123-0001 BUT IN LESS\n", encoding="utf-8")
    result = run("labels", str(path), "-a", "ABCDEFGHIJKLMNOPQRSTUVWXYZ '", "--fail-on", "info")
    assert result.exit_code == 0, result.output


# ------------------------------------------------------------------------- 10: Unicode forms


def test_nfd_labels_against_an_nfc_alphabet_get_the_normalize_fix_and_an_escaped_mark(tmp_path):
    """It said: "'́' ×2 ... fix: Add these symbols to the alphabet", the mark printed raw."""
    path = tmp_path / "nfd.tsv"
    path.write_text("img/1.png\tcafe\u0301 au lait\nimg/2.png\tcaf\u00e9 noir\n", encoding="utf-8")
    result = run("labels", str(path), "-a", "abcdefghijklmnopqrstuvwxyz\u00e9 ")
    assert "unicodedata.normalize('NFC'" in result.stdout, result.stdout
    assert "'\\u0301'" in result.stdout and "U+0301" in result.stdout
    assert "'\u0301'" not in result.stdout  # never the bare mark fused with its quote
    assert "Add these symbols" not in result.stdout


def test_a_utf16_label_file_is_never_advised_utf_8_sig(tmp_path):
    path = tmp_path / "u16.tsv"
    path.write_bytes("a.png\thi\n".encode("utf-16"))
    result = run("labels", str(path), "-a", ALPHABET)
    assert "UTF-16" in result.stdout and "iconv -f UTF-16 -t UTF-8" in result.stdout, result.stdout
    assert "Open the file with encoding='utf-8-sig'" not in result.stdout


# ------------------------------------------------------------------------- 13: polish


def test_an_empty_alphabet_is_exit_2(tmp_path):
    path = tmp_path / "gt.tsv"
    path.write_text("a.png\tabc\n", encoding="utf-8")
    refused(run("labels", str(path), "--alphabet", ""), "--alphabet is empty")
    empty = tmp_path / "alphabet.txt"
    empty.write_text("\n", encoding="utf-8")
    refused(run("labels", str(path), "--alphabet", f"@{empty}"), "no symbols")


def test_without_an_alphabet_the_report_says_symbols_were_not_checked_and_counts_in_good_grammar(tmp_path):
    path = tmp_path / "gt.tsv"
    path.write_text("a.png\tcaf\u00e9\n", encoding="utf-8")
    result = run("labels", str(path))
    assert result.exit_code == 0
    assert "symbols not checked" in result.stdout, result.stdout
    assert "1 label;" in result.stdout and "1 labels" not in result.stdout


def test_the_pre_commit_hook_matches_common_label_file_names():
    text = (ROOT / ".pre-commit-hooks.yaml").read_text(encoding="utf-8")
    pattern = re.compile(re.search(r"files: '([^']+)'", text).group(1))
    for name in ("data/train_labels.tsv", "LibriSpeech/84/121123/84-121123.trans.txt", "val-gt.txt", "labels.tsv"):
        assert pattern.search(name), name
    for name in ("requirements.txt", "translation.txt", "src/labels.py", "notes/latest.txt"):
        assert not pattern.search(name), name
