"""The training monitor inside a Hugging Face `Trainer`: what `CTCDoctorCallback` calls.

`ctcdoctor.integrations.transformers.CTCDoctorCallback` (the `TrainerCallback`, which also runs
`ctcdoctor.check` at `on_train_begin`) owns one `TrainerMonitor` and forwards its events:

    monitor = TrainerMonitor(report_path=..., every=100, stop_on="error", processor=processor)
    on_train_begin(args, state, control, model=..., **kw):  monitor.attach(model, args, state)
                                                            monitor.preflight(check_report, control)  # optional
    on_step_begin(args, state, control, **kw):               monitor.on_step_begin(args, state, control, **kw)
    on_step_end(args, state, control, **kw):                 monitor.on_step_end(args, state, control, **kw)
    on_log(args, state, control, logs=None, **kw):           monitor.on_log(args, state, control, logs)
    on_evaluate(args, state, control, metrics=None, **kw):   monitor.on_evaluate(args, state, control, metrics)
    on_train_end(args, state, control, **kw):                monitor.on_train_end(args, state, control)

How it gets what the Trainer does not hand to callbacks: a forward hook on the model (with its
keyword arguments) keeps the loss of every training forward pass (detached, not read back
until an evaluation, and before the Trainer's `logging_nan_inf_filter` drops NaN/inf losses
from the logged mean) and, on the step the monitor evaluates, the `logits`, the `labels`
(-100 and the blank dropped, as transformers 5's CTC loss drops them) and the mask the
model's `forward` takes (`attention_mask`; OmniASR's `padding_mask`), whose sums give the output
lengths by the model's own formula (`_get_feat_extract_output_lengths`, or
`_get_subsampling_output_length` for Parakeet, LASR, OmniASR and Granite Speech 5), as the model's
loss computes them: the padded frames are not decoded. The step's loss is the mean over its
gradient-accumulation micro-batches. The blank is the config attribute the model's loss takes
(`config.pad_token_id`; OmniASR's `config.blank_token_id`), the classes `config.vocab_size`, the reduction
`config.ctc_loss_reduction`; the alphabet and the word delimiter come from the tokenizer (or
the processor's). The learning rate is read from the optimizer at `on_step_begin` (the rate the step
trains at, as the Trainer logs it: by `on_step_end` the scheduler has stepped), the gradient norm from
the Trainer's logs. What it cannot read (an output it cannot measure) is a warning, never an error in
the training loop.

Stopping: `on_step_end` sets `control.should_training_stop` when a verdict reaches `stop_on`; the
Trainer stops after that step. A check finding given to `preflight` cannot stop the Trainer before its
first step that way (it reads the flag only after a step): `CTCDoctorCallback` raises `TrainingStopped`.
Under DDP every process measures its own batch and the stop decision is agreed with an
all-reduce at each evaluation step (every process evaluates at the same steps), so all of them
stop together; only the main process (`state.is_world_process_zero`) prints and writes files.
"""
from __future__ import annotations

import os
from typing import Any

try:
    import transformers  # noqa: F401 - the dependency this module is for
except ImportError as error:  # pragma: no cover - the message names the extra
    raise ImportError("ctcdoctor.integrations.transformers_monitor needs transformers: pip install 'ctcdoctor[hf]'") from error

import torch

from ctcdoctor.findings import Report
from ctcdoctor.training.monitor import Monitor

__all__ = ["TrainerMonitor", "tokenizer_alphabet"]


def tokenizer_alphabet(tokenizer: Any, classes: int, blank: int) -> tuple[list[str], str | None]:
    """(symbols of the non-blank classes in class order, word delimiter) from a CTC tokenizer."""
    tokens = tokenizer.convert_ids_to_tokens(list(range(classes)))
    symbols = [token if isinstance(token, str) else f"<{index}>" for index, token in enumerate(tokens)]
    delimiter = getattr(tokenizer, "word_delimiter_token", None)
    return [symbol for index, symbol in enumerate(symbols) if index != blank], delimiter


class TrainerMonitor:
    """The monitor's side of the Hugging Face callback (see the module docstring)."""

    def __init__(
        self,
        report_path: str | os.PathLike | None = None,
        every: int = 100,
        stop_on: str | None = "error",
        *,
        tokenizer: Any = None,
        processor: Any = None,
        **monitor_options: Any,
    ) -> None:
        self.report_path, self.every, self.stop_on = report_path, every, stop_on
        self.tokenizer = tokenizer if tokenizer is not None else getattr(processor, "tokenizer", None)
        self.monitor_options = monitor_options
        self.monitor: Monitor | None = None
        self.report: Report | None = None
        self._model: Any = None
        self._mask_key = "attention_mask"
        self._handle: Any = None
        self._losses: list[torch.Tensor] = []
        self._armed = False
        self._captured: dict[str, Any] | None = None
        self._grad_norm: float | None = None
        self._lr: float | None = None

    # ------------------------------------------------------------------ set-up
    def attach(self, model: Any, args: Any = None, state: Any = None) -> None:
        """Hook the model and create the monitor from its config (call at on_train_begin)."""
        from ctcdoctor.frameworks.hf_model import blank_id, forward_keys, mask_key

        config = model.config
        found = blank_id(model)  # config.pad_token_id, or the attribute the model's loss takes (OmniASR: blank_token_id)
        blank = found if found is not None else 0
        classes = int(getattr(config, "vocab_size", 0)) or None
        options: dict[str, Any] = {"blank": blank, "classes": classes, "name": f"{type(model).__name__} (Trainer)"}
        reduction = getattr(config, "ctc_loss_reduction", None)
        if reduction in ("mean", "sum"):
            options["reduction"] = reduction
        if self.tokenizer is not None and classes:
            options["alphabet"], options["word_delimiter"] = tokenizer_alphabet(self.tokenizer, classes, blank)
        options["trainer"] = "huggingface"  # its NaN filter hides non-finite losses from its own log (CTC202)
        options.update(self.monitor_options)
        main = state is None or bool(getattr(state, "is_world_process_zero", True))
        if not main:
            options.update(echo=False, metrics_path=None, plot_path=None)
        self.monitor = Monitor(every=self.every, report_path=self.report_path if main else None, stop_on=self.stop_on,
                               **options)
        self._model = model
        try:
            self._mask_key = mask_key(forward_keys(model))  # attention_mask, or padding_mask (OmniASR)
        except (TypeError, ValueError):  # a forward without a readable signature: the collators' key
            self._mask_key = "attention_mask"
        self._handle = model.register_forward_hook(self._hook, with_kwargs=True)

    def preflight(self, report: Report, control: Any = None, *, raises: bool = False) -> bool:
        """Hand the monitor the `ctcdoctor.check` report the callback made at on_train_begin (after `attach`):
        its findings join every verdict and count for `stop_on`; sets `control.should_training_stop` and
        returns True when they reach it. The Trainer reads that flag only after a step, so the monitor says the
        run stops after step 1; `raises=True`: the caller raises before it (as `CTCDoctorCallback` does, with
        `TrainingStopped`), and the monitor says the run stops before step 1."""
        if self.monitor is None:
            raise RuntimeError("TrainerMonitor.preflight() before attach()")
        stop = self.monitor.preflight(report, None if raises else "the Trainer reads should_training_stop after a step")
        if stop and control is not None:
            control.should_training_stop = True
        return stop

    def _hook(self, module: Any, args: tuple, kwargs: dict, output: Any) -> None:
        if not module.training:
            return  # evaluation passes are not training steps
        try:
            self._keep(args, kwargs, output)
        except Exception as error:  # noqa: BLE001 - inside the model's forward: never an error there
            if self.monitor is not None:
                self.monitor.notice(f"could not read the model's output ({type(error).__name__}: {error}); "
                                    "training goes on", key="hf-hook")

    def _keep(self, args: tuple, kwargs: dict, output: Any) -> None:
        loss = getattr(output, "loss", None) if not isinstance(output, dict) else output.get("loss")
        if loss is not None:
            self._losses.append(loss.detach())
        if self._armed:
            logits = getattr(output, "logits", None) if not isinstance(output, dict) else output.get("logits")
            labels = kwargs.get("labels", args[1] if len(args) > 1 else None)
            if logits is not None and labels is not None:
                self._captured = {"logits": logits.detach(), "labels": labels.detach(),
                                  "mask": kwargs.get(self._mask_key)}

    # ------------------------------------------------------------------ events
    def on_step_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.monitor is not None:
            self._armed = self.monitor.wants_outputs(state.global_step + 1)
            # the rate this step trains at (the Trainer logs the same): by on_step_end the scheduler has stepped
            optimizer = kwargs.get("optimizer")
            groups = getattr(optimizer, "param_groups", None)
            self._lr = groups[0]["lr"] if groups else None

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> bool:
        """Feed the step to the monitor; set `control.should_training_stop` on a verdict at `stop_on`. Returns it."""
        if self.monitor is None or self.monitor.closed or not self._losses:
            return False
        step = state.global_step
        due = self.monitor.wants_outputs(step)
        loss = torch.cat([loss.float().reshape(-1) for loss in self._losses]).mean()  # any shape: never an error here
        self._losses = []
        arguments: dict[str, Any] = {}
        if due and self._captured is not None:
            try:
                arguments = self._outputs()
            except Exception as error:  # noqa: BLE001 - an output it cannot read: the loss alone, training goes on
                self.monitor.notice(f"the outputs of step {step} were not measured ({type(error).__name__}: {error}); "
                                    "the loss curve is still judged", key="hf-outputs")
        self._captured, self._armed = None, False
        optimizer = kwargs.get("optimizer")
        lr = self._lr
        if lr is None and optimizer is not None:  # fed without on_step_begin: the rate after the scheduler's step
            lr = optimizer.param_groups[0]["lr"]
        self._lr = None
        self.monitor.use_optimizer(optimizer)  # learning-rate advice depends on it
        stop = self.monitor.update(step, loss, lr=lr, **arguments)
        if due:
            stop = self._agree(stop, loss.device)
        if stop:
            control.should_training_stop = True
        return stop

    def _outputs(self) -> dict[str, Any]:
        assert self._captured is not None and self.monitor is not None
        from ctcdoctor.frameworks.hf_model import length_method, output_lengths

        logits, labels, mask = self._captured["logits"], self._captured["labels"], self._captured["mask"]
        keep = (labels >= 0) & (labels != self.monitor.blank)
        frames = None
        if mask is not None and length_method(self._model) is not None:
            # The model's own formula on each sample's valid length (the mask is (N, time) for audio and features
            # alike), as its loss counts the frames: decodes stop at each sample's real frame count.
            frames = output_lengths(self._model, mask.sum(-1)).clamp(max=logits.shape[1]).to(logits.device)
        return {"logits": logits, "targets": labels[keep], "target_lengths": keep.sum(-1), "output_lengths": frames,
                "layout": "NTC"}

    @staticmethod
    def _agree(stop: bool, device: torch.device) -> bool:
        """Any process's stop stops them all (an all-reduce; every process evaluates at the same steps)."""
        if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
            return stop
        flag = torch.tensor([int(stop)], device=device)
        torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
        return bool(flag.item())

    def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kwargs: Any) -> None:
        """The Trainer's gradient norm of the logging step joins the monitor's record of that step."""
        if self.monitor is not None and logs and isinstance(logs.get("grad_norm"), (int, float)):
            self.monitor.log(state.global_step, grad_norm=float(logs["grad_norm"]))

    def on_evaluate(self, args: Any, state: Any, control: Any, metrics: dict[str, Any] | None = None, **kwargs: Any) -> None:
        """eval_loss, eval_wer, eval_cer... join the record of the step."""
        if self.monitor is None or not metrics:
            return
        values = {key: float(value) for key, value in metrics.items() if key.startswith("eval_")
                  and isinstance(value, (int, float)) and not isinstance(value, bool)
                  and not key.endswith(("_runtime", "_per_second"))}
        if values:
            self.monitor.log(state.global_step, **values)

    def on_train_end(self, args: Any = None, state: Any = None, control: Any = None, **kwargs: Any) -> Report | None:
        """Close the monitor (final verdict, files, plot) and remove the hook. Returns the final report."""
        if self._handle is not None:
            self._handle.remove()
            self._handle = None
        if self.monitor is not None and not self.monitor.closed:
            self.report = self.monitor.close()
        return self.report
