"""The training monitor: a framework-free core fed once per step from any training loop.

    monitor = Monitor(every=100, blank=0, alphabet=ALPHABET, report_path="ctcdoctor.json",
                      metrics_path="metrics.jsonl", plot_path="monitor.png")
    for step, batch in enumerate(loader, 1):
        log_probs = model(inputs)                                   # (T, N, C)
        loss = F.ctc_loss(log_probs, targets, frames, target_lengths)
        ...
        if monitor.update(step, loss, log_probs=log_probs, targets=targets, target_lengths=target_lengths,
                          output_lengths=frames, lr=scheduler.get_last_lr()[0], grad_norm=norm):
            break                                                   # an error verdict: stop_on="error"
    report = monitor.close()

Per step it keeps references (a loss tensor is not read back until the next evaluation, so a
GPU loop does not synchronise each step). Every `every` steps it reads the losses back,
measures the outputs of that step's batch (`ctcdoctor.training.outputs`), runs the curve
rules and the output rules on everything so far (`ctcdoctor.training.verdicts`), prints a line
with a few decodes, writes the metrics JSONL (`ctcdoctor.training.monitor_format`, which
`ctcdoctor logs` reads and judges the same way) and the JSON report (`command: "monitor"`),
and raises the stop flag when a verdict reaches `stop_on`. `close()` gives the final report
and draws the plot.
"""
from __future__ import annotations

import math
import os
import re
import sys
import time
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import IO, Any

from ctcdoctor.findings import Finding, Report, Severity
from ctcdoctor.render.phrases import plural
from ctcdoctor.training import monitor_format
from ctcdoctor.training.columns import Columns
from ctcdoctor.training.display import Printer, finding_lines, metric_cells
from ctcdoctor.training.rules import Options

STOP_ON = (None, "error", "warning", "info")
DEFAULT_PATIENCE = 2000
"""Steps the early blank phase (and a plateau) may last before it is an error."""


class MonitorWarning(UserWarning):
    """Something the monitor could not use as given (a per-sample loss, outputs in another layout, an alphabet of
    the wrong length) or a failure inside the monitor: said once, and the monitor goes on. It never raises into
    the training loop it watches."""


def _detached(value: Any) -> Any:
    return value.detach() if hasattr(value, "detach") and getattr(value, "requires_grad", False) else value


def _count(value: Any) -> int | None:
    """How many entries a lengths argument holds (a tensor, an array, a list), or None."""
    if hasattr(value, "numel"):
        return int(value.numel())
    if hasattr(value, "size") and hasattr(value, "shape"):
        return int(value.size)
    if isinstance(value, (list, tuple)):
        return len(value)
    return None


def _numbers(value: Any) -> int | None:
    """How many numbers a scalar argument holds (1 for a float or a 0-d tensor), or None when it holds none."""
    if isinstance(value, (str, bytes, bool)):
        return None
    if isinstance(value, (int, float)):
        return 1
    count = _count(value)
    return count if count is not None else (1 if hasattr(value, "detach") or hasattr(value, "__float__") else None)


def _floats(values: Sequence[Any]) -> list[float]:
    """Numbers, 0-d tensors and numpy scalars as floats, tensors read back together (one sync)."""
    tensors = [index for index, value in enumerate(values) if hasattr(value, "detach")]
    out = [math.nan if value is None else value for value in values]
    if tensors:
        import torch

        try:
            read = torch.stack([values[i].detach().float().reshape(()) for i in tensors]).cpu().tolist()
        except RuntimeError:  # tensors on several devices
            read = [float(values[i].detach().float().item()) for i in tensors]
        for index, value in zip(tensors, read):
            out[index] = value
    return [float(value) for value in out]


def _write_atomic(path: Path, text: str) -> None:
    """Write by renaming a finished file: a reader (a dashboard, `cat`) never sees half a report."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(text, encoding="utf-8")
    os.replace(partial, path)


_PACKAGE = str(Path(__file__).resolve().parents[1])
"""ctcdoctor's folder: a warning points at the first frame outside it (the training loop's line)."""

WRAPPERS = ("AcceleratedOptimizer", "LightningOptimizer", "LossScaleOptimizer")
"""Optimizer wrappers whose `.optimizer` (Keras: `.inner_optimizer`) is the optimizer the user chose."""


class Monitor:
    """Watch a CTC training run: metrics of the outputs every `every` steps, verdicts, a stop flag.

    Arguments (all keywords):

    * `every`: steps between evaluations (default 100; the first call is evaluated too).
    * `report_path`: the JSON report (the envelope of every ctcdoctor command, `command: "monitor"`),
      rewritten at each evaluation and at the end. `metrics_path`: the metrics JSONL.
      `plot_path`: the figure written by `close()` (.png, .pdf or .svg).
    * `stop_on`: "error" (default), "warning", "info", or None (never stop): `update()` returns
      True and `should_stop` is set once a verdict at or above it is found.
    * `blank`, `alphabet` (symbols of the non-blank classes in class order), `word_delimiter`
      (WER is measured when the alphabet holds it), `layout` ("TNC" or "NTC"), `classes`,
      `reduction` ("mean": loss per label, F.ctc_loss's default; "sum": loss per sample).
    * `patience`: steps a blank phase or a plateau may last before it is an error (default 2,000).
    * `optimizer`: the optimizer (or its class name, "Adam", "SGD"): learning-rate advice depends on it
      (Adam and AdamW train CTC models at about 1e-4 to 1e-3, SGD at much higher rates). Unknown, the
      advice is relative ("divide the learning rate by 3"). The integrations fill it in.
    * `samples`: decodes printed next to their targets; `max_samples`: samples decoded per evaluation.
    * `echo`: print a line per evaluation (to `stream`, default stdout); `live`: a Rich live table instead.
    * `ignore`, `select`: codes or prefixes to drop / to keep.
    * `trainer`: what feeds it, "loop" (default) or the integration's name: messages fit it (only Hugging
      Face's Trainer drops NaN losses from its log; in a loop optimizer.step() applies a NaN gradient).

    Bad options to the constructor raise `ValueError` (before training starts). Once training runs, the
    monitor never raises into the loop: what it cannot use as given (a per-sample loss, `lr` as a list,
    (N, T, C) outputs without `layout="NTC"`, lengths of the wrong count, an alphabet of the wrong length)
    is one `MonitorWarning` naming the argument and the fix, and it goes on (with the loss alone when the
    outputs cannot be measured); a failure of its own is a warning too.
    """

    def __init__(
        self,
        *,
        every: int = 100,
        report_path: str | os.PathLike | None = None,
        metrics_path: str | os.PathLike | None = None,
        plot_path: str | os.PathLike | None = None,
        stop_on: str | None = "error",
        blank: int = 0,
        alphabet: str | Sequence[str] | None = None,
        word_delimiter: str | None = " ",
        layout: str = "TNC",
        classes: int | None = None,
        reduction: str | None = None,
        patience: int = DEFAULT_PATIENCE,
        samples: int = 3,
        max_samples: int = 64,
        echo: bool = True,
        live: bool = False,
        stream: IO[str] | None = None,
        name: str = "training run",
        ignore: Iterable[str] = (),
        select: Iterable[str] = (),
        optimizer: Any = None,
        trainer: str = "loop",
    ) -> None:
        check_options(every, stop_on, layout, patience, reduction)
        self.optimizer: str | None = None
        """The optimizer's class name (from `optimizer=` or `use_optimizer`)."""
        self._optimizer_object: Any = None
        """The optimizer itself when one was given (not a name): its gradients tell whether the loop clips them."""
        self.use_optimizer(optimizer)
        self.every, self.stop_on, self.blank, self.layout = int(every), stop_on, int(blank), layout
        self.alphabet = list(alphabet) if alphabet is not None else None
        self.word_delimiter, self.classes, self.reduction, self.patience = word_delimiter, classes, reduction, int(patience)
        self.samples, self.max_samples, self.name = samples, max_samples, name
        self.trainer = trainer
        """What feeds it: "loop" (your own loop), or the integration ("huggingface", "lightning", "keras")."""
        self.report_path = Path(report_path) if report_path is not None else None
        self.metrics_path = Path(metrics_path) if metrics_path is not None else None
        self.plot_path = Path(plot_path) if plot_path is not None else None
        self.ignore, self.select = tuple(ignore), tuple(select)
        self.should_stop = False
        self.stop_reason: Finding | None = None
        self.stopped_at: int | None = None
        self.findings: tuple[Finding, ...] = ()
        self.latest: Any = None
        """The latest `OutputStats` (None before the first evaluation with outputs)."""
        self.closed = False
        self._columns = Columns()
        self._preflight: tuple[Finding, ...] = ()
        self._check_meta: dict[str, Any] | None = None
        """The check before training as the JSONL header records it (monitor_format.CHECK)."""
        self._checks: tuple[Any, ...] = ()
        self.resolved: tuple[Any, Any] | None = None
        """(Run, Curves) of the latest verdict."""
        self._pending: list[tuple[int, Any, Any, Any, dict[str, Any]]] = []
        self._early: dict[int, dict[str, Any]] = {}
        self._last: tuple[int, dict[str, float]] | None = None
        self._lines: list[str] = []
        """JSONL records not yet written (only with a metrics_path)."""
        self._header_written = False
        self._noticed: set[str] = set()
        self._alphabets: dict[int, list[str] | None] = {}
        self.plot_written = False
        """Whether close() wrote the plot to `plot_path`."""
        self._meta: dict[str, Any] = {}
        self._meta_frozen = False
        self._next_check: int | None = None
        self.evaluations = 0
        self.steps_seen = 0
        self.nonfinite_steps = 0
        self.infeasible_steps = 0
        """Steps whose batch held samples CTC cannot align (counted from the lengths at every update that has them)."""
        self.seconds = 0.0
        self._started = self._update_started = time.perf_counter()
        self._printer = Printer(stream or sys.stdout, live) if echo else None

    def use_optimizer(self, optimizer: Any) -> None:
        """Name the run's optimizer (an optimizer object or a class name) unless one is named already."""
        if optimizer is None or self.optimizer is not None:
            return
        while not isinstance(optimizer, str) and type(optimizer).__name__ in WRAPPERS:
            # Accelerate's / Lightning's wrapper around the real optimizer (.optimizer), Keras' (.inner_optimizer)
            inner = getattr(optimizer, "optimizer", None) or getattr(optimizer, "inner_optimizer", None)
            if inner is None:
                break
            optimizer = inner
        self.optimizer = optimizer if isinstance(optimizer, str) else type(optimizer).__name__
        if not isinstance(optimizer, str) and hasattr(optimizer, "param_groups"):
            self._optimizer_object = optimizer

    # ------------------------------------------------------------------ feeding
    def wants_outputs(self, step: int) -> bool:
        """True when `update(step, ...)` will evaluate outputs: callbacks capture them only then."""
        return self._next_check is None or int(step) >= self._next_check

    def update(
        self,
        step: int,
        loss: Any,
        *,
        log_probs: Any = None,
        logits: Any = None,
        probs: Any = None,
        outputs: Any = None,
        targets: Any = None,
        target_lengths: Any = None,
        output_lengths: Any = None,
        lr: Any = None,
        grad_norm: Any = None,
        layout: str | None = None,
        **values: Any,
    ) -> bool:
        """Record one training step; evaluate when due. Returns `should_stop`.

        `loss`, `lr`, `grad_norm` and `values` (other scalars: loss parts, eval metrics) may be
        floats or 0-d tensors (a per-sample loss is recorded as its mean, `lr` as a list such as
        `scheduler.get_last_lr()` as its first group's rate, each said once). Give the outputs of
        this step's batch as exactly one of `log_probs`, `logits`, `probs` or `outputs` (told apart
        by their values) ((T, N, C), or (N, T, C) with `layout="NTC"`) with
        `targets` (padded (N, S) or concatenated), `target_lengths` and `output_lengths`
        (frames per sample after subsampling; all T when omitted). Tensors or numpy arrays.
        Never raises: what it cannot use is a `MonitorWarning`, and the run goes on.
        """
        started = self._update_started = time.perf_counter()
        if self.closed:
            self.notice("update() after close() is ignored: close() gave the final report; create a new Monitor "
                        "for another run", key="update-after-close")
            return self.should_stop
        try:
            self._update(step, loss, (("log_probs", log_probs), ("logits", logits), ("probs", probs), ("auto", outputs)),
                         targets, target_lengths, output_lengths, lr, grad_norm, layout, values)
        except Exception as error:  # noqa: BLE001 - the monitor must never end the run it watches
            self._internal(error, f"update(step={step!r})")
        self.seconds += time.perf_counter() - started
        return self.should_stop

    def _update(self, step: Any, loss: Any, kinds: tuple[tuple[str, Any], ...], targets: Any, target_lengths: Any,
                output_lengths: Any, lr: Any, grad_norm: Any, layout: str | None, values: dict[str, Any]) -> None:
        step = int(step)
        self._check_step(step)
        given = [(kind, value) for kind, value in kinds if value is not None]
        if len(given) > 1:
            self.notice(f"update() got {', '.join(kind if kind != 'auto' else 'outputs' for kind, _ in given)}: give one "
                        f"of log_probs, logits, probs, outputs; measuring {given[0][0]}", key="outputs-twice")
        first = given[0][1] if given else None
        layout = self._fit_layout(first, target_lengths, layout or self.layout)
        values = {key: self._scalar(key, value) for key, value in values.items()}
        if target_lengths is not None and "infeasible" not in values:
            values["infeasible"] = self._infeasible(targets, target_lengths, output_lengths, first, layout)
        if grad_norm is not None and self.wants_outputs(step) and "grad_norm_applied" not in values:
            values["grad_norm_applied"] = self._applied_grad_norm()
        # detached now (no sync): a kept loss must not keep its step's autograd graph alive
        self._pending.append((step, self._scalar("loss", loss), self._scalar("lr", lr),
                              self._scalar("grad_norm", grad_norm),
                              {**self._early.pop(step, {}), **{key: value for key, value in values.items() if value is not None}}))
        self.steps_seen += 1
        if self.wants_outputs(step):
            outputs = given[0] if given and targets is not None and target_lengths is not None else None
            self._evaluate(step, outputs, targets, target_lengths, output_lengths, layout)

    def _applied_grad_norm(self) -> float | None:
        """The norm of the gradients the optimizer holds now (after the loop's clipping, before its zero_grad), or None
        (no torch optimizer given, gradients already zeroed). Beside the `grad_norm` the loop gave (clip_grad_norm_
        returns the norm before clipping) it tells the rules that the gradients are clipped. Only at evaluations."""
        groups = getattr(self._optimizer_object, "param_groups", None)
        if not groups:
            return None
        import torch

        try:
            grads = [param.grad for group in groups for param in group.get("params", ())
                     if isinstance(param, torch.Tensor) and param.grad is not None and not param.grad.is_sparse]
            if not grads:
                return None
            by_device: dict[Any, list[Any]] = {}
            for grad in grads:
                by_device.setdefault(grad.device, []).append(torch.linalg.vector_norm(grad.detach(), dtype=torch.float32))
            total = math.sqrt(sum(float(torch.stack(norms).square().sum()) for norms in by_device.values()))
        except (RuntimeError, TypeError, ValueError):
            return None
        return total if math.isfinite(total) and total > 0 else None

    # ------------------------------------------------------------------ what the loop hands it
    def notice(self, text: str, key: str | None = None) -> None:
        """Say `text` once (a `MonitorWarning`); `key` (default: the text with its numbers left out) tells repeats."""
        key = key if key is not None else re.sub(r"\d+", "#", text)
        if key in self._noticed:
            return
        self._noticed.add(key)
        level, frame = 2, sys._getframe(1)
        while frame.f_back is not None and frame.f_code.co_filename.startswith(_PACKAGE):  # point at the caller's code
            frame, level = frame.f_back, level + 1
        warnings.warn(f"ctcdoctor monitor: {text}", MonitorWarning, stacklevel=level)

    def _internal(self, error: BaseException, where: str) -> None:
        """A failure inside the monitor: a warning, never an exception in the training loop."""
        self.notice(f"{where} failed inside the monitor ({type(error).__name__}: {error}); training goes on, and the "
                    "monitor with it. Please report it to ctcdoctor with this message.",
                    key=f"internal:{type(error).__name__}:{error}")

    def _scalar(self, name: str, value: Any) -> Any:
        """One number of the record as given (a float, or a tensor read back at the next evaluation), or None.

        A tensor or list of several values is recorded as its mean (`lr`: its first value, the first parameter
        group's rate, as `scheduler.get_last_lr()` lists them); text is dropped. Each said once."""
        if value is None:
            return None
        count = _numbers(value)
        if count is None:
            self.notice(f"update(..., {name}={value!r}): expected a number or a 0-d tensor; the value is dropped",
                        key=f"text:{name}")
            return None
        if count == 1:
            if isinstance(value, (list, tuple)):
                return self._scalar(name, value[0])
            return _detached(value)
        if count == 0:
            self.notice(f"update(..., {name}=...) is empty: expected a number or a 0-d tensor; the value is dropped",
                        key=f"empty:{name}")
            return None
        if name == "lr":
            return self._first_rate(value, count)
        if isinstance(value, (list, tuple)):
            if not all(isinstance(item, (int, float)) and not isinstance(item, bool) for item in value):
                self.notice(f"update(..., {name}=<a list of {count}>): expected a number or a 0-d tensor; the value is "
                            "dropped", key=f"list:{name}")
                return None
            mean: Any = sum(value) / count
        elif hasattr(value, "detach"):
            mean = value.detach().float().mean()  # on the tensor's device: read back with the rest, no sync now
        else:
            mean = float(value.mean())
        if name == "loss":
            read_as = ""
            if self.reduction is None and not self._meta_frozen:  # a mean of per-sample losses is a loss per sample
                self.reduction = "sum"
                read_as = " and reading it as a loss per sample (reduction='sum')"
            self.notice(f"update(step, loss) got a loss of {count} values (a per-sample loss, as F.ctc_loss(..., "
                        f"reduction='none') returns?): recording their mean{read_as}. Pass the scalar you call "
                        "backward() on, e.g. loss.mean()", key="loss-vector")
        else:
            self.notice(f"update(..., {name}=...) got {count} values: recording their mean; pass one number per step",
                        key=f"vector:{name}")
        return mean

    def _first_rate(self, value: Any, count: int) -> Any:
        """`lr` given per parameter group: the first group's rate; said once when the groups differ."""
        if isinstance(value, (list, tuple)):
            first = value[0]
            numbers = [item for item in value if isinstance(item, (int, float)) and not isinstance(item, bool)]
            differ = len(numbers) != count or len(set(numbers)) > 1
        else:
            flat = value.detach().reshape(-1) if hasattr(value, "detach") else value.reshape(-1)
            first, differ = flat[0], True  # not compared: that would read a device tensor back
        if differ:
            shown = f"{list(value)!r}" if isinstance(value, (list, tuple)) else f"<{count} values>"
            self.notice(f"lr={shown} holds the rates of {count} parameter groups: recording the first group's. Pass "
                        "lr=scheduler.get_last_lr()[i] for the group to follow", key="lr-groups")
        return self._scalar("lr", first)

    def _fit_layout(self, outputs: Any, target_lengths: Any, layout: str) -> str:
        """The layout that gives the outputs as many samples as `target_lengths` has entries: the given one, or, when
        only the other axis fits, the other one (said once): (N, T, C) outputs passed without layout="NTC"."""
        shape = getattr(outputs, "shape", None)
        count = _count(target_lengths)
        if shape is None or len(shape) != 3 or count is None:
            return layout
        batch_axis = 1 if layout == "TNC" else 0
        if shape[batch_axis] == count or shape[1 - batch_axis] != count:
            return layout
        other = "NTC" if layout == "TNC" else "TNC"
        self.notice(f"the outputs have shape {tuple(shape)}: read as layout={layout!r} they hold {shape[batch_axis]} "
                    f"samples, but target_lengths has {count} entries, as axis {1 - batch_axis} has: reading them as "
                    f"{other!r}. Pass layout={other!r} (to Monitor or update) for "
                    f"{'(N, T, C)' if other == 'NTC' else '(T, N, C)'} outputs", key=f"layout:{other}")
        return other

    def _infeasible(self, targets: Any, target_lengths: Any, output_lengths: Any, outputs: Any, layout: str) -> Any:
        """The count of samples CTC cannot align in this step's batch (a lazy 0-d tensor), or None; every frame
        counts when `output_lengths` is omitted (as for the evaluation)."""
        from ctcdoctor.training.feasible import count_infeasible

        if output_lengths is None:
            shape = getattr(outputs, "shape", None)
            if shape is None or len(shape) != 3:
                return None
            output_lengths = [shape[0] if layout == "TNC" else shape[1]] * int(shape[1] if layout == "TNC" else shape[0])
        return count_infeasible(targets, target_lengths, output_lengths, self.max_samples)

    def _check_step(self, step: int) -> None:
        last = self._pending[-1][0] if self._pending else (self._last[0] if self._last is not None else None)
        if last is not None and step < last:
            self.notice(f"the step went back from {last} to {step}; pass a global step (one that keeps counting across "
                        "epochs), or the curves are read out of order", key="step-back")

    def log(self, step: int, **values: Any) -> None:
        """Add scalars to the record of `step` (eval_loss, eval_cer, a grad norm logged later).

        Values for the latest recorded step join its record (written to the JSONL again, at once); for a step
        not yet recorded they wait for its `update()`; for older steps they are dropped. Never raises."""
        if self.closed:
            self.notice("log() after close() is ignored", key="log-after-close")
            return
        try:
            self._log(int(step), values)
        except Exception as error:  # noqa: BLE001 - the monitor must never end the run it watches
            self._internal(error, f"log(step={step!r})")

    def _log(self, step: int, values: dict[str, Any]) -> None:
        values = {key: number for key, value in values.items() if (number := self._scalar(key, value)) is not None}
        if not values:
            return
        for pending in reversed(self._pending):
            if pending[0] == step:
                pending[4].update(values)
                return
        if self._last is not None and self._last[0] == step:
            numbers = dict(zip(values, _floats(list(values.values()))))
            self._last[1].update(numbers)
            self._columns.add(step, numbers)
            if self.metrics_path is not None:  # the step is on disk already: its record again, with the new values
                self._lines.append(monitor_format.record(step, **self._last[1]))
                self._write_metrics()
            return
        if self._last is None or step > self._last[0]:
            self._early.setdefault(step, {}).update(values)

    def preflight(self, report: Report, runs_first_step: str | None = None) -> bool:
        """Add the findings of `ctcdoctor.check` run before training (the callbacks do); they stay
        in every verdict and count for `stop_on`. Returns `should_stop`.

        `runs_first_step`: where the framework reads its stop flag only after a step (Keras reads
        `model.stop_training` after each batch), why: the stop is then said to come after step 1."""
        self._preflight, self._checks = tuple(report.findings), tuple(report.checks)
        self.findings = tuple(report.findings)
        ran = self._last[0] if self._last is not None else (self._pending[-1][0] if self._pending else 0)
        self._stop_if_due(max(ran, 1) if runs_first_step else ran)
        self._record_check()
        if self._printer is not None:
            text = self.summary(stopping=runs_first_step or "")
            lines = [f"[ctcdoctor] check before training ({plural(len(report.checks), 'check')}): {text}"]
            for found in report.findings:
                lines.extend(finding_lines(found))
            self._printer.write(lines)
        return self.should_stop

    def _record_check(self) -> None:
        """The check's findings, and the stop they caused, in the JSONL header: `logs` on the file reports them, also
        for a run they stopped before its first step (no record)."""
        from ctcdoctor.render.json import json_safe

        stopped = self.stop_reason if self.should_stop and self.stop_reason in self._preflight else None
        self._check_meta = json_safe({"findings": [item.to_dict() for item in self._preflight],
                                      "stopped": None if stopped is None else {"step": self.stopped_at or 0,
                                                                               "code": stopped.code}})
        if self._header_written:
            self.notice("the check before training came after the metrics file was started: its findings are in the "
                        "report only", key="check-late")
        elif self._meta_frozen:
            self._meta[monitor_format.CHECK] = self._check_meta

    def _stop_if_due(self, step: int) -> None:
        if self.stop_on is None or self.should_stop:
            return
        threshold = Severity.parse(self.stop_on).rank
        worst = [item for item in self.findings if item.severity.rank >= threshold]
        if worst:
            self.should_stop, self.stop_reason, self.stopped_at = True, worst[0], step

    # ------------------------------------------------------------------ evaluation
    def _evaluate(self, step: int, outputs: tuple[str, Any] | None, targets: Any, target_lengths: Any,
                  output_lengths: Any, layout: str) -> None:
        stats = None
        if outputs is not None:
            stats = self._measure(step, outputs, targets, target_lengths, output_lengths, layout)
        self._materialize(stats.record() if stats is not None else {})
        self._next_check = (step // self.every + 1) * self.every
        previous = {found.code for found in self.findings}
        try:
            self._judge(final=False)
        except Exception as error:  # noqa: BLE001 - a rule that crashes must not end the run
            self._internal(error, f"judging the run at step {step}")
        if self._printer is not None and self._last is not None:
            spent = self.seconds + time.perf_counter() - self._update_started  # this evaluation included
            per_step = 1000 * spent / self.steps_seen if self.steps_seen > 1 else None  # step 1 pays for imports
            cells = metric_cells(self._last[0], self._last[1], self.nonfinite_steps, per_step, self.infeasible_steps)
            new = [found for found in self.findings if found.code not in previous]
            self._printer.evaluation(cells, stats.examples if stats is not None else (), new, self.findings)
            if self.should_stop and self.stopped_at == step:
                self._printer.write([f"[ctcdoctor] stop: {self.stop_reason.code} at step {step:,} "  # type: ignore[union-attr]
                                     f"(stop_on={self.stop_on!r})"])
        self._write_files()

    def _measure(self, step: int, outputs: tuple[str, Any], targets: Any, target_lengths: Any, output_lengths: Any,
                 layout: str) -> Any:
        """The `OutputStats` of this step's batch, or None (said once) when the arguments cannot be measured."""
        from ctcdoctor.training.outputs import measure_outputs

        shape = getattr(outputs[1], "shape", None)
        alphabet = self._alphabet_for(int(shape[-1])) if shape is not None and len(shape) == 3 else self.alphabet
        try:
            stats = measure_outputs(outputs[1], targets, target_lengths, output_lengths, kind=outputs[0], layout=layout,
                                    blank=self.blank, alphabet=alphabet, word_delimiter=self.word_delimiter,
                                    max_samples=self.max_samples, examples=self.samples)
        except (ValueError, TypeError, IndexError, RuntimeError) as error:
            self.notice(f"the outputs of step {step} were not measured: {error}. The loss is still recorded, and the "
                        "outputs are measured again at the next evaluation", key=f"measure:{re.sub(r'[0-9]+', '#', str(error))}")
            return None
        self.latest = stats
        self.evaluations += 1
        if stats.blank_in_targets:
            other = "C-1" if self.blank == 0 else "0"
            self.notice(f"the targets hold the blank index {self.blank} ({plural(stats.blank_in_targets, 'label')} at step "
                        f"{step}): a CTC loss with blank={self.blank} reads each as a blank, not a label, so the model "
                        "never learns it (the targets show it as '�'). Encode the labels so that none is the blank, or, "
                        f"if your loss takes another blank ({other}, as tf.nn.ctc_loss and Keras 2's ctc_batch_cost use "
                        "the last class), pass that index: Monitor(blank=...)", key="blank-in-targets")
        return stats

    def _alphabet_for(self, classes: int) -> list[str] | None:
        """The alphabet to show decodes with for outputs of `classes` classes; one of the wrong length is said once
        (one symbol too many, as if it held the blank: shown without the blank's symbol)."""
        if self.alphabet is None or not 0 <= self.blank < classes:
            return self.alphabet
        if classes in self._alphabets:
            return self._alphabets[classes]
        have, need = len(self.alphabet), classes - 1
        chosen = self.alphabet
        counted = f"alphabet has {have} symbols for the {need} non-blank classes of outputs with C={classes} (blank {self.blank})"
        if have == need + 1:
            chosen = self.alphabet[: self.blank] + self.alphabet[self.blank + 1 :]
            fixed = "".join(chosen) if all(len(symbol) == 1 for symbol in chosen) else chosen
            self.notice(f"{counted}: one too many, as if it held the blank ({self.alphabet[self.blank]!r} at index "
                        f"{self.blank}); the decodes are shown without it. Pass the symbols of the non-blank classes "
                        f"only, in class order: alphabet={fixed!r}", key=f"alphabet:{classes}")
        elif have < need:
            self.notice(f"{counted}: the last {need - have} non-blank classes have no symbol and show as '�'. Pass one "
                        "symbol per non-blank class, in class order (the blank left out)", key=f"alphabet:{classes}")
        elif have > need:
            self.notice(f"{counted}: {have - need} too many, so the decodes may be shifted. Pass one symbol per "
                        "non-blank class, in class order (the blank left out)", key=f"alphabet:{classes}")
        self._alphabets[classes] = chosen
        return chosen

    def _materialize(self, extra: dict[str, float]) -> None:
        """Read back the steps recorded since the last evaluation and add them to the columns and the JSONL lines."""
        if not self._pending:
            return
        pending, self._pending = self._pending, []
        numbers = _floats([value for record in pending for value in (record[1], record[2], record[3])])
        touched: list[tuple[int, dict[str, float]]] = []
        for index, (step, _, lr, grad_norm, values) in enumerate(pending):
            loss_value, lr_value, grad_value = numbers[3 * index : 3 * index + 3]
            record: dict[str, float] = {"loss": loss_value}
            if lr is not None:
                record["lr"] = lr_value
            if grad_norm is not None:
                record["grad_norm"] = grad_value
            record.update(zip(values, _floats(list(values.values()))))
            if index == len(pending) - 1:
                record.update(extra)
            if not math.isfinite(loss_value):
                self.nonfinite_steps += 1
            if record.get("infeasible", 0) > 0:
                self.infeasible_steps += 1
            if self._last is not None and self._last[0] == step:  # the same step again (gradient accumulation)
                self._last[1].update(record)
            else:
                self._last = (step, record)
            if not touched or touched[-1] is not self._last:
                touched.append(self._last)
            self._columns.add(step, record)
        if self.metrics_path is not None:  # every record now, the latest included: a killed run loses none
            self._lines.extend(monitor_format.record(step, **record) for step, record in touched)

    def options(self, finished: bool = False) -> Options:
        """What the rules need to know; `finished` (or a closed monitor): the run is over, judge it whole."""
        meta = self.meta()
        return Options(classes=meta.get("classes"), label_length=meta.get("label_length"),
                       reduction=meta.get("reduction"), patience=self.patience, optimizer=self.optimizer or meta.get("optimizer"),
                       finished=finished or self.closed, trainer=meta.get("trainer"),
                       sizes="monitor" if meta.get("classes") is not None else None)

    def meta(self) -> dict[str, Any]:
        """The JSONL header: what the rules need to know about the run (fixed once the file is started)."""
        if self._meta_frozen:
            return self._meta
        meta: dict[str, Any] = {"blank": self.blank, "patience": self.patience, "every": self.every, "trainer": self.trainer}
        classes = self.classes if self.classes is not None else (self.latest.classes if self.latest is not None else None)
        if classes is not None:
            meta["classes"] = int(classes)
        if self.latest is not None and math.isfinite(self.latest.label_length):
            meta["label_length"] = round(self.latest.label_length, 3)
        if self.reduction is not None:
            meta["reduction"] = self.reduction
        if self.optimizer is not None:
            meta["optimizer"] = self.optimizer
        if self._check_meta is not None:
            meta[monitor_format.CHECK] = self._check_meta
        self._meta = meta
        # fixed from the first measured outputs on: the JSONL header says the same as the monitor used
        self._meta_frozen = self.latest is not None or self._header_written
        return meta

    def _judge(self, final: bool) -> None:
        if self._last is None:
            return
        from ctcdoctor.registry import apply_ignore, matches, sort_findings
        from ctcdoctor.training.names import resolve
        from ctcdoctor.training.verdicts import verdict

        run = self._columns.run(str(self.metrics_path or self.name), self.meta())
        curves, _ = resolve(run)
        self.resolved = (run, curves)
        found = list(self._preflight) + verdict(run, curves, self.options(finished=final))
        found = apply_ignore(found, self.ignore)
        if self.select:
            found = [item for item in found if matches(item.code, self.select)]
        self.findings = sort_findings(found)
        if not final:
            self._stop_if_due(self._last[0])

    # ------------------------------------------------------------------ outputs
    def _write_files(self, final: bool = False) -> None:
        if self.metrics_path is not None and (self._lines or final or not self._header_written):
            if final and self._last is not None:  # the run is over: `logs` on this file judges it whole, as close() did
                last = self._lines.pop() if self._lines else monitor_format.record(self._last[0], **self._last[1])
                self._lines.append(monitor_format.finished(last))
                self._last = None
            self._write_metrics()
        if self.report_path is not None:
            from ctcdoctor.render.json import render_json

            try:
                _write_atomic(self.report_path, render_json(self.report()) + "\n")
            except OSError as error:
                self.notice(f"cannot write the report to {self.report_path}: {error}", key=f"write:{self.report_path}")

    def _write_metrics(self) -> None:
        """Append the records not yet written (the header first), and close the file: they are on disk."""
        assert self.metrics_path is not None
        lines = self._lines
        try:
            if not self._header_written:
                self.metrics_path.parent.mkdir(parents=True, exist_ok=True)
                lines = [monitor_format.header(**self.meta()), *lines]
            with open(self.metrics_path, "a" if self._header_written else "w", encoding="utf-8") as handle:
                handle.write("".join(line + "\n" for line in lines))
        except OSError as error:
            self.notice(f"cannot write the metrics to {self.metrics_path}: {error}", key=f"write:{self.metrics_path}")
            return
        self._header_written = self._meta_frozen = True
        self._lines = []

    def result(self) -> dict[str, Any]:
        """The `result` object of the JSON report."""
        from ctcdoctor.training.report import monitor_result

        return monitor_result(self)

    def report(self) -> Report:
        """The report so far (the final one after `close()`)."""
        seconds = time.perf_counter() - self._started
        return Report("monitor", self.name, self.findings, self._checks, self.result(), seconds=seconds, invocation=self.name)

    def close(self) -> Report:
        """Judge everything recorded, write the JSONL, the report and the plot; print the verdict. Idempotent, and
        never raises: a plot it cannot draw (no step recorded) is one line, and the verdict is printed."""
        if self.closed:
            return self.report()
        try:
            self._materialize({})
            self._judge(final=True)
        except Exception as error:  # noqa: BLE001 - the verdict so far is still given
            self._internal(error, "close()")
        self.closed = True
        plot_note = self._save_plot() if self.plot_path is not None else None  # first: the report lists the plot
        self._write_files(final=True)
        if self._printer is not None:
            self._printer.stop()
            lines = [f"[ctcdoctor] {self.name}: {self.summary()}"]
            for found in self.findings:
                lines.extend(finding_lines(found))
            self._printer.write(lines + ([f"[ctcdoctor] {plot_note}"] if plot_note else []))
        elif plot_note:
            self.notice(plot_note, key="plot")
        return self.report()

    def _save_plot(self) -> str | None:
        """Draw the plot to `plot_path`; None when written, else the line that says why not."""
        assert self.plot_path is not None
        if "loss" not in self._columns:
            why = " (the run stopped before its first step)" if self.should_stop and self.stopped_at == 0 else ""
            return f"no plot written to {self.plot_path}: no training step was recorded{why}"
        from ctcdoctor.training.report import save_plot

        try:
            save_plot(self, self.plot_path)
        except Exception as error:  # noqa: BLE001 - a plot is never worth the verdict
            return f"no plot written to {self.plot_path}: {type(error).__name__}: {error}"
        self.plot_written = True
        return None

    def summary(self, stopping: str | None = None) -> str:
        """Counts by severity, and where the run stopped. `stopping` (said before the stop takes effect, as the check
        before training is): "" where the framework stops before its next step, else why it runs step 1 first."""
        counts = {severity: sum(1 for item in self.findings if item.severity.value == severity) for severity in ("error", "warning", "info")}
        text = ", ".join(f"{count} {name}{'s' if count != 1 and name != 'info' else ''}" for name, count in counts.items())
        if self.stop_reason is not None:
            code, step = self.stop_reason.code, self.stopped_at or 0
            if stopping is not None:
                text += (f"; stopping after step {step:,} on {code} ({stopping})" if stopping else
                         f"; stopping {'before step 1' if step == 0 else f'after step {step:,}'} on {code}")
            else:
                text += f"; stopped before step 1 on {code}" if step == 0 else f"; stop at step {step:,} on {code}"
        return text

    def run_data(self) -> Any:
        """The metrics recorded so far as a `Run` (what `ctcdoctor logs` reads from the JSONL)."""
        return self._columns.run(str(self.metrics_path or self.name), self.meta())

    def plot(self, ax: Any = None) -> Any:
        """The figure: loss, CER and blank ratio over steps with each verdict's steps shaded."""
        from ctcdoctor.training.plot import plot
        from ctcdoctor.training.report import logs_result

        return plot(logs_result(self), ax=ax)

    def __enter__(self) -> Monitor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def check_options(every: int, stop_on: str | None, layout: str, patience: int, reduction: str | None) -> None:
    """Refuse bad options with a ValueError naming them: at construction, before training starts (the callbacks
    call it from their own constructors, so that a bad option never ends a fit)."""
    if int(every) < 1:
        raise ValueError(f"every={every}: expected a number of steps >= 1")
    if stop_on not in STOP_ON:
        raise ValueError(f"stop_on={stop_on!r}: expected 'error', 'warning', 'info' or None")
    if layout not in ("TNC", "NTC"):
        raise ValueError(f"layout={layout!r}: expected 'TNC' or 'NTC'")
    if int(patience) < 0:
        raise ValueError(f"patience={patience}: expected a number of steps >= 0")
    if reduction not in (None, "mean", "sum", "none"):
        raise ValueError(f"reduction={reduction!r}: expected 'mean' (loss per label) or 'sum' (loss per sample)")
