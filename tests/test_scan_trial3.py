"""`scan` findings of the third fresh-eyes trial (s23): manifests whose lengths cannot be used, empty manifests,
durations without --rate, usage errors under torchrun, --shard with --manifest, drop-lists that must not cost the
user a file, text that is not UTF-8, folders and files given in the wrong place, plots, wording."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ctcdoctor.cli import app

ROOT = Path(__file__).resolve().parents[1]
LETTERS = " abcdefghijklmnopqrstuvwxyz"


def invoke(*args: str) -> tuple[int, str, str]:
    """Exit code, stdout, stderr of one `ctcdoctor` command."""
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def manifest(tmp_path: Path, *records: str, name: str = "train.jsonl") -> Path:
    path = tmp_path / name
    path.write_text("".join(record + "\n" for record in records), encoding="utf-8")
    return path


GOOD = '{"duration": 1.0, "text": "hello"}'


# ---------------------------------------------------------------- item 2: lengths that cannot be used


@pytest.mark.parametrize(("value", "what"), [("NaN", "not a number (NaN)"), ("-1", "negative"), ("Infinity", "infinite")])
def test_a_length_that_cannot_be_used_stops_the_scan_at_its_line(tmp_path, value, what):
    path = manifest(tmp_path, GOOD, "", f'{{"duration": {value}, "text": "hello"}}')
    code, out, err = invoke("scan", "--manifest", str(path), "-a", LETTERS, "--frames", "L * 100 // 4")
    assert code == 2, out + err
    assert f"{path}, line 3: the length field 'duration' is" in err and what in err
    assert "Fix line 3" in err


def test_frames_that_divide_by_a_constant_zero_are_refused_before_the_scan(tmp_path):
    path = manifest(tmp_path, GOOD)
    code, out, err = invoke("scan", "--manifest", str(path), "-a", LETTERS, "--frames", "L // 0", "--format", "json")
    assert code == 2 and "--frames 'L // 0' divides by zero" in err
    assert json.loads(out)["error"]["exit_code"] == 2


def test_frames_that_divide_by_zero_for_one_record_name_its_line(tmp_path):
    path = manifest(tmp_path, GOOD, '{"duration": 2, "text": "hi"}')
    code, _, err = invoke("scan", "--manifest", str(path), "-a", LETTERS, "--frames", "L * 100 // (L - 2)")
    assert code == 2 and f"{path}, line 2: --frames 'L * 100 // (L - 2)' divides by zero" in err and "L = 2" in err


def test_frames_that_are_not_finite_name_the_line(tmp_path):
    path = manifest(tmp_path, GOOD, '{"duration": 0, "text": "hi"}')
    code, _, err = invoke("scan", "--manifest", str(path), "-a", LETTERS, "--frames", "L ** -1")
    assert code == 2 and f"{path}, line 2: --frames 'L ** -1' gives inf frames for L = 0" in err


def test_a_manifest_coverage_sentence_speaks_of_no_batches_or_model():
    from ctcdoctor.scan.findings import _coverage
    from ctcdoctor.scan.summary import Summary

    summary = Summary()
    summary.samples, summary.known = 5, 3

    class Lengths:
        source, uncovered = "manifest", ""

    _, sentence = _coverage(summary, Lengths())
    assert "batches the model ran on" not in sentence and "Only the 3 samples with a known output length" in sentence


# ---------------------------------------------------------------- item 3: no records


@pytest.mark.parametrize(("content", "why"), [("", "the file is empty"), ("\n  \n\n", "nothing but blank lines")])
def test_a_manifest_without_records_is_a_usage_error(tmp_path, content, why):
    path = tmp_path / "empty.jsonl"
    path.write_text(content)
    code, out, err = invoke("scan", "--manifest", str(path), "-a", LETTERS, "--frames", "L")
    assert code == 2 and f"--manifest {path}: no records ({why})" in err and "no problems found" not in out + err


def test_a_label_file_without_records_is_a_usage_error(tmp_path):
    path = tmp_path / "labels.tsv"
    path.write_text("\n\n")
    code, _, err = invoke("scan", "--manifest", str(path), "-a", LETTERS, "--frames", "L")
    assert code == 2 and "no records (nothing but blank lines)" in err


# ---------------------------------------------------------------- item 5: seconds without --rate

SPEC = '''
import torch
from torch import nn
from ctcdoctor import Setup

def build():
    batch = (torch.zeros(2, 40, 3), torch.ones(2, 3, dtype=torch.long), torch.tensor([40, 40]), torch.tensor([3, 3]))
    return Setup(model=nn.Linear(3, 28), loader=[batch], alphabet=" abcdefghijklmnopqrstuvwxyz",
                 output_lengths=lambda lengths: lengths // 4)
'''


def test_a_spec_with_durations_in_seconds_needs_rate(tmp_path):
    spec = tmp_path / "spec.py"
    spec.write_text(SPEC)
    path = manifest(tmp_path, '{"duration": 1.61, "text": "hello world"}', GOOD)
    code, out, err = invoke("scan", str(spec), "--manifest", str(path))
    assert code == 2, out + err
    assert "the lengths are seconds ('duration' = 1.61 at line 1), but Setup.output_lengths takes input steps" in err
    assert "Pass --rate HZ" in err and "Reduce the downsampling" not in out + err
    code, out, err = invoke("scan", str(spec), "--manifest", str(path), "--rate", "100")
    assert code == 0, out + err


# ---------------------------------------------------------------- item 6: usage errors under torchrun


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize("bad", [["--drop", "bogus"], ["--manifest", "train.jsonl"]])
def test_a_usage_error_under_torchrun_is_said_once_by_rank_0(tmp_path, bad):
    spec = tmp_path / "spec.py"
    spec.write_text(SPEC)
    manifest(tmp_path, GOOD)
    port, processes = str(_free_port()), []
    for rank in range(2):
        env = {**os.environ, "RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": "2", "LOCAL_WORLD_SIZE": "2",
               "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": port, "OMP_NUM_THREADS": "1"}
        processes.append(subprocess.Popen([sys.executable, "-m", "ctcdoctor", "scan", str(spec), *bad, "--format", "json"],
                                          cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    outputs = [process.communicate(timeout=120) for process in processes]
    assert [process.returncode for process in processes] == [2, 2]
    document = json.loads(outputs[0][0])  # one JSON document, not two
    assert document["error"]["exit_code"] == 2
    assert outputs[1] == ("", "")  # rank 1 prints nothing
    assert outputs[0][1].count("error:") == 1


# ---------------------------------------------------------------- item 7: --shard with --manifest


def test_shard_with_a_manifest_is_refused(tmp_path):
    path = manifest(tmp_path, GOOD)
    code, _, err = invoke("scan", "--manifest", str(path), "-a", LETTERS, "--frames", "L * 100", "--shard", "0/2")
    assert code == 2 and "--shard 0/2 does not split a --manifest scan" in err


# ---------------------------------------------------------------- drop-lists keep the user's files


def test_a_refused_drop_list_leaves_the_existing_file_as_it_was(tmp_path):
    path = manifest(tmp_path, *(['{"duration": 0.01, "text": "hello"}'] * 3), GOOD)
    drop, clean = tmp_path / "drop.txt", tmp_path / "clean.jsonl"
    drop.write_text("earlier\n")
    clean.write_text("earlier clean\n")
    code, out, err = invoke("scan", "--manifest", str(path), "-a", LETTERS, "--frames", "L * 100", "--drop-list", str(drop),
                            "--clean-manifest", str(clean), "--format", "json")
    assert code == 1, out + err
    refused = json.loads(out)["result"]["drop_list"]["refused"]
    assert refused.startswith("drop-list not written: it would drop 3 of 4 samples")
    assert refused.endswith(f"; {drop} and {clean} are from an earlier run, left as they were")
    assert drop.read_text() == "earlier\n" and clean.read_text() == "earlier clean\n"
    assert sorted(item.name for item in tmp_path.iterdir()) == ["clean.jsonl", "drop.txt", "train.jsonl"]


def test_a_kept_drop_list_replaces_the_file_and_leaves_nothing_beside_it(tmp_path):
    path = manifest(tmp_path, '{"duration": 0.01, "text": "hello"}', *([GOOD] * 10))
    drop = tmp_path / "drop.txt"
    drop.write_text("earlier\n")
    code, out, err = invoke("scan", "--manifest", str(path), "-a", LETTERS, "--frames", "L * 100", "--drop-list", str(drop),
                            "--format", "json")
    assert code == 1, out + err
    assert json.loads(out)["result"]["drop_list"]["file"] == str(drop) and drop.read_text() == "0\n"
    assert sorted(item.name for item in tmp_path.iterdir()) == ["drop.txt", "train.jsonl"]


@pytest.mark.parametrize("option", ["--plot", "--drop-list", "--clean-manifest"])
def test_an_output_in_a_missing_folder_is_refused_and_no_folder_is_made(tmp_path, option):
    path = manifest(tmp_path, GOOD)
    target = tmp_path / "nope" / "deeper" / ("out.png" if option == "--plot" else "out.txt")
    code, _, err = invoke("scan", "--manifest", str(path), "-a", LETTERS, "--frames", "L * 100", option, str(target))
    assert code == 2 and f"the folder {tmp_path / 'nope'} does not exist" in err
    assert not (tmp_path / "nope").exists()


# ---------------------------------------------------------------- item 1 (manifests): text that is not UTF-8


def test_a_jsonl_manifest_in_a_legacy_code_page_names_its_line_and_iconv(tmp_path):
    path = tmp_path / "cp.jsonl"
    path.write_bytes(GOOD.encode() + b'\n{"duration": 1.0, "text": "caf\xe9"}\n')
    code, _, err = invoke("scan", "--manifest", str(path), "-a", LETTERS, "--frames", "L * 100")
    assert code == 2 and f"{path}, line 2, column 31: not UTF-8 (byte e9; " in err
    assert f"iconv -f cp1252 -t UTF-8 {path} > {path}.utf8" in err and "internal error" not in err


@pytest.mark.parametrize("name", ["u16.jsonl", "u16.tsv"])
def test_a_utf16_manifest_says_utf16(tmp_path, name):
    path = tmp_path / name
    text = GOOD if name.endswith(".jsonl") else "a.png\t100\thello"
    path.write_bytes((text + "\n").encode("utf-16"))
    code, _, err = invoke("scan", "--manifest", str(path), "-a", LETTERS, "--frames", "L")
    assert code == 2 and "the file is UTF-16 LE (it starts with that byte-order mark" in err and "iconv -f UTF-16 -t UTF-8" in err


def test_a_label_file_that_is_not_utf8_names_its_line(tmp_path):
    path = tmp_path / "cp.tsv"
    path.write_bytes(b"a.png\t100\thello\nb.png\t100\tcaf\xe9\n")
    code, _, err = invoke("scan", "--manifest", str(path), "-a", LETTERS, "--frames", "L")
    assert code == 2 and f"{path}, line 2, column 14: not UTF-8 (byte e9; " in err and "block" not in err


@pytest.mark.parametrize("name", ["bom.jsonl", "bom.tsv"])
def test_a_utf8_byte_order_mark_is_accepted(tmp_path, name):
    path = tmp_path / name
    text = GOOD if name.endswith(".jsonl") else "a.png\t100\thello"
    path.write_bytes(b"\xef\xbb\xbf" + (text + "\n").encode())
    code, out, err = invoke("scan", "--manifest", str(path), "-a", LETTERS, "--frames", "L * 100", "--format", "json")
    assert code == 0, out + err
    assert json.loads(out)["result"]["samples"] == 1


# ---------------------------------------------------------------- item 12: folders and files in the wrong place


def test_a_folder_of_images_as_a_manifest_is_not_a_saved_data_set(tmp_path):
    folder = tmp_path / "img"
    folder.mkdir()
    for index in range(5):
        (folder / f"{index}.png").write_bytes(b"")
    code, _, err = invoke("scan", "--manifest", str(folder), "-a", LETTERS, "--frames", "L")
    assert code == 2 and f"--manifest {folder} is a folder, not a saved data set (no .arrow files in it" in err
    assert "pyarrow" not in err


def test_a_folder_named_without_a_slash_is_called_a_folder(tmp_path, monkeypatch):
    (tmp_path / "data").mkdir()
    monkeypatch.chdir(tmp_path)
    code, _, err = invoke("scan", "data")
    assert code == 2 and "spec 'data' is a folder" in err and "has no function" not in err


def test_a_manifest_given_as_the_spec_suggests_manifest(tmp_path):
    path = manifest(tmp_path, GOOD, name="train_manifest.json")
    code, _, err = invoke("scan", str(path))
    assert code == 2 and "is not a Python file" in err and f"ctcdoctor scan --manifest {path}" in err


# ---------------------------------------------------------------- item 13: wording


def test_a_few_samples_that_cannot_align_in_a_manifest_get_a_manifest_fix_and_a_real_share(tmp_path):
    path = manifest(tmp_path, '{"duration": 0.01, "text": "hello"}', *([GOOD] * 1999))
    code, out, _ = invoke("scan", "--manifest", str(path), "-a", LETTERS, "--frames", "L * 100", "--format", "json")
    hint = next(item["hint"] for item in json.loads(out)["findings"] if item["code"] == "CTC001")
    assert code == 1 and hint.startswith("Only 1 of 2000 samples (0.05%) is too long")
    assert "on the same spec" not in hint and "add `--drop-list drop.txt` to this scan" in hint


def test_one_sample_is_scanned_not_samples(tmp_path):
    path = manifest(tmp_path, GOOD)
    code, _, err = invoke("scan", "--manifest", str(path), "-a", LETTERS, "--frames", "L * 100")
    assert code == 0 and "scanned 1 sample (manifest" in err


def test_the_job_summary_shows_backticks_as_code():
    from ctcdoctor.render.github import md

    assert md("run `ctcdoctor scan` on a|b") == "run `ctcdoctor scan` on a\\|b"
    assert md("one ` alone") == "one \\` alone"


def test_a_usage_error_on_github_actions_is_an_error_annotation_and_a_summary(tmp_path, monkeypatch):
    summary = tmp_path / "summary.md"
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    code, _, err = invoke("scan", "--manifest", str(empty), "-a", LETTERS, "--frames", "L")
    assert code == 2 and "::error title=ctcdoctor%3A exit 2::--manifest" in err
    assert "no records (the file is empty)" in summary.read_text()


def test_a_misspelt_option_of_assert_ctc_ready_suggests_the_right_one():
    from ctcdoctor.testing import assert_ctc_ready

    with pytest.raises(TypeError, match="did you mean 'max_batches'"):
        assert_ctc_ready("examples/ocr_crnn.py", max_batch=2)


# ---------------------------------------------------------------- item 11: plots


def test_the_plot_shows_a_handful_of_unalignable_samples_among_thousands(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    path = manifest(tmp_path, '{"duration": 0.01, "text": "hello"}', *([GOOD] * 1999))
    figure_path = tmp_path / "scan.png"
    code, out, _ = invoke("scan", "--manifest", str(path), "-a", LETTERS, "--frames", "L * 100", "--plot", str(figure_path),
                          "--format", "json")
    assert code == 1 and figure_path.stat().st_size > 0
    from ctcdoctor.render.plot_scan import plot

    axes = plot(json.loads(out)["result"]).axes[0]
    assert axes.get_yscale() == "symlog"
    assert axes.get_title() == "2,000 samples; output lengths from the manifest: frames = L * 100"
    assert "1 cannot align" in [text.get_text() for text in axes.texts]


def test_durations_that_look_like_sample_counts_get_a_warning(tmp_path):
    """A finding (CTC006) in the report and the JSON, not a status line under "no problems found"."""
    path = manifest(tmp_path, '{"duration": 16000, "text": "hello"}', '{"duration": 32000, "text": "hi"}')
    code, out, err = invoke("scan", "--manifest", str(path), "-a", LETTERS, "--frames", "L * 100 // 4")
    assert code == 0, out + err
    assert "CTC006" in out and "2 of 2 durations are over 600 s (largest 32,000, at line 2): sample counts" in out
    assert "no problems found" not in out
    code, out, _ = invoke("scan", "--manifest", str(path), "-a", LETTERS, "--frames", "L * 100 // 4", "--format", "json",
                          "--fail-on", "warning")
    found = [item for item in json.loads(out)["findings"] if item["code"] == "CTC006"]
    assert code == 1 and found[0]["severity"] == "warning" and found[0]["evidence"]["count"] == 2
    code, out, _ = invoke("scan", "--manifest", str(path), "-a", LETTERS, "--frames", "L * 100 // 4", "--ignore", "CTC006")
    assert code == 0 and "CTC006" not in out
    seconds = manifest(tmp_path, '{"duration": 1.0, "text": "hello"}', '{"duration": 700, "text": "hi"}', name="s.jsonl")
    code, out, _ = invoke("scan", "--manifest", str(seconds), "-a", LETTERS, "--frames", "L * 100 // 4")
    assert "CTC006" not in out  # one long recording of two is not "most"
