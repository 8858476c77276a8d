"""`scan --manifest`: label files, NeMo JSONL, Parquet, image headers, --frames, drop-lists."""
from __future__ import annotations

import json
import random

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

import ctcdoctor.scan.manifest as manifest
from ctcdoctor.cli import app
from ctcdoctor.errors import UserInputError
from ctcdoctor.scan.formula import Frames
from ctcdoctor.scan.manifest import Encoder, encode_columns, label_file_columns

LETTERS = "abcdefghijklmnopqrstuvwxyz"


def scan(*args: str) -> tuple[int, dict]:
    result = CliRunner().invoke(app, ["scan", *args, "--format", "json"])
    assert result.exit_code in (0, 1), result.output
    return result.exit_code, json.loads(result.stdout)


def test_a_label_file_with_widths(tmp_path):
    path = tmp_path / "words.tsv"
    path.write_text("a.png\t64\thello\r\nb.png\t16\tbookkeeper\n\nc.png\t80\t\nd.png\t40\tcafé\ne.png\t48\tHello\n", encoding="utf-8")
    drop = tmp_path / "drop.txt"
    code, report = scan("--manifest", str(path), "-a", LETTERS, "--frames", "L // 4", "--drop-list", str(drop),
                        "--drop-anyway")  # 4 of 5
    assert code == 1
    found = {item["code"]: item for item in report["findings"]}
    assert set(found) == {"CTC001", "CTC013", "CTC090"}
    assert found["CTC001"]["evidence"]["worst"] == [{"sample": 1, "frames": 4, "labels": 10, "repeats": 3, "needed": 13, "short_by": 9}]
    assert found["CTC013"]["evidence"]["samples"] == [2]
    assert found["CTC090"]["evidence"]["symbols"] == {"H": 1, "é": 1} and found["CTC090"]["evidence"]["samples"] == [3, 4]
    assert report["result"]["samples"] == 5 and report["result"]["unknown_symbols"] == {"H": 1, "é": 1}
    assert drop.read_text().split() == ["1", "2", "3", "4"]
    assert report["result"]["drop_list"]["count"] == 4


def reference(lines: list[tuple[int, str]], alphabet: str, stride: int) -> dict:
    """Per-line Python: what the vectorised parse must find."""
    infeasible, empty, unknown, spare = [], [], 0, []
    for index, (width, text) in enumerate(lines):
        repeats = sum(1 for a, b in zip(text, text[1:]) if a == b)
        if width // stride < len(text) + repeats:
            infeasible.append(index)
        if not text:
            empty.append(index)
        unknown += sum(ch not in alphabet for ch in text)
        spare.append(width // stride - len(text) - repeats)
    return {"infeasible": len(infeasible), "empty": empty[:20], "unknown": unknown, "spare_min": min(spare), "spare_max": max(spare)}


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 10_000), count=st.integers(1, 300), block=st.sampled_from([64, 257, 4096]))
def test_the_vectorised_parse_matches_a_per_line_reference(tmp_path, seed, count, block):
    rng = random.Random(seed)
    symbols = "abcab\u00e9\u4e2dz"  # repeats, a 2-byte and a 3-byte UTF-8 symbol outside the alphabet
    lines = [(rng.randrange(0, 120), "".join(rng.choice(symbols) for _ in range(rng.randrange(0, 12)))) for _ in range(count)]
    path = tmp_path / f"labels{seed}_{count}_{block}.tsv"
    newline = "\r\n" if seed % 2 else "\n"
    path.write_bytes(newline.join(f"img{i}.png\t{w}\t{t}" for i, (w, t) in enumerate(lines)).encode("utf-8"))
    original = manifest.BLOCK
    manifest.BLOCK = block  # blocks end mid-file: lines must not be split or lost
    try:
        encoder, kept_all, flat_all = Encoder("abz"), [], []
        for columns in label_file_columns(path, None):
            kept, flat = encode_columns(columns, encoder)
            kept_all.append(kept)
            flat_all.append(flat)
    finally:
        manifest.BLOCK = original
    kept = np.concatenate(kept_all)
    assert kept.tolist() == [len(text) for _, text in lines]
    flat = np.concatenate(flat_all)
    assert int((flat < 0).sum()) == reference(lines, "abz", 4)["unknown"]


def test_label_file_findings_match_the_reference(tmp_path):
    rng = random.Random(1)
    lines = [(rng.randrange(0, 60), "".join(rng.choice("aabbcz") for _ in range(rng.randrange(0, 9)))) for _ in range(500)]
    path = tmp_path / "labels.tsv"
    path.write_text("".join(f"img{i}.png\t{w}\t{t}\n" for i, (w, t) in enumerate(lines)), encoding="utf-8")
    _, report = scan("--manifest", str(path), "-a", "abc", "--frames", "L // 4")
    expected = reference(lines, "abc", 4)
    result = report["result"]
    assert result["spare_frames"]["infeasible"] == expected["infeasible"]
    assert (result["spare_frames"]["min"], result["spare_frames"]["max"]) == (expected["spare_min"], expected["spare_max"])
    empty = next(item for item in report["findings"] if item["code"] == "CTC013")
    assert empty["evidence"]["samples"] == expected["empty"]


def test_image_sizes_come_from_the_headers(tmp_path):
    from PIL import Image

    Image.new("L", (120, 32)).save(tmp_path / "wide.png")
    Image.new("RGB", (40, 64)).save(tmp_path / "tall.jpg", quality=80)
    Image.new("L", (30, 32)).save(tmp_path / "gif.gif")
    assert manifest.image_size(tmp_path / "tall.jpg") == (40, 64)
    path = tmp_path / "labels.txt"
    path.write_text("wide.png\tcoffee\ntall.jpg\tbookkeeper\ngif.gif\tab\n", encoding="utf-8")
    code, report = scan("--manifest", str(path), "-a", LETTERS, "--frames", "W * 32 // H // 4")
    short = next(item for item in report["findings"] if item["code"] == "CTC001")["evidence"]["worst"]
    assert code == 1 and [item["sample"] for item in short] == [1]  # 40 * 32 / 64 / 4 = 5 frames for 13 needed
    assert report["result"]["output_frames"]["max"] == 30  # 120 * 32 / 32 / 4


def test_a_nemo_manifest_and_its_clean_copy(tmp_path):
    records = [{"audio_filepath": "a.wav", "duration": 1.5, "text": "hello world"},
               {"audio_filepath": "b.wav", "duration": 0.05, "text": "a long sentence"},
               {"audio_filepath": "c.wav", "duration": 2.0, "text": ""},
               {"audio_filepath": "d.wav", "duration": 3.0, "text": "fine"}]
    path = tmp_path / "train.jsonl"
    path.write_text("".join(json.dumps(record) + "\n" for record in records), encoding="utf-8")
    clean = tmp_path / "clean.jsonl"
    code, report = scan("--manifest", str(path), "-a", " " + LETTERS, "--frames", "floor(L * 100) // 4 + 1", "--clean-manifest", str(clean),
                        "--drop-anyway")  # 2 of 4
    assert code == 1
    assert [json.loads(line)["audio_filepath"] for line in clean.read_text().splitlines()] == ["a.wav", "d.wav"]
    assert report["result"]["drop_list"]["clean_manifest"]["kept"] == 2
    assert report["result"]["lengths_detail"] == "from the manifest: frames = floor(L * 100) // 4 + 1"


def test_phones_and_a_length_key(tmp_path):
    alphabet = tmp_path / "phones.txt"
    alphabet.write_text("aa\nb\nk\nl\n", encoding="utf-8")
    path = tmp_path / "phones.jsonl"
    path.write_text(json.dumps({"frames": 8, "text": "baakl"}) + "\n" + json.dumps({"frames": 2, "text": "aaxaa"}) + "\n")
    _, report = scan("--manifest", str(path), "-a", f"@{alphabet}", "--length-key", "frames", "--frames", "L")
    assert report["result"]["label_lengths"]["max"] == 4  # b aa k l; aa x aa
    assert report["result"]["unknown_symbols"] == {"x": 1}
    assert {item["code"] for item in report["findings"]} == {"CTC001", "CTC090"}


def test_parquet_with_text_and_with_label_ids(tmp_path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    table = pa.table({"input_length": [64, 8, 40], "text": ["cat", "bookkeeper", ""], "labels": [[3, 1, 20], [2, 2, 2], []]})
    path = tmp_path / "data.parquet"
    pq.write_table(table, path)
    _, by_text = scan("--manifest", str(path), "-a", LETTERS, "--frames", "L // 4")
    _, by_ids = scan("--manifest", str(path), "-a", LETTERS, "--frames", "L // 4", "--text-key", "labels")
    assert by_text["result"]["spare_frames"]["infeasible"] == by_ids["result"]["spare_frames"]["infeasible"] == 1
    assert by_ids["result"]["label_lengths"]["max"] == 3


@pytest.mark.parametrize("text", ["__import__('os').system('true')", "L.real", "x + 1", "L +", "floor(L, base=2)"])
def test_frames_expressions_refuse_anything_but_arithmetic(text):
    with pytest.raises(UserInputError):
        Frames(text)({"L": np.ones(3)})


def test_frames_expressions_compute_whole_frames():
    frames = Frames("floor((floor(L * 16000) - 400) / 320) + 1")
    assert frames({"L": np.array([1.0, 0.01, 2.5, 0.001])}).tolist() == [49, 0, 124, 0]  # never below 0 frames


@pytest.mark.parametrize("args", [["--frames", "L"], ["--manifest", "x.jsonl", "--shard", "0/2"]])
def test_manifest_options_out_of_place_are_usage_errors(args, tmp_path):
    result = CliRunner().invoke(app, ["scan", "examples/ocr_crnn.py", *args])
    assert result.exit_code == 2, result.output


def test_a_saved_hugging_face_data_set_folder(tmp_path):
    """`Dataset.save_to_disk` writes Arrow IPC streams (data-0000X-of-0000N.arrow) in a folder."""
    pa = pytest.importorskip("pyarrow")
    folder = tmp_path / "train"
    folder.mkdir()
    for index, (lengths, texts) in enumerate([([64, 8], ["cat", "bookkeeper"]), ([40], ["dog"])]):
        table = pa.table({"input_length": lengths, "text": texts})
        with pa.OSFile(str(folder / f"data-0000{index}-of-00002.arrow"), "wb") as sink, pa.ipc.new_stream(sink, table.schema) as writer:
            writer.write_table(table)
    (folder / "state.json").write_text("{}")
    _, report = scan("--manifest", str(folder), "-a", LETTERS, "--frames", "L // 4")
    assert report["result"]["samples"] == 3
    assert [item["sample"] for item in report["result"]["worst"]][:1] == [1]


NEMO = "".join(json.dumps({"audio_filepath": f"a/{i}.wav", "duration": 2.0 + i, "text": "cab"}) + "\n" for i in range(3))


def usage_error(tmp_path, name: str, text: str, *args: str) -> tuple[str, str]:
    """(error line, fix line) of a scan that must stop with exit 2 and no traceback."""
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    result = CliRunner().invoke(app, ["scan", "--manifest", str(path), "-a", LETTERS, "--frames", "L", *args])
    assert result.exit_code == 2 and "Traceback" not in result.output, result.output
    error, fix = result.output.strip().splitlines()
    assert error.startswith(f"error: {path}, line ") and fix.startswith("fix: ")
    return error[len(f"error: {path}, "):], fix[len("fix: "):]


def test_a_wrong_text_key_lists_the_fields_and_names_the_flag(tmp_path):
    """It said: cannot read the duration and 'sentence' fields ('sentence')."""
    error, fix = usage_error(tmp_path, "train.jsonl", NEMO, "--text-key", "sentence")
    assert error == "line 1: no text field 'sentence' (--text-key) in ['audio_filepath', 'duration', 'text']"
    assert fix == "Pass --text-key text: the field that holds the transcript."
    error, fix = usage_error(tmp_path, "train.jsonl", NEMO, "--length-key", "dur")
    assert error == "line 1: no length field 'dur' (--length-key) in ['audio_filepath', 'duration', 'text']"
    assert fix == "Pass --length-key duration: the field that holds each sample's length."
    error, _ = usage_error(tmp_path, "odd.jsonl", NEMO + '{"duration": "long", "text": "a"}\n')
    assert error == "line 4: the length field 'duration' is 'long', not a number"


@pytest.mark.parametrize("ending", ["", "\n"])
def test_a_cut_off_last_line_is_named_by_the_files_line_and_column_only(tmp_path, ending):
    """json's own "line 2 column 1" (the line's newline counted as a line) stood next to the file's line 4."""
    error, fix = usage_error(tmp_path, "cut.jsonl", NEMO + '{"duration": 4.1' + ending)
    assert error == "line 4, column 17: the last line is cut off (Expecting ',' delimiter at its end)"
    assert fix == "Complete or delete line 4: each line must be one whole JSON object."
    error, _ = usage_error(tmp_path, "mid.jsonl", NEMO.replace('"duration": 3.0', '"duration": x', 1))
    assert error == "line 2, column 43: not JSON (Expecting value)" and "line 1 column" not in error


@pytest.mark.parametrize("blank", ["27", "-1"])
def test_a_blank_outside_the_alphabets_classes_is_refused(tmp_path, blank):
    (tmp_path / "train.jsonl").write_text(NEMO, encoding="utf-8")
    result = CliRunner().invoke(app, ["scan", "--manifest", str(tmp_path / "train.jsonl"), "-a", LETTERS, "--frames", "L",
                                      "--blank", blank])
    assert result.exit_code == 2 and "Traceback" not in result.output, result.output
    error, fix = result.output.strip().splitlines()
    assert error == f"error: --blank {blank} is outside the 27 classes of the alphabet (26 symbols + the blank: indices 0 to 26)"
    assert "--blank 0" in fix and "--blank 26 (the last class" in fix
    code, _ = scan("--manifest", str(tmp_path / "train.jsonl"), "-a", LETTERS, "--frames", "L * 10", "--blank", "26")
    assert code == 0  # the last class is a blank
