"""ctcdoctor for PyTorch Lightning: `check` before training, then the monitor at every step.

    from ctcdoctor.integrations.lightning import CTCDoctorCallback

    trainer = lightning.Trainer(callbacks=[CTCDoctorCallback(report_path="ctcdoctor.json", alphabet=ALPHABET)])
    trainer.fit(module, train_loader)

With a LightningModule whose `forward(inputs)` returns the CTC output ((T, N, C) or (N, T, C)
log-probabilities or logits, or `(output, output_lengths)`) and a train dataloader that yields
batches of the `build()` protocol (`(inputs, targets, input_lengths, target_lengths)` or the
dict), nothing else is needed: at the start of training it runs `ctcdoctor.check` on the
module and one of its train batches (the random state is restored afterwards, so the run is
the one it would have been), then feeds the monitor from `on_train_batch_end` with the loss
that `training_step` returned, the learning rate, and, every `every` steps, the output of the
training forward pass (kept by a forward hook; the module is run again in eval mode when its
`training_step` does not call `self(...)`). Validation metrics whose names say held-out
(`val_loss`, `val_cer`) are recorded too. A verdict at or above `stop_on` sets
`trainer.should_stop` (agreed across processes under DDP, as EarlyStopping does). NeMo's
Lightning models work the same way when their batches follow the protocol.

Only the first process writes files and prints. Requires `ctcdoctor[lightning]`.
"""
from __future__ import annotations

import inspect
import os
from typing import Any

try:
    import lightning.pytorch as pl
    from lightning.pytorch.callbacks import Callback
except ImportError:  # pragma: no cover - the message names the extra
    try:
        import pytorch_lightning as pl  # type: ignore[no-redef]
        from pytorch_lightning.callbacks import Callback  # type: ignore[no-redef,assignment]
    except ImportError as error:
        raise ImportError(
            "ctcdoctor.integrations.lightning needs PyTorch Lightning: pip install 'ctcdoctor[lightning]'"
        ) from error

import torch

from ctcdoctor.training.capture import BatchOutputs, ForwardCapture
from ctcdoctor.training.monitor import DEFAULT_PATIENCE, Monitor, check_options

__all__ = ["CTCDoctorCallback"]


class CTCDoctorCallback(Callback):
    """Check the set-up at the start of training, then monitor every step; stop on a verdict at `stop_on`.

    `report_path`, `every`, `stop_on` as in every ctcdoctor callback; `check=False` skips the
    check; `blank`, `alphabet`, `output_lengths` (input lengths -> frames) and `layout` describe
    the model as a `Setup` does; `metrics_path` and `plot_path` and any other keyword go to
    `ctcdoctor.training.monitor.Monitor`. After `fit`, `monitor` holds the monitor and `report`
    the final `Report`.
    """

    def __init__(
        self,
        report_path: str | os.PathLike | None = None,
        every: int = 100,
        stop_on: str | None = "error",
        *,
        check: bool = True,
        blank: int = 0,
        alphabet: Any = None,
        output_lengths: Any = None,
        layout: str | None = None,
        **monitor_options: Any,
    ) -> None:
        super().__init__()
        # refused here, not in on_train_start: a bad option must not end fit()
        check_options(every, stop_on, layout or "TNC", monitor_options.get("patience", DEFAULT_PATIENCE),
                      monitor_options.get("reduction"))
        unknown = sorted(set(monitor_options) - set(inspect.signature(Monitor).parameters))
        if unknown:
            raise TypeError(f"CTCDoctorCallback got unknown keyword(s) {', '.join(unknown)}: expected the callback's "
                            "own or a Monitor's (metrics_path, plot_path, patience, ...)")
        self.report_path, self.every, self.stop_on, self.check = report_path, every, stop_on, check
        self.blank, self.alphabet, self.output_lengths_fn, self.layout = blank, alphabet, output_lengths, layout
        self.monitor_options = monitor_options
        self.monitor: Monitor | None = None
        self.report: Any = None
        self._capture: ForwardCapture | None = None
        self._grad_norm: Any = None
        self._lr: Any = None
        self._outputs = BatchOutputs(blank, output_lengths, layout)

    # ------------------------------------------------------------------ start
    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        zero = trainer.is_global_zero
        options = dict(self.monitor_options)
        if not zero:  # the other processes measure and vote on stopping, but write and print nothing
            options.update(echo=False, metrics_path=None, plot_path=None)
        options.setdefault("name", f"{type(pl_module).__name__} (Lightning)")
        options.setdefault("trainer", "lightning")
        self.monitor = Monitor(every=self.every, report_path=self.report_path if zero else None, stop_on=self.stop_on,
                               blank=self.blank, alphabet=self.alphabet, **options)
        self._capture = ForwardCapture(pl_module)
        if self.check:
            self._check(trainer, pl_module)

    def _check(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        import ctcdoctor
        from ctcdoctor.protocol import Setup

        loader: Any = trainer.train_dataloader
        if isinstance(loader, (list, tuple, dict)):  # several train loaders: check the first
            loader = next(iter(loader.values())) if isinstance(loader, dict) else loader[0]
        setup = Setup(model=pl_module, loader=loader, blank=self.blank, alphabet=self.alphabet,
                      output_lengths=self.output_lengths_fn, layout=self.layout)
        devices = [torch.cuda.current_device()] if torch.cuda.is_available() else []
        assert self.monitor is not None
        try:
            with torch.random.fork_rng(devices=devices):  # the run stays the one it would have been
                report = ctcdoctor.check(setup, max_batches=1, scan_batches=4)
        except Exception as error:  # noqa: BLE001 - batches it cannot read: training goes on, unchecked
            hint = getattr(error, "hint", "")
            self.monitor.notice(f"could not check this set-up before training ({getattr(error, 'message', error)}"
                                f"{'; ' + hint if hint else ''}); training goes on unchecked", key="check")
            return
        # Lightning reads should_stop before the first batch: the stop comes before step 1
        if self.monitor.preflight(report):
            trainer.should_stop = self._agree(trainer, True)

    # ------------------------------------------------------------------ every step
    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int) -> None:
        if self.monitor is not None and self._capture is not None:
            self._capture.arm(self.monitor.wants_outputs(trainer.global_step + 1))
        optimizers = trainer.optimizers
        # the rate this step trains at: Lightning steps a per-step scheduler before on_train_batch_end
        self._lr = optimizers[0].param_groups[0]["lr"] if optimizers else None

    def on_before_optimizer_step(self, trainer: pl.Trainer, pl_module: pl.LightningModule, optimizer: Any) -> None:
        if self.monitor is None or not self.monitor.wants_outputs(trainer.global_step + 1):
            return
        grads = [p.grad for p in pl_module.parameters() if p.grad is not None]
        if grads:
            self._grad_norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g.detach()) for g in grads]))

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        if self.monitor is None or self.monitor.closed:
            return
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        if loss is None:
            return
        step = trainer.global_step
        due = self.monitor.wants_outputs(step)
        arguments: dict[str, Any] = {}
        if due:
            captured = self._capture.take() if self._capture is not None else None
            try:
                arguments = self._outputs.arguments(batch, captured, pl_module)
            except Exception as error:  # noqa: BLE001 - a batch it cannot read: the loss alone, training goes on
                self.monitor.notice(f"the outputs of step {step} were not measured ({type(error).__name__}: "
                                    f"{getattr(error, 'message', error)}): the batches do not follow the build() "
                                    "protocol, (inputs, targets, input_lengths, target_lengths) or that dict; the "
                                    "loss curve is still judged", key="lightning-outputs")
            arguments["grad_norm"], self._grad_norm = self._grad_norm, None
        optimizers = trainer.optimizers
        self.monitor.use_optimizer(optimizers[0] if optimizers else None)  # learning-rate advice depends on it
        stop = self.monitor.update(step, loss, lr=self._lr, **arguments)
        if due and self._agree(trainer, stop):
            trainer.should_stop = True

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.monitor is None or trainer.sanity_checking:
            return
        from ctcdoctor.training.names import held_out, words

        values = {key: value for key, value in trainer.callback_metrics.items()
                  if held_out(words(key)) and getattr(value, "numel", lambda: 1)() == 1}
        if values:
            self.monitor.log(trainer.global_step, **values)

    @staticmethod
    def _agree(trainer: pl.Trainer, stop: bool) -> bool:
        """Every process stops when one of them found a verdict (all of them call this at the same steps)."""
        return bool(trainer.strategy.reduce_boolean_decision(bool(stop), all=False))

    # ------------------------------------------------------------------ end
    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._finish()

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        self._finish()

    def _finish(self) -> None:
        if self._capture is not None:
            self._capture.remove()
            self._capture = None
        if self.monitor is not None and not self.monitor.closed:
            self.report = self.monitor.close()
