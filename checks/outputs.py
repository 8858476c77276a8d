"""Output checks: is what reaches CTC a (T, N, C) tensor of float32 log-probabilities?"""
from __future__ import annotations

from typing import TYPE_CHECKING

from ctcdoctor.registry import SkipCheck, check, finding
from ctcdoctor.render.phrases import listing, plural

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from ctcdoctor.findings import Finding
    from ctcdoctor.measure.criterion import CriterionAudits, CriterionShift
    from ctcdoctor.measure.inputs import InputStats
    from ctcdoctor.measure.model import LayoutDecision, ModelRun
    from ctcdoctor.measure.outputs import OutputKind, TrainingView


@check("CTC020", "error", "model output is probabilities, not log-probabilities",
       variants=(("warning", "model output is probabilities; the criterion takes their log"),
                 ("info", "softmax in eval mode only: training does not see probabilities")))
def probabilities_output(output_kinds: list[OutputKind], criterion_audit: CriterionAudits,
                         layout: LayoutDecision, training_view: TrainingView,
                         criterion_shift: CriterionShift) -> list[Finding]:
    """
    **What it checks.** Whether the model's output lies in [0, 1] and sums to 1 over the
    class axis: `softmax` was applied where CTC needs `log_softmax`.

    **Why it matters.** `F.ctc_loss` takes log-probabilities. Fed probabilities it computes
    a meaningless number: the loss moves, sometimes even falls, but the model learns
    nothing useful (a classic OCR report: "loss decreases but predictions are all blank").

    **Example.** `x = self.fc(x).softmax(-1)`: `error CTC020 the output lies in [0.0003, 0.98]
    and sums to 1 over the classes: these are probabilities.`

    When `Setup.criterion` takes the `log` itself (its value equals reference CTC on
    `log(output)`), training is correct and the finding is a warning: `log` of a softmax
    underflows to `-inf` once the model is confident (a probability below 1e-45 in float32).

    Keras: `keras.losses.CTC` (`keras.losses.ctc`, `loss="ctc"`) applies `log_softmax` to the
    model output itself, so a head ending in softmax trains on `log_softmax(softmax(z))` and
    the loss sticks. The Keras callback reports it as this code before the first step, from
    the output layer (`Dense(C, activation="softmax")`, a `Softmax` layer) and the compiled
    loss, or at the first evaluation when only the outputs show it.

    A softmax that runs only in eval mode (deepspeech.pytorch's `InferenceBatchSoftmax`:
    `F.softmax(x, dim=-1) if not self.training else x`) is no error: ctcdoctor runs the model
    in eval mode, as decoding does, and when that output is not log-probabilities it runs the
    model batches once more in train mode (on a copy of the model, without gradients) to see
    what the loss sees. When training sees another kind of output, this check, CTC021, CTC024
    and the criterion audit (CTC030) judge that one, and this code is an **info** note that
    names the module that switches on `self.training`:
    `info CTC020 InferenceBatchSoftmax at inference_softmax applies softmax in eval mode only:
    training sees raw logits, and your criterion applies log_softmax to them; decoding sees
    probabilities — fine.`

    **Fix.** End the model with `log_softmax(dim=-1)` (or return logits and apply
    `log_softmax` in the loss). Never take `log` of a softmax: it underflows to `-inf`.
    Keras: drop the softmax (`Dense(C)` with no activation): `keras.losses.CTC` takes logits.
    """
    from ctcdoctor.measure.outputs import log_softmax_call

    call = log_softmax_call(layout.layout)
    where = TRAIN_MODE if training_view.differs else ""
    for kind in training_view.judged(output_kinds):
        if kind.kind == "probs" and kind.axis == 2:
            evidence = {"min": kind.min, "max": kind.max, **_mode_evidence(training_view)}
            if _criterion_normalises(criterion_audit):
                return [finding(
                    "CTC020",
                    f"the output{where} lies in [{kind.min:.3g}, {kind.max:.3g}] and sums to 1 over the class axis: these are "
                    "probabilities. Your criterion takes their log (it matches reference CTC), so training is right, but "
                    "log(softmax) underflows to -inf for classes the model becomes sure are absent, and the loss turns inf.",
                    f"Return {call} from the model (or logits, with log_softmax in the loss) and drop the log "
                    "in the criterion.",
                    {**evidence, "criterion_takes_log": True},
                    severity="warning",
                    title="model output is probabilities; the criterion takes their log",
                )]
            return [
                finding(
                    "CTC020",
                    f"the output{where} lies in [{kind.min:.3g}, {kind.max:.3g}] and sums to 1 over the class axis: "
                    "these are probabilities, and F.ctc_loss expects log-probabilities.",
                    f"Replace softmax with {call} at the head (or apply log_softmax to logits in the loss).",
                    evidence,
                )
            ]
    if training_view.differs:
        return _eval_only_softmax(output_kinds, training_view, criterion_audit, criterion_shift)
    return []


TRAIN_MODE = " in train mode, which the loss sees (the eval-mode output differs: see CTC020)"
"""How a finding on the train-mode output says so (an output that changes with self.training)."""


def _mode_evidence(view: TrainingView) -> dict:
    """Evidence that the output judged is the train-mode one (an output that changes with self.training)."""
    if not view.differs:
        return {}
    switch = view.switch
    return {"judged_mode": "train", "switch": None if switch is None else {"module": switch.name, "type": switch.type}}


KIND_WORDS = {"probs": "probabilities", "log_probs": "log-probabilities", "logits": "raw logits", "empty": "no finite values"}


def _kind_words(kind: OutputKind) -> str:
    from ctcdoctor.measure.outputs import AXIS_NAMES

    words = KIND_WORDS.get(kind.kind, kind.kind)
    return words if not kind.wrong_axis else f"{words} over the {AXIS_NAMES[kind.axis]} axis"


def _eval_only_softmax(output_kinds: list[OutputKind], view: TrainingView, audits: CriterionAudits,
                       shift: CriterionShift) -> list[Finding]:
    """The info note: the eval output is probabilities, training sees something else (judged by CTC021/CTC024)."""
    evaluated = next((kind for kind in output_kinds if kind.kind == "probs" and kind.axis == 2), None)
    if evaluated is None:
        return []
    trained = view.kinds[0]
    switch = view.switch
    if switch is None:
        who = "The model"
    elif switch.name:
        who = f"{switch.type} at {switch.name}"
    else:
        who = f"{switch.type}.forward (the model itself)"
    does = ("applies softmax in eval mode only" if switch is None or switch.eval_kind.startswith("probs")
            else "changes its output with self.training")
    if trained.kind == "log_probs" and trained.axis == 2:
        verdict, fine = "training sees log-probabilities", True
    elif trained.kind == "logits" and _applies_log_softmax(audits, shift):
        verdict, fine = "training sees raw logits, and your criterion applies log_softmax to them", True
    elif trained.kind == "logits":
        verdict, fine = "training sees raw logits (CTC021 says what the loss needs)", False
    else:
        verdict, fine = f"training sees {_kind_words(trained)} (see CTC024)", False
    message = f"{who} {does}: {verdict}; decoding sees probabilities{' — fine' if fine else ''}."
    hint = ("Nothing to change for training: ctcdoctor judged the output training sees (CTC021, CTC024, CTC030). "
            "Decode from the eval-mode output as you do; take log() of it only where a decoder needs log-probabilities.")
    if not fine:
        hint = "Fix what training sees (the finding named above); the eval-only softmax itself is fine for decoding."
    evidence = {"eval": {"kind": evaluated.kind, "min": evaluated.min, "max": evaluated.max},
                "train": {"kind": trained.kind, "axis": trained.axis, "min": trained.min, "max": trained.max},
                "switch": None if switch is None else {"module": switch.name, "type": switch.type,
                                                       "eval_kind": switch.eval_kind, "train_kind": switch.train_kind},
                "how": view.how}
    return [finding("CTC020", message, hint, evidence, severity="info",
                    title="softmax in eval mode only: training does not see probabilities")]


@check("CTC021", "warning", "model output is raw logits")
def raw_logits_output(output_kinds: list[OutputKind], criterion_audit: CriterionAudits,
                      layout: LayoutDecision, training_view: TrainingView, criterion_shift: CriterionShift) -> list[Finding]:
    """
    **What it checks.** Whether the output is neither probabilities nor log-probabilities
    over any axis: raw logits. When `Setup.criterion` is given and already applies
    `log_softmax`, nothing is reported. ctcdoctor tells that two ways: its value equals
    CTC on `log_softmax(output)`, possibly with another mistake the criterion audit (CTC030)
    names (a wrong blank, swapped lengths, another reduction); or, when the audit cannot
    explain the value (a scale factor, targets outside the classes), the value does not move
    when a constant is added to every class score of a frame (log_softmax cancels it, CTC on
    raw scores moves by it). A criterion the audit finds feeding raw logits, softmax
    probabilities or an output normalised over another axis to the loss still gets this
    warning; one that applies softmax gets it in the criterion's terms, as a consequence of
    CTC030. A criterion that raises leaves the question open: the check is skipped until it
    runs. A model whose output changes with `self.training` is judged on what training
    sees (see CTC020).

    **Why it matters.** `F.ctc_loss` on raw logits is not a likelihood: the loss can go
    negative, and gradients push logits up without bound instead of learning a distribution.

    **Example.** `return self.fc(x)` fed straight to `F.ctc_loss`: `warning CTC021 the output
    is raw logits (range -4.1 to 5.3; class log-sum-exp is not 0).`

    **Fix.** Apply `log_softmax(dim=-1)` over the class axis before the loss.
    """
    kinds = training_view.judged(output_kinds)
    if not any(kind.kind == "logits" for kind in kinds):
        return []
    if _applies_log_softmax(criterion_audit, criterion_shift):
        return []
    raised = next((audit for audit in criterion_audit.audits if audit.user_error is not None), None)
    if raised is not None:
        raise SkipCheck(f"the criterion raised on batch {raised.batch} (CTC030): whether it applies log_softmax to the "
                        "raw-logit output itself is judged once it runs")
    from ctcdoctor.measure.outputs import log_softmax_call

    kind = next(kind for kind in kinds if kind.kind == "logits")
    where = TRAIN_MODE if training_view.differs else ""
    message = f"the output is raw logits{where} (range {kind.min:.3g} to {kind.max:.3g}); no axis sums to 1 in probability space."
    fix = f"Apply {log_softmax_call(layout.layout)} over the classes before F.ctc_loss."
    evidence = {"min": kind.min, "max": kind.max, **_mode_evidence(training_view)}
    audit = next((audit for audit in criterion_audit.audits if audit.mistake in CRITERION_NORMALISES), None)
    if audit is None:
        if any(audit.mistake == "raw_logits" for audit in criterion_audit.audits):
            fix = (f"Apply {log_softmax_call(layout.layout)} over the classes before F.ctc_loss: in Setup.criterion "
                   "(CTC030 gives the call) or at the model's head.")
        elif _no_criterion(criterion_audit):  # the training loop may normalise in its loss, out of ctcdoctor's sight
            fix = (f"Apply {log_softmax_call(layout.layout)} over the classes before F.ctc_loss. If your training loop "
                   "already applies it in the loss, give that loss as Setup.criterion (criterion(output, batch) -> loss, "
                   "computed as your training loop does): ctcdoctor then judges the output as your loss sees it.")
        elif criterion_audit.audits and not criterion_audit.skipped:  # a criterion is given: it may normalise already
            fix = (f"Apply {log_softmax_call(layout.layout)} over the classes before F.ctc_loss, in Setup.criterion or "
                   "at the model's head; if the criterion already takes log_softmax, check its axis (CTC030).")
        return [finding("CTC021", message, fix, evidence)]
    # The criterion normalises the logits, the wrong way (CTC030 names it): say so, and fix the criterion, not the model.
    how = CRITERION_NORMALISES[audit.mistake or ""]
    if audit.mistake == "criterion_axis" and audit.details:
        how = how.format(**audit.details)
    return [finding("CTC021", f"{message} The criterion normalises them {how} (CTC030).",
                    f"In the criterion, apply {log_softmax_call(layout.layout)} over the classes instead.",
                    {**evidence, "criterion_mistake": audit.mistake}, consequence_of="CTC030")]


def _no_criterion(audits: CriterionAudits) -> bool:
    from ctcdoctor.measure.criterion import NO_CRITERION

    return audits.skipped == NO_CRITERION


CRITERION_NORMALISES = {"probabilities": "with softmax, into probabilities, where the loss expects log-probabilities",
                        "criterion_axis": "with log_softmax over axis {axis} ({axis_name}), not over the class axis "
                                          "{class_axis}"}
"""CTC030 mistakes of a criterion that normalises raw logits itself, the wrong way."""


def _criterion_normalises(audits: CriterionAudits) -> bool:
    """True when the user's criterion matches reference CTC on the normalised output (log of probabilities,
    log_softmax of anything else): the criterion audit (CTC030) finds no mistake but the reduction, or, for a model
    with a second head whose loss the criterion adds, finds its value unmoved by a constant added to each frame's
    scores. Without a Setup.criterion the audit is skipped and this is False."""
    if audits.skipped or not audits.audits:
        return False
    return all(
        audit.user_error is None and (audit.agrees or audit.mistake == "reduction" or audit.zero_infinity or audit.normalises)
        for audit in audits.audits
    )


UNNORMALISED = ("raw_logits", "probabilities", "wrong_axis", "criterion_axis")
"""CTC030 mistakes whose recomputation feeds the loss something other than log_softmax of the output: a criterion
they explain does not apply log_softmax over the classes (criterion_axis: over time or the batch). Every other
named mistake is recomputed on log_softmax(output)."""


def _applies_log_softmax(audits: CriterionAudits, shift: CriterionShift) -> bool:
    """Whether the user's criterion applies log_softmax to the model's output itself (CTC021 then stays silent).

    The criterion audit decides when it explains the value: on log_softmax(output), with or without another mistake
    (a wrong blank, swapped lengths, a reduction), says yes; raw logits, probabilities or another axis say no. When it
    cannot explain it (a scale factor, targets outside the classes, audit skipped), the shift probe decides: a value
    that ignores a constant added to each frame's class scores comes from normalised scores."""
    explained = [audit for audit in audits.audits
                 if audit.user_error is None and (audit.agrees or audit.mistake or audit.zero_infinity)]
    if any(audit.mistake in UNNORMALISED for audit in explained):
        return False
    if audits.audits and len(explained) == len(audits.audits):
        return True
    return shift.probe().invariant is True


@check("CTC022", "warning", "output layout ambiguous (T == N)")
def ambiguous_layout(layout: LayoutDecision) -> list[Finding]:
    """
    **What it checks.** Whether ctcdoctor could tell the time axis from the batch axis. It
    reads the layout off the shape; when `T == N` it runs the model on a batch of another
    size and watches which axis follows; if the model cannot run at another batch size and
    `Setup.layout` is unset, the layout is ambiguous.

    **Why it matters.** `F.ctc_loss` wants `(T, N, C)`. A batch-first `(N, T, C)` tensor with
    `T == N` passes every shape check and trains on transposed data.

    **Example.** Batch 16, 16 output frames, a model that only runs at batch 16:
    `warning CTC022 T == N == 16 and the model failed on a batch of 15.`

    **Fix.** Set `Setup.layout = "TNC"` or `"NTC"`, and in training make the transpose
    explicit: `log_probs = output.transpose(0, 1)` for batch-first models.
    """
    if layout.layout is not None or "no axis" in layout.detail:
        return []
    return [
        finding(
            "CTC022",
            f"cannot tell the time axis from the batch axis: {layout.detail}. The checks read the output as (T, N, C).",
            'Set Setup.layout = "TNC" or "NTC" so the checks (and you) know which axis is time.',
            {"detail": layout.detail},
        )
    ]


@check("CTC029", "error", "Setup.layout contradicts the output's shape")
def contradicted_layout(layout: LayoutDecision, runs: list[ModelRun]) -> list[Finding]:
    """
    **What it checks.** That the axis `Setup.layout` names as the batch axis has the batch
    size: axis 1 for `"TNC"`, axis 0 for `"NTC"` and `"NCT"`.

    **Why it matters.** A wrong declaration makes every other reading of the output wrong:
    the time axis is read as the batch, output lengths look longer than the output (CTC003),
    and the length rule looks off by orders of magnitude (CTC004). When the shape refutes it,
    the checks read the layout off the shape instead, as with no declaration.

    **Example.** A time-major model returns `(39, 8, 27)` for a batch of 8, with
    `Setup(layout="NTC")`: `error CTC029 Setup.layout = "NTC" puts the batch on axis 0, but
    the output (39, 8, 27) has 39 there for a batch of 8; axis 1 has the batch size.`

    **Fix.** Declare the layout the model really returns (`"TNC"` here), or leave
    `Setup.layout` unset: ctcdoctor reads it off the shape, and probes when `T == N`.
    """
    if layout.contradicted is None:
        return []
    from ctcdoctor.measure.model import LAYOUT_AXES

    declared = layout.contradicted
    shape = tuple(runs[0].output.shape)
    size = runs[0].batch.size
    axis = LAYOUT_AXES[declared][1]
    holders = [index for index, extent in enumerate(shape) if extent == size]
    where = (f"axis {holders[0]} has the batch size" if len(holders) == 1
             else "no axis has the batch size" if not holders else f"axes {', '.join(map(str, holders))} have the batch size")
    how = "" if layout.source == "shape" else f" ({layout.detail})"
    read = f" The checks read it as {layout.layout} instead{how}." if layout.layout else ""
    fix = (f'Set Setup.layout = "{layout.layout}" (what the shape shows), or leave it unset: ctcdoctor reads the layout '
           "off the shape." if layout.layout else "Leave Setup.layout unset, or declare the layout the model really returns.")
    return [finding(
        "CTC029",
        f"Setup.layout = {declared!r} puts the batch on axis {axis}, but the output {shape} has {shape[axis]} there for "
        f"a batch of {size}; {where}.{read}",
        fix,
        {"declared": declared, "shape": list(shape), "batch_size": size, "read_as": layout.layout},
    )]


@check("CTC023", "error", "model output contains NaN or Inf")
def nonfinite_output(outputs: list[torch.Tensor], output_kinds: list[OutputKind], runs: list[ModelRun],
                     input_stats: list[InputStats]) -> list[Finding]:
    """
    **What it checks.** NaN, +Inf and -Inf values in the model's output on the scanned batches.
    When every sample with a non-finite output also has NaN/Inf inputs, the finding is marked
    as a consequence of CTC040: fix the inputs first.

    **Why it matters.** One NaN poisons the loss and every gradient; `-inf` log-probabilities
    (a `log` of an exact zero, a `masked_fill(-inf)` over a real class) make CTC `inf` for
    any sample that needs that class.

    **Example.** `log(softmax(x))` underflows: `error CTC023 the output holds 312 -inf
    values (0 NaN, 0 +inf).`

    **Fix.** Use `log_softmax` instead of `log(softmax)`; look for divisions by zero,
    `sqrt` of 0 in the backward, or masking with `-inf` in the model; check the inputs (CTC040).
    """
    kinds = output_kinds
    nan = sum(kind.nan for kind in kinds)
    posinf = sum(kind.posinf for kind in kinds)
    neginf = sum(kind.neginf for kind in kinds)
    if nan + posinf + neginf == 0:
        return []
    from ctcdoctor.measure.outputs import nonfinite_input_samples, nonfinite_output_samples

    total = sum(output.numel() for output in outputs)
    samples = nonfinite_output_samples(runs, outputs)
    from_inputs = bool(samples) and set(samples) <= nonfinite_input_samples(input_stats)
    message = (f"the output holds {nan} NaN, {posinf} +inf and {neginf} -inf values out of {total}, in "
               f"{plural(len(samples), 'sample')} ({listing(samples)}).")
    hint = "Use log_softmax instead of log(softmax(...)); look for division by zero or -inf masking in forward(); check inputs (CTC040)."
    if from_inputs:
        message += " Each of these samples has NaN/Inf inputs (CTC040): the model passes them through."
        hint = "Fix the inputs first (CTC040); if the output still holds NaN/Inf: " + hint[0].lower() + hint[1:]
    return [
        finding(
            "CTC023", message, hint,
            {"nan": nan, "posinf": posinf, "neginf": neginf, "total": total, "samples": samples[:50]},
            consequence_of="CTC040" if from_inputs else None,
        )
    ]


@check("CTC024", "error", "softmax taken over the wrong axis")
def wrong_softmax_axis(output_kinds: list[OutputKind], layout: LayoutDecision, training_view: TrainingView) -> list[Finding]:
    """
    **What it checks.** Whether the output is normalised (sums to 1 in probability space)
    over the time or the batch axis instead of the class axis.

    **Why it matters.** `log_softmax(dim=0)` on a `(T, N, C)` tensor, or `dim=1` after a
    transpose, makes each class a distribution over time: the loss is finite and even
    falls, but the model never learns per-frame class probabilities.

    **Example.** `x.log_softmax(0)` on `(T, N, C)`: `error CTC024 the output is
    log-probabilities over the time axis, not over the classes.`

    A model whose output changes with `self.training` is judged on what training sees (see CTC020).

    **Fix.** Take `log_softmax(dim=-1)`: the class axis is last in both `(T, N, C)` and
    `(N, T, C)`; for an `(N, C, T)` output (a `Conv1d` head) it is `dim=1`.
    """
    for kind in training_view.judged(output_kinds):
        if kind.wrong_axis:
            from ctcdoctor.measure.outputs import AXIS_NAMES

            what = "log-probabilities" if kind.kind == "log_probs" else "probabilities"
            axis_name = AXIS_NAMES[kind.axis]
            where = TRAIN_MODE if training_view.differs else ""
            return [
                finding(
                    "CTC024",
                    f"the output{where} is {what} over the {axis_name} axis, not over the classes: "
                    f"{'its exp' if kind.kind == 'log_probs' else 'it'} sums to 1 along the {axis_name} axis.",
                    "Take log_softmax(dim=1): the class axis of an (N, C, T) output is the middle one."
                    if layout.layout == "NCT" else "Take log_softmax(dim=-1): the class axis is the last one.",
                    {"axis": axis_name, "kind": kind.kind, "layout": layout.layout, **_mode_evidence(training_view)},
                )
            ]
    return []


@check("CTC026", "error", "model output is not a floating-point tensor of class scores")
def unusable_output(runs: list[ModelRun]) -> list[Finding]:
    """
    **What it checks.** That the model's output can hold CTC scores: a floating-point
    tensor (not integer, bool or complex) with at least one class on its last axis.

    **Why it matters.** `F.ctc_loss` needs float log-probabilities; an integer output
    (class indices from an `argmax`, a quantised head returned as `int8`, a `.long()` left
    in `forward`) carries no gradient and cannot be normalised, and an empty class axis has
    nothing to score. Every check that reads the output (CTC020–CTC025, the loss at
    initialisation, the criterion audit, the gradients, spikiness) is skipped with this
    reason.

    **Example.** `return self.fc(x).argmax(-1, keepdim=True)`: `error CTC026 batch 0: the
    model output is int64, not floating point.`

    **Fix.** Return the scores themselves: `log_softmax(dim=-1)` of the last layer's
    float output, shape `(T, N, C)` or `(N, T, C)` with `C = len(alphabet) + 1`; decode
    (argmax) only outside the model's training forward.
    """
    from ctcdoctor.measure.model import output_problem

    for run in runs:
        problem = output_problem(run.output)
        if problem is not None:
            return [
                finding(
                    "CTC026",
                    f"batch {run.batch.index}: {problem} (shape {tuple(run.output.shape)}); CTC needs float scores for each class.",
                    "Return the float output of the last layer after log_softmax(dim=-1), shape (T, N, C) or (N, T, C); "
                    "take argmax or quantise outside the forward that training uses.",
                    {"batch": run.batch.index, "dtype": str(run.output.dtype).replace("torch.", ""),
                     "shape": list(run.output.shape)},
                )
            ]
    return []


@check("CTC025", "warning", "output reaches the loss in half precision")
def half_precision_output(outputs: list[torch.Tensor]) -> list[Finding]:
    """
    **What it checks.** The dtype of the model's output: float16 or bfloat16.

    **Why it matters.** CTC sums over many paths in log space; in half precision the
    forward variables lose most of their digits and long sequences underflow. PyTorch's
    CUDA CTC does not support half inputs in every version, and cuDNN needs float32.

    **Example.** An autocast region around the whole model: `warning CTC025 the output
    is torch.float16.`

    **Fix.** Cast before the loss: `F.ctc_loss(log_probs.float(), ...)`, or compute the
    final `log_softmax` outside autocast.
    """
    dtypes = sorted({str(output.dtype) for output in outputs if str(output.dtype) in ("torch.float16", "torch.bfloat16")})
    if not dtypes:
        return []
    return [
        finding(
            "CTC025",
            f"the output is {', '.join(dtypes)}; CTC's log-space sums need float32.",
            "Cast to float32 before the loss: F.ctc_loss(log_probs.float(), ...), or keep log_softmax outside autocast.",
            {"dtypes": dtypes},
        )
    ]
