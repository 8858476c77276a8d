"""Train the bundled OCR example briefly on the CPU and write four small, real training logs.

Run:  python examples/runs/make_runs.py            (all four, about 4 minutes on one core)
      python examples/runs/make_runs.py --only healthy

Each run trains `examples/ocr_crnn.py`'s CRNN (27 classes, blank = 0) on synthetic word
images with a plain PyTorch loop and logs what a real run logs, in four formats:

| run | log | what goes wrong | expected verdict |
| --- | --- | --- | --- |
| `healthy` | `healthy/metrics.jsonl` (the monitor's JSONL) | nothing: Adam 2e-3, warm-up, cosine decay | no warning, no error |
| `lr_too_high` | `lr_too_high/lightning_logs/version_0/metrics.csv` (CSVLogger) | warm-up towards 0.4 (Adam) | CTC203, CTC214 |
| `blank_collapse` | `blank_collapse/events.out.tfevents.*` (SummaryWriter) | labels paired with the neighbouring image | CTC212 |
| `overfitting` | `overfitting/trainer_state.json` (TrainerState) | 32 training images, 800 steps | CTC207 overfitting |

CTC203: the loss diverged; CTC214: it diverged during the warm-up; CTC212: the blank plateau
never ends (a collate bug leaves nothing to learn but the label statistics).
Infos (CTC211: the early blank plateau ended; CTC213: constant learning rate through a
plateau) may come with them. `tests/training/test_logs_example_runs.py` checks each verdict
(and `tests/training/test_logs_cli.py` through `ctcdoctor logs`).

Needs torch; tensorboard for the TensorBoard run; lightning and transformers are used to
write their formats when installed (otherwise the same files are written by hand, in the
same format).
"""
from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # examples/: ocr_crnn

from ocr_crnn import CRNN, NUM_CLASSES, output_lengths  # noqa: E402

from ctcdoctor.ctc import cer, greedy_decode  # noqa: E402
from ctcdoctor.toydata import WordImageDataset  # noqa: E402
from ctcdoctor.training import monitor_format  # noqa: E402


@dataclass(frozen=True)
class Config:
    name: str
    steps: int
    lr: Callable[[int], float]
    """Learning rate at step s (1-based)."""
    train_size: int = 2048
    eval_size: int = 128
    eval_every: int = 25
    misaligned_labels: bool = False
    seed: int = 0


def warmup_cosine(peak: float, warmup: int, total: int) -> Callable[[int], float]:
    def lr(step: int) -> float:
        if step <= warmup:
            return peak * step / warmup
        progress = (step - warmup) / max(1, total - warmup)
        return peak * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * progress)))
    return lr


CONFIGS = {
    "healthy": Config("healthy", 600, warmup_cosine(2e-3, 30, 600)),
    # linear warm-up that would reach 0.4 at step 800: the loss learns, then diverges past ~0.15
    "lr_too_high": Config("lr_too_high", 500, lambda step: 0.4 * step / 800),
    "blank_collapse": Config("blank_collapse", 400, lambda step: 1e-3, misaligned_labels=True),
    "overfitting": Config("overfitting", 800, lambda step: 1e-3, train_size=32),
}


def evaluate(model: CRNN, batch) -> dict[str, float]:
    """Eval loss, greedy CER and argmax blank share on one batch, in eval mode."""
    images, targets, widths, lengths = batch
    model.eval()
    with torch.no_grad():
        out = model(images)
        frames = output_lengths(widths)
        loss = F.ctc_loss(out, targets, frames, lengths).item()
        decoded = greedy_decode(out, frames, blank=0)
        refs = [targets[i, : lengths[i]].tolist() for i in range(len(lengths))]
        errors = sum(cer(hyp, ref) * len(ref) for hyp, ref in zip(decoded, refs)) / sum(map(len, refs))
        argmax = out.argmax(-1)  # (T, N)
        valid = torch.arange(out.shape[0])[:, None] < frames[None, :]
        blank = ((argmax == 0) & valid).sum().item() / valid.sum().item()
    model.train()
    return {"loss": loss, "cer": errors, "blank_ratio": blank}


def train(config: Config) -> tuple[list[dict], dict]:
    """A plain loop; returns one record per step (eval metrics every `eval_every` steps) and facts."""
    torch.manual_seed(config.seed)
    train_set = WordImageDataset(n=config.train_size, seed=1)
    eval_set = WordImageDataset(n=config.eval_size, seed=2)
    collate = train_set.collate
    if config.misaligned_labels:
        def collate(batch, _collate=train_set.collate):
            images, targets, widths, lengths = _collate(batch)
            # the bug: labels shifted by one sample against their images
            return images, targets.roll(1, 0), widths, lengths.roll(1, 0)
    loader = DataLoader(train_set, batch_size=16, shuffle=True, collate_fn=collate,
                        generator=torch.Generator().manual_seed(config.seed))
    eval_batch = eval_set.collate([eval_set[i] for i in range(len(eval_set))])
    model = CRNN()
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr(1))
    records, step = [], 0
    while step < config.steps:
        for images, targets, widths, lengths in loader:
            step += 1
            lr = config.lr(step)
            for group in optimizer.param_groups:
                group["lr"] = lr
            out = model(images)
            loss = F.ctc_loss(out, targets, output_lengths(widths), lengths)
            optimizer.zero_grad()
            loss.backward()
            grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), float("inf")).item()
            optimizer.step()
            record = {"step": step, "loss": loss.item(), "lr": lr, "grad_norm": grad_norm,
                      "epoch": step * 16 / len(train_set)}
            if step == 1 or step % config.eval_every == 0:
                batch_metrics = evaluate(model, (images, targets, widths, lengths))
                held_out = evaluate(model, eval_batch)
                record.update(cer=batch_metrics["cer"], blank_ratio=batch_metrics["blank_ratio"],
                              eval_loss=held_out["loss"], eval_cer=held_out["cer"])
            records.append(record)
            if step >= config.steps:
                break
    label_length = float(sum(len(t) for t in train_set.targets) / len(train_set))
    return records, {"classes": NUM_CLASSES, "label_length": round(label_length, 3), "train_size": len(train_set)}


# ---------------------------------------------------------------- writers, one per format
def write_monitor(records: list[dict], facts: dict, folder: Path) -> Path:
    path = folder / "metrics.jsonl"
    keys = ("lr", "grad_norm", "cer", "blank_ratio", "eval_loss", "eval_cer")
    lines = [monitor_format.header(classes=facts["classes"], label_length=facts["label_length"], reduction="mean",
                                   blank=0)]
    lines += [monitor_format.record(r["step"], r["loss"], **{key: _round(r.get(key)) for key in keys}) for r in records]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _round(value: float | None, digits: int = 5) -> float | None:
    return None if value is None else float(f"{value:.{digits}g}")


def write_lightning(records: list[dict], facts: dict, folder: Path) -> Path:
    rows = []
    for r in records:
        rows.append({"step": r["step"] - 1, "train_loss": _round(r["loss"]), "lr-Adam": _round(r["lr"])})
        if "eval_loss" in r:
            rows.append({"step": r["step"] - 1, "epoch": int(r["epoch"]), "val_loss": _round(r["eval_loss"]),
                         "val_cer": _round(r["eval_cer"])})
    try:
        from lightning.pytorch.loggers import CSVLogger
    except ImportError:
        CSVLogger = None
    if CSVLogger is not None:
        logger = CSVLogger(str(folder), name="lightning_logs", version=0)
        for row in rows:
            step = row.pop("step")
            logger.log_metrics(row, step=step)
        logger.save()
        return Path(logger.log_dir) / "metrics.csv"
    # Lightning's format by hand: sorted columns, one row per logging call, empty cells where not logged
    path = folder / "lightning_logs" / "version_0" / "metrics.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    columns = sorted({key for row in rows for key in row})
    text = [",".join(columns)] + [",".join("" if row.get(c) is None else str(row[c]) for c in columns) for row in rows]
    path.write_text("\n".join(text) + "\n", encoding="utf-8")
    return path


def write_tensorboard(records: list[dict], facts: dict, folder: Path) -> Path:
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(log_dir=str(folder))
    for r in records:
        writer.add_scalar("Loss/train", r["loss"], r["step"])
        writer.add_scalar("LR", r["lr"], r["step"])
        if "eval_loss" in r:
            writer.add_scalar("Loss/val", r["eval_loss"], r["step"])
            writer.add_scalar("CER/val", r["eval_cer"], r["step"])
    writer.close()
    return next(folder.glob("events.out.tfevents.*"))


def write_trainer_state(records: list[dict], facts: dict, folder: Path, logging_steps: int = 10) -> Path:
    """What Hugging Face's Trainer keeps: the mean loss over each `logging_steps` window (rounded to 4
    digits), the grad norm and learning rate of the logging step, and eval entries."""
    history, window = [], []
    for r in records:
        window.append(r["loss"])
        if r["step"] % logging_steps == 0:
            history.append({"epoch": round(r["epoch"], 4), "grad_norm": r["grad_norm"], "learning_rate": r["lr"],
                            "loss": round(sum(window) / len(window), 4), "step": r["step"]})
            window = []
        if "eval_loss" in r and r["step"] > 1:
            history.append({"epoch": round(r["epoch"], 4), "eval_cer": r["eval_cer"], "eval_loss": r["eval_loss"],
                            "eval_runtime": 0.31, "eval_samples_per_second": 412.9, "eval_steps_per_second": 3.2,
                            "step": r["step"]})
    last = records[-1]
    history.append({"epoch": round(last["epoch"], 4), "step": last["step"], "total_flos": 0.0,
                    "train_loss": sum(r["loss"] for r in records) / len(records), "train_runtime": 61.0,
                    "train_samples_per_second": 210.0, "train_steps_per_second": 13.1})
    state = {"epoch": round(last["epoch"], 4), "global_step": last["step"], "max_steps": last["step"],
             "logging_steps": logging_steps, "eval_steps": 25, "save_steps": 500, "train_batch_size": 16,
             "num_train_epochs": math.ceil(last["epoch"]), "log_history": history}
    path = folder / "trainer_state.json"
    try:
        from transformers import TrainerState
    except ImportError:
        path.write_text(json.dumps(state, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    else:
        TrainerState(**state).save_to_json(str(path))
    return path


WRITERS = {
    "healthy": write_monitor,
    "lr_too_high": write_lightning,
    "blank_collapse": write_tensorboard,
    "overfitting": write_trainer_state,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", choices=sorted(CONFIGS), action="append", help="make only this run (repeatable)")
    parser.add_argument("--out", type=Path, default=HERE, help="folder for the runs (default: next to this script)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    for name in args.only or list(CONFIGS):
        started = time.perf_counter()
        records, facts = train(CONFIGS[name])
        folder = args.out / name
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        path = WRITERS[name](records, facts, folder)
        print(f"{name}: {len(records)} steps in {time.perf_counter() - started:.0f} s -> {path.relative_to(args.out)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
