"""The single-sample overfit test: can the model memorise one sample? If not, why not?

Every CTC guide says it first: "if it cannot overfit one sample, the set-up is broken".
`run_overfit` makes that one call and explains a failure:

1. pick the sample(s) from the loader's data set (indexing it and reusing the loader's
   collate function when the loader is a DataLoader; otherwise unbatching the loader);
2. run the static length, label and output checks (CTC00x, CTC01x, CTC02x) on just that
   batch; an error that makes training meaningless (an infeasible length, a label out of
   range, NaN outputs, ...) is reported and training is skipped;
3. train a deep copy of the model (the user's model is never touched) with
   `Setup.optimizer` or Adam(1e-3), gradient clipping, and ctcdoctor's own `ctc_loss` on
   `log_softmax` of the (T, N, C) view, so `--alpha/--gamma` apply and the CTC path is known;
4. every `eval_every` steps decode greedily from the step's own output (no extra forward),
   and stop once the decode equals the target at `patience` evaluations in a row;
5. on failure, diagnose: CTC072 (loss non-finite, diverged or oscillating), CTC071 (every
   frame blank), CTC070 (otherwise), with the loss curve, the last decode and the likely
   causes (the static findings, the head's blank bias, the learning rate, frozen layers).

No printing here: progress goes through callbacks, results are data. Sample picking lives in
`ctcdoctor.load.samples`, the diagnosis in `ctcdoctor.overfit.diagnose`, the codes' documentation
in `ctcdoctor.codes`. Torch is imported inside the functions (the CLI imports this module).
"""
from __future__ import annotations

import copy
import dataclasses
import math
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, cast

from ctcdoctor.errors import UserInputError
from ctcdoctor.findings import Finding
from ctcdoctor.load.samples import pick_samples
from ctcdoctor.overfit.curve import median
from ctcdoctor.overfit.diagnose import (
    _quote,
    classify_failure,
    collapse_causes,
    explain_failure,
)
from ctcdoctor.overfit.result import (
    BLOCKING,
    DEFAULT_LR,
    STATIC_CHECKS,
    Evaluation,
    FrameProbabilities,
    OverfitOptions,
    OverfitResult,
    Progress,
)

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from ctcdoctor.findings import CheckResult
    from ctcdoctor.protocol import Setup

# ----------------------------------------------------------------------------- CTC path


def ctc_path(log_probs: torch.Tensor) -> str:
    """Which CTC implementation `ctcdoctor.ctc.ctc_loss` runs on `log_probs` (asked of its own dispatch).

    A `CTCDOCTOR_KERNEL` setting that cannot run here is a usage error (exit 2).
    """
    from ctcdoctor.ctc.dispatch import describe_path

    try:
        return describe_path(log_probs)
    except (RuntimeError, ValueError) as error:
        raise UserInputError(str(error), "Unset CTCDOCTOR_KERNEL, or set it to a path that can run on this device.") from None


# ----------------------------------------------------------------------------- model helpers


def find_head(model: torch.nn.Module, inputs: Any) -> str:
    """Name of the final layer with parameters: the last module owning parameters to finish its
    forward on `inputs` (so definition order does not matter), or the last such module in
    `model.modules()` order when the forward cannot be traced."""
    from ctcdoctor.measure.model import evaluating, execution_order

    owners = [name for name, module in model.named_modules() if next(module.parameters(recurse=False), None) is not None]
    if not owners:
        raise UserInputError("--freeze-except-head: the model has no parameters", "Drop --freeze-except-head.")
    finished: list[str] = []
    try:
        with execution_order(model, when="post") as order, evaluating(model):
            model(inputs)
        finished = order
    except Exception:
        finished = []
    return finished[-1] if finished else owners[-1]


def _blank_bias_gap(model: torch.nn.Module, head: str | None, blank: int, num_classes: int) -> float | None:
    """How many nats the head's bias favours blank over the mean other class (None if unknown)."""
    if head is None:
        return None
    module = dict(model.named_modules()).get(head)
    bias = getattr(module, "bias", None)
    if bias is None or bias.dim() != 1 or bias.shape[0] != num_classes or num_classes < 2:
        return None
    values = bias.detach().double().cpu()
    others = (values.sum() - values[blank]) / (num_classes - 1)
    return float(values[blank] - others)


def _last_parameter_owner(model: torch.nn.Module) -> str | None:
    owners = [name for name, module in model.named_modules() if next(module.parameters(recurse=False), None) is not None]
    return owners[-1] if owners else None


def _forward(model: torch.nn.Module, inputs: Any) -> tuple[torch.Tensor, torch.Tensor | None]:
    """model(inputs) -> (output, returned lengths or None), keeping autograd (unlike probe.split_output)."""
    import torch

    value = model(inputs)
    lengths = None
    if isinstance(value, (tuple, list)) and len(value) == 2:
        value, lengths = value
    if not isinstance(value, torch.Tensor) or value.dim() != 3:
        raise TypeError(f"model(inputs) returned {type(value).__name__}; expected a (T, N, C) / (N, T, C) tensor")
    return value, lengths


def normalisation_note(kind: str | None, axis: int | None) -> str:
    """What training on log_softmax(output) means for this model's output kind."""
    if kind == "log_probs" and axis == 2:
        return "the model emits log-probabilities; log_softmax leaves them unchanged: trained exactly as written"
    if kind == "logits":
        return "the model emits raw logits (CTC021); overfit applies log_softmax over classes, i.e. trains with that fix applied"
    if kind == "probs" and axis == 2:
        return (
            "the model emits probabilities (CTC020); overfit trains on log_softmax of them as written, which caps "
            "every frame's confidence: a failure here is that bug, not your data"
        )
    if kind in ("log_probs", "probs"):
        return (
            "the model normalises over the wrong axis (CTC024); overfit applies log_softmax over classes on top, which "
            "partly hides the bug: fix CTC024 whatever the overfit says"
        )
    return "overfit trains CTC on log_softmax over the class axis of the model output"


# ----------------------------------------------------------------------------- the run


def _static_checks(setup: Setup, model: torch.nn.Module, raw: Any, spec: str, samples: Sequence[int]):
    from ctcdoctor.engine import Context, Options, run_checks
    from ctcdoctor.registry import select_checks

    context = Context(dataclasses.replace(setup, model=model, loader=[raw]), Options(max_batches=1, scan_batches=1))
    findings, results = run_checks(context, select_checks(STATIC_CHECKS))
    prefix = f"[sample {samples[0]}] " if len(samples) == 1 else f"[samples {', '.join(map(str, samples))}, numbered from 0 here] "
    relabelled = [
        dataclasses.replace(item, message=prefix + item.message, evidence={**item.evidence, "overfit_samples": list(samples)})
        for item in findings
    ]
    return context, relabelled, results


def _describe_optimizer(optimizer: Any) -> tuple[str, float | None]:
    groups = getattr(optimizer, "param_groups", None) or [{}]
    lr = groups[0].get("lr")
    try:
        lr = float(lr) if lr is not None else None
    except (TypeError, ValueError):
        lr = None
    return f"{type(optimizer).__name__}(lr={lr:g})" if lr is not None else type(optimizer).__name__, lr


def run_overfit(
    setup: Setup,
    spec: str,
    options: OverfitOptions,
    on_progress: Callable[[Progress], None] | None = None,
    on_phase: Callable[[str], None] | None = None,
) -> tuple[list[Finding], list[CheckResult], OverfitResult]:
    """Run the overfit test. Returns (findings, static check results, result)."""
    import torch

    previous_threads = torch.get_num_threads()
    if options.threads and not str(options.device).lower().startswith("cuda"):
        torch.set_num_threads(options.threads)
    try:
        # fork_rng: seeding for the run must not change the caller's global random state.
        with torch.random.fork_rng(devices=[torch.cuda.current_device()] if torch.cuda.is_available() else []):
            return _run_overfit(setup, spec, options, on_progress, on_phase)
    finally:
        torch.set_num_threads(previous_threads)


def _run_overfit(setup, spec, options, on_progress, on_phase):
    import torch

    from ctcdoctor.ctc import edit_distance
    from ctcdoctor.load.batches import normalise_batch, split_targets
    from ctcdoctor.measure.model import class_dim, move_inputs, time_dim, to_tnc

    phase = on_phase or (lambda text: None)
    if options.steps < 1:
        raise UserInputError(f"--steps {options.steps}: need at least one step", "Use --steps 1000 or so.")
    if options.eval_every < 1 or options.patience < 1:
        raise UserInputError("--eval-every and --patience must be at least 1", "Use the defaults (10 and 3).")
    from ctcdoctor.load.device import resolve_device

    device = resolve_device(options.device)
    phase("taking the sample(s)")
    raw, source = pick_samples(setup.loader, options.samples, setup.batch_axis)
    batch = normalise_batch(raw, 0, 0, setup.batch_axis)
    sequences, problems = split_targets(batch)
    blank = setup.blank
    torch.manual_seed(options.seed)
    model = copy.deepcopy(setup.model).to(device)

    alphabet = setup.alphabet
    result = OverfitResult(samples=tuple(options.samples), source=source, targets=(), seed=options.seed, device=str(device))

    findings: list[Finding] = []
    check_results: list[Any] = []
    layout = setup.layout
    lengths = None
    num_classes = None
    kind = axis = None
    if options.static_checks:
        phase("static checks on the sample(s)")
        context, findings, check_results = _static_checks(setup, model, raw, spec, options.samples)
        try:
            layout = context.layout.layout
            num_classes = context.num_classes
            lengths = context.output_lengths.per_run[0] if context.output_lengths.known else None
            kinds = context.output_kinds
            kind, axis = kinds[0].kind, kinds[0].axis
        except Exception:
            pass
    if num_classes is not None and alphabet is not None and len(alphabet) + 1 != num_classes:
        alphabet = None  # CTC014 reports it; decode to indices rather than mislabel

    def text(sequence: Sequence[int]) -> str:
        if alphabet is None:
            return " ".join(str(int(c)) for c in sequence)
        try:
            return "".join(str(alphabet[int(c) - (int(c) > blank)]) for c in sequence)
        except (IndexError, TypeError):
            return " ".join(str(int(c)) for c in sequence)

    target_lists = [[int(c) for c in sequence.tolist()] for sequence in sequences]
    result.targets = tuple(text(t) for t in target_lists)
    result.normalisation = normalisation_note(kind, axis)

    blocking = sorted({item.code for item in findings if item.code in BLOCKING and item.severity.value == "error"})
    if problems and "CTC012" not in blocking:
        blocking.append("CTC012")
    result.ctc_path = ctc_path(torch.zeros(1, 1, 2, device=device))
    if blocking:
        result.skipped_because = tuple(blocking)
        result.diagnosis = blocking[0]
        result.notes.append(
            f"training skipped: {', '.join(blocking)} make(s) the overfit meaningless on this sample; fix it first"
        )
        return list(findings), list(check_results), result

    # ------------------------------------------------------------------ set up training
    inputs = move_inputs(batch.inputs, device)
    targets = batch.targets.to(device)
    target_lengths = batch.target_lengths.to(device)
    head = None
    if options.freeze_except_head:
        head = find_head(model, inputs)
        for name, parameter in model.named_parameters():
            if not (name == head or name.startswith(head + ".")) and head != "":
                parameter.requires_grad_(False)
    result.head = head or _last_parameter_owner(model)
    params = [p for p in model.parameters() if p.requires_grad]
    every = list(model.parameters())
    frozen_modules = sorted(
        {name.rsplit(".", 1)[0] if "." in name else name for name, p in model.named_parameters() if not p.requires_grad}
    )
    result.parameters = {
        "total": sum(p.numel() for p in every),
        "trainable": sum(p.numel() for p in params),
        "frozen": sum(p.numel() for p in every if not p.requires_grad),
        "freeze_except_head": options.freeze_except_head,
    }
    if not params:
        raise UserInputError(
            "no parameter of the model requires a gradient" + (f" (--freeze-except-head kept only {head!r})" if head else ""),
            "Unfreeze at least the output layer (requires_grad=True).",
        )
    if setup.optimizer is not None:
        try:
            optimizer = setup.optimizer(params)
        except Exception as error:
            raise UserInputError(f"Setup.optimizer(params) raised {type(error).__name__}: {error}",
                                 "Make it return a torch.optim.Optimizer for the given parameters.") from error
        if options.lr is not None:
            for group in optimizer.param_groups:
                group["lr"] = options.lr
    else:
        optimizer = torch.optim.Adam(params, lr=options.lr if options.lr is not None else DEFAULT_LR)
    result.optimizer, result.lr = _describe_optimizer(optimizer)
    modified = []
    if options.alpha is not None:
        modified.append(f"alpha={options.alpha:g}")
    if options.gamma:
        modified.append(f"gamma={options.gamma:g}")
    result.loss_function = "ctcdoctor.ctc.ctc_loss" + (f" ({', '.join(modified)})" if modified else " (plain CTC)")

    from ctcdoctor.ctc import ctc_loss, greedy_decode

    model.train()
    started = time.perf_counter()  # the clock includes the first forward, which step 1 uses
    try:
        output, returned = _forward(model, inputs)
    except Exception as error:
        raise UserInputError(
            f"model(inputs) raised {type(error).__name__} in training mode on the chosen sample(s): {error}",
            "A BatchNorm over a single value per channel fails in training mode: pick more samples (--samples 0,1) "
            "or fix the model; use --debug for the traceback.",
        ) from error
    if returned is not None:
        out_lengths = torch.as_tensor(returned).reshape(-1).to(device, torch.long)
    elif lengths is not None:
        out_lengths = lengths.to(device)
    else:
        frames = output.shape[time_dim(layout)]
        out_lengths = torch.full((batch.size,), frames, dtype=torch.long, device=device)
        result.notes.append(f"output lengths unknown: every sample uses all {frames} frames")
    model_returns_lengths = returned is not None
    result.ctc_path = ctc_path(to_tnc(output, layout).detach().float())
    total_label = sum(len(t) for t in target_lists) or 1

    clip = float(options.clip or 0.0)
    norms: list[Any] = []
    pending: list[Any] = []
    losses = result.losses
    streak = 0
    fit_step = fit_seconds = None
    last_decodes: list[list[int]] = []
    phase("training")

    step = 0
    for step in range(1, options.steps + 1):
        if step > 1:
            output, returned = _forward(model, inputs)
            if model_returns_lengths and returned is not None:
                out_lengths = torch.as_tensor(returned).reshape(-1).to(device, torch.long)
        log_probs = to_tnc(output, layout).float().log_softmax(-1)
        loss = ctc_loss(log_probs, targets, out_lengths, target_lengths, blank=blank, alpha=options.alpha, gamma=options.gamma)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if clip > 0:
            norms.append(torch.nn.utils.clip_grad_norm_(params, clip))
        optimizer.step()
        pending.append(loss.detach())

        if step % options.eval_every and step != options.steps:
            continue
        # ---------------------------------------------------------- evaluation (every k steps)
        values = torch.stack(pending).tolist()
        pending.clear()
        losses.extend(values)
        bad = next((i for i, v in enumerate(values) if not math.isfinite(v)), None)
        if bad is not None:
            result.nonfinite_step = len(losses) - len(values) + bad + 1
        decodes = cast("list[list[int]]", greedy_decode(log_probs.detach(), out_lengths, blank=blank))  # no alphabet: indices
        last_decodes = decodes
        distance = sum(edit_distance(d, t) for d, t in zip(decodes, target_lists))
        cer = distance / total_label
        best = log_probs.detach().argmax(-1)
        valid = torch.arange(best.shape[0], device=best.device)[:, None] < out_lengths[None, :]
        blank_ratio = float(((best == blank) & valid).sum()) / max(int(valid.sum()), 1)
        elapsed = time.perf_counter() - started
        shown = tuple(text(d) for d in decodes)
        result.evaluations.append(Evaluation(step, values[-1], cer, shown, blank_ratio, elapsed))
        if distance == 0 and all(d == t for d, t in zip(decodes, target_lists)):
            streak += 1
            if streak == 1:
                fit_step, fit_seconds = step, elapsed
        else:
            streak = 0
        if on_progress is not None:
            on_progress(Progress(step, options.steps, values[-1], cer, " | ".join(shown), streak))
        if result.nonfinite_step is not None or streak >= options.patience:
            break
    if device.type == "cuda":
        torch.cuda.synchronize()
    result.seconds = time.perf_counter() - started
    result.steps_run = step
    result.trained = True
    result.fitted = streak >= options.patience
    if result.fitted:
        result.steps_to_fit, result.seconds_to_fit = fit_step, fit_seconds
    result.train_decode = tuple(text(d) for d in last_decodes)
    if norms:
        norm_values = torch.stack(norms).tolist()
        finite = [v for v in norm_values if math.isfinite(v)]
        result.clipping = {
            "max_norm": clip,
            "steps": len(norm_values),
            "clipped_steps": sum(1 for v in norm_values if not math.isfinite(v) or v > clip),
            "median_grad_norm": median(finite) if finite else None,
            "max_grad_norm": max(finite) if finite else None,
        }
    else:
        result.clipping = {"max_norm": 0.0, "steps": step, "clipped_steps": 0, "median_grad_norm": None, "max_grad_norm": None}

    # ------------------------------------------------------------------ final state (eval mode)
    phase("final decode")
    _final_state(result, model, inputs, layout, out_lengths, targets, target_lengths, target_lists, blank, options.alpha, text, model_returns_lengths)

    if not result.fitted:
        final_blank = result.evaluations[-1].blank_ratio if result.evaluations else 0.0
        empty = bool(last_decodes) and all(len(d) == 0 for d in last_decodes) and any(target_lists)
        context = {
            "blank_bias_gap": _blank_bias_gap(model, result.head, blank, int(output.shape[class_dim(layout)])),
            "frozen_modules": frozen_modules,
        }
        explained = bool(collapse_causes(result, context)) or any(item.severity.value == "error" for item in findings)
        verdict = classify_failure(losses, final_blank, empty, result.nonfinite_step, collapse_explained=explained)
        result.diagnosis = verdict.code
        findings.append(explain_failure(verdict, result, findings, context))
    elif result.final_decode and list(result.final_decode) != list(result.targets):
        result.notes.append(
            "the training-mode decode fits but the eval-mode decode differs "
            f"({', '.join(map(_quote, result.final_decode))}): dropout or BatchNorm statistics differ between the modes"
        )
    return list(findings), list(check_results), result


def _final_state(result, model, inputs, layout, out_lengths, targets, target_lengths, target_lists, blank, alpha, text,
                 model_returns_lengths) -> None:
    """Eval-mode decode, edit distance, spikiness and the per-frame plot data of the first sample."""
    import warnings

    import torch

    from ctcdoctor.ctc import (
        edit_distance,
        greedy_decode,
        pseudo_ground_truth,
        spikiness,
    )
    from ctcdoctor.measure.model import evaluating, to_tnc

    try:
        with evaluating(model):
            output, returned = _forward(model, inputs)
        if model_returns_lengths and returned is not None:
            out_lengths = torch.as_tensor(returned).reshape(-1).to(out_lengths.device, torch.long)
        log_probs = to_tnc(output, layout).float().log_softmax(-1)
    except Exception as error:  # a model that only runs in train mode: keep the training numbers
        result.notes.append(f"eval-mode forward failed ({type(error).__name__}: {error}); final numbers are from training mode")
        return
    decodes = greedy_decode(log_probs, out_lengths, blank=blank)
    result.final_decode = tuple(text(d) for d in decodes)
    result.edit_distance = tuple(edit_distance(d, t) for d, t in zip(decodes, target_lists))
    result.cer = sum(result.edit_distance) / max(sum(len(t) for t in target_lists), 1)
    if not torch.isfinite(log_probs).all():
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            result.spikiness = spikiness(log_probs, out_lengths, blank, targets, target_lengths).as_dict()
        except Exception as error:
            result.notes.append(f"spikiness metrics unavailable: {type(error).__name__}: {error}")
        try:
            pseudo = pseudo_ground_truth(log_probs, targets, out_lengths, target_lengths, blank, alpha)
        except Exception:
            pseudo = None
    frames = int(out_lengths[0])
    classes = [blank] + [c for c in dict.fromkeys(target_lists[0]) if c != blank]
    probs = log_probs[:frames, 0, classes].exp().double().cpu()
    shown = pseudo[:frames, 0, classes].double().cpu() if pseudo is not None else None
    result.frames = FrameProbabilities(
        classes=tuple(classes),
        names=tuple(["blank"] + [text([c]) for c in classes[1:]]),
        probs=tuple(tuple(row) for row in probs.tolist()),
        pseudo=None if shown is None or not torch.isfinite(shown).all() else tuple(tuple(row) for row in shown.tolist()),
        target=result.targets[0] if result.targets else "",
    )
