"""The CI recipes in docs/ci.md: each YAML block parses, names only real options and hooks, the
pre-commit recipes run through the real CLI, and the pytest recipes run as a user's test suite."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
import textwrap
from functools import cache
from pathlib import Path

import pytest
from renderhelpers import ROOT, clean_env, load_hooks_yaml, run_cli

yaml = pytest.importorskip("yaml")

DOC = ROOT / "docs" / "ci.md"


def yaml_blocks() -> list:
    return [
        yaml.safe_load(block) for block in re.findall(r"```yaml\n(.*?)```", DOC.read_text(encoding="utf-8"), re.DOTALL)
    ]


def block_with(key: str):
    (found,) = [block for block in yaml_blocks() if isinstance(block, dict) and key in block]
    return found


def ctcdoctor_lines(script: str) -> list[list[str]]:
    return [shlex.split(line) for line in script.splitlines() if line.strip().startswith("ctcdoctor ")]


@cache
def known_options(command: str) -> frozenset[str]:
    done = run_cli([command, "--help"], ROOT, clean_env(COLUMNS="200", TERM="dumb"))
    assert done.returncode == 0, done.stderr
    return frozenset(re.findall(r"--[a-z][a-z-]*", done.stdout))


def option_value(argv: list[str], option: str) -> str | None:
    return argv[argv.index(option) + 1] if option in argv else None


def assert_real_options(argv: list[str]) -> None:
    options = {item for item in argv if item.startswith("--")}
    unknown = options - known_options(argv[1])
    assert not unknown, f"{shlex.join(argv)}: unknown options {sorted(unknown)}"


def test_github_actions_recipe():
    workflow = block_with("jobs")
    (job,) = workflow["jobs"].values()
    assert job["permissions"]["security-events"] == "write"
    steps = job["steps"]
    commands = [argv for step in steps for argv in ctcdoctor_lines(step.get("run", ""))]
    assert [argv[1] for argv in commands] == ["labels", "check"]
    for argv in commands:
        assert_real_options(argv)
    written = [option_value(argv, "--sarif") for argv in commands]
    uploads = [step for step in steps if step.get("uses", "").startswith("github/codeql-action/upload-sarif@")]
    assert [step["with"]["sarif_file"] for step in uploads] == written  # every SARIF file written is uploaded
    assert len({step["with"]["category"] for step in uploads}) == len(uploads)
    for step in uploads:  # uploaded after a failed gate, never a missing file
        assert "!cancelled()" in step["if"] and f"hashFiles('{step['with']['sarif_file']}')" in step["if"]
    json_argv = commands[1]
    assert option_value(json_argv, "--format") == "json" and option_value(json_argv, "--output") == "ctc-report.json"


def test_gitlab_recipe():
    (job,) = block_with("ctcdoctor").values()
    commands = [argv for line in job["script"] for argv in ctcdoctor_lines(line)]
    for argv in commands:
        assert_real_options(argv)
    assert job["artifacts"]["when"] == "always"
    assert job["artifacts"]["reports"]["junit"] == [option_value(argv, "--junit-xml") for argv in commands]


def precommit_configs() -> list[list[dict]]:
    return [
        [hook for repo in block["repos"] for hook in repo["hooks"]]
        for block in yaml_blocks()
        if isinstance(block, dict) and "repos" in block
    ]


def defined_hooks() -> dict[str, dict]:
    return {hook["id"]: hook for hook in load_hooks_yaml((ROOT / ".pre-commit-hooks.yaml").read_text(encoding="utf-8"))}


def run_hook(hook: dict, filenames: list[str], cwd):
    """What pre-commit runs: entry, then the config's args, then the matching files (unless pass_filenames: false)."""
    matching = [name for name in filenames if re.search(hook.get("files", ""), name)]
    argv = shlex.split(hook["entry"]) + list(hook.get("args", []))
    argv += matching if hook.get("pass_filenames", True) else []
    assert argv[0] == "ctcdoctor"
    assert_real_options(argv)
    return matching, run_cli(argv[1:], cwd, timeout=60)


def test_precommit_recipes_name_real_hooks():
    defined = defined_hooks()
    configs = precommit_configs()
    assert len(configs) == 2
    for hooks in configs:
        assert {hook["id"] for hook in hooks} <= set(defined)
    (check,) = [hook for hook in configs[0] if hook["id"] == "ctcdoctor-check"]
    assert {**defined["ctcdoctor-check"], **check}["stages"] == ["manual"]


def test_precommit_recipe_runs_on_changed_label_files(tmp_path):
    (hook,) = [
        {**defined_hooks()[item["id"]], **item} for item in precommit_configs()[0] if item["id"] == "ctcdoctor-labels"
    ]
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "alphabet.txt").write_text("a\nb\nc\n \n", encoding="utf-8")
    (tmp_path / "data" / "train.tsv").write_text("x.png\tab ba\ny.png\tABC\n", encoding="utf-8")
    (tmp_path / "data" / "val.tsv").write_text("z.png\tabd\n", encoding="utf-8")
    matching, done = run_hook(hook, ["data/train.tsv", "README.md", "data/alphabet.txt", "data/val.tsv"], tmp_path)
    assert matching == ["data/train.tsv", "data/val.tsv"]  # several changed label files, one run
    assert done.returncode == 1 and "CTC090" in done.stdout, done.stdout + done.stderr
    assert "'A'" in done.stdout and "'d'" in done.stdout, done.stdout


def test_precommit_pair_recipe_rechecks_when_the_alphabet_changes(tmp_path):
    hooks = [{**defined_hooks()[item["id"]], **item} for item in precommit_configs()[1]]
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "alphabet.txt").write_text("a\nb\nc\n", encoding="utf-8")
    (tmp_path / "data" / "train.tsv").write_text("x.png\tabc\n", encoding="utf-8")
    (tmp_path / "data" / "val.tsv").write_text("y.png\tcab\n", encoding="utf-8")
    for hook in hooks:
        matching, done = run_hook(hook, ["data/alphabet.txt"], tmp_path)  # only the alphabet changed
        assert matching == ["data/alphabet.txt"] and done.returncode == 0, done.stdout + done.stderr
    (tmp_path / "data" / "alphabet.txt").write_text("a\nb\n", encoding="utf-8")  # 'c' removed: both files break
    for hook in hooks:
        _, done = run_hook(hook, ["data/alphabet.txt"], tmp_path)
        assert done.returncode == 1 and "'c'" in done.stdout, done.stdout + done.stderr


# ------------------------------------------------------------------------------- pytest

#: The user's `train.py` for the pytest recipes: a per-frame MLP that memorises a sample in ~100 Adam steps;
#: STRIDE 8 plants an infeasible length (2 frames for 4 labels, CTC001), which fails the check and blocks the overfit.
TRAIN_PY = textwrap.dedent(
    """
    import torch
    from torch import nn
    from ctcdoctor import Setup

    STRIDE = {stride}


    class FrameMLP(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = nn.Sequential(nn.Linear(8, 32), nn.Tanh(), nn.Linear(32, 6))

        def forward(self, x):  # (N, T, 8) -> (N, T // STRIDE, 6) log-probabilities
            return self.body(x[:, ::STRIDE]).log_softmax(-1)


    def build():
        torch.manual_seed(0)
        x = torch.randn(8, 16, 8)
        y = torch.randint(1, 6, (8, 4))
        y[:, 1] = y[:, 0] % 5 + 1
        batches = [(x[i:i + 4], y[i:i + 4], torch.full((4,), 16), torch.full((4,), 4)) for i in (0, 4)]
        return Setup(model=FrameMLP(), loader=batches, alphabet="abcde", optimizer=lambda p: torch.optim.Adam(p, lr=1e-2))
    """
)


def pytest_section() -> str:
    return DOC.read_text(encoding="utf-8").split("\n## pytest\n", 1)[1].split("\n## ", 1)[0]


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", pytest_section(), re.DOTALL)


def run_user_suite(folder: Path) -> subprocess.CompletedProcess:
    """`python -m pytest` in the user's project, with the plugin from this environment's entry points."""
    env = {key: value for key, value in clean_env().items() if not key.startswith("PYTEST_")}
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q"], cwd=folder, env=env,
                          capture_output=True, text=True, timeout=240, check=False)


def test_pytest_recipes_gate_a_users_suite(tmp_path):
    blocks = python_blocks()
    assert len(blocks) == 2 and "import" in blocks[0] and "import" not in blocks[1]  # the functions, then the fixtures
    (tmp_path / "pyproject.toml").write_text("[tool.pytest.ini_options]\ntestpaths = [\"tests\"]\n", encoding="utf-8")
    (tmp_path / "tests").mkdir()
    for name, block in zip(("test_gate_functions.py", "test_gate_fixtures.py"), blocks):
        (tmp_path / "tests" / name).write_text(block, encoding="utf-8")
    (tmp_path / "train.py").write_text(TRAIN_PY.format(stride=1), encoding="utf-8")
    done = run_user_suite(tmp_path)
    assert done.returncode == 0 and "4 passed" in done.stdout, done.stdout + done.stderr
    (tmp_path / "train.py").write_text(TRAIN_PY.format(stride=8), encoding="utf-8")
    done = run_user_suite(tmp_path)
    assert done.returncode == 1 and "4 failed" in done.stdout, done.stdout + done.stderr
    heads = re.findall(r"^E\s+AssertionError: (ctcdoctor: train.py:build .*)$", done.stdout, flags=re.MULTILINE)
    assert len(heads) == 4 and all("CTC001" in head for head in heads), heads
    # Each failure shows the report once; pytest's short summary repeats it only when `CI` is set, so it is left out.
    failures = done.stdout.split("short test summary info")[0]
    assert failures.count("✖ error   CTC001  ") == 4
