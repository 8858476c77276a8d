"""`ctcdoctor logs` through the command line: each example run's verdict and exit code, the JSON
envelope, --plot, --follow on a log that grows, and bad input as exit 2 with one line."""
from __future__ import annotations

import json
import subprocess
import sys
import threading
import time

import pytest
from typer.testing import CliRunner

from ctcdoctor.cli import app, main
from ctcdoctor.training import monitor_format
from ctchelpers import IMPORT_BLOCKER, ROOT

RUNS = ROOT / "examples" / "runs"
runner = CliRunner()

#: run: (exit code, the warnings and errors it must report, exactly); tests/training/test_logs_example_runs.py
#: pins the same verdicts on the library.
EXPECTED = {
    "healthy": (0, set()),
    "lr_too_high": (1, {"CTC203", "CTC214"}),
    "blank_collapse": (1, {"CTC212"}),
    "overfitting": (0, {"CTC207"}),  # a warning: exit 0 under the default --fail-on error
}


def run_json(*argv: str) -> tuple[int, dict]:
    result = runner.invoke(app, ["logs", *argv, "--format", "json"])
    assert result.exit_code in (0, 1), result.output
    return result.exit_code, json.loads(result.stdout)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_example_run_gives_its_documented_verdict(name):
    pytest.importorskip("tensorboard")
    code, document = run_json(str(RUNS / name))
    expected_code, expected = EXPECTED[name]
    assert code == expected_code
    assert {f["code"] for f in document["findings"] if f["severity"] != "info"} == expected
    assert document["command"] == "logs" and document["spec"] == str(RUNS / name)
    assert document["result"]["series"]["loss"]["points"] > 0
    assert set(document["summary"]) == {"error", "warning", "info"}


def test_fail_on_warning_gates_the_overfitting_run():
    assert runner.invoke(app, ["logs", str(RUNS / "overfitting"), "--fail-on", "warning"]).exit_code == 1
    assert runner.invoke(app, ["logs", str(RUNS / "overfitting"), "--ignore", "CTC207", "--fail-on", "warning"]).exit_code == 0


def test_the_text_report_names_the_log_its_curves_and_the_fix():
    result = runner.invoke(app, ["logs", str(RUNS / "lr_too_high")])
    assert result.exit_code == 1
    text = result.stdout
    assert "CTC203" in text and "the loss diverged" in text and "fix: Set the learning rate to 1e-4 to 1e-3 (Adam" in text
    assert "read " in text and "metrics.csv (lightning log, 500 values of train_loss" in text
    assert "ctcdoctor logs" in text.splitlines()[-1] and "1 error, 1 warning" in text.splitlines()[-1]


def test_the_real_command_line_in_a_subprocess():
    done = subprocess.run([sys.executable, "-m", "ctcdoctor", "logs", "examples/runs/healthy", "--format", "json"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["result"]["format"] == "monitor"


def test_plot_and_ci_files(tmp_path):
    figure, junit = tmp_path / "run.png", tmp_path / "junit.xml"
    code, document = run_json(str(RUNS / "lr_too_high"), "--plot", str(figure), "--junit-xml", str(junit))
    assert code == 1 and document["result"]["plot"] == str(figure)
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and figure.stat().st_size > 20_000
    assert "CTC203" in junit.read_text()


def test_options_reach_the_rules():
    _, document = run_json(str(RUNS / "blank_collapse"), "--classes", "27", "--label-length", "5.5", "--reduction", "mean")
    (collapse,) = [f for f in document["findings"] if f["code"] == "CTC212"]
    assert "ln(C-1) = ln(26)" in collapse["message"]
    _, document = run_json(str(RUNS / "healthy"), "--select", "CTC21")
    assert {f["code"] for f in document["findings"]} == {"CTC211"}


@pytest.mark.parametrize("setup, argv, expected", [
    (lambda tmp: None, ["missing"], "does not exist"),
    (lambda tmp: (tmp / "empty.csv").write_text(""), ["empty.csv"], "is empty"),
    (lambda tmp: (tmp / "acc.csv").write_text("step,accuracy\n1,0.5\n2,0.6\n"), ["acc.csv"], "no training loss"),
    (lambda tmp: (tmp / "notes.txt").write_text("hello"), ["."], "no training log in"),
    (lambda tmp: (tmp / "a.csv").write_text("step,loss\n1,2\n"), ["a.csv", "--reduction", "avg"], "--reduction 'avg'"),
    (lambda tmp: (tmp / "a.csv").write_text("step,loss\n1,2\n"), ["a.csv", "--loss", "nope"], "--loss 'nope'"),
    (lambda tmp: (tmp / "a.csv").write_text("step,loss\n1,2\n"), ["a.csv", "--idle", "3"], "--idle without --follow"),
    (lambda tmp: (tmp / "a.csv").write_text("step,loss\n1,2\n"), ["a.csv", "--plot", "x.gif"], "--plot x.gif"),
])
def test_bad_input_is_exit_2_with_one_line(tmp_path, monkeypatch, capsys, setup, argv, expected):
    monkeypatch.chdir(tmp_path)
    setup(tmp_path)
    code = main(["logs", *argv])
    err = capsys.readouterr().err
    assert code == 2, err
    lines = err.strip().splitlines()
    assert lines[0].startswith("error: ") and expected in lines[0]
    assert "Traceback" not in err and len(lines) <= 2  # the cause, and the fix


def test_one_text_cell_is_read_as_missing_and_named_in_a_note(tmp_path, monkeypatch, capsys):
    """A loss column with one 'abc' was dropped whole: 'no numeric columns besides the step', no fix."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "badval.csv").write_text("step,loss\n1,5\n2,abc\n3,4\n")
    code = main(["logs", "badval.csv"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "2 values of loss, steps 1-3" in out
    assert "note: column 'loss': 1 cell is not a number (first at line 3: 'abc'): read as not logged" in out


def test_a_column_of_text_is_exit_2_naming_the_line_column_and_value_with_a_fix(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "text.csv").write_text("step,loss\n1,n/a\n2,n/a\n3,4\n")
    code = main(["logs", "text.csv"])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err, err
    error, fix = err.strip().splitlines()
    assert error == ("error: text.csv has no numeric columns besides the step: column 'loss' holds text, not numbers "
                     "(2 of 3 cells; line 2: 'n/a')")
    assert fix.startswith("fix: Write the values of 'loss' as numbers")


def _grow(path, steps: int, pause: float) -> None:
    """A run in progress: the monitor's header, then records appended in bursts."""
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(monitor_format.header(classes=27, label_length=5.0) + "\n")
        handle.flush()
        for step in range(1, steps + 1):
            loss = 11.7 * 0.97 ** step if step < 120 else 0.5 * 1.04 ** (step - 120)  # falls, then diverges
            handle.write(monitor_format.record(step, loss, lr=1e-3) + "\n")
            if step % 40 == 0:
                handle.flush()
                time.sleep(pause)


def test_follow_rereads_a_growing_log_until_it_goes_idle(tmp_path):
    path = tmp_path / "metrics.jsonl"
    writer = threading.Thread(target=_grow, args=(path, 200, 0.3))
    writer.start()
    try:
        result = runner.invoke(app, ["logs", str(tmp_path), "--follow", "0.05", "--idle", "1.5", "--format", "json"])
    finally:
        writer.join()
    assert result.exit_code == 1, result.output
    document = json.loads(result.stdout)
    assert document["result"]["series"]["loss"]["points"] == 200  # the whole run, read after it stopped growing
    assert "CTC203" in {f["code"] for f in document["findings"]}
    progress = [line for line in result.stderr.splitlines() if line.startswith("metrics.jsonl: step")]
    assert len(progress) >= 3 and "new: CTC203" in result.stderr


def test_follow_waits_for_a_job_that_is_slow_to_start_while_it_makes_progress(tmp_path):
    # From a monitor trial: `--follow 1 --idle 30` started before the job gave up with "does not exist" although the
    # folder had appeared meanwhile: the idle clock ran from the start and the reason was never read again.
    run = tmp_path / "run"

    def start_slowly() -> None:
        time.sleep(1.0)
        run.mkdir()  # the job makes its folder...
        time.sleep(1.0)
        _grow(run / "metrics.jsonl", 40, 0.0)  # ...and, a second later, its first records

    writer = threading.Thread(target=start_slowly)
    writer.start()
    try:
        result = runner.invoke(app, ["logs", str(run), "--follow", "0.05", "--idle", "1.5", "--format", "json"])
    finally:
        writer.join()
    assert result.exit_code in (0, 1), result.output
    assert json.loads(result.stdout)["result"]["series"]["loss"]["points"] == 40
    progress = [line for line in result.stderr.splitlines() if line.startswith("metrics.jsonl: step")]
    assert progress and all(a != b for a, b in zip(progress, progress[1:]))  # no status line twice in a row


def test_follow_that_gives_up_says_why_now_and_after_how_long(tmp_path):
    (tmp_path / "run").mkdir()
    result = runner.invoke(app, ["logs", str(tmp_path / "run"), "--follow", "0.05", "--idle", "0.5"])
    assert result.exit_code == 2
    assert "(still, after --idle 0.5 s without a change)" in result.output


BLOCKER = IMPORT_BLOCKER + """
from ctcdoctor.cli import main
code = main(sys.argv[1:])
print("torch imported:", "torch" in sys.modules)
sys.exit(code)
"""


def test_logs_needs_neither_the_optional_dependencies_nor_torch():
    blocked = {"transformers", "lightning", "pytorch_lightning", "keras", "tensorboard", "triton", "torch"}
    done = subprocess.run([sys.executable, "-c", BLOCKER.format(blocked=blocked), "logs", "examples/runs/healthy"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "torch imported: False" in done.stdout and "CTC211" in done.stdout


def test_a_log_of_one_value_says_one_value(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "one.csv").write_text("step,loss\n1,5\n")
    main(["logs", "one.csv"])
    assert "1 value of loss, steps 1-1" in capsys.readouterr().out


def test_verbose_lists_every_rule_with_its_codes_and_outcome():
    # -v's help promises "every check with its status and time"; it printed nothing more before.
    from ctcdoctor.training.rules import RULE_TITLES, RULES

    result = runner.invoke(app, ["logs", str(RUNS / "lr_too_high"), "-v"])
    assert result.exit_code == 1, result.output
    rows = {line.split()[0]: line for line in result.output.splitlines() if line.startswith("CTC2") and "  " in line}
    assert set(rows) == {RULE_TITLES[rule][0] for rule in RULES}
    assert "findings" in rows["CTC203"] and "passed" in rows["CTC200-202"]
    assert "checks" not in runner.invoke(app, ["logs", str(RUNS / "lr_too_high")]).output.split("read ")[-1]
    _, document = run_json(str(RUNS / "lr_too_high"))
    assert {item["code"]: item["status"] for item in document["checks"]}["CTC203"] == "findings"
