"""Issue 10 (items 5-20, `check` and the shared machinery): a green run means the set-up is sound,
a red one names the problem, a user's mistake is never exit 3, and a run is bounded and reproducible.

Each test drives the real command line (or `ctcdoctor.check`) on a user module written to a temp dir.
"""
from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from ctcdoctor.cli import app
from ctchelpers import ROOT

runner = CliRunner()

BASE = textwrap.dedent(
    '''
    import torch
    from torch import nn
    from ctcdoctor import Setup

    class Model(nn.Module):
        def __init__(self, classes=6):
            super().__init__()
            self.conv = nn.Conv1d(4, 8, 2, stride=2)
            self.fc = nn.Linear(8, classes)

        def forward(self, x):
            if isinstance(x, nn.utils.rnn.PackedSequence):
                x = nn.utils.rnn.pad_packed_sequence(x, batch_first=True)[0].transpose(1, 2)
            elif isinstance(x, dict):
                x = x["features"]
            elif isinstance(x, (tuple, list)):
                x = x[0]
            return self.fc(self.conv(x).transpose(1, 2)).transpose(0, 1).log_softmax(-1)

    def batch(n=3, scale=1.0):
        generator = torch.Generator().manual_seed(0)
        inputs = torch.randn(n, 4, 20, generator=generator) * scale
        return inputs, torch.tensor([[1, 2], [3, 4], [5, 1]])[:n], torch.tensor([20] * n), torch.tensor([2] * n)
    '''
)


def module(write_module, name: str, body: str):
    write_module("base.py", BASE)
    return write_module(name, "from base import *\n" + textwrap.dedent(body))


def run(*args: str):
    return runner.invoke(app, list(args))


def json_of(*args: str) -> tuple[int, dict]:
    result = run(*args, "--format", "json")
    assert result.exit_code in (0, 1), result.output
    return result.exit_code, json.loads(result.stdout)


def statuses(document: dict) -> dict[str, dict]:
    return {item["code"]: item for item in document["checks"]}


# ---------------------------------------------------------------- 5. a blank outside [0, C)

def test_blank_outside_the_classes_is_an_error_with_the_fix(write_module):
    module(write_module, "blank99.py", '''
        def build():
            return Setup(model=Model(classes=5), loader=[batch()], blank=99)
    ''')
    code, document = json_of("check", "blank99.py")
    assert code == 1
    (found,) = [item for item in document["findings"] if item["code"] == "CTC015"]
    assert "Setup.blank is 99 but the model outputs 5 classes" in found["message"]
    assert "Setup.blank" in found["hint"] and found["evidence"] == {"blank": 99, "num_classes": 5}
    skipped = statuses(document)["CTC050"]
    assert skipped["status"] == "skipped" and "CTC015" in skipped["reason"] and "applicable" not in skipped


# ---------------------------------------------------------------- 6. skipped checks say why

def test_checks_without_their_inputs_are_skipped_with_the_reason_not_passed(write_module):
    module(write_module, "plain.py", '''
        def build():
            return Model(), [batch()]
    ''')
    _, document = json_of("check", "plain.py")
    checks = statuses(document)
    for code in ("CTC030", "CTC031", "CTC014", "CTC091", "CTC004"):
        assert checks[code]["status"] == "skipped" and checks[code]["applicable"] is False, checks[code]
    assert checks["CTC030"]["reason"] == "no Setup.criterion given"
    assert checks["CTC014"]["reason"] == "no Setup.alphabet given"
    text = run("check", "plain.py", "-v").output
    # 5, CTC016 (a list of batches: no item to collate alone), and the 8 Hugging Face checks (CTC100-CTC107)
    assert "14 checks not applicable: CTC004 (" in text and "CTC030, CTC031 (no Setup.criterion given)" in text
    assert " n/a " in text  # the -v table


def test_a_skip_worth_reading_is_shown_apart_from_not_applicable(write_module):
    module(write_module, "zero_frames.py", '''
        class NoFrames(Model):
            def forward(self, x):
                return super().forward(x)[:0]

        def build():
            return NoFrames(), [batch()]
    ''')
    result = run("check", "zero_frames.py")
    assert "7 checks skipped: CTC050, CTC051, CTC060, CTC061, CTC062, CTC063, CTC080 (the output of batch 0 has 0 frames" in result.output


# ---------------------------------------------------------------- 7. sys.exit in the user's code

@pytest.mark.parametrize("where, source, words", [
    ("import", "import sys\nsys.exit(0)\n", "importing exits.py called sys.exit(0)"),
    ("build", "import sys\ndef build():\n    sys.exit(0)\n", "build() called sys.exit(0)"),
    ("argparse", "import argparse\np = argparse.ArgumentParser()\np.add_argument('--data', required=True)\np.parse_args()\n",
     "called sys.exit(2) (argparse"),
])
def test_sys_exit_in_the_users_module_is_a_load_error(write_module, where, source, words):
    write_module("exits.py", source)
    result = run("check", "exits.py")
    assert result.exit_code == 2, result.output
    assert words in result.output and "__main__" in result.output


def test_sys_exit_in_forward_is_a_usage_error_naming_what_ran(write_module):
    module(write_module, "exit_forward.py", '''
        import sys

        class Quits(Model):
            def forward(self, x):
                sys.exit(0)

        def build():
            return Quits(), [batch()]
    ''')
    result = run("check", "exit_forward.py")
    assert result.exit_code == 2, result.output
    assert "your code called sys.exit(0) while ctcdoctor was running the model" in result.output


def test_sys_exit_through_the_python_api_raises_instead_of_exiting(write_module):
    import ctcdoctor
    from ctcdoctor.errors import SpecError

    write_module("exits.py", "import sys\ndef build():\n    sys.exit(3)\n")
    with pytest.raises(SpecError, match=r"build\(\) called sys.exit\(3\)"):
        ctcdoctor.check("exits.py")


# ---------------------------------------------------------------- 8. --format json with the user's prints

PRINTING = '''
    import atexit
    print("import print")
    atexit.register(lambda: print("atexit print"))

    class Loud(Model):
        def forward(self, x):
            print("forward print")
            return super().forward(x)

    class Data(torch.utils.data.Dataset):
        def __len__(self):
            return 3

        def __getitem__(self, index):
            print("dataset print", index)
            inputs, targets, lengths, target_lengths = batch()
            return inputs[index], targets[index], lengths[index], target_lengths[index]

    def criterion(output, batch):
        print("criterion print")
        _, targets, lengths, target_lengths = batch
        return torch.nn.functional.ctc_loss(output, targets, lengths // 2, target_lengths)

    def build():
        print("build print")
        return Setup(model=Loud(), loader=torch.utils.data.DataLoader(Data(), batch_size=3), criterion=criterion)
'''


def test_json_stdout_stays_parseable_when_the_users_code_prints(write_module, tmp_path):
    module(write_module, "printing.py", PRINTING)
    done = subprocess.run([sys.executable, "-m", "ctcdoctor", "check", "printing.py", "--format", "json"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["command"] == "check"  # nothing before or after the document
    for words in ("import print", "build print", "dataset print 0", "forward print", "criterion print", "atexit print"):
        assert words in done.stderr


# ---------------------------------------------------------------- 9. unknown codes: exit 2 on every command

COMMANDS = {
    "check": ["check", "plain.py"],
    "scan": ["scan", "plain.py"],
    "overfit": ["overfit", "plain.py", "--steps", "1"],
    "labels": ["labels", "gt.txt", "--alphabet", "ab"],
}


@pytest.fixture
def every_command(write_module):
    module(write_module, "plain.py", '''
        def build():
            return Model(), [batch()]
    ''')
    write_module("gt.txt", "a.png\tab\n")


@pytest.mark.parametrize("command", sorted(COMMANDS))
@pytest.mark.parametrize("flag", ["--ignore", "--select"])
def test_an_unknown_code_on_the_command_line_is_exit_2(every_command, command, flag):
    result = run(*COMMANDS[command], flag, "CTC9999")
    assert result.exit_code == 2, result.output
    assert "'CTC9999' matches no check code" in result.output


@pytest.mark.parametrize("command", [*sorted(COMMANDS), "simulate"])
def test_an_unknown_code_in_pyproject_is_exit_2(every_command, write_module, command):
    write_module("pyproject.toml", '[tool.ctcdoctor]\nignore = ["CTC0O1"]\n')
    args = COMMANDS.get(command, ["simulate", "--label", "ab", "--steps", "2"])
    result = run(*args)
    assert result.exit_code == 2, result.output
    assert "pyproject.toml" in result.output and "'CTC0O1' matches no check code" in result.output


# ---------------------------------------------------------------- 10. user errors are exit 2, not exit 3

@pytest.mark.parametrize("text, words", [
    ("[tool]\nctcdoctor = 5\n", "[tool] ctcdoctor = 5 is not a table"),
    ("tool = 'x'\n", "`tool` is a str, not a table"),
    (None, "it is not UTF-8"),
])
def test_a_broken_pyproject_is_exit_2(every_command, write_module, tmp_path, text, words):
    if text is None:
        (tmp_path / "pyproject.toml").write_bytes("[tool.ctcdoctor]\n# caf\xe9\n".encode("latin-1"))
    else:
        write_module("pyproject.toml", text)
    result = run("check", "plain.py")
    assert result.exit_code == 2, result.output
    assert words in result.output


def test_a_batch_on_the_meta_device_is_exit_2(write_module):
    module(write_module, "meta.py", '''
        def build():
            inputs, targets, lengths, target_lengths = batch()
            return Model(), [(inputs.to("meta"), targets, lengths, target_lengths)]
    ''')
    result = run("check", "meta.py")
    assert result.exit_code == 2, result.output
    assert "batch 0: inputs is on the meta device" in result.output


@pytest.mark.parametrize("device", ["mps", "cuda", "cuda:7"])
@pytest.mark.parametrize("command", ["check", "overfit"])
def test_an_unavailable_device_is_exit_2_for_check_and_overfit_alike(every_command, command, device):
    if device.startswith("cuda") and torch.cuda.is_available() and device == "cuda":
        pytest.skip("CUDA is available here")
    if device == "mps" and getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        pytest.skip("MPS is available here")
    result = run(*COMMANDS[command], "--device", device)
    assert result.exit_code == 2, result.output
    assert f"--device {device}" in result.output


def test_check_under_no_grad_still_runs_the_gradient_checks():
    import ctcdoctor
    from ctchelpers import healthy_setup

    with torch.no_grad():
        report = ctcdoctor.check(healthy_setup())
    results = {item.code: item for item in report.checks}
    assert results["CTC060"].status == "passed", results["CTC060"]
    assert not [item for item in report.findings if item.code == "CTC999"]


# ---------------------------------------------------------------- 11. edge inputs: a finding or exit 2, never CTC999

def test_a_zero_sample_batch_is_exit_2(write_module):
    module(write_module, "empty_batch.py", '''
        def build():
            return Model(), [(torch.zeros(0, 4, 20), torch.zeros(0, 2, dtype=torch.long), torch.zeros(0, dtype=torch.long),
                              torch.zeros(0, dtype=torch.long))]
    ''')
    result = run("check", "empty_batch.py")
    assert result.exit_code == 2 and "batch 0 holds no samples" in result.output


def test_an_output_with_no_frames_is_ctc001_not_a_crash(write_module):
    module(write_module, "zero_frames.py", '''
        class NoFrames(Model):
            def forward(self, x):
                return super().forward(x)[:0]

        def build():
            return NoFrames(), [batch()]
    ''')
    code, document = json_of("check", "zero_frames.py")
    codes = [item["code"] for item in document["findings"]]
    assert code == 1 and codes == ["CTC001"], codes
    assert "sample 0 has 0 frames for 2 labels" in document["findings"][0]["message"]


def test_an_integer_output_is_ctc026_not_a_crash(write_module):
    module(write_module, "argmax.py", '''
        class Argmax(Model):
            def forward(self, x):
                return super().forward(x).argmax(-1, keepdim=True).expand(-1, -1, 6)

        def build():
            return Argmax(), [batch()]
    ''')
    code, document = json_of("check", "argmax.py")
    codes = [item["code"] for item in document["findings"]]
    assert code == 1 and codes == ["CTC026"], codes
    assert "int64, not floating point" in document["findings"][0]["message"]
    assert statuses(document)["CTC020"]["reason"].endswith("(CTC026)")


# ---------------------------------------------------------------- 12. bounded

def test_check_reads_an_infinite_loader_up_to_scan_batches(write_module):
    module(write_module, "endless.py", '''
        def endless():
            while True:
                yield batch()

        def build():
            return Model(), endless()
    ''')
    code, document = json_of("check", "endless.py", "--scan-batches", "3")
    assert code == 0 and document["summary"]["error"] == 0


def test_timeout_ends_check_with_exit_2_naming_what_ran(write_module):
    module(write_module, "slow.py", '''
        import time

        def slow():
            yield batch()
            time.sleep(60)
            yield batch()

        def build():
            return Model(), slow()
    ''')
    result = run("check", "slow.py", "--timeout", "1.5")
    assert result.exit_code == 2, result.output
    assert "ran past --timeout 1.5 s while reading batch 1 from the loader" in result.output


def test_timeout_names_the_check_the_model_ran_for(write_module):
    module(write_module, "slow_model.py", '''
        import time

        class Slow(Model):
            def forward(self, x):
                time.sleep(60)

        def build():
            return Slow(), [batch()]
    ''')
    result = run("check", "slow_model.py", "--timeout", "1")
    assert result.exit_code == 2, result.output
    assert "while running the model on batch 0 (for check CTC001)" in result.output


# ---------------------------------------------------------------- 13. reproducible, and the caller's state untouched

RANDOM = '''
    FROM_IMPORT = float(torch.rand(1))

    def build():
        torch.nn.init.normal_(Model().fc.weight)  # draws from the global generator
        model = Model()
        with torch.no_grad():
            model.fc.weight.mul_(20.0 + FROM_IMPORT)
        return model, [batch()]
'''


def test_the_same_seed_gives_the_same_report_and_the_seed_is_recorded(write_module):
    module(write_module, "random_init.py", RANDOM)
    first = json_of("check", "random_init.py", "--select", "CTC051")[1]
    again = json_of("check", "random_init.py", "--select", "CTC051")[1]
    other = json_of("check", "random_init.py", "--select", "CTC051", "--seed", "7")[1]
    assert first["seed"] == 0 and other["seed"] == 7
    assert first["findings"] == again["findings"]
    assert first["findings"][0]["evidence"] != other["findings"][0]["evidence"]


def _global_states():
    return torch.get_rng_state().clone(), np.random.get_state()[1].copy(), random.getstate(), torch.get_num_threads()


def _same(before, after) -> bool:
    return torch.equal(before[0], after[0]) and np.array_equal(before[1], after[1]) and before[2:] == after[2:]


def test_check_leaves_the_callers_random_state_and_threads_untouched(write_module):
    import ctcdoctor
    from ctchelpers import healthy_setup

    module(write_module, "random_init.py", RANDOM)
    setup = healthy_setup()  # seeds torch itself
    torch.manual_seed(1234)
    np.random.seed(1234)
    random.seed(1234)
    before = _global_states()
    ctcdoctor.check(setup)
    ctcdoctor.check("random_init.py")
    assert run("check", "random_init.py").exit_code in (0, 1)
    assert _same(before, _global_states())


# ---------------------------------------------------------------- 14. the user's module does not see ctcdoctor's argv

def test_a_module_that_parses_sys_argv_at_import_sees_no_ctcdoctor_options(write_module):
    module(write_module, "argparsing.py", '''
        import argparse
        import sys

        parser = argparse.ArgumentParser()
        parser.add_argument("--epochs", type=int, default=3)
        ARGS = parser.parse_args()
        ARGV = list(sys.argv)

        def build():
            assert ARGS.epochs == 3 and len(ARGV) == 1 and ARGV[0].endswith("argparsing.py"), ARGV
            return Model(), [batch()]
    ''')
    before = list(sys.argv)
    result = run("check", "argparsing.py", "--format", "json", "--max-batches", "1")
    assert result.exit_code == 0, result.output
    assert sys.argv == before


# ---------------------------------------------------------------- 16. structured inputs are measured

@pytest.mark.parametrize("wrap, name", [
    ("(inputs, lengths)", "inputs[0]"),
    ('{"features": inputs, "lengths": lengths}', "inputs['features']"),
    ("nn.utils.rnn.pack_padded_sequence(inputs.transpose(1, 2), lengths, batch_first=True, enforce_sorted=False)", "inputs"),
])
def test_structured_inputs_at_raw_scale_are_ctc041(write_module, wrap, name):
    module(write_module, "structured.py", f'''
        def build():
            inputs, targets, lengths, target_lengths = batch(scale=15000.0)
            return Model(), [({wrap}, targets, lengths, target_lengths)]
    ''')
    code, document = json_of("check", "structured.py", "--select", "CTC04")
    (found,) = document["findings"]
    assert found["code"] == "CTC041" and found["message"].startswith(f"{name} are not normalised")
    assert statuses(document)["CTC040"]["status"] == "passed"


def test_nan_in_a_tuple_input_is_ctc040_naming_the_tensor(write_module):
    module(write_module, "nan_tuple.py", '''
        def build():
            inputs, targets, lengths, target_lengths = batch()
            inputs[1, 0, 3] = float("nan")
            return Model(), [((inputs, lengths.float()), targets, lengths, target_lengths)]
    ''')
    _, document = json_of("check", "nan_tuple.py", "--select", "CTC04")
    (found,) = document["findings"]
    assert found["code"] == "CTC040" and found["evidence"]["samples"] == [1] and found["evidence"]["tensor"] == "inputs[0]"


# ---------------------------------------------------------------- 18. CTC001 says what it covered

def test_ctc001_with_the_models_own_lengths_says_what_was_covered(write_module):
    module(write_module, "own_lengths.py", '''
        class WithLengths(Model):
            def forward(self, x):
                out = super().forward(x)
                return out, torch.full((x.shape[0],), out.shape[0]) - torch.arange(x.shape[0]) * 5

        def build():
            return WithLengths(), [batch() for _ in range(6)]
    ''')
    _, document = json_of("check", "own_lengths.py", "--select", "CTC001", "--max-batches", "2")
    (found,) = document["findings"]
    assert found["message"].startswith("2 of 6 samples need more frames")
    assert "Only the 6 samples of the batches the model ran on were checked (12 more were read)" in found["message"]
    assert "`ctcdoctor scan`" in found["message"]
    assert found["evidence"]["total"] == 6 and found["evidence"]["scanned"] == 18


# ---------------------------------------------------------------- 19. consequences are marked

def test_nan_inputs_mark_the_nan_output_and_loss_as_consequences():
    code, document = json_of("check", str(ROOT / "examples/broken/nan_inputs.py"))
    by_code = {item["code"]: item for item in document["findings"]}
    assert set(by_code) >= {"CTC040", "CTC023", "CTC050"}
    assert by_code["CTC023"]["evidence"]["consequence_of"] == "CTC040"
    assert by_code["CTC050"]["evidence"]["consequence_of"] == "CTC040"
    assert "consequence_of" not in by_code["CTC040"]["evidence"]
    codes = [item["code"] for item in document["findings"]]
    assert codes.index("CTC040") < codes.index("CTC023") < codes.index("CTC050")  # the cause first
    text = run("check", str(ROOT / "examples/broken/nan_inputs.py")).output
    assert "CTC023  model output contains NaN or Inf  (consequence of CTC040)" in text


def test_nan_gradients_from_samples_left_out_of_the_loss_are_a_consequence_of_ctc050():
    from ctcdoctor.checks.gradients import nonfinite_gradients
    from ctcdoctor.measure.gradients import Gradients, LayerGradient

    layers = (LayerGradient("fc", "Linear", 10, 10, float("nan"), 1.0, nonfinite=("fc.weight",)),)
    gradients = Gradients(layers, float("nan"), 2.5, 0, 3, (1,), "eval mode", nonfinite_in_pass=(1,))
    (found,) = nonfinite_gradients(gradients)
    assert found.evidence["consequence_of"] == "CTC050"
    assert "although the loss is finite" not in found.message and "loss over the 3 samples it keeps is finite" in found.message


# ---------------------------------------------------------------- 20. the configuration file is named

def test_a_fail_on_from_pyproject_changes_the_exit_code_and_the_report_says_where_from(write_module, tmp_path):
    module(write_module, "loud.py", '''
        def build():
            inputs, targets, lengths, target_lengths = batch(scale=1000.0)
            return Model(), [(inputs, targets, lengths, target_lengths)]
    ''')
    assert run("check", "loud.py", "--select", "CTC041").exit_code == 0  # a warning: exit 0 by default
    write_module("pyproject.toml", '[tool.ctcdoctor]\nfail-on = "warning"\n')
    result = run("check", "loud.py", "--select", "CTC041")
    assert result.exit_code == 1, result.output
    assert f"settings from {tmp_path / 'pyproject.toml'} [tool.ctcdoctor]" in result.output
