"""Hugging Face `trainer_state.json`: the Trainer's `log_history`.

Each entry is one logging call: training entries carry `loss`, `grad_norm`,
`learning_rate`, `epoch`, `step`; evaluation entries carry `eval_loss`, `eval_wer`, ...;
the last entry is a summary (`train_runtime`, `train_loss`: the mean over the whole run),
which is not a curve and is skipped.

What the file cannot show: with `logging_nan_inf_filter=True` (the default) the Trainer
leaves NaN/inf losses out of the logged mean, so a run with non-finite steps can log a
clean loss. The gradient norm of the logging step is logged as computed, so a NaN there
is the trace left (rule CTC202).
"""
from __future__ import annotations

import json
import math
from pathlib import Path

from ctcdoctor.errors import UserInputError
from ctcdoctor.training.series import Run, Series

SKIPPED = {"step", "epoch", "total_flos", "train_runtime", "train_samples_per_second", "train_steps_per_second", "train_loss"}
NAN_FILTER_NOTE = (
    "Hugging Face's Trainer leaves NaN/inf losses out of the logged loss (logging_nan_inf_filter=True): "
    "non-finite steps show only where grad_norm is logged"
)


def _is_summary(entry: dict) -> bool:
    return "train_runtime" in entry or "total_flos" in entry


def read_trainer_state(path: Path) -> Run:
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise UserInputError(
            f"{path} is not valid JSON ({error.msg} at line {error.lineno}): expected a Hugging Face trainer_state.json"
        ) from None
    history = state.get("log_history") if isinstance(state, dict) else None
    if not isinstance(history, list):
        keys = ", ".join(sorted(state)[:8]) if isinstance(state, dict) else type(state).__name__
        raise UserInputError(f"{path} has no log_history (found {keys}): expected a Hugging Face trainer_state.json")
    columns: dict[str, tuple[list[float], list[float]]] = {}
    entries = 0
    for index, entry in enumerate(history):
        if not isinstance(entry, dict) or _is_summary(entry):
            continue
        step = entry.get("step", index)
        if not isinstance(step, (int, float)) or isinstance(step, bool):
            continue
        entries += 1
        for key, value in entry.items():
            if key in SKIPPED or key.endswith(("_runtime", "_per_second")):
                continue
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                column = columns.setdefault(key, ([], []))
                column[0].append(float(step))
                column[1].append(float(value))
    if not entries:
        raise UserInputError(
            f"{path} has an empty log_history: expected entries such as {{\"loss\": 2.3, \"step\": 10}} "
            "(the Trainer logs every logging_steps steps)"
        )
    scalars = {key: Series.from_points(key, steps, values) for key, (steps, values) in columns.items()}
    meta = {key: state[key] for key in ("global_step", "max_steps", "logging_steps", "eval_steps", "best_metric",
                                         "best_model_checkpoint", "num_train_epochs") if key in state}
    notes = []
    losses = scalars.get("loss")
    if losses is not None and all(math.isfinite(value) for value in losses.values):
        notes.append(NAN_FILTER_NOTE)
    return Run(str(path), "huggingface", scalars, meta=meta, notes=tuple(notes))
