"""Each log reader on files written by the real library where one exists, and every bad input as one line."""
from __future__ import annotations

import json
import math
import os

import numpy as np
import pytest

from ctcdoctor.errors import UserInputError
from ctcdoctor.training import diagnose_run, monitor_format
from ctcdoctor.training.names import resolve, words
from ctcdoctor.training.readers import read_run


def values(run, tag):
    series = run.scalars[tag]
    return series.steps.tolist(), series.values.tolist()


# ---------------------------------------------------------------------------------------------- TensorBoard
def write_events(folder, scalars: dict[str, list[tuple[int, float]]]):
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(log_dir=str(folder))
    for tag, points in scalars.items():
        for step, value in points:
            writer.add_scalar(tag, value, step)
    writer.close()
    return next(folder.glob("events.out.tfevents.*"))


def test_tensorboard_file_written_by_summary_writer(tmp_path):
    pytest.importorskip("tensorboard")
    write_events(tmp_path, {"Loss/train": [(1, 3.0), (2, float("nan")), (3, 2.0)], "Loss/val": [(2, 2.5)],
                            "LR": [(1, 1e-3), (2, 1e-3), (3, 1e-3)]})
    run = read_run(tmp_path)
    assert run.format == "tensorboard"
    steps, logged = values(run, "Loss/train")
    assert steps == [1, 2, 3] and logged[0] == 3.0 and math.isnan(logged[1])
    curves, _ = resolve(run)
    assert (curves.loss.tag, curves.eval_loss.tag, curves.lr.tag) == ("Loss/train", "Loss/val", "LR")


def test_tensorboard_train_and_validation_folders_are_one_run(tmp_path):
    pytest.importorskip("tensorboard")
    for split, offset in (("train", 0.0), ("validation", 0.5)):
        write_events(tmp_path / split, {"epoch_loss": [(epoch, 3.0 - 0.1 * epoch + offset) for epoch in range(5)]})
    run = read_run(tmp_path)
    assert set(run.scalars) == {"train/epoch_loss", "validation/epoch_loss"} and run.unit == "epoch"
    curves, _ = resolve(run)
    assert curves.loss.tag == "train/epoch_loss" and curves.eval_loss.tag == "validation/epoch_loss"


def test_truncated_event_file_is_one_line_unless_allowed(tmp_path):
    pytest.importorskip("tensorboard")
    path = write_events(tmp_path, {"loss": [(step, 1.0 / (step + 1)) for step in range(50)]})
    data = path.read_bytes()
    path.write_bytes(data[:-7])
    with pytest.raises(UserInputError) as error:
        read_run(tmp_path)
    assert "truncated at byte" in error.value.message and "expected complete TensorBoard event records" in error.value.message
    assert "\n" not in error.value.message
    run = read_run(tmp_path, allow_truncated=True)
    assert len(run.scalars["loss"]) == 49 and any("truncated" in note for note in run.notes)


def test_missing_tensorboard_names_the_extra(tmp_path, without_tensorboard):
    from ctcdoctor.training.readers import tensorboard as reader

    (tmp_path / "events.out.tfevents.1.host").write_bytes(b"\0" * 16)
    with pytest.raises(UserInputError) as error:
        reader.read_event_files([tmp_path / "events.out.tfevents.1.host"], [""])
    assert "ctcdoctor[tensorboard]" in error.value.hint


# ---------------------------------------------------------------------------------------------- Hugging Face
def hf_state(tmp_path, history, name="trainer_state.json"):
    """A trainer_state.json written by transformers' own TrainerState when installed."""
    state = {"global_step": history[-1]["step"], "max_steps": history[-1]["step"], "logging_steps": 10,
             "eval_steps": 50, "log_history": history}
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        from transformers import TrainerState
    except ImportError:
        path.write_text(json.dumps(state, indent=2), encoding="utf-8")
    else:
        TrainerState(**state).save_to_json(str(path))
    return path


def hf_history(steps=60, nan_grad_at=()):
    history = []
    for step in range(10, steps * 10 + 1, 10):
        grad = float("nan") if step in nan_grad_at else 1.0
        history.append({"epoch": step / 100, "grad_norm": grad, "learning_rate": 1e-4, "loss": 3.0 / (1 + step / 100),
                        "step": step})
        if step % 50 == 0:
            history.append({"epoch": step / 100, "eval_loss": 3.2 / (1 + step / 100), "eval_wer": 0.9 - step / 1000,
                            "eval_runtime": 1.2, "eval_samples_per_second": 80.0, "eval_steps_per_second": 5.0,
                            "step": step})
    history.append({"epoch": 6.0, "step": steps * 10, "total_flos": 1e12, "train_loss": 1.1, "train_runtime": 100.0,
                    "train_samples_per_second": 10.0, "train_steps_per_second": 1.0})
    return history


def test_trainer_state_log_history(tmp_path):
    hf_state(tmp_path, hf_history())
    run = read_run(tmp_path)
    assert run.format == "huggingface"
    assert "train_loss" not in run.scalars and "eval_runtime" not in run.scalars and "total_flos" not in run.scalars
    curves, _ = resolve(run)
    assert (curves.loss.tag, curves.eval_loss.tag, curves.lr.tag, curves.grad_norm.tag) == (
        "loss", "eval_loss", "learning_rate", "grad_norm")
    assert [metric.series.tag for metric in curves.metrics] == ["eval_wer"] and curves.metrics[0].eval
    assert any("logging_nan_inf_filter" in note for note in run.notes)


def test_trainer_state_nan_grad_norm_behind_a_filtered_loss(tmp_path):
    hf_state(tmp_path, hf_history(nan_grad_at=(200, 210, 350)))
    result = diagnose_run(tmp_path)
    (item,) = [found for found in result.findings if found.code == "CTC202"]
    assert item.evidence["count"] == 3 and item.evidence["first_step"] == 200


def test_newest_checkpoint_is_read_and_the_others_named(tmp_path):
    hf_state(tmp_path, hf_history(30), "checkpoint-300/trainer_state.json")
    hf_state(tmp_path, hf_history(60), "checkpoint-600/trainer_state.json")
    run = read_run(tmp_path)
    assert run.source.endswith(os.path.join("checkpoint-600", "trainer_state.json"))
    assert any("checkpoint-300" in note for note in run.notes)


# ---------------------------------------------------------------------------------------------- Lightning, Keras, tables
def test_lightning_csv_logger(tmp_path):
    loggers = pytest.importorskip("lightning.pytorch.loggers")
    logger = loggers.CSVLogger(str(tmp_path), name="lightning_logs", version=0)
    for step in range(40):
        logger.log_metrics({"train_loss": float("nan") if step == 30 else 3.0 / (1 + step), "lr-AdamW": 1e-3},
                           step=step)
        if step % 10 == 9:
            logger.log_metrics({"val_loss": 2.0, "val_cer": 0.5, "epoch": step // 10}, step=step)
    logger.save()
    run = read_run(tmp_path)
    assert run.format == "lightning"
    steps, logged = values(run, "train_loss")
    assert len(steps) == 40 and math.isnan(logged[30])  # "nan" is a logged value, empty cells are not
    assert values(run, "val_loss")[0] == [9, 19, 29, 39]
    curves, _ = resolve(run)
    assert (curves.loss.tag, curves.eval_loss.tag, curves.lr.tag) == ("train_loss", "val_loss", "lr-AdamW")


def test_lightning_versions_newest_wins(tmp_path):
    for version, rows in ((0, 5), (1, 8)):
        folder = tmp_path / "lightning_logs" / f"version_{version}"
        folder.mkdir(parents=True)
        lines = ["epoch,step,train_loss"] + [f"0,{step},{1.0 / (step + 1)}" for step in range(rows)]
        (folder / "metrics.csv").write_text("\n".join(lines) + "\n")
    run = read_run(tmp_path)
    assert len(run.scalars["train_loss"]) == 8 and any("version_0" in note for note in run.notes)


def test_keras_csv_logger(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_BACKEND", "torch")
    keras = pytest.importorskip("keras")
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile("adam", "mse")
    x, y = np.random.default_rng(0).random((32, 3)), np.random.default_rng(1).random((32, 1))
    model.fit(x, y, validation_split=0.25, epochs=4, verbose=0,
              callbacks=[keras.callbacks.CSVLogger(str(tmp_path / "training.log.csv"))])
    run = read_run(tmp_path / "training.log.csv")
    assert run.format == "keras" and run.unit == "epoch"
    curves, _ = resolve(run)
    assert curves.loss.tag == "loss" and curves.eval_loss.tag == "val_loss"
    assert curves.loss.steps.tolist() == [0, 1, 2, 3]


def test_plain_csv_with_and_without_a_step_column(tmp_path):
    (tmp_path / "log.csv").write_text("iteration,loss,wer\n0,5.0,100\n10,4.0,90\n20,3.0,80\n")
    run = read_run(tmp_path / "log.csv")
    assert run.format == "csv" and values(run, "loss")[0] == [0, 10, 20]
    curves, notes = resolve(run)
    assert curves.metrics[0].series.values.tolist() == [1.0, 0.9, 0.8]  # WER in percent read as a fraction
    assert any("percentage" in note for note in notes)
    (tmp_path / "nostep.csv").write_text("loss\n5.0\n4.0\n")
    run = read_run(tmp_path / "nostep.csv")
    assert values(run, "loss")[0] == [0, 1] and any("no step column" in note for note in run.notes)


def test_plain_jsonl_nested_and_cut_off_last_line(tmp_path):
    lines = [json.dumps({"step": step, "train": {"loss": 3.0 - step}}) for step in range(3)]
    (tmp_path / "log.jsonl").write_text("\n".join(lines) + '\n{"step": 3, "train": {"lo')
    run = read_run(tmp_path / "log.jsonl")
    assert run.format == "jsonl" and values(run, "train/loss") == ([0, 1, 2], [3.0, 2.0, 1.0])
    assert any("cut off" in note for note in run.notes)


def test_monitor_jsonl_round_trip_and_header_feeds_the_rules(tmp_path):
    path = tmp_path / "metrics.jsonl"
    lines = [monitor_format.header(classes=27, label_length=6.0, reduction="mean")]
    rng = np.random.default_rng(0)
    for step in range(1, 301):
        level = 10.5 if step == 1 else 3.2
        extra = {"cer": 1.0, "blank_ratio": 0.99} if step % 25 == 0 else {}
        lines.append(monitor_format.record(step, level * math.exp(rng.normal(0, 0.03)), lr=1e-3, **extra))
    lines.append(monitor_format.record(301, float("nan"), lr=1e-3))
    path.write_text("\n".join(lines) + "\n")
    assert '"loss": "nan"' in lines[-1]  # valid JSON: non-finite numbers as strings
    result = diagnose_run(tmp_path)
    assert result.format == "monitor" and result.options.classes == 27 and result.options.label_length == 6.0
    codes = {found.code for found in result.findings}
    assert {"CTC212", "CTC200"} <= codes
    (plateau,) = [found for found in result.findings if found.code == "CTC212"]
    assert "ln(26)" in plateau.message and "blank_ratio" in plateau.message


# ---------------------------------------------------------------------------------------------- names
@pytest.mark.parametrize("tag, expected", [
    ("Loss/train", ["loss", "train"]), ("eval_wer", ["eval", "wer"]), ("valLoss", ["val", "loss"]),
    ("lr-AdamW/pg1", ["lr", "adamw", "pg1"]), ("train/grad_norm", ["train", "grad", "norm"]),
])
def test_words(tag, expected):
    assert words(tag) == expected


def test_step_loss_preferred_over_epoch_loss_and_parts_recognised(tmp_path):
    header = "step,train_loss_step,train_loss_epoch,loss_ctc,loss_att,val_loss,val_acc,lr-Adam,blank_ratio"
    rows = [f"{s},{3 - s / 10},{3 - s / 10},{1 - s / 30},{2 - s / 20},{3},{0.1},{1e-3},{0.9}" for s in range(10)]
    (tmp_path / "log.csv").write_text("\n".join([header] + rows) + "\n")
    curves, _ = resolve(read_run(tmp_path / "log.csv"))
    assert curves.loss.tag == "train_loss_step" and curves.eval_loss.tag == "val_loss"
    assert [part.tag for part in curves.parts] == ["loss_att", "loss_ctc"]
    assert curves.metrics[0].kind == "accuracy" and curves.blank_ratio.tag == "blank_ratio"


def test_tags_chosen_by_hand(tmp_path):
    (tmp_path / "log.csv").write_text("step,objective_a,objective_b\n0,3,2\n1,2,1\n")
    curves, _ = resolve(read_run(tmp_path / "log.csv"), loss="objective_b", eval_loss="objective_a")
    assert curves.loss.tag == "objective_b" and curves.eval_loss.tag == "objective_a"
    with pytest.raises(UserInputError) as error:
        resolve(read_run(tmp_path / "log.csv"), loss="nope")
    assert "'nope'" in error.value.message and "objective_a, objective_b" in error.value.message


# ---------------------------------------------------------------------------------------------- bad input
def write(folder, name: str, text: str):
    path = folder / name
    path.write_text(text)
    return path


@pytest.mark.parametrize("make, expected", [
    (lambda p: p / "missing", "does not exist"),
    (lambda p: write(p, "notes.txt", "hello").parent, "no training log in"),
    (lambda p: write(p, "empty.csv", ""), "is empty"),
    (lambda p: write(p, "head.csv", "step,loss\n"), "but no rows"),
    (lambda p: write(p, "noloss.csv", "step,accuracy\n0,0.1\n1,0.2\n"), "no training loss"),
    (lambda p: write(p, "a.json", '{"x": 1}'), "not a training log"),
    (lambda p: write(p, "m.json", '{"iteration": 1, "lr": 0.1}'), "no training loss"),
    (lambda p: write(p, "b.json", "[1, 2]"), "not a training log"),
    (lambda p: write(p, "state.json", '{"log_history": []}'), "empty log_history"),
    (lambda p: write(p, "bad.jsonl", '{"step": 1, "loss": 2}\nnot json\n{"step": 3, "loss": 1}\n'), "line 2 is not JSON"),
    (lambda p: write(p, "h.jsonl", monitor_format.header() + "\n"), "only a header"),
])
def test_bad_input_is_one_line_naming_what_was_found_and_expected(tmp_path, make, expected):
    path = make(tmp_path)
    with pytest.raises(UserInputError) as error:
        diagnose_run(path)
    assert expected in error.value.message and "\n" not in error.value.message


def test_no_log_message_lists_the_files_found(tmp_path):
    (tmp_path / "model.pt").write_bytes(b"x")
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(UserInputError) as error:
        read_run(tmp_path)
    assert "2 files (model.pt, notes.txt)" in error.value.message and "trainer_state.json" in error.value.message


def test_keras_csv_logger_under_its_documented_name_training_log(tmp_path):
    # Keras' docs write CSVLogger("training.log"): neither the file nor its folder may be refused for the suffix.
    (tmp_path / "training.log").write_text("epoch,loss,val_loss\n0,2000.0,2100.0\n1,180.0,190.0\n2,430.0,450.0\n")
    for path in (tmp_path / "training.log", tmp_path):
        run = read_run(path)
        assert run.format == "keras" and run.unit == "epoch" and values(run, "loss") == ([0, 1, 2], [2000.0, 180.0, 430.0])


def test_a_named_file_is_sniffed_whatever_its_suffix_but_a_text_log_is_refused(tmp_path):
    (tmp_path / "metrics.txt").write_text('{"step": 1, "loss": 3.0}\n{"step": 2, "loss": 2.0}\n')
    assert values(read_run(tmp_path / "metrics.txt"), "loss") == ([1, 2], [3.0, 2.0])
    (tmp_path / "stdout.log").write_text("INFO starting run\nepoch 1 loss 3.0\n")
    with pytest.raises(UserInputError) as error:
        read_run(tmp_path / "stdout.log")
    assert "not a training log" in error.value.message
    (tmp_path / "metrics.txt").unlink()
    with pytest.raises(UserInputError):  # in a folder, only .log files are sniffed, and this one is text
        read_run(tmp_path)


def test_a_wrong_tag_is_answered_with_a_tag_that_fits_the_role_never_the_loss_as_a_learning_rate(tmp_path):
    (tmp_path / "log.csv").write_text("step,loss,val_loss\n" + "".join(f"{i},{5 - i * 0.1},{5 - i * 0.05}\n" for i in range(30)))
    with pytest.raises(UserInputError) as error:
        resolve(read_run(tmp_path / "log.csv"), lr="nope")
    assert "None of the tags found looks like a learning rate: leave --lr out" in error.value.hint
    assert "'loss'" not in error.value.hint
    with pytest.raises(UserInputError) as error:
        resolve(read_run(tmp_path / "log.csv"), loss="nope")
    assert "e.g. --loss 'loss'" in error.value.hint
