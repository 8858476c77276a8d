"""ctcdoctor for Keras 3: the training monitor as a `keras.callbacks.Callback`, on any backend.

    from ctcdoctor.integrations.keras import CTCDoctorCallback

    model.compile(optimizer="adam", loss=keras.losses.CTC())
    model.fit(x, y, callbacks=[CTCDoctorCallback(report_path="ctcdoctor.json", data=(x[:16], y[:16]), alphabet=ALPHABET)])

Keras does not hand a callback the batch it trained on, so the outputs are measured on a few
fixed samples given as `data=(inputs, targets)` (targets padded with the blank, 0, as
`keras.losses.CTC` takes them) or `(inputs, targets, target_lengths[, output_lengths])`; every
`every` steps the model is run on them in inference mode and its output ((N, T, C)
probabilities or logits, told apart by their values) is turned into log-probabilities with
`keras.ops`. The loss of each step is recovered from Keras' running mean (`logs["loss"]` is
the mean over the epoch so far: the loss tracker's total and count give each batch's own
value). Without `data` the monitor judges the loss curve alone. The learning rate is read at
every `on_train_batch_begin` (a schedule's rate for the step about to run; on the torch backend
a copy of the tensor, read back with the losses at the next evaluation, so no step waits for
the device). A verdict at or above
`stop_on` sets `model.stop_training`, which Keras reads after each batch. At the start of `fit`
a softmax head fed to `keras.losses.CTC` (which applies log_softmax itself) is reported as
CTC020 (`keras_head`); with `stop_on="error"` fit stops after its first batch (Keras runs it
before it reads the flag), and the monitor says "stop at step 1".

The blank is class 0 by default (`keras.ops.ctc_loss(mask_index=0)`, `keras.losses.CTC`); pass
`blank=C-1` for `tf.nn.ctc_loss(blank_index=-1)` or Keras 2's `ctc_batch_cost`. Requires
`ctcdoctor[keras]` (Keras 3 and a backend: torch, jax or tensorflow).
"""
from __future__ import annotations

import math
import os
from typing import Any

try:
    import keras
except ImportError as error:  # pragma: no cover - the message names the extra
    raise ImportError("ctcdoctor.integrations.keras needs Keras 3: pip install 'ctcdoctor[keras]'") from error

import numpy as np

from ctcdoctor.findings import CheckResult, Finding, Report
from ctcdoctor.integrations.keras_head import probabilities_to_ctc, softmax_head
from ctcdoctor.training.monitor import Monitor

__all__ = ["CTCDoctorCallback"]


def _numpy(value: Any) -> np.ndarray:
    return np.asarray(keras.ops.convert_to_numpy(value))


def are_probabilities(outputs: Any) -> bool:
    """True when every value is in [0, 1] and each frame sums to 1 over the classes (a softmax head)."""
    outputs = keras.ops.convert_to_tensor(outputs)
    sums = keras.ops.sum(outputs, axis=-1)
    return bool(_numpy(keras.ops.all(outputs >= 0))) and bool(_numpy(keras.ops.all(keras.ops.abs(sums - 1.0) < 1e-3)))


def log_probabilities(outputs: Any) -> np.ndarray:
    """(N, T, C) log-probabilities from probabilities (a softmax head) or logits, computed with keras.ops.

    Probabilities are read as what the model means (their log), not as what `keras.losses.CTC`
    makes of them: that mistake is reported on its own (CTC020, `keras_head`)."""
    if are_probabilities(outputs):
        return _numpy(keras.ops.log(keras.ops.maximum(keras.ops.convert_to_tensor(outputs), 1e-30)))
    return _numpy(keras.ops.log_softmax(keras.ops.convert_to_tensor(outputs), axis=-1))


def _rate(value: Any) -> Any:
    """The learning rate without waiting for the device: on the torch backend a copy of the tensor (a fixed rate's
    variable, or a schedule's value for this step), which the monitor reads back with the losses at its next
    evaluation; elsewhere a float."""
    if isinstance(value, (int, float)):
        return float(value)
    tensor = keras.ops.convert_to_tensor(value)
    if hasattr(tensor, "detach"):  # torch: copied, so that a later assign (ReduceLROnPlateau) does not rewrite it
        return tensor.detach().clone()
    return float(_numpy(tensor))


class CTCDoctorCallback(keras.callbacks.Callback):
    """Monitor a Keras CTC model during `fit`; stop on a verdict at `stop_on` (see the module docstring).

    `report_path`, `every`, `stop_on` as in every ctcdoctor callback; `data`, `blank`, `alphabet`
    as above; `metrics_path`, `plot_path` and any other keyword go to
    `ctcdoctor.training.monitor.Monitor`. After `fit`, `monitor` holds the monitor and `report`
    the final `Report`.
    """

    def __init__(
        self,
        report_path: str | os.PathLike | None = None,
        every: int = 100,
        stop_on: str | None = "error",
        *,
        data: Any = None,
        blank: int = 0,
        **monitor_options: Any,
    ) -> None:
        super().__init__()
        monitor_options.setdefault("reduction", "sum")  # keras.losses.CTC: a loss per sample, averaged over the batch
        monitor_options.setdefault("name", "Keras model.fit")
        monitor_options.setdefault("trainer", "keras")
        self.monitor = Monitor(every=every, report_path=report_path, stop_on=stop_on, blank=blank, **monitor_options)
        self.data = self._unpack(data, blank) if data is not None else None
        self.report: Any = None
        self._step = 0
        self._tracked = (0.0, 0.0)
        self._head_reported = False
        self._lr: float | None = None

    @staticmethod
    def _unpack(data: Any, blank: int) -> dict[str, Any]:
        if not isinstance(data, (tuple, list)) or len(data) not in (2, 3, 4):
            raise ValueError("data=(inputs, targets) or (inputs, targets, target_lengths[, output_lengths])")
        inputs, targets = data[0], _numpy(data[1]).astype(np.int64)
        lengths = _numpy(data[2]).astype(np.int64) if len(data) > 2 else (targets != blank).sum(-1)
        frames = _numpy(data[3]).astype(np.int64) if len(data) > 3 else None
        return {"inputs": inputs, "targets": targets, "target_lengths": lengths, "output_lengths": frames}

    def _batch_loss(self, logs: dict[str, Any]) -> float:
        """This batch's loss from the running mean Keras logs (the loss tracker's total and count)."""
        tracker = getattr(self.model, "_loss_tracker", None)
        if tracker is not None and hasattr(tracker, "total") and hasattr(tracker, "count"):
            total, count = float(_numpy(tracker.total)), float(_numpy(tracker.count))
            last_total, last_count = self._tracked if count >= self._tracked[1] else (0.0, 0.0)  # reset each epoch
            self._tracked = (total, count)
            if count > last_count:
                return (total - last_total) / (count - last_count)
        return float(logs.get("loss", math.nan))

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        # A softmax head fed to keras.losses.CTC cannot train: say so before the first step, not after patience.
        self._report_head(softmax_head(self.model))

    def _report_head(self, found: Finding | None) -> None:
        if found is None or self._head_reported or self.monitor.closed:
            return
        self._head_reported = True
        check = CheckResult(name="keras_output_head", code="CTC020", status="findings", seconds=0.0)
        report = Report(command="monitor", spec=self.monitor.name, findings=(found,), checks=(check,))
        if self.monitor.preflight(report, runs_first_step="Keras reads model.stop_training after each batch"):
            self.model.stop_training = True

    def on_train_batch_begin(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        # the rate this step trains at: after the step, a schedule's learning_rate is the next step's
        self._lr = None
        optimizer = self.model.optimizer
        if optimizer is not None and not self.monitor.closed:
            try:
                self._lr = _rate(optimizer.learning_rate)
            except Exception:  # noqa: BLE001 - no readable rate: the step is recorded without it
                self._lr = None

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        if self.monitor.closed:
            return
        self._step += 1
        loss = self._batch_loss(logs or {})
        arguments: dict[str, Any] = {}
        if self.data is not None and self.monitor.wants_outputs(self._step):
            try:
                outputs = self.model(self.data["inputs"], training=False)
                if not self._head_reported:  # a softmax the layers did not show (a subclassed model)
                    self._report_head(probabilities_to_ctc(self.model, are_probabilities(outputs)))
                arguments = {"log_probs": log_probabilities(outputs), "targets": self.data["targets"],
                             "target_lengths": self.data["target_lengths"],
                             "output_lengths": self.data["output_lengths"], "layout": "NTC"}
            except Exception as error:  # noqa: BLE001 - data it cannot run: the loss alone, fit goes on
                self.monitor.notice(f"the outputs on data= were not measured at step {self._step} "
                                    f"({type(error).__name__}: {error}); the loss curve is still judged", key="keras-data")
        if self._lr is not None:  # every step: a blow-up of a few steps is judged by the rate it ran at
            arguments["lr"] = self._lr
        self.monitor.use_optimizer(self.model.optimizer)  # learning-rate advice depends on it
        if self.monitor.update(self._step, loss, **arguments):
            self.model.stop_training = True

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        values = {f"eval_{key[4:]}": float(value) for key, value in (logs or {}).items()
                  if key.startswith("val_") and isinstance(value, (int, float))}
        if values:
            self.monitor.log(self._step, **values)

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        if not self.monitor.closed:
            self.report = self.monitor.close()
