"""The monitor inside a real Hugging Face `Trainer.train`, driven by a minimal TrainerCallback composed here
the way `ctcdoctor.integrations.transformers.CTCDoctorCallback` forwards its events."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

transformers = pytest.importorskip("transformers")
pytest.importorskip("accelerate")

from ctcdoctor.integrations.transformers_monitor import TrainerMonitor, tokenizer_alphabet  # noqa: E402
from ctcdoctor.training import diagnose_run  # noqa: E402

LETTERS = "abcde"
RATE = 16000


def make_tokenizer(tmp_path):
    vocab = {letter: index for index, letter in enumerate(LETTERS)}
    vocab.update({"|": 5, "[UNK]": 6, "[PAD]": 7})  # the blank is [PAD], the last class, as in the fine-tuning guides
    (tmp_path / "vocab.json").write_text(json.dumps(vocab))
    return transformers.Wav2Vec2CTCTokenizer(str(tmp_path / "vocab.json"), unk_token="[UNK]", pad_token="[PAD]",
                                             word_delimiter_token="|")


class Speech(torch.utils.data.Dataset):
    """Three letters per utterance, each a 50 ms tone of its own frequency."""

    def __init__(self, tokenizer, n: int, seed: int) -> None:
        rng = np.random.default_rng(seed)
        self.items = []
        for _ in range(n):
            text = "".join(rng.choice(list(LETTERS), size=3))
            t = np.arange(int(0.05 * RATE)) / RATE
            audio = np.concatenate([np.sin(2 * np.pi * (300 + 200 * LETTERS.index(c)) * t) for c in text])
            audio = audio + 0.05 * rng.standard_normal(audio.size)
            self.items.append({"input_values": ((audio - audio.mean()) / audio.std()).astype(np.float32),
                               "labels": tokenizer(text).input_ids})

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict:
        return self.items[index]


def collate(features: list[dict]) -> dict[str, torch.Tensor]:
    """Pad audio (with an attention mask) and labels (with -100), as DataCollatorCTCWithPadding does."""
    width, labels = max(len(f["input_values"]) for f in features), max(len(f["labels"]) for f in features)
    batch = {"input_values": torch.zeros(len(features), width), "attention_mask": torch.zeros(len(features), width, dtype=torch.long),
             "labels": torch.full((len(features), labels), -100)}
    for row, feature in enumerate(features):
        batch["input_values"][row, : len(feature["input_values"])] = torch.from_numpy(feature["input_values"])
        batch["attention_mask"][row, : len(feature["input_values"])] = 1
        batch["labels"][row, : len(feature["labels"])] = torch.tensor(feature["labels"])
    return batch


class Callback(transformers.TrainerCallback):
    """What CTCDoctorCallback does with its TrainerMonitor (its own check at on_train_begin aside)."""

    def __init__(self, **options) -> None:
        self.monitor = TrainerMonitor(**options)

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        self.monitor.attach(model, args, state)

    def on_step_begin(self, args, state, control, **kwargs):
        self.monitor.on_step_begin(args, state, control, **kwargs)

    def on_step_end(self, args, state, control, **kwargs):
        self.monitor.on_step_end(args, state, control, **kwargs)

    def on_log(self, args, state, control, logs=None, **kwargs):
        self.monitor.on_log(args, state, control, logs)

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        self.monitor.on_evaluate(args, state, control, metrics)

    def on_train_end(self, args, state, control, **kwargs):
        self.monitor.on_train_end(args, state, control)


def train(tmp_path, lr: float, steps: int, **options):
    tokenizer = make_tokenizer(tmp_path)
    torch.manual_seed(0)
    config = transformers.Wav2Vec2Config(
        hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32, conv_dim=(16, 16),
        conv_kernel=(10, 4), conv_stride=(5, 4), num_conv_pos_embeddings=8, num_conv_pos_embedding_groups=2,
        feat_extract_norm="layer", do_stable_layer_norm=True, layerdrop=0.0, mask_time_prob=0.0,
        hidden_dropout=0.0, attention_dropout=0.0, feat_proj_dropout=0.0, ctc_loss_reduction="mean",
        pad_token_id=tokenizer.pad_token_id, vocab_size=len(tokenizer))
    model = transformers.Wav2Vec2ForCTC(config)
    callback = Callback(tokenizer=tokenizer, **options)
    args = transformers.TrainingArguments(
        output_dir=str(tmp_path / "out"), max_steps=steps, per_device_train_batch_size=4, learning_rate=lr,
        logging_steps=5, eval_strategy="steps", eval_steps=10, per_device_eval_batch_size=8, report_to=[],
        save_strategy="no", use_cpu=True, disable_tqdm=True)
    trainer = transformers.Trainer(model=model, args=args, train_dataset=Speech(tokenizer, 16, 0),
                                   eval_dataset=Speech(tokenizer, 8, 1), data_collator=collate, callbacks=[callback])
    trainer.train()
    return trainer, callback.monitor


def test_trainer_train_is_monitored_with_the_models_blank_and_vocabulary(tmp_path, capsys):
    trainer, monitor = train(tmp_path, 1e-3, 20, every=5, metrics_path=tmp_path / "m.jsonl",
                             report_path=tmp_path / "r.json")
    assert trainer.state.global_step == 20 and not monitor.monitor.should_stop
    assert monitor.monitor.blank == 7 and monitor.monitor.alphabet == [*"abcde|", "[UNK]", "<s>", "</s>"]
    out = capsys.readouterr().out
    assert "[ctcdoctor] step 20" in out and "WER" in out  # '|' is the word delimiter
    records = [json.loads(line) for line in (tmp_path / "m.jsonl").read_text().splitlines()]
    assert records[0]["meta"]["blank"] == 7 and records[0]["meta"]["reduction"] == "mean"
    by_step = {record["step"]: record for record in records[1:]}
    assert sorted(by_step) == list(range(1, 21))
    assert "eval_loss" in by_step[10] and "grad_norm" in by_step[5] and "cer" in by_step[15]
    logged = {entry["step"]: entry["loss"] for entry in trainer.state.log_history if "loss" in entry}
    mean = np.mean([by_step[step]["loss"] for step in range(1, 6)])
    assert logged[5] == pytest.approx(mean, rel=1e-3)  # the Trainer's logged mean over the same steps
    # the rate each step trained at, as the Trainer logs it (it was read after the scheduler stepped: one step late)
    rates = {entry["step"]: entry["learning_rate"] for entry in trainer.state.log_history if "learning_rate" in entry}
    assert {step: by_step[step]["lr"] for step in rates} == pytest.approx(rates) and by_step[1]["lr"] == 1e-3
    report = monitor.report
    # 20 steps leave this tiny model's outputs uniform: within the budget while it runs (no stop), and at the close
    # too short to judge (trial 27: an error after 20 steps contradicted the budget), told as info, "train longer"
    assert not [found for found in report.findings if found.severity.value == "error"]
    (info,) = [found for found in report.findings if found.code == "CTC224"]
    assert info.severity.value == "info" and "over steps 1-20" in info.message and "Too short to judge" in info.message
    assert info.hint.startswith("Train longer")
    assert [found.to_dict() for found in diagnose_run(tmp_path / "m.jsonl").findings] == [f.to_dict() for f in report.findings]


def test_a_nan_loss_hidden_from_the_trainers_log_stops_training(tmp_path):
    trainer, monitor = train(tmp_path, 50.0, 40, every=5, echo=False, metrics_path=tmp_path / "m.jsonl")
    assert trainer.state.global_step == 5 and monitor.monitor.stop_reason.code == "CTC200"
    losses = [json.loads(line)["loss"] for line in (tmp_path / "m.jsonl").read_text().splitlines()[1:]]
    assert "nan" in losses or "inf" in losses
    logged = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    assert logged and all(math.isfinite(value) for value in logged)  # logging_nan_inf_filter kept them out of the log


def test_the_alphabet_comes_from_the_tokenizer_without_the_blank(tmp_path):
    tokenizer = make_tokenizer(tmp_path)
    symbols, delimiter = tokenizer_alphabet(tokenizer, len(tokenizer), tokenizer.pad_token_id)
    assert symbols == [*"abcde|", "[UNK]", "<s>", "</s>"] and delimiter == "|"


def test_the_callbacks_check_report_joins_the_verdict_and_can_stop_before_training(tmp_path):
    from types import SimpleNamespace

    from ctcdoctor.findings import Finding, Report, Severity

    tokenizer = make_tokenizer(tmp_path)
    config = transformers.Wav2Vec2Config(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
                                         conv_dim=(16,), conv_kernel=(10,), conv_stride=(5,), num_conv_pos_embeddings=8,
                                         num_conv_pos_embedding_groups=2, pad_token_id=tokenizer.pad_token_id,
                                         vocab_size=len(tokenizer))
    monitor = TrainerMonitor(echo=False, tokenizer=tokenizer)
    monitor.attach(transformers.Wav2Vec2ForCTC(config))
    control = SimpleNamespace(should_training_stop=False)
    error = Finding("CTC101", Severity.ERROR, "pad_token_id is not the tokenizer's pad id", "pad_token_id=0, tokenizer: 7")
    assert monitor.preflight(Report("check", "model", (error,)), control) and control.should_training_stop
    assert monitor.on_train_end().findings == (error,)
