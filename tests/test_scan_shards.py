"""`scan --shard I/N` + `scan merge`, and torchrun-style ranks on gloo, give the report of one scan."""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ctcdoctor.cli import app
from ctchelpers import ROOT

SPEC = str(ROOT / "examples/broken/doubled_letters.py")
VOLATILE = ("seconds", "samples_per_second", "parts", "state")


def comparable(document: dict) -> dict:
    result = {key: value for key, value in document["result"].items() if key not in VOLATILE}
    checks = [(item["name"], item["status"]) for item in document["checks"]]
    return {"findings": document["findings"], "summary": document["summary"], "checks": checks, "result": result}


def run(*args: str) -> tuple[int, dict]:
    result = CliRunner().invoke(app, ["scan", *args, "--format", "json"])
    assert result.exit_code in (0, 1), result.output
    return result.exit_code, json.loads(result.stdout)


def test_shards_merged_on_the_command_line_equal_one_scan(tmp_path):
    code, whole = run(SPEC)
    parts = []
    for index in range(3):
        part = tmp_path / f"part{index}.json"
        run(SPEC, "--shard", f"{index}/3", "--output", str(part))
        parts.append(str(part))
    merged_code, merged = run("merge", *parts)
    assert merged_code == code == 1
    assert comparable(merged) == comparable(whole)
    assert merged["result"]["parts"] == 3 and merged["spec"] == SPEC


def test_merge_refuses_missing_or_repeated_shards(tmp_path):
    part = tmp_path / "part0.json"
    run(SPEC, "--shard", "0/2", "--output", str(part))
    result = CliRunner().invoke(app, ["scan", "merge", str(part), str(part)])
    assert result.exit_code == 2
    assert f"shard 0/2 is given 2 times ({part}, {part}); shard 1/2 missing" in result.output
    result = CliRunner().invoke(app, ["scan", "merge", str(part)])
    assert result.exit_code == 2


def test_merge_with_a_missing_shard_names_it_the_files_and_the_command_that_makes_it(tmp_path):
    parts = []
    for index in (0, 2):
        parts.append(tmp_path / f"part{index}.json")
        run(SPEC, "--shard", f"{index}/3", "--output", str(parts[-1]))
    result = CliRunner().invoke(app, ["scan", "merge", *map(str, parts)])
    assert result.exit_code == 2
    text = " ".join(result.output.split())
    assert (f"shard 1/3 is missing (torchrun rank 1); got {parts[0]} (shard 0/3), {parts[1]} (shard 2/3)") in text
    assert f"fix: Scan the missing shard (ctcdoctor scan {SPEC} --shard 1/3 --output part1.json)" in text


@pytest.mark.parametrize("text", ["3/3", "1", "a/b", "-1/2"])
def test_a_malformed_shard_is_a_usage_error(text):
    result = CliRunner().invoke(app, ["scan", SPEC, "--shard", text])
    assert result.exit_code == 2 and "is not I/N" in result.output


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_two_ranks_on_gloo_print_one_report_equal_to_one_scan():
    """What torchrun does: two processes with RANK/WORLD_SIZE/MASTER_* set run `python -m ctcdoctor scan`."""
    _, whole = run(SPEC)
    port = str(free_port())
    processes = []
    for rank in range(2):
        env = {**os.environ, "RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": "2", "LOCAL_WORLD_SIZE": "2",
               "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": port, "OMP_NUM_THREADS": "1"}
        processes.append(subprocess.Popen([sys.executable, "-m", "ctcdoctor", "scan", SPEC, "--format", "json"], cwd=ROOT, env=env,
                                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    outputs = [process.communicate(timeout=240) for process in processes]
    codes = [process.returncode for process in processes]
    assert codes == [1, 1], [error[-2000:] for _, error in outputs]
    assert outputs[1][0] == ""  # rank 1 prints nothing on stdout
    merged = json.loads(outputs[0][0])
    assert merged["result"]["parts"] == 2
    assert comparable(merged) == comparable(whole)


@pytest.mark.skipif(shutil.which("torchrun", path=str(Path(sys.executable).parent)) is None, reason="no torchrun next to python")
def test_torchrun_runs_the_scan_on_two_ranks():
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent))
    done = subprocess.run(
        [torchrun, "--standalone", "--nproc-per-node", "2", "-m", "ctcdoctor", "scan", str(ROOT / "examples/ocr_crnn.py"),
         "--format", "json"],
        cwd=ROOT, capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    document = json.loads(done.stdout)
    assert document["result"]["parts"] == 2 and document["result"]["samples"] == 128 and document["findings"] == []


@pytest.mark.parametrize("inside", [False, True])
def test_two_ranks_write_the_drop_list_of_one_scan_when_target_lengths_count_the_padding(tmp_path, inside):
    """Every target_length is the padded width. Without a blank inside a label the lengths count the padding: each
    rank drops only the sample too long for its frames under the true lengths. With one (in batch 0), the data set's
    blanks are labels, though rank 1, reading batch 1 alone, decides the blanks are padding: rank 0 joins each rank's
    list judged as the merged report is (rank 1's kept beside its own), and leaves no rank's file behind."""
    from test_scan import PADDED_TARGETS, TOO_LONG

    labels = [list(label) for label in TOO_LONG]
    if inside:
        labels[1][3] = 0
    spec = tmp_path / "padded.py"
    spec.write_text(PADDED_TARGETS.format(labels=labels, lengths="torch.full((len(labels),), width)"))
    single = tmp_path / "single.txt"
    _, whole = run(str(spec), "--drop-list", str(single), "--drop-anyway")  # 1 or 8 of 8 samples: written all the same
    drop = tmp_path / "drop.txt"
    port = str(free_port())
    processes = []
    for rank in range(2):
        env = {**os.environ, "RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": "2", "LOCAL_WORLD_SIZE": "2",
               "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": port, "OMP_NUM_THREADS": "1"}
        processes.append(subprocess.Popen([sys.executable, "-m", "ctcdoctor", "scan", str(spec), "--drop-list", str(drop),
                                           "--drop-anyway", "--format", "json"], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                          stderr=subprocess.PIPE, text=True))
    outputs = [process.communicate(timeout=240) for process in processes]
    assert [process.returncode for process in processes] == [1, 1], [error[-2000:] for _, error in outputs]
    merged = json.loads(outputs[0][0])["result"]
    assert merged["padding_counted"] is whole["result"]["padding_counted"] is not inside
    assert drop.read_text() == single.read_text() == "".join(f"{sample}\n" for sample in (range(8) if inside else [5]))
    assert merged["drop_list"] == {**whole["result"]["drop_list"], "file": str(drop)}
    assert sorted(path.name for path in tmp_path.iterdir()) == ["drop.txt", "padded.py", "single.txt"]
