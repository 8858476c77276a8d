"""`CTCDoctorCallback`: run `ctcdoctor check` when a Hugging Face `Trainer` starts, and stop a broken run.

    from ctcdoctor.integrations.transformers import CTCDoctorCallback

    trainer = Trainer(model=model, args=args, train_dataset=train, data_collator=collator,
                      processing_class=processor, callbacks=[CTCDoctorCallback()])
    trainer.train()

At `on_train_begin` the callback checks the trainer's model (a transformers `*ForCTC` model, read through
ctcdoctor's Hugging Face conventions) on the first batches of the train data (the train dataloader's own data
set and collator, in data set order, on a loader of its own: the trainer's loader, its sampler and the random
state are left untouched), prints the report, writes the JSON report (`ctcdoctor_check.json` in
`args.output_dir`, or `report_path`), and, when a finding reaches `stop_on`, stops training before its first
step: `Trainer` reads `control.should_training_stop` only after an optimizer step (which would train once on the
broken set-up: an infinite loss that makes the weights NaN, or the model's own error), so the callback closes its
monitor (the verdict is printed) and raises `TrainingStopped` (`ctcdoctor.errors`) out of `trainer.train()`, with
the findings and the report in its message. `stop_on=None` reports and never stops.

Under several processes (torchrun, accelerate) the check runs once, on the process of rank 0; its decision is
broadcast, so that every rank stops together (or none does). A set-up ctcdoctor cannot check (a model without
a CTC head, batches it cannot read) is reported and training goes on.

This module imports transformers at import time: import it only where you use the callback.
"""
from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

try:
    from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments
except ImportError as error:  # pragma: no cover - exercised in a subprocess without transformers
    raise ImportError(
        f"ctcdoctor.integrations.transformers needs transformers, which cannot be imported ({error}). "
        "Install the Hugging Face extra: pip install 'ctcdoctor[hf]'"
    ) from error

from ctcdoctor.errors import TrainingStopped
from ctcdoctor.findings import Report, Severity

__all__ = ["CTCDoctorCallback", "REPORT_NAME", "TrainingStopped"]

#: The JSON report's file name in `args.output_dir`.
REPORT_NAME = "ctcdoctor_check.json"
#: `stop_on` values: the lowest severity that stops training (None never stops).
STOP_LEVELS = ("error", "warning", "info")


def check_loader(train_dataloader: Any, batch_size: int) -> Any:
    """A plain loader over the train dataloader's data set and collate function, in data set order.

    Iterating the trainer's own loader would move its sampler's random state and, under accelerate, start a
    collective that the other ranks are not in; this loader does neither."""
    from torch.utils.data import DataLoader, IterableDataset

    dataset = getattr(train_dataloader, "dataset", None)
    if dataset is None:
        return train_dataloader  # any iterable of batches: read it as it is
    size = getattr(train_dataloader, "batch_size", None) or batch_size
    shuffle = False if isinstance(dataset, IterableDataset) else None
    return DataLoader(dataset, batch_size=size, shuffle=shuffle, collate_fn=getattr(train_dataloader, "collate_fn", None))


def share_decision(decision: dict[str, Any] | None) -> dict[str, Any]:
    """Rank 0's decision on every rank (a no-op in a single process)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        box = [decision]
        dist.broadcast_object_list(box, src=0)
        decision = box[0]
    return decision or {"stop": False}


class CTCDoctorCallback(TrainerCallback):
    """Check the set-up when training begins, then monitor the run; stop it when a finding reaches `stop_on`.

    A finding of the check at `stop_on` stops training before its first step by raising `TrainingStopped` out of
    `trainer.train()`; a verdict of the monitor at `stop_on` stops it after the step it was found at.

    Args:
        stop_on: "error" (default), "warning" or "info": the lowest severity that stops training; None reports
            and never stops.
        report_path: the JSON report: the training monitor's final report, which holds the check's findings too
            (without a monitor, `every=None`: the check's report). The check's own report is always written to
            `args.output_dir / "ctcdoctor_check.json"` as well.
        every: the training monitor (`ctcdoctor.integrations.transformers_monitor.TrainerMonitor`) measures the
            model's outputs every this many steps (default 100, as the Lightning and Keras callbacks); None: no
            monitor, the check alone.
        check: run `ctcdoctor check` when training begins (default True).
        max_batches: batches the model runs on; scan_batches: batches the label and length checks read.
        select, ignore: finding codes or prefixes, as `ctcdoctor check --select/--ignore`.
        print_report: print the check's report on the rank-0 process's stdout.
        monitor_options: passed to the monitor (`metrics_path`, `plot_path`, `patience`, ...).
    """

    def __init__(
        self,
        *,
        stop_on: str | None = "error",
        report_path: str | Path | None = None,
        every: int | None = 100,
        check: bool = True,
        max_batches: int = 2,
        scan_batches: int = 8,
        select: Sequence[str] = (),
        ignore: Sequence[str] = (),
        print_report: bool = True,
        **monitor_options: Any,
    ) -> None:
        if stop_on is not None and str(stop_on).lower() not in STOP_LEVELS:
            raise ValueError(f"stop_on={stop_on!r}: use one of {STOP_LEVELS} or None")
        if every is not None and (isinstance(every, bool) or int(every) < 1):
            raise ValueError(f"every={every!r}: use a number of steps >= 1, or None")
        self.stop_on = None if stop_on is None else Severity.parse(str(stop_on).lower())
        self.report_path = None if report_path is None else Path(report_path)
        self.every = None if every is None else int(every)
        self.check = check
        self.max_batches, self.scan_batches = max_batches, max(scan_batches, max_batches)
        self.select, self.ignore = tuple(select), tuple(ignore)
        self.print_report = print_report
        self.monitor_options = monitor_options
        self.report: Report | None = None
        """The report of the start-of-training check (on the rank-0 process), once it ran."""
        self.final_report: Report | None = None
        """The monitor's final report (check findings included), after training."""
        self.monitor: Any = None
        """The `TrainerMonitor` while training runs (None with `every=None`, or for a model it cannot read)."""
        self.stopped = False
        """Whether the start-of-training check stopped training (on every rank)."""
        self.written: Path | None = None

    # ------------------------------------------------------------------ the trainer's events

    def on_train_begin(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> TrainerControl:
        decision = None
        if self.check and state.is_world_process_zero:
            decision = self._decide(args, kwargs)
        decision = share_decision(decision) if self.check else {"stop": False}
        if self.every is not None:
            self._start_monitor(args, state, control, kwargs)
        if self.report is not None and self.monitor is None:
            self._show(self.report)  # with a monitor, its preflight prints the check's findings
        if decision["stop"]:
            control.should_training_stop = True
            self.stopped = True
            self._stop_before_the_first_step(args, state, control, decision)
        return control

    def _stop_before_the_first_step(self, args: TrainingArguments, state: TrainerState, control: TrainerControl,
                                    decision: dict[str, Any]) -> None:
        """Close the monitor (its verdict and files) and raise `TrainingStopped`: the Trainer reads
        `should_training_stop` only after a step, and a step on a broken set-up does harm."""
        if self.monitor is not None:
            self.final_report = self.monitor.on_train_end(args, state, control)
        codes = ", ".join(decision.get("codes") or []) or "findings"
        level = self.stop_on.value if self.stop_on is not None else "error"
        where = f"; report in {self.written}" if self.written is not None else " (report on the process of rank 0)"
        raise TrainingStopped(
            f"ctcdoctor stopped training before its first step: the check before training found {codes} "
            f"(at or above stop_on={level!r}){where}",
            "Fix the set-up as the report says, or pass CTCDoctorCallback(stop_on=None) to report the findings "
            "and train anyway.")

    def on_step_begin(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any) -> None:
        if self.monitor is not None:
            self.monitor.on_step_begin(args, state, control, **kwargs)

    def on_step_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any) -> None:
        if self.monitor is not None:
            self.monitor.on_step_end(args, state, control, **kwargs)

    def on_log(self, args: TrainingArguments, state: TrainerState, control: TrainerControl,
               logs: dict[str, Any] | None = None, **kwargs: Any) -> None:
        if self.monitor is not None:
            self.monitor.on_log(args, state, control, logs)

    def on_evaluate(self, args: TrainingArguments, state: TrainerState, control: TrainerControl,
                    metrics: dict[str, Any] | None = None, **kwargs: Any) -> None:
        if self.monitor is not None:
            self.monitor.on_evaluate(args, state, control, metrics)

    def on_train_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any) -> None:
        if self.monitor is not None:
            self.final_report = self.monitor.on_train_end(args, state, control)

    def _start_monitor(self, args: TrainingArguments, state: TrainerState, control: TrainerControl,
                       kwargs: dict[str, Any]) -> None:
        """The training monitor, fed by this callback's events; the check's findings join its verdicts."""
        from ctcdoctor.integrations.transformers_monitor import TrainerMonitor

        model = kwargs.get("model")
        processor = kwargs.get("processing_class") or kwargs.get("tokenizer")
        tokenizer = getattr(processor, "tokenizer", None) or (processor if hasattr(processor, "convert_ids_to_tokens") else None)
        monitor = TrainerMonitor(self.report_path, self.every or 100, None if self.stop_on is None else self.stop_on.value,
                                 tokenizer=tokenizer, **self.monitor_options)
        try:
            monitor.attach(model, args, state)
        except Exception as error:  # not a Hugging Face model the monitor can read: the check alone
            if state.is_world_process_zero:
                self._say(f"ctcdoctor: no training monitor for {type(model).__name__} ({type(error).__name__}: {error}).")
            return
        self.monitor = monitor
        if self.report is not None:
            monitor.preflight(self.report, control, raises=True)  # on_train_begin raises TrainingStopped on a stop

    # ------------------------------------------------------------------ rank 0

    def _decide(self, args: TrainingArguments, kwargs: dict[str, Any]) -> dict[str, Any]:
        from ctcdoctor.errors import UserInputError

        try:
            report = self._check(args, kwargs)
        except UserInputError as error:
            self._say(f"ctcdoctor could not check this set-up: {error.message}" + (f" ({error.hint})" if error.hint else "")
                      + "; training goes on unchecked.")
            return {"stop": False, "reason": error.message}
        except Exception as error:  # ctcdoctor's own failure must not end a training run
            self._say(f"ctcdoctor crashed while checking ({type(error).__name__}: {error}); training goes on unchecked. "
                      "Please report it with the traceback of `ctcdoctor check --debug`.")
            return {"stop": False, "reason": f"{type(error).__name__}: {error}"}
        self.report = report
        self.written = self._write(args, report)
        stop_on = self.stop_on
        stopping = [item for item in report.findings if stop_on is not None and item.severity.rank >= stop_on.rank]
        if stopping and stop_on is not None:
            codes = ", ".join(sorted({item.code for item in stopping}))
            self._say(f"ctcdoctor: stopping training: {len(stopping)} finding(s) at or above {stop_on.value} "
                      f"({codes}); report in {self.written}.")
        return {"stop": bool(stopping), "codes": sorted({item.code for item in stopping})}

    def _check(self, args: TrainingArguments, kwargs: dict[str, Any]) -> Report:
        from ctcdoctor.config import Settings, as_code_list
        from ctcdoctor.engine import check_setup
        from ctcdoctor.errors import UserInputError
        from ctcdoctor.load.spec import as_setup
        from ctcdoctor.protocol import Setup

        model, dataloader = kwargs.get("model"), kwargs.get("train_dataloader")
        if model is None or dataloader is None:
            raise UserInputError("the trainer passed no model or no train dataloader to on_train_begin",
                                 "Give the Trainer a train_dataset.")
        processor = kwargs.get("processing_class") or kwargs.get("tokenizer")
        loader = check_loader(dataloader, int(args.per_device_train_batch_size))
        setup = as_setup(Setup(model=model, loader=loader, processor=processor), "the trainer's set-up")
        settings = Settings(select=as_code_list(list(self.select)), ignore=as_code_list(list(self.ignore)),
                            max_batches=self.max_batches, scan_batches=self.scan_batches)
        return check_setup(setup, settings, spec="Trainer")

    def _write(self, args: TrainingArguments, report: Report) -> Path:
        from ctcdoctor.render.json import render_json

        own = self.report_path if self.every is None else None  # with a monitor, report_path is the monitor's
        path = own or Path(args.output_dir or ".") / REPORT_NAME
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(render_json(report) + "\n", encoding="utf-8")
        return path

    def _show(self, report: Report) -> None:
        if not self.print_report:
            return
        from rich.console import Console

        from ctcdoctor.render.console import render_console

        # In a terminal its width; in a log (the usual place of a training run's output), one line per message.
        console = Console(file=sys.stdout) if sys.stdout.isatty() else Console(file=sys.stdout, width=100_000, soft_wrap=True)
        render_console(report, console)

    def _say(self, text: str) -> None:
        if self.print_report:
            print(text, file=sys.stdout, flush=True)
