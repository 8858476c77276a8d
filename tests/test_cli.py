"""The `ctcdoctor` command line as a user meets it: specs, exit codes, JSON, config."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ctcdoctor.cli import app
from ctchelpers import ROOT

runner = CliRunner()

USER_MODULE = textwrap.dedent(
    '''
    import torch
    from torch import nn
    from ctcdoctor import Setup

    class Model(nn.Module):
        def __init__(self, classes=6, head="log_softmax"):
            super().__init__()
            self.conv = nn.Conv1d(4, 8, 2, stride=2)
            self.fc = nn.Linear(8, classes)
            self.head = head

        def forward(self, x):
            out = self.fc(self.conv(x).transpose(1, 2)).transpose(0, 1)
            return out.softmax(-1) if self.head == "softmax" else out.log_softmax(-1)

    def batches():
        torch.manual_seed(0)
        return [(torch.randn(3, 4, 20), torch.tensor([[1, 2], [3, 4], [5, 1]]), torch.tensor([20, 20, 20]), torch.tensor([2, 2, 2]))]

    def build():
        return Setup(model=Model(), loader=batches(), alphabet="abcde")

    def build_tuple():
        return Model(), batches()

    def build_softmax():
        return Setup(model=Model(head="softmax"), loader=batches())

    def build_needs_args(size):
        return None

    def build_raises():
        raise RuntimeError("dataset folder /data/iam not found")

    def build_wrong_type():
        return {"model": Model()}

    def build_not_batches():
        return Model(), [torch.randn(3, 4, 20)]

    def build_three_items():
        return Model(), [(torch.randn(3, 4, 20), torch.tensor([[1]]), torch.tensor([20, 20, 20]))]

    def build_loader_raises():
        def loader():
            raise OSError("cannot open image 17.png")
            yield
        return Model(), loader()

    def build_empty():
        return Model(), []

    def build_model_crashes():
        class Broken(nn.Module):
            def __init__(self):
                super().__init__()
                self.fc = nn.Linear(5, 6)
            def forward(self, x):
                return self.fc(x)
        return Broken(), batches()
    '''
)


@pytest.fixture
def user_module(write_module):
    return write_module("usermodel.py", USER_MODULE)


def invoke(*args: str):
    return runner.invoke(app, list(args))


def test_healthy_module_exits_0(user_module):
    result = invoke("check", "usermodel.py")
    assert result.exit_code == 0, result.output
    assert "no problems found" in result.output


@pytest.mark.parametrize("spec", ["usermodel.py:build_tuple", "usermodel:build", "usermodel"])
def test_spec_forms(user_module, spec):
    assert invoke("check", spec).exit_code == 0


def test_softmax_head_exits_1_with_code(user_module):
    result = invoke("check", "usermodel.py:build_softmax")
    assert result.exit_code == 1
    assert "CTC020" in result.output and "log_softmax" in result.output


@pytest.mark.parametrize(
    "spec, words",
    [
        ("missing.py", ["no such file", "missing.py"]),
        ("nomodule_here:build", ["no module named 'nomodule_here'"]),
        ("usermodel.py:nothere", ["has no function 'nothere'", "build"]),
        ("usermodel.py:build_needs_args", ["cannot be called without arguments"]),
        ("usermodel.py:build_raises", ["build_raises() raised RuntimeError", "/data/iam"]),
        ("usermodel.py:build_wrong_type", ["returned dict", "Setup"]),
        ("usermodel.py:build_not_batches", ["batch 0", "not a batch"]),
        ("usermodel.py:build_three_items", ["3 items, not 4", "[0] a float tensor (3, 4, 20)", "leave out input_lengths",
                                            "torch.full((len(inputs),), inputs.shape[-1])"]),
        ("usermodel.py:build_loader_raises", ["OSError", "17.png"]),
        ("usermodel.py:build_empty", ["no batches"]),
    ],
)
def test_bad_specs_and_batches_exit_2_with_one_clear_cause(user_module, spec, words):
    result = invoke("check", spec)
    assert result.exit_code == 2, result.output
    for word in words:
        assert word in result.output
    assert "Traceback" not in result.output
    assert "fix:" in result.output


def test_import_error_in_user_module_exits_2_and_debug_shows_traceback(write_module):
    write_module("broken_import.py", "import torch\nraise ValueError('bad config value')\n")
    result = invoke("check", "broken_import.py")
    assert result.exit_code == 2 and "ValueError: bad config value" in result.output
    assert "Traceback" not in result.output
    debug = invoke("check", "broken_import.py", "--debug")
    assert debug.exit_code == 2 and "Traceback" in debug.output


def test_model_crash_becomes_one_ctc999_and_other_checks_still_run(user_module):
    result = invoke("check", "usermodel.py:build_model_crashes", "--format", "json")
    assert result.exit_code == 1
    document = json.loads(result.stdout)
    crashes = [f for f in document["findings"] if f["code"] == "CTC999"]
    assert len(crashes) == 1 and "mat1 and mat2" in crashes[0]["message"]
    statuses = {check["code"]: check["status"] for check in document["checks"]}
    assert statuses["CTC020"] == "skipped"
    assert statuses["CTC011"] == "passed"  # label checks need no model


def test_crashing_check_becomes_ctc999(user_module, monkeypatch):
    from ctcdoctor.checks import labels

    def explode(targets, blank):
        raise ZeroDivisionError("boom")

    monkeypatch.setattr(labels.blank_in_targets, "__code__", explode.__code__)
    document = json.loads(invoke("check", "usermodel.py", "--format", "json").stdout)
    crashed = [f for f in document["findings"] if f["code"] == "CTC999"]
    assert len(crashed) == 1 and "ZeroDivisionError: boom" in crashed[0]["message"]
    assert {c["code"]: c["status"] for c in document["checks"]}["CTC011"] == "crashed"
    assert {c["code"]: c["status"] for c in document["checks"]}["CTC010"] == "passed"


def test_json_report_shape(user_module, tmp_path):
    out = tmp_path / "report" / "ctc.json"
    result = invoke("check", "usermodel.py:build_softmax", "--format", "json", "--output", str(out))
    document = json.loads(result.stdout)  # stdout carries only the JSON
    assert json.loads(out.read_text()) == document
    assert document["schema"] == 1 and document["spec"] == "usermodel.py:build_softmax"
    assert set(document["summary"]) == {"error", "warning", "info"}
    assert document["summary"]["error"] == sum(f["severity"] == "error" for f in document["findings"])
    for item in document["findings"]:
        assert set(item) == {"code", "severity", "title", "message", "hint", "evidence"}
        assert item["severity"] in ("error", "warning", "info")
    for item in document["checks"]:
        assert {"name", "status", "seconds"} <= set(item)
        assert item["status"] in ("passed", "findings", "crashed", "skipped")


def test_fail_on_select_and_ignore(user_module):
    assert invoke("check", "usermodel.py:build_softmax", "--ignore", "CTC020").exit_code == 0
    assert invoke("check", "usermodel.py:build_softmax", "--select", "CTC01,CTC04").exit_code == 0
    assert invoke("check", "usermodel.py:build_softmax", "--select", "CTC02").exit_code == 1
    bad = invoke("check", "usermodel.py", "--select", "E501")
    assert bad.exit_code == 2 and "matches no check code" in bad.output


def test_pyproject_config_and_flags_win(user_module, write_module):
    write_module("pyproject.toml", '[tool.ctcdoctor]\nignore = ["CTC020"]\n')
    assert invoke("check", "usermodel.py:build_softmax").exit_code == 0
    assert invoke("check", "usermodel.py:build_softmax", "--ignore", "CTC080").exit_code == 1
    write_module("pyproject.toml", '[tool.ctcdoctor]\nfail_on = "warning"\n')
    result = invoke("check", "usermodel.py")
    assert result.exit_code == 2 and "unknown keys" in result.output


def test_explain_prints_the_documentation():
    result = invoke("explain", "ctc011")
    assert result.exit_code == 0
    assert "CTC011" in result.output and "blank" in result.output and "Fix" in result.output
    unknown = invoke("explain", "CTC777")
    assert unknown.exit_code == 2 and "unknown code" in unknown.output


@pytest.mark.parametrize("typed", ["1", "001", "ctc1", "CTC001"])
def test_explain_takes_the_number_alone(typed):
    result = invoke("explain", typed)
    assert result.exit_code == 0 and result.output.startswith("CTC001 (error)"), result.output


def test_a_folder_as_the_spec_is_named_as_a_folder(tmp_path):
    plain = invoke("check", str(tmp_path))
    assert plain.exit_code == 2 and "is a folder" in plain.output and "no such file" not in plain.output
    package = tmp_path / "mypkg"
    package.mkdir()
    (package / "__init__.py").write_text("def build():\n    pass\n")
    named = invoke("check", str(package))
    assert named.exit_code == 2 and "mypkg/__init__.py" in named.output and "`mypkg:build`" in named.output


LABELS = ["labels", "examples/labels/gt.txt", "--alphabet", "@examples/labels/alphabet.txt"]
LIGHT = [["--help"], ["explain", "CTC001"], ["check", "--help"], ["codes"], LABELS, [*LABELS, "--select", "CTC09", "--format", "json"]]


@pytest.fixture(scope="module")
def torch_after_each() -> list[str]:
    """One fresh interpreter runs the LIGHT commands in turn through the app and says after each whether torch is
    imported (one interpreter start for all, not one each). The first command that imports it shows TORCH, those
    before it NO-TORCH: the first failing test names it."""
    code = (
        "import sys\nfrom ctcdoctor.cli import app\n"
        f"for argv in {LIGHT!r}:\n"
        "    sys.argv = ['ctcdoctor', *argv]\n"
        "    try:\n        app()\n    except SystemExit:\n        pass\n"
        "    print('@@', 'TORCH' if 'torch' in sys.modules else 'NO-TORCH', file=sys.stderr)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    marks = [line.split()[1] for line in done.stderr.splitlines() if line.startswith("@@ ")]
    assert len(marks) == len(LIGHT), done.stdout[-2000:] + done.stderr[-2000:]
    return marks


@pytest.mark.parametrize("index", range(len(LIGHT)), ids=[" ".join(argv)[:40] for argv in LIGHT])
def test_help_explain_codes_and_labels_do_not_import_torch(torch_after_each, index):
    assert torch_after_each[index] == "NO-TORCH", LIGHT[index]


def test_console_script_from_another_directory(tmp_path, user_module):
    done = subprocess.run(
        [sys.executable, "-m", "ctcdoctor", "check", str(user_module), "--format", "json"],
        capture_output=True, text=True, cwd=tmp_path.parent, timeout=120,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["summary"]["error"] == 0


def test_shuffled_loader_findings_name_dataset_indices(write_module):
    write_module(
        "shuffled.py",
        textwrap.dedent(
            '''
            import torch
            from torch.utils.data import DataLoader, Dataset
            from ctcdoctor import Setup
            from usermodel import Model

            class Words(Dataset):
                def __len__(self):
                    return 24

                def __getitem__(self, index):
                    length = 4 if index == 5 else 20  # only dataset[5] is too short: 2 frames for 3 labels
                    return torch.randn(4, 20), torch.tensor([1, 2, 3]), length

            def collate(items):
                inputs = torch.stack([item[0] for item in items])
                targets = torch.stack([item[1] for item in items])
                return inputs, targets, torch.tensor([item[2] for item in items]), torch.full((len(items),), 3)

            def build():
                torch.manual_seed(3)
                return Setup(model=Model(), loader=DataLoader(Words(), batch_size=8, shuffle=True, collate_fn=collate),
                             output_lengths=lambda lengths: lengths // 2)
            '''
        ),
    )
    write_module("usermodel.py", USER_MODULE)
    document = json.loads(invoke("check", "shuffled.py", "--format", "json", "--select", "CTC001").stdout)
    (finding,) = document["findings"]
    assert finding["evidence"]["worst"][0]["sample"] == 5


def test_usage_errors_found_before_any_work(user_module, write_module):
    nothing = invoke("check", "usermodel.py", "--select", "CTC07")
    assert nothing.exit_code == 2 and "leaves no check to run" in nothing.output
    device = invoke("check", "usermodel.py", "--device", "tpu")
    assert device.exit_code == 2 and "--device" in device.output
    output = invoke("check", "usermodel.py", "--output", "/proc/report.json")
    assert output.exit_code == 2 and "cannot write" in output.output
    write_module("pyproject.toml", '[tool.ctcdoctor]\nmax-batches = "five"\n')
    config = invoke("check", "usermodel.py")
    assert config.exit_code == 2 and "pyproject.toml" in config.output and "max-batches" in config.output


def test_error_inside_build_is_not_blamed_on_its_signature(write_module):
    write_module("typeerr.py", "from torch import nn\n\ndef build():\n    model = nn.Linear(10)\n    return model, []\n")
    result = invoke("check", "typeerr.py")
    assert result.exit_code == 2 and "build() raised TypeError" in result.output
    assert "give every parameter a default" not in result.output


def test_text_targets_get_a_specific_error(write_module):
    write_module("texttargets.py", "import torch\nfrom torch import nn\n\ndef build():\n"
                 "    return nn.Linear(4, 6), [(torch.randn(2, 4), ['cat', 'dog'], torch.tensor([4, 4]), torch.tensor([3, 3]))]\n")
    result = invoke("check", "texttargets.py")
    assert result.exit_code == 2 and "targets are text" in result.output and "class indices" in result.output


def test_version_flag():
    result = invoke("--version")
    assert result.exit_code == 0 and result.output.startswith("ctcdoctor ")


@pytest.mark.parametrize("package_init", [True, False], ids=["package", "namespace folder"])
def test_a_dotted_spec_in_a_folder_loads_with_its_folder_importable(write_module, package_init):
    # docs/protocol.md: `pkg.module:build` from the folder holding pkg/; the module's own folder is importable while it
    # loads, as for a file spec (so a sibling `import _common` works).
    name = f"dotpkg{int(package_init)}"
    (Path.cwd() / name).mkdir()
    if package_init:
        write_module(f"{name}/__init__.py", "")
    write_module(f"{name}/_shared_setup.py", USER_MODULE)
    write_module(f"{name}/train.py", "from _shared_setup import build  # a sibling, imported as in a script\n")
    try:
        result = invoke("check", f"{name}.train:build")
        assert result.exit_code == 0, result.output
        assert f"ctcdoctor check {name}.train:build: 0 errors" in result.output
    finally:
        for module in [key for key in sys.modules if key.split(".")[0] in (name, "_shared_setup")]:
            sys.modules.pop(module, None)


def test_codes_lists_every_severity_a_code_is_documented_with():
    from ctcdoctor.registry import all_codes

    result = CliRunner().invoke(app, ["codes"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    for info in all_codes():
        severities = " / ".join(dict.fromkeys(severity.value for severity, _ in info.documented))
        assert re.search(rf"^{info.code}\s+{re.escape(severities)}\s", result.output, flags=re.MULTILINE), info.code
    assert re.search(r"^CTC100\s+error / warning\s", result.output, flags=re.MULTILINE)  # varies with the size mismatch


def test_an_error_with_format_json_is_still_one_json_document_on_stdout(user_module):
    # CI scripts json.load stdout before they look at the exit code.
    result = invoke("check", "usermodel.py:nothere", "--format", "json")
    assert result.exit_code == 2
    document = json.loads(result.stdout)
    assert document["command"] == "check" and document["findings"] == []
    assert document["error"]["exit_code"] == 2 and "has no function 'nothere'" in document["error"]["message"]
    assert document["error"]["fix"]
    text = invoke("check", "usermodel.py:nothere")
    assert text.exit_code == 2 and "{" not in text.stdout  # the terminal report stays text
    missing = invoke("logs", "no/such/run", "--format", "json")
    assert missing.exit_code == 2 and json.loads(missing.stdout)["error"]["message"].startswith("no/such/run")
    for command in ("overfit", "scan"):
        failed = invoke(command, "usermodel.py:nothere", "--format", "json")
        assert failed.exit_code == 2 and json.loads(failed.stdout)["error"]["exit_code"] == 2, (command, failed.output)
