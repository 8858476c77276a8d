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
import sys
import time
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


def _detached(value: Any) -> Any:
    return value.detach() if hasattr(value, "detach") and getattr(value, "requires_grad", False) else value


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


WRAPPERS = ("AcceleratedOptimizer", "LightningOptimizer", "LossScaleOptimizer")
"""Optimizer wrappers whose `.optimizer` is the optimizer the user chose."""


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
        _validate(every, stop_on, layout, patience, reduction)
        self.optimizer: str | None = None
        """The optimizer's class name (from `optimizer=` or `use_optimizer`)."""
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
        self._checks: tuple[Any, ...] = ()
        self.resolved: tuple[Any, Any] | None = None
        """(Run, Curves) of the latest verdict."""
        self._pending: list[tuple[int, Any, Any, Any, dict[str, Any]]] = []
        self._early: dict[int, dict[str, Any]] = {}
        self._last: tuple[int, dict[str, float]] | None = None
        self._lines: list[str] = []
        self._header_written = False
        self._warned_step = False
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
        while not isinstance(optimizer, str) and type(optimizer).__name__ in WRAPPERS and hasattr(optimizer, "optimizer"):
            optimizer = optimizer.optimizer  # Accelerate's / Lightning's wrapper around the real optimizer
        self.optimizer = optimizer if isinstance(optimizer, str) else type(optimizer).__name__

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
        floats or 0-d tensors. Give the outputs of this step's batch as exactly one of
        `log_probs`, `logits`, `probs` or `outputs` (told apart by their values) ((T, N, C), or
        (N, T, C) with `layout="NTC"`) with
        `targets` (padded (N, S) or concatenated), `target_lengths` and `output_lengths`
        (frames per sample after subsampling; all T when omitted). Tensors or numpy arrays.
        """
        started = self._update_started = time.perf_counter()
        if self.closed:
            raise RuntimeError("Monitor.update() after close()")
        step = int(step)
        self._check_step(step, values)
        if target_lengths is not None and "infeasible" not in values:
            values["infeasible"] = self._infeasible(targets, target_lengths, output_lengths,
                                                    next((x for x in (log_probs, logits, probs, outputs) if x is not None), None),
                                                    layout or self.layout)
        # detached now (no sync): a kept loss must not keep its step's autograd graph alive
        self._pending.append((step, _detached(loss), _detached(lr), _detached(grad_norm),
                              {**self._early.pop(step, {}),
                               **{key: _detached(value) for key, value in values.items() if value is not None}}))
        self.steps_seen += 1
        if self.wants_outputs(step):
            kinds = (("log_probs", log_probs), ("logits", logits), ("probs", probs), ("auto", outputs))
            given = [(kind, value) for kind, value in kinds if value is not None]
            if len(given) > 1:
                raise ValueError(f"give one of log_probs, logits, probs, outputs; got {', '.join(kind for kind, _ in given)}")
            outputs = given[0] if given and targets is not None and target_lengths is not None else None
            self._evaluate(step, outputs, targets, target_lengths, output_lengths, layout or self.layout)
        self.seconds += time.perf_counter() - started
        return self.should_stop

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

    def _check_step(self, step: int, values: dict[str, Any]) -> None:
        for key, value in values.items():
            if isinstance(value, (str, bytes, bool)):
                raise TypeError(f"update(..., {key}={value!r}): expected a number or a 0-d tensor")
        last = self._pending[-1][0] if self._pending else (self._last[0] if self._last is not None else None)
        if last is not None and step < last and not self._warned_step:
            import warnings

            self._warned_step = True
            warnings.warn(f"ctcdoctor monitor: the step went back from {last} to {step}; pass a global step (one that "
                          "keeps counting across epochs), or the curves are read out of order", stacklevel=3)

    def log(self, step: int, **values: Any) -> None:
        """Add scalars to the record of `step` (eval_loss, eval_cer, a grad norm logged later).

        Values for a step already written to the JSONL (older than the latest recorded step)
        are dropped; for a step not yet recorded they wait for its `update()`."""
        step = int(step)
        for pending in reversed(self._pending):
            if pending[0] == step:
                pending[4].update(values)
                return
        if self._last is not None and self._last[0] == step:
            numbers = dict(zip(values, _floats(list(values.values()))))
            self._last[1].update(numbers)
            self._columns.add(step, numbers)
            return
        if self._last is None or step > self._last[0]:
            self._early.setdefault(step, {}).update(values)

    def preflight(self, report: Report) -> bool:
        """Add the findings of `ctcdoctor.check` run before training (the callbacks do); they stay
        in every verdict and count for `stop_on`. Returns `should_stop`."""
        self._preflight, self._checks = tuple(report.findings), tuple(report.checks)
        self.findings = tuple(report.findings)
        self._stop_if_due(self._last[0] if self._last is not None else 0)
        if self._printer is not None:
            lines = [f"[ctcdoctor] check before training ({plural(len(report.checks), 'check')}): {self.summary()}"]
            for found in report.findings:
                lines.extend(finding_lines(found))
            self._printer.write(lines)
        return self.should_stop

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
            from ctcdoctor.training.outputs import measure_outputs

            stats = measure_outputs(outputs[1], targets, target_lengths, output_lengths, kind=outputs[0], layout=layout,
                                    blank=self.blank, alphabet=self.alphabet, word_delimiter=self.word_delimiter,
                                    max_samples=self.max_samples, examples=self.samples)
            self.latest = stats
            self.evaluations += 1
        self._materialize(stats.record() if stats is not None else {})
        self._next_check = (step // self.every + 1) * self.every
        previous = {found.code for found in self.findings}
        self._judge(final=False)
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

    def _materialize(self, extra: dict[str, float]) -> None:
        """Read back the steps recorded since the last evaluation and add them to the columns and the JSONL lines."""
        if not self._pending:
            return
        pending, self._pending = self._pending, []
        numbers = _floats([value for record in pending for value in (record[1], record[2], record[3])])
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
                if self._last is not None:
                    self._lines.append(monitor_format.record(self._last[0], **self._last[1]))
                self._last = (step, record)
            self._columns.add(step, record)

    def options(self, finished: bool = False) -> Options:
        """What the rules need to know; `finished` (or a closed monitor): the run is over, judge it whole."""
        meta = self.meta()
        return Options(classes=meta.get("classes"), label_length=meta.get("label_length"),
                       reduction=meta.get("reduction"), patience=self.patience, optimizer=self.optimizer or meta.get("optimizer"),
                       finished=finished or self.closed, trainer=meta.get("trainer"))

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
            lines = list(self._lines)
            if final and self._last is not None:  # the run is over: `logs` on this file judges it whole, as close() did
                lines.append(monitor_format.finished(monitor_format.record(self._last[0], **self._last[1])))
                self._last = None
            if not self._header_written:
                self.metrics_path.parent.mkdir(parents=True, exist_ok=True)
                lines.insert(0, monitor_format.header(**self.meta()))
                self._header_written = self._meta_frozen = True
                mode = "w"
            else:
                mode = "a"
            with open(self.metrics_path, mode, encoding="utf-8") as handle:
                handle.write("".join(line + "\n" for line in lines))
            self._lines = []
        if self.report_path is not None:
            from ctcdoctor.render.json import render_json

            _write_atomic(self.report_path, render_json(self.report()) + "\n")

    def result(self) -> dict[str, Any]:
        """The `result` object of the JSON report."""
        from ctcdoctor.training.report import monitor_result

        return monitor_result(self)

    def report(self) -> Report:
        """The report so far (the final one after `close()`)."""
        seconds = time.perf_counter() - self._started
        return Report("monitor", self.name, self.findings, self._checks, self.result(), seconds=seconds, invocation=self.name)

    def close(self) -> Report:
        """Judge everything recorded, write the JSONL, the report and the plot; print the verdict. Idempotent."""
        if self.closed:
            return self.report()
        self._materialize({})
        self._judge(final=True)
        self.closed = True
        self._write_files(final=True)
        if self.plot_path is not None:
            from ctcdoctor.training.report import save_plot

            save_plot(self, self.plot_path)
        if self._printer is not None:
            self._printer.stop()
            lines = [f"[ctcdoctor] {self.name}: {self.summary()}"]
            for found in self.findings:
                lines.extend(finding_lines(found))
            self._printer.write(lines)
        return self.report()

    def summary(self) -> str:
        counts = {severity: sum(1 for item in self.findings if item.severity.value == severity) for severity in ("error", "warning", "info")}
        text = ", ".join(f"{count} {name}{'s' if count != 1 and name != 'info' else ''}" for name, count in counts.items())
        if self.stop_reason is not None:
            text += f"; stop at step {self.stopped_at:,} on {self.stop_reason.code}"
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


def _validate(every: int, stop_on: str | None, layout: str, patience: int, reduction: str | None) -> None:
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
