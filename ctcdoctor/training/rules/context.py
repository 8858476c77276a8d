"""What every curve rule receives: the curves, the options, and facts computed once.

Rules are pure functions `rule(analysis) -> list[Finding]`. Facts that several rules need
(the divergence, the final plateau and what it is, the sawtooth) are computed here once,
lazily, by pure functions of the rule modules; a rule that defers to another reads the
same fact (a plateau is not reported as such when it is the blank plateau).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from ctcdoctor.training.curve import Curve
from ctcdoctor.training.series import Curves, Series


@dataclass(frozen=True)
class Options:
    """What the log cannot say, given by the user (or by the monitor, which knows it)."""

    classes: int | None = None
    """C: classes of the model output, blank included."""
    label_length: float | None = None
    """U: mean number of labels per target."""
    reduction: str | None = None
    """"mean" (F.ctc_loss's default: loss divided by the target length, per label) or "sum"
    (loss per sample: Keras' ctc_batch_cost, reduction="none"/"sum"); None compares with both."""
    patience: int = 0
    """Steps a plateau (or a stuck error rate, or the blank phase) must last before it is reported.
    0 (a log without a budget), shares of the run decide; the monitor sets a budget so that the
    normal early blank plateau is not reported as a failure. The budget is the same while the run
    goes on and once it is over: a run that ended before its phase outlived it is too short to
    judge (CTC220, info), not a collapse, so the close never contradicts what was said live."""
    finished: bool = False
    """The run is over (the monitor's `close()`, or a monitor log whose last line says so): findings
    say "the run ended ... train longer" instead of "nothing to fix yet"."""
    trainer: str | None = None
    """What drove the run: "huggingface", "lightning", "keras", or "loop" (a plain loop feeding the monitor).
    Only Hugging Face's Trainer hides NaN losses from its log (CTC202 says so only then); None: unknown."""
    sizes: str | None = None
    """Where `classes` and `label_length` came from, for the messages that quote them: "monitor" (the monitor
    measured them from the outputs and targets it was given, or took `Monitor(classes=)`), "flags" (`ctcdoctor logs
    --classes/--label-length`), None (given to `diagnose` directly)."""
    clip: tuple[float, float] | None = None
    """The gradients were clipped: (the norm they were clipped to, the largest norm given before clipping).
    Set by the verdict from the log (the monitor measures the gradients the optimizer holds at each
    evaluation, `grad_norm_applied`, beside the `grad_norm` it was given; or a given grad norm that never
    exceeds a cap it keeps hitting). Clipping advice then says clipping is in place instead of adding it."""
    optimizer: str | None = None
    """The optimizer's class name (Adam, AdamW, SGD): learning-rate advice depends on it. None: read it
    from the learning rate's tag (`lr-Adam`) when it is there, else the advice is relative."""


class Analysis:
    """The curves of one run and the facts the rules share (computed on first use)."""

    def __init__(self, curves: Curves, options: Options | None = None) -> None:
        self.curves = curves
        self.options = options or Options()
        self.unit = curves.unit
        self.loss = Curve(curves.loss)
        self.eval_loss = Curve(curves.eval_loss) if curves.eval_loss is not None and len(curves.eval_loss) else None

    @property
    def patience(self) -> int:
        """The budget the curve rules apply, the same while the run goes on and once it is over (a finished run
        shorter than its budget is too short to judge, not stuck: see `Options.patience`)."""
        return self.options.patience

    @cached_property
    def optimizer(self) -> str | None:
        """The optimizer's name, given or read from the learning rate's tag (None when unknown)."""
        from ctcdoctor.training.rules.lr_advice import optimizer_in_tag

        if self.options.optimizer:
            return self.options.optimizer
        return optimizer_in_tag(self.curves.lr.tag) if self.curves.lr is not None else None

    def curve(self, series: Series) -> Curve:
        """A Curve for any series (cached per tag)."""
        cache = self.__dict__.setdefault("_curves", {})
        if series.tag not in cache:
            cache[series.tag] = self.loss if series is self.curves.loss else Curve(series)
        return cache[series.tag]

    def called(self, series: Series, noun: str) -> str:
        """'the loss' for a tag that says nothing more (loss, train_loss, Loss/train), else 'the loss epoch_loss'."""
        from ctcdoctor.training.names import words

        if set(words(series.tag)) <= set(words(noun)) | {"train", "training", "lr", "learning", "rate"}:
            return f"the {noun}"
        return f"the {noun} {series.tag}"

    def step(self, step: int) -> str:
        return f"{self.unit} {step:,}"

    def logged(self, count: int) -> str:
        """"1 logged step", "2,000 logged steps"."""
        return f"{count:,} logged {self.unit}{'s' if count != 1 else ''}"

    def steps(self, start: int, end: int) -> str:
        return self.step(start) if start == end else f"{self.unit}s {start:,}-{end:,}"

    # ------------------------------------------------------------------ content-free level
    @cached_property
    def content_free(self) -> list[tuple[float, str]]:
        """The CTC loss of a model that knows where labels go but not which: about ln(C-1) per
        label (every label costs a guess among C-1 symbols). Per sample that is U*ln(C-1). It is
        an estimate: skewed label frequencies lower it (to U times the label entropy), alignment
        uncertainty raises it. Empty when C is not known."""
        classes, length = self.options.classes, self.options.label_length
        if classes is None or classes < 3:
            return []
        per_label = math.log(classes - 1)
        levels = []
        if self.options.reduction in (None, "mean"):
            levels.append((per_label, f"ln(C-1) = ln({classes - 1}) = {per_label:.3g} per label (reduction='mean')"))
        if self.options.reduction in (None, "sum", "none") and length:
            levels.append((length * per_label,
                           f"U*ln(C-1) = {length:.3g}*ln({classes - 1}) = {length * per_label:.3g} per sample"))
        return levels

    def sizes_origin(self) -> str:
        """Where the content-free estimate's C and U came from, in the terms of what the user ran."""
        if self.options.sizes == "monitor":
            sizes = f"C={self.options.classes} classes"
            if self.options.label_length:
                sizes += f" and U={self.options.label_length:.3g} labels per target"
            return f"an estimate from the monitor's {sizes}"
        if self.options.sizes == "flags":
            return "an estimate from --classes/--label-length"
        return "an estimate from the classes and label length given"

    def near_content_free(self, level: float, low: float = 0.6, high: float = 1.3) -> tuple[float, str] | None:
        """The content-free level `level` matches (within [low, high] times it), if any."""
        for reference, text in self.content_free:
            if low * reference <= level <= high * reference:
                return reference, text
        return None

    # ------------------------------------------------------------------ shared facts
    @cached_property
    def divergence(self) -> Any:
        from ctcdoctor.training.rules.divergence import find_divergence

        found = find_divergence(self.loss)
        cycles = self.cycles
        if found is not None and cycles is not None and self.loss.last_step - found.onset_step < 1.5 * cycles.period:
            return None  # the last climb of a repeating cycle (CTC206), not a run that left its valley
        return found

    @cached_property
    def cycles(self) -> Any:
        from ctcdoctor.training.rules.cycles import find_cycles

        return find_cycles(self.loss)

    @cached_property
    def sawtooth(self) -> Any:
        from ctcdoctor.training.rules.oscillation import find_sawtooth

        return find_sawtooth(self.loss)

    @cached_property
    def tail(self) -> Any:
        from ctcdoctor.training.rules.plateau import classify_tail

        return classify_tail(self)

    @cached_property
    def stuck_metric(self) -> Any:
        from ctcdoctor.training.rules.metrics import find_stuck_metric

        return find_stuck_metric(self)
