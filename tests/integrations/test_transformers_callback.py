"""CTCDoctorCallback inside a real (tiny, CPU) Hugging Face Trainer: it stops a broken run, lets a healthy one
train, writes the JSON report, and under two processes checks once and stops every rank together."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("transformers")

from ctchelpers import ROOT  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from trainer_run import make_trainer  # noqa: E402


def test_a_broken_setup_is_stopped_before_the_first_step(tmp_path, capsys):
    from ctcdoctor.integrations.transformers import TrainingStopped

    trainer, callback = make_trainer(str(tmp_path), broken=True, steps=6, plot_path=tmp_path / "p.png")
    # Trainer reads should_training_stop only after a step, which would train on the broken set-up: it raises instead
    with pytest.raises(TrainingStopped) as stopped:
        trainer.train()
    assert "before its first step" in stopped.value.message and "CTC001" in stopped.value.message
    assert "stop_on=None" in stopped.value.hint
    assert callback.stopped and trainer.state.global_step == 0
    out = capsys.readouterr().out
    assert "stopped before step 1 on CTC" in out and "no plot written to" in out  # the monitor's verdict, closed
    assert callback.final_report.result["stopped"]["step"] == 0 and callback.final_report.result["steps_seen"] == 0
    document = json.loads((tmp_path / "ctcdoctor_check.json").read_text())
    assert document["command"] == "check" and document["spec"] == "Trainer"
    assert {"CTC001", "CTC104"} <= {item["code"] for item in document["findings"]}


def test_a_healthy_setup_trains_to_the_end_under_the_monitor(tmp_path, capsys):
    report = tmp_path / "ctcdoctor.json"
    trainer, callback = make_trainer(str(tmp_path), broken=False, steps=4, every=2, report_path=report)
    trainer.train()
    assert not callback.stopped and trainer.state.global_step == 4
    assert callback.report is not None and not [f for f in callback.report.findings if f.severity.value != "info"]
    assert "[ctcdoctor] check before training" in capsys.readouterr().out  # the monitor prints the check's summary
    assert json.loads((tmp_path / "ctcdoctor_check.json").read_text())["summary"]["error"] == 0
    # The monitor's final report (every=2: it measured the outputs twice) is report_path.
    assert callback.final_report is not None and json.loads(report.read_text())["command"] == "monitor"
    # the rate of each step as the Trainer logs it (read before the scheduler steps; was one step late)
    logged = {entry["step"]: entry["learning_rate"] for entry in trainer.state.log_history if "learning_rate" in entry}
    lr = callback.monitor.monitor.run_data().scalars["lr"]
    assert dict(zip(lr.steps.tolist(), lr.values.tolist())) == pytest.approx(logged) and len(logged) == 4


def test_without_a_monitor_the_check_alone_prints_and_writes_report_path(tmp_path, capsys):
    report = tmp_path / "reports" / "start.json"
    trainer, callback = make_trainer(str(tmp_path), broken=False, steps=2, every=None, report_path=report)
    trainer.train()
    assert callback.monitor is None and trainer.state.global_step == 2
    assert "no problems found" in capsys.readouterr().out
    assert json.loads(report.read_text())["command"] == "check"


def test_stop_on_none_reports_and_never_stops(tmp_path):
    trainer, callback = make_trainer(str(tmp_path), broken=True, steps=2, stop_on=None, every=50)
    trainer.train()
    assert not callback.stopped and trainer.state.global_step == 2 and callback.every == 50
    assert "CTC001" in {item["code"] for item in json.loads((tmp_path / "ctcdoctor_check.json").read_text())["findings"]}
    assert "CTC001" in {item.code for item in callback.final_report.findings}  # the check's findings join the monitor's


def test_the_constructor_refuses_unknown_levels():
    from ctcdoctor.integrations.transformers import CTCDoctorCallback

    with pytest.raises(ValueError, match="stop_on='fatal'"):
        CTCDoctorCallback(stop_on="fatal")
    with pytest.raises(ValueError, match="every=0"):
        CTCDoctorCallback(every=0)


def test_a_model_ctcdoctor_cannot_check_is_reported_and_training_goes_on(tmp_path, capsys):
    import transformers

    trainer, callback = make_trainer(str(tmp_path), broken=False, steps=1)
    trainer.model = transformers.Wav2Vec2ForSequenceClassification(trainer.model.config)
    callback.on_train_begin(trainer.args, trainer.state, trainer.control, model=trainer.model,
                            train_dataloader=trainer.get_train_dataloader())
    assert not callback.stopped and "has no CTC head" in capsys.readouterr().out


def test_without_transformers_the_callback_names_the_extra(without_optional_dependencies):
    # ctchelpers.SNIPPETS["transformers_callback"], run in a fresh interpreter in which transformers cannot be imported
    marks, output = without_optional_dependencies
    mark = marks.get("transformers_callback", {})
    assert mark.get("code") == 0, mark.get("error") or output
    assert "pip install 'ctcdoctor[hf]'" in mark["stdout"], mark


@pytest.fixture(scope="module")
def two_process_runs(tmp_path_factory) -> Path:
    """One torchrun launch of two processes on gloo that trains the broken set-up, then the healthy one (each rank
    imports torch and transformers once for both); each mode's records land in a folder of its own."""
    folder = tmp_path_factory.mktemp("gloo")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join([str(HERE), str(ROOT / "tests")])}
    with socket.socket() as probe:  # a free port (torchrun's --master_port 0 is not portable)
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
               "--master_port", str(port),
               str(HERE / "trainer_run.py"), str(folder), "broken,healthy", "4"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env, cwd=folder)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return folder


@pytest.mark.parametrize("mode", ["broken", "healthy"])
def test_two_processes_on_gloo_check_once_and_stop_together(two_process_runs, mode):
    records = [json.loads((two_process_runs / mode / f"rank{rank}.json").read_text()) for rank in (0, 1)]
    assert [record["world"] for record in records] == [2, 2]
    assert [record["checked"] for record in records] == [True, False]  # checked once, on rank 0
    if mode == "broken":  # every rank raised TrainingStopped before its first step
        assert [(record["stopped"], record["global_step"], record["raised"]) for record in records] == [
            (True, 0, "TrainingStopped"), (True, 0, "TrainingStopped")]
    else:
        assert [(record["stopped"], record["global_step"]) for record in records] == [(False, 4), (False, 4)]
