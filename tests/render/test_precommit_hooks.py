""".pre-commit-hooks.yaml: the hooks parse, and the labels hook runs the real CLI as pre-commit would."""

from __future__ import annotations

import re
import shlex

import pytest
from renderhelpers import ROOT, load_hooks_yaml, minimal_hooks_yaml, run_cli

HOOKS_FILE = ROOT / ".pre-commit-hooks.yaml"
REQUIRED = ("id", "name", "entry", "language")


def hooks() -> dict[str, dict]:
    return {hook["id"]: hook for hook in load_hooks_yaml(HOOKS_FILE.read_text(encoding="utf-8"))}


def test_hooks_are_well_formed():
    found = hooks()
    assert set(found) == {"ctcdoctor-labels", "ctcdoctor-check"}
    for hook in found.values():
        assert all(hook.get(key) for key in REQUIRED), hook
        assert hook["language"] == "system"  # never installs torch into a hook environment
    labels, check = found["ctcdoctor-labels"], found["ctcdoctor-check"]
    assert shlex.split(labels["entry"])[:2] == ["ctcdoctor", "labels"] and labels.get("pass_filenames", True)
    pattern = re.compile(labels["files"])
    assert all(
        pattern.search(path) for path in ("data/gt.txt", "labels.tsv", "train/labels_train.csv", "ground_truth.txt")
    )
    assert not any(pattern.search(path) for path in ("README.txt", "requirements.txt", "gt/notes.md", "src/labels.py"))
    assert shlex.split(check["entry"]) == ["ctcdoctor", "check"]
    assert check["stages"] == ["manual"] and check["pass_filenames"] is False and check["always_run"] is True


def test_minimal_parser_agrees_with_pyyaml():
    yaml = pytest.importorskip("yaml")
    text = HOOKS_FILE.read_text(encoding="utf-8")
    assert minimal_hooks_yaml(text) == yaml.safe_load(text)


def precommit_argv(hook: dict, args: list[str], filenames: list[str]) -> list[str]:
    """What pre-commit executes for a `language: system` hook: entry + args + the matching files."""
    argv = shlex.split(hook["entry"]) + args
    return argv + (filenames if hook.get("pass_filenames", True) else [])


def test_labels_hook_blocks_a_bad_label_file_and_passes_a_good_one(tmp_path):
    hook = hooks()["ctcdoctor-labels"]
    (tmp_path / "alphabet.txt").write_text("abcdefghijklmnopqrstuvwxyz \n", encoding="utf-8")
    (tmp_path / "gt.txt").write_text("img1.png\tcafé\nimg2.png\thello world\n", encoding="utf-8")
    argv = precommit_argv(hook, ["--alphabet", "@alphabet.txt"], ["gt.txt"])
    assert argv[0] == "ctcdoctor"
    done = run_cli(argv[1:], tmp_path, timeout=60)
    assert done.returncode == 1, done.stdout + done.stderr  # the commit is blocked
    shown = " ".join(done.stdout.split())  # the console wraps long lines
    assert "CTC090" in shown and "'é' ×1 (line 1: 'café' → 'caf')" in shown
    (tmp_path / "gt.txt").write_text("img1.png\tcafe\nimg2.png\thello world\n", encoding="utf-8")
    done = run_cli(precommit_argv(hook, ["--alphabet", "@alphabet.txt"], ["gt.txt"])[1:], tmp_path, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "no problems found" in done.stdout


def test_documented_pair_recipe_rechecks_on_alphabet_edits(tmp_path):
    """docs: one entry per label file, pass_filenames: false, the file and alphabet in args."""
    hook = {**hooks()["ctcdoctor-labels"], "pass_filenames": False}
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "alphabet.txt").write_text("a\nb\nc\nb\n", encoding="utf-8")  # duplicate 'b'
    (tmp_path / "data" / "gt.tsv").write_text("x.png\tabc\n", encoding="utf-8")
    argv = precommit_argv(hook, ["data/gt.tsv", "--alphabet", "@data/alphabet.txt"], ["data/alphabet.txt"])
    assert argv[-1] == "@data/alphabet.txt"  # the changed alphabet file is not passed as a label file
    done = run_cli(argv[1:], tmp_path, timeout=60)
    assert done.returncode == 1 and "CTC091" in done.stdout, done.stdout + done.stderr


def test_labels_hook_with_two_changed_label_files(tmp_path):
    hook = hooks()["ctcdoctor-labels"]
    for name in ("gt_train.txt", "gt_val.txt"):
        (tmp_path / name).write_text("img.png\tabc\n", encoding="utf-8")
    done = run_cli(
        precommit_argv(hook, ["--alphabet", "abc"], ["gt_train.txt", "gt_val.txt"])[1:], tmp_path, timeout=60
    )
    assert done.returncode == 0, done.stderr
