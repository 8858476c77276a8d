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

No printing here: progress goes through callbacks, results are data. Torch is imported
inside the functions so that registering the codes below costs nothing at CLI start-up.
"""
from __future__ import annotations

import copy
import dataclasses
import math
import os
import statistics
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Sequence

from ctcdoctor.errors import UserInputError
from ctcdoctor.findings import Finding
from ctcdoctor.registry import document, finding

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from ctcdoctor.protocol import Setup
    from ctcdoctor.runner import CheckResult

# ----------------------------------------------------------------------------- codes

document(
    "CTC070",
    "error",
    "single-sample overfit failed within its budget",
    """
    **What it means.** `ctcdoctor overfit` trained a copy of the model on one sample (or a
    handful) for the whole step budget, and the greedy decode never matched the target
    stably. The loss neither went non-finite nor collapsed to all-blank outputs: it just
    did not get there. A healthy CTC set-up memorises one sample in a few hundred steps.

    **Example.** `error CTC070 after 500 steps sample 0 decodes as "dier" for "dinner"
    (CER 0.33); the loss fell 4.1 -> 0.21 and plateaued.` The decode drops the doubled
    "nn": the model never learned the blank that must separate two equal labels.

    **Fix.** Read the likely causes in the finding. If the loss was still falling, give it
    more steps (`--steps`) or a higher `--lr`. If it plateaued, look at the static findings
    listed with it (a tight length budget, CTC002; un-normalised inputs), and run again with
    `--freeze-except-head`: if the head alone can fit, the feature extractor is the problem
    (frozen, dead ReLUs, too much downsampling); if not, the problem is the loss wiring.
    """,
)

document(
    "CTC071",
    "error",
    "overfit collapsed to blank-only output",
    """
    **What it means.** At the end of the overfit run the model outputs blank on (almost)
    every frame, so the greedy decode is empty. Every CTC model passes through an all-blank
    phase early in training (blank is the cheapest way to lower the loss at first); a model
    that cannot leave it in the step budget has a problem that keeps it there.

    **Example.** `error CTC071 after 300 steps blank is the argmax on 100% of the 24 frames
    of sample 0 (mean p(blank) 0.999) and the decode is empty, for target "dinner"; the head's
    bias favours blank by 12.0 nats and the learning rate is 1e-05.`

    **Fix.** The usual causes, in order: a learning rate far too small for the optimizer
    (Adam wants about 1e-3 here); a head initialised to favour blank (a large blank bias);
    layers frozen by mistake (`requires_grad=False`) or a feature extractor whose output is
    constant (dead ReLUs, inputs not normalised); too few frames per label (CTC002). The
    finding lists the ones it measured. If the loss was still falling, give it more steps.
    """,
)

document(
    "CTC072",
    "error",
    "overfit loss diverged, oscillated or went non-finite",
    """
    **What it means.** While overfitting one sample the loss went NaN or infinite, ended
    well above where it started, or jumped up and down instead of settling. The finding
    gives the step where it happened.

    **Example.** `error CTC072 the loss went non-finite (nan) at step 37; it had fallen
    from 4.2 to 3.1 by step 20, then rose to 85 at step 30.`

    **Fix.** Lower the learning rate (ten times is a good first try: `--lr`), keep gradient
    clipping on, compute CTC in float32 (CTC025), and make sure the model emits
    log-probabilities (CTC020, CTC024): `log` of a softmax underflows to `-inf`. An
    optimizer built for SGD learning rates (0.1-1) and used with Adam diverges like this.
    """,
)

# ----------------------------------------------------------------------------- settings

DEFAULT_STEPS = 500
"""Step budget. A small CRNN fits one word in 100-300 Adam steps at 1e-3; 500 leaves room."""
DEFAULT_EVAL_EVERY = 10
"""Decode and check every this many steps; the steps between stay a plain training loop."""
DEFAULT_PATIENCE = 3
"""Fitted = the decode equals the target at this many evaluations in a row."""
DEFAULT_CLIP = 5.0
"""Gradient clipping max norm (0 disables); 5 is common for CTC recipes (ESPnet, wav2letter)."""
DEFAULT_LR = 1e-3
"""Adam's learning rate when the Setup has no optimizer."""

STATIC_CHECKS = ("CTC00", "CTC01", "CTC02")
"""Static checks run on the chosen samples before training."""
BLOCKING = ("CTC001", "CTC003", "CTC010", "CTC011", "CTC012", "CTC023", "CTC999")
"""Static errors that make training meaningless: an infeasible alignment (the loss is inf),
unusable lengths or labels (F.ctc_loss fails or reads garbage), NaN outputs, a model that
crashed. Training is skipped when one of them fires. Output-format problems (CTC020, CTC021,
CTC024, CTC025) do not block: see `normalisation_note`."""

BLANK_COLLAPSE_RATIO = 0.95
"""CTC071 when, at the end, blank is the argmax on at least this share of frames and every
decode is empty."""
DIVERGED_FACTOR = 1.5
"""CTC072 "diverged" when the median loss of the last tenth exceeds the first steps' by this factor."""
REBOUND_FACTOR = 3.0
"""CTC072 "diverged" too when the end sits this far above the best loss reached (and above 0.5)."""
OSCILLATION_JUMPS = 0.2
"""CTC072 "oscillated" when at least this share of the last half's steps jump up by >= 20% and the
loss at the end is still above half its starting value (a noisy loss that keeps falling is not this)."""
SMALL_LR = 1e-4
"""A learning rate below this is named as a likely cause of a blank collapse (for Adam-like optimizers)."""
BLANK_BIAS_NATS = 3.0
"""A head bias favouring blank by more than this many nats is named as a likely cause."""


@dataclass(frozen=True)
class OverfitOptions:
    samples: tuple[int, ...] = (0,)
    steps: int = DEFAULT_STEPS
    lr: float | None = None
    """Override the learning rate (of Setup.optimizer's groups too); None keeps it / Adam 1e-3."""
    alpha: float | None = None
    gamma: float = 0.0
    freeze_except_head: bool = False
    seed: int = 0
    device: str = "auto"
    clip: float = DEFAULT_CLIP
    eval_every: int = DEFAULT_EVAL_EVERY
    patience: int = DEFAULT_PATIENCE
    static_checks: bool = True
    threads: int | None = 1
    """torch intra-op threads while training on CPU (restored afterwards); None leaves torch's setting.
    One sample is too small to split across threads: on the 2-core CI machine under load a CRNN
    step took 10 ms on one thread and 120-280 ms on two (OpenMP workers waiting on each other)."""


@dataclass(frozen=True)
class Progress:
    """One evaluation, handed to the progress callback."""

    step: int
    steps: int
    loss: float
    cer: float
    decode: str
    streak: int
    """Evaluations in a row whose decode equalled the target."""


@dataclass(frozen=True)
class Evaluation:
    step: int
    loss: float
    cer: float
    decodes: tuple[str, ...]
    blank_ratio: float
    seconds: float


@dataclass(frozen=True)
class FrameProbabilities:
    """Per-frame data of the first chosen sample for the plot (classes of its target only)."""

    classes: tuple[int, ...]
    """Class indices shown: the blank first, then each distinct target class."""
    names: tuple[str, ...]
    probs: tuple[tuple[float, ...], ...]
    """(frames, len(classes)) output probabilities after training (eval mode)."""
    pseudo: tuple[tuple[float, ...], ...] | None
    """(frames, len(classes)) pseudo ground truth (posterior occupancy, alpha-rescaled with --alpha)."""
    target: str


@dataclass
class OverfitResult:
    """Everything the overfit run measured; `to_dict` is the JSON `result`."""

    samples: tuple[int, ...]
    source: str
    """How the samples were taken ("dataset[i] + loader.collate_fn" or "unbatched from the loader")."""
    targets: tuple[str, ...]
    trained: bool = False
    skipped_because: tuple[str, ...] = ()
    fitted: bool = False
    diagnosis: str | None = None
    """None when fitted; else CTC070/CTC071/CTC072 (or the blocking static code)."""
    steps_run: int = 0
    steps_to_fit: int | None = None
    seconds: float = 0.0
    seconds_to_fit: float | None = None
    final_decode: tuple[str, ...] = ()
    """Greedy decode in eval mode after training."""
    train_decode: tuple[str, ...] = ()
    """Greedy decode of the last training-mode evaluation."""
    edit_distance: tuple[int, ...] = ()
    cer: float | None = None
    losses: list[float] = field(default_factory=list)
    """Loss of every step."""
    evaluations: list[Evaluation] = field(default_factory=list)
    nonfinite_step: int | None = None
    spikiness: dict[str, Any] | None = None
    ctc_path: str = ""
    loss_function: str = ""
    optimizer: str = ""
    lr: float | None = None
    device: str = "cpu"
    seed: int = 0
    clipping: dict[str, Any] = field(default_factory=dict)
    parameters: dict[str, Any] = field(default_factory=dict)
    head: str | None = None
    normalisation: str = ""
    frames: FrameProbabilities | None = None
    notes: list[str] = field(default_factory=list)

    def loss_summary(self) -> dict[str, Any]:
        return loss_summary(self.losses)

    def to_dict(self) -> dict[str, Any]:
        return {
            "samples": list(self.samples),
            "source": self.source,
            "fitted": self.fitted,
            "trained": self.trained,
            "skipped_because": list(self.skipped_because),
            "diagnosis": self.diagnosis,
            "steps": self.steps_run,
            "steps_to_fit": self.steps_to_fit,
            "seconds": round(self.seconds, 3),
            "seconds_to_fit": None if self.seconds_to_fit is None else round(self.seconds_to_fit, 3),
            "seconds_per_step": round(self.seconds / self.steps_run, 5) if self.steps_run else None,
            "targets": list(self.targets),
            "final_decode": list(self.final_decode),
            "train_decode": list(self.train_decode),
            "edit_distance": list(self.edit_distance),
            "cer": self.cer,
            "loss": self.loss_summary(),
            "nonfinite_step": self.nonfinite_step,
            "history": [
                {"step": e.step, "loss": e.loss, "cer": e.cer, "decode": list(e.decodes), "blank_ratio": e.blank_ratio}
                for e in self.evaluations
            ],
            "spikiness": self.spikiness,
            "ctc_path": self.ctc_path,
            "loss_function": self.loss_function,
            "optimizer": self.optimizer,
            "lr": self.lr,
            "device": self.device,
            "seed": self.seed,
            "clipping": self.clipping,
            "parameters": self.parameters,
            "head": self.head,
            "normalisation": self.normalisation,
            "notes": list(self.notes),
        }


# ----------------------------------------------------------------------------- CTC path


def decide_ctc_path(device_type: str, triton_ok: bool, forced: str | None) -> str:
    """Which CTC implementation `ctc_loss` runs for tensors on `device_type`.

    The rule of the dispatch (issue 4): the fused Triton kernel for CUDA tensors when triton
    imports, unless `CTCDOCTOR_KERNEL=torch`; PyTorch's native kernels otherwise.
    """
    forced = (forced or "").strip().lower()
    if device_type == "cuda":
        if triton_ok and forced != "torch":
            return "triton fused kernel (CUDA)"
        return "torch native (CUDA)"
    return f"torch native ({device_type.upper()})"


def ctc_path(log_probs: "torch.Tensor") -> str:
    """Which CTC implementation `ctcdoctor.ctc.ctc_loss` runs on `log_probs`.

    Asks the loss's own dispatch (`ctcdoctor.ctc.dispatch.describe_path`), so the report says
    what actually ran; without that module, applies the documented rule (`decide_ctc_path`)
    with the Triton path off, since a `ctc_loss` without dispatch always runs PyTorch's kernels.
    A `CTCDOCTOR_KERNEL` setting that cannot run here is a usage error (exit 2).
    """
    try:
        from ctcdoctor.ctc.dispatch import describe_path
    except ImportError:
        return decide_ctc_path(log_probs.device.type, False, os.environ.get("CTCDOCTOR_KERNEL"))
    try:
        return describe_path(log_probs)
    except (RuntimeError, ValueError) as error:
        raise UserInputError(str(error), "Unset CTCDOCTOR_KERNEL, or set it to a path that can run on this device.") from None


# ----------------------------------------------------------------------------- picking samples


def parse_samples(text: str | None, default: Sequence[int] = (0,)) -> tuple[int, ...]:
    """`"0,3,7"` -> (0, 3, 7); ranges `"0-3"` too. Raises UserInputError on junk."""
    if text is None or not str(text).strip():
        return tuple(default)
    picked: list[int] = []
    for part in str(text).replace(" ", "").split(","):
        if not part:
            continue
        try:
            if "-" in part:
                low, high = part.split("-", 1)
                picked.extend(range(int(low), int(high) + 1))
            else:
                picked.append(int(part))
        except ValueError:
            raise UserInputError(f"--samples {text!r}: {part!r} is not a sample index", "Write indices like 0 or 0,3,7 or 0-3.") from None
    if not picked:
        raise UserInputError(f"--samples {text!r} names no sample", "Write indices like 0 or 0,3,7.")
    if any(index < 0 for index in picked):
        raise UserInputError(f"--samples {text!r}: sample indices start at 0", "Use non-negative indices.")
    return tuple(dict.fromkeys(picked))


def pick_samples(loader: Any, indices: Sequence[int]) -> tuple[Any, str]:
    """One raw batch holding exactly the chosen samples, and how it was obtained.

    A DataLoader over a map-style data set: `collate_fn([dataset[i] for i in indices])`, so
    sample i is `dataset[i]` whatever the loader's shuffling. Anything else: iterate the
    loader and cut the samples out of their batches (inputs sliced on the first axis;
    samples from different batches are right-padded with zeros to a common shape).
    """
    from torch.utils.data import DataLoader, IterableDataset

    if isinstance(loader, DataLoader) and loader.batch_size is not None and not isinstance(loader.dataset, IterableDataset):
        dataset = loader.dataset
        try:
            size = len(dataset)
        except TypeError:
            size = None
        outside = [i for i in indices if size is not None and i >= size]
        if outside:
            raise UserInputError(
                f"sample {outside[0]} does not exist: the loader's data set has {size} samples",
                f"Pick --sample between 0 and {size - 1}.",
            )
        try:
            items = [dataset[i] for i in indices]
            raw = loader.collate_fn(items)
        except Exception as error:
            raise UserInputError(
                f"taking samples {list(indices)} from the loader's data set raised {type(error).__name__}: {error}",
                "Make dataset[i] and the loader's collate_fn work on a list of items (try it by hand); use --debug for the traceback.",
            ) from error
        return raw, "dataset[i] + loader.collate_fn"
    return _unbatch(loader, indices), "cut from the loader's batches"


def _unbatch(loader: Any, indices: Sequence[int]) -> tuple[Any, ...]:
    import torch

    from ctcdoctor.batches import normalise_batch, split_targets

    wanted = set(indices)
    found: dict[int, tuple[Any, torch.Tensor, int, int]] = {}
    seen = 0
    try:
        for position, raw in enumerate(loader):
            batch = normalise_batch(raw, position, seen)
            sequences, _ = split_targets(batch)
            for offset in range(batch.size):
                index = seen + offset
                if index in wanted:
                    found[index] = (
                        _slice(batch.inputs, offset, batch.size),
                        sequences[offset],
                        int(batch.input_lengths[offset]),
                        int(batch.target_lengths[offset]),
                    )
            seen += batch.size
            if len(found) == len(wanted):
                break
    except UserInputError:
        raise
    except Exception as error:
        raise UserInputError(
            f"iterating the loader raised {type(error).__name__}: {error}",
            "Fix the data set or collate function (iterate it once by hand); use --debug for the traceback.",
        ) from error
    missing = [i for i in indices if i not in found]
    if missing:
        raise UserInputError(
            f"sample {missing[0]} does not exist: the loader yields {seen} samples",
            f"Pick --sample between 0 and {max(seen - 1, 0)}.",
        )
    parts = [found[i] for i in indices]
    inputs = _stack([part[0] for part in parts])
    width = max((len(part[1]) for part in parts), default=0)
    targets = torch.zeros(len(parts), width, dtype=torch.long)
    for row, part in enumerate(parts):
        targets[row, : len(part[1])] = part[1]
    input_lengths = torch.tensor([part[2] for part in parts], dtype=torch.long)
    target_lengths = torch.tensor([min(part[3], len(part[1])) for part in parts], dtype=torch.long)
    return inputs, targets, input_lengths, target_lengths


def _slice(inputs: Any, offset: int, size: int) -> Any:
    import torch

    if isinstance(inputs, torch.Tensor):
        return inputs[offset : offset + 1] if inputs.dim() > 0 and inputs.shape[0] == size else inputs
    if isinstance(inputs, (tuple, list)):
        return type(inputs)(_slice(item, offset, size) for item in inputs)
    if isinstance(inputs, dict):
        return {key: _slice(item, offset, size) for key, item in inputs.items()}
    return inputs


def _stack(items: list[Any]) -> Any:
    import torch

    first = items[0]
    if isinstance(first, torch.Tensor):
        if len(items) == 1:
            return first
        shape = [max(item.shape[axis] for item in items) for axis in range(first.dim())]
        padded = []
        for item in items:
            pad: list[int] = []
            for axis in reversed(range(1, item.dim())):
                pad.extend([0, shape[axis] - item.shape[axis]])
            padded.append(torch.nn.functional.pad(item, pad) if any(pad) else item)
        return torch.cat(padded)
    if isinstance(first, (tuple, list)):
        return type(first)(_stack([item[k] for item in items]) for k in range(len(first)))
    if isinstance(first, dict):
        return {key: _stack([item[key] for item in items]) for key in first}
    return first


# ----------------------------------------------------------------------------- model helpers


def find_head(model: "torch.nn.Module", inputs: Any) -> str:
    """Name of the final layer with parameters: the last module owning parameters to finish its
    forward on `inputs` (so definition order does not matter), or the last such module in
    `model.modules()` order when the forward cannot be traced."""
    from ctcdoctor.probe import evaluating

    owners = [(name, module) for name, module in model.named_modules() if next(module.parameters(recurse=False), None) is not None]
    if not owners:
        raise UserInputError("--freeze-except-head: the model has no parameters", "Drop --freeze-except-head.")
    order: list[str] = []
    hooks = [module.register_forward_hook(lambda _m, _i, _o, name=name: order.append(name)) for name, module in owners]
    try:
        with evaluating(model):
            model(inputs)
    except Exception:
        order = []
    finally:
        for hook in hooks:
            hook.remove()
    return order[-1] if order else owners[-1][0]


def _blank_bias_gap(model: "torch.nn.Module", head: str | None, blank: int, num_classes: int) -> float | None:
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


def _last_parameter_owner(model: "torch.nn.Module") -> str | None:
    owners = [name for name, module in model.named_modules() if next(module.parameters(recurse=False), None) is not None]
    return owners[-1] if owners else None


def _forward(model: "torch.nn.Module", inputs: Any) -> tuple["torch.Tensor", "torch.Tensor | None"]:
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


# ----------------------------------------------------------------------------- diagnosis


def _median(values: Sequence[float]) -> float:
    return float(statistics.median(values)) if values else float("nan")


def loss_summary(losses: Sequence[float]) -> dict[str, Any]:
    """First, best (with step), last and tail median of a loss curve (steps are 1-based)."""
    if not losses:
        return {"first": None, "best": None, "best_step": None, "last": None, "tail_median": None, "trend": None}
    finite = [(value, step) for step, value in enumerate(losses, 1) if math.isfinite(value)]
    best, best_step = min(finite) if finite else (float("nan"), None)
    tail = [value for value in losses[-max(5, len(losses) // 10):] if math.isfinite(value)]
    window = max(5, len(losses) // 10)
    previous = [value for value in losses[-2 * window : -window] if math.isfinite(value)]
    trend = None
    if tail and previous:
        change = (_median(tail) - _median(previous)) / max(abs(_median(previous)), 1e-12)
        trend = "falling" if change < -0.05 else "rising" if change > 0.05 else "flat"
    return {
        "first": losses[0],
        "best": best,
        "best_step": best_step,
        "last": losses[-1],
        "tail_median": _median(tail) if tail else float("nan"),
        "trend": trend,
    }


@dataclass(frozen=True)
class Verdict:
    code: str
    kind: str
    """"nonfinite", "diverged", "oscillated", "blank", or "budget"."""
    step: int | None = None


def classify_failure(losses: Sequence[float], final_blank_ratio: float, decodes_empty: bool, nonfinite_step: int | None) -> Verdict:
    """Pure rule that names a failed run. Order: non-finite, diverged, blank collapse, oscillation, budget."""
    if nonfinite_step is not None:
        return Verdict("CTC072", "nonfinite", nonfinite_step)
    if losses:
        early = _median(losses[:5])
        window = max(5, len(losses) // 10)
        tail = _median(losses[-window:])
        best = min(losses)
        if tail > DIVERGED_FACTOR * early or (tail > REBOUND_FACTOR * best and tail - best > 0.5):
            peak = max(range(len(losses)), key=lambda i: losses[i]) + 1
            return Verdict("CTC072", "diverged", peak)
    if decodes_empty and final_blank_ratio >= BLANK_COLLAPSE_RATIO:
        return Verdict("CTC071", "blank")
    early_median = _median(losses[:5]) if losses else float("nan")
    stalled = bool(losses) and _median(losses[-max(5, len(losses) // 10):]) > 0.5 * early_median
    if len(losses) >= 20 and stalled:  # noisy but still learning (dropout) is not oscillation
        half = losses[len(losses) // 2 :]
        jumps = sum(1 for a, b in zip(half, half[1:]) if b > 1.2 * a and b - a > 0.05)
        if jumps >= OSCILLATION_JUMPS * (len(half) - 1):
            first_jump = next(
                (len(losses) - len(half) + i + 2 for i, (a, b) in enumerate(zip(half, half[1:])) if b > 1.2 * a and b - a > 0.05),
                None,
            )
            return Verdict("CTC072", "oscillated", first_jump)
    return Verdict("CTC070", "budget")


def _fmt(value: float | None) -> str:
    if value is None:
        return "?"
    if not math.isfinite(value):
        return str(value)
    return f"{value:.3g}"


def _quote(text: str) -> str:
    return f'"{text}"'


def _collapse_repeats(sequence: Sequence[Any]) -> list[Any]:
    return [item for position, item in enumerate(sequence) if position == 0 or item != sequence[position - 1]]


def explain_failure(
    verdict: Verdict,
    result: OverfitResult,
    static: Sequence[Finding],
    context: dict[str, Any],
) -> Finding:
    """The CTC070/071/072 finding: what happened (numbers), what to change, and the evidence."""
    summary = result.loss_summary()
    steps = result.steps_run
    label = ", ".join(f"sample {s}" for s in result.samples)
    decodes = result.train_decode or result.final_decode
    pairs = "; ".join(f"{_quote(d)} for {_quote(t)}" for d, t in zip(decodes, result.targets))
    curve = (
        f"loss {_fmt(summary['first'])} at step 1, best {_fmt(summary['best'])} at step {summary['best_step']}, "
        f"{_fmt(summary['tail_median'])} over the last steps"
        + (f" ({summary['trend']})" if summary["trend"] else "")
    )
    causes: list[str] = []
    lr = result.lr
    gap = context.get("blank_bias_gap")
    frozen = result.parameters.get("frozen", 0)
    total = result.parameters.get("total", 0)
    median_norm = result.clipping.get("median_grad_norm")

    if verdict.kind == "nonfinite":
        message = f"the loss went non-finite at step {verdict.step} on {label}; before that: {curve}."
    elif verdict.kind == "diverged":
        message = f"the loss diverged on {label}: {curve}; highest at step {verdict.step} ({_fmt(max(result.losses))})."
    elif verdict.kind == "oscillated":
        message = f"the loss oscillates instead of settling on {label}: {curve}; first big jump at step {verdict.step}."
    elif verdict.kind == "blank":
        blank_ratio = result.evaluations[-1].blank_ratio if result.evaluations else float("nan")
        message = (
            f"after {steps} steps blank is the argmax on {blank_ratio:.0%} of the frames and the decode is empty "
            f"({pairs}); {curve}."
        )
    else:
        cer = result.evaluations[-1].cer if result.evaluations else float("nan")
        message = f"after {steps} steps {label} decodes as {pairs} (CER {cer:.2f}); {curve}."

    if verdict.code == "CTC072":
        adaptive = result.optimizer.startswith(("Adam", "RMSprop", "Adagrad", "Adadelta", "NAdam", "RAdam", "Adamax"))
        suggested = min(lr / 10, DEFAULT_LR) if (lr is not None and adaptive) else (lr / 10 if lr is not None else None)
        if lr is not None:
            causes.append(
                f"learning rate {lr:g} is too high for {result.optimizer.split('(')[0] or 'the optimizer'}: try {suggested:g}"
                + (" (Adam-like optimizers move every weight by about lr per step, whatever the gradient's size)" if adaptive and lr > 1e-2 else "")
            )
        if not result.clipping.get("max_norm"):
            causes.append("gradient clipping is off: keep --clip at 5")
        elif result.clipping.get("clipped_steps"):
            causes.append(
                f"gradients were clipped on {result.clipping['clipped_steps']} of {result.clipping['steps']} steps "
                f"(norm up to {_fmt(result.clipping.get('max_grad_norm'))}): the updates themselves are too large"
            )
        hint = "Lower the learning rate (--lr " + (f"{suggested:g}" if suggested else "1e-4") + "), keep clipping on, and compute CTC in float32."
    elif verdict.code == "CTC071":
        if gap is not None and gap > BLANK_BIAS_NATS:
            causes.append(f"the head ({result.head}) bias favours blank by {gap:.1f} nats: initialise it at 0 (or at most log(T/U))")
        if lr is not None and lr < SMALL_LR:
            causes.append(f"learning rate {lr:g} is tiny: Adam-like optimizers want about 1e-3")
        if frozen and not result.parameters.get("freeze_except_head"):
            causes.append(f"{frozen} of {total} parameters are frozen (requires_grad=False): {', '.join(context.get('frozen_modules', [])[:4])}")
        if median_norm is not None and median_norm < 1e-4:
            causes.append(f"gradients vanish (median norm {median_norm:.2g}): check the features reaching the head")
        if summary["trend"] == "falling":
            causes.append(f"the loss was still falling: more steps may get out of the all-blank phase (--steps {2 * steps})")
        hint = "Get the model out of the all-blank phase: "
        hint += (
            "reset the head's blank bias to 0 and use a normal learning rate (Adam 1e-3)."
            if gap is not None and gap > BLANK_BIAS_NATS
            else "raise the learning rate (Adam 1e-3), unfreeze layers frozen by mistake, and check the features that reach the head."
        )
    else:
        if summary["trend"] == "falling":
            causes.append(f"the loss was still falling at the end: give it more steps (--steps {2 * steps}) or a higher --lr")
        missing_repeats = any(
            list(d) != list(t) and list(d) == _collapse_repeats(list(t)) for d, t in zip(decodes, result.targets)
        )
        if missing_repeats:
            causes.append("the decode only lacks doubled labels: the model has not learned the blank between equal neighbours (more frames per label helps, CTC002)")
        if lr is not None and lr < SMALL_LR:
            causes.append(f"learning rate {lr:g} is small: try 1e-3")
        by_flag = result.parameters.get("freeze_except_head")
        if frozen and not by_flag:
            causes.append(f"{frozen} of {total} parameters are frozen (requires_grad=False)")
        if by_flag:
            causes.append(f"only the head ({result.head}) was trained (--freeze-except-head): it may lack the capacity alone")
            hint = (
                f"Run longer (--steps {2 * steps}) if the loss was still falling; run without --freeze-except-head: "
                "if the whole model fits, the head alone is too small for this sample (not a bug)."
            )
        else:
            hint = (
                f"Run longer (--steps {2 * steps}) if the loss was still falling; otherwise try --freeze-except-head "
                "to tell a feature-extractor problem from a loss problem, and fix the static findings listed."
            )
    if result.normalisation and "exactly as written" not in result.normalisation:
        causes.append(result.normalisation)
    for item in static:
        if item.severity.value in ("error", "warning") and item.code not in result.normalisation:
            causes.append(f"{item.code} {item.title} (reported above)")
    static_errors = sorted({item.code for item in static if item.severity.value == "error"})
    if static_errors:
        hint = f"Fix {', '.join(static_errors)} first (reported above), then run overfit again. " + hint
    if causes:
        message += " Likely causes: " + "; ".join(causes) + "."
    evidence = {
        "samples": list(result.samples),
        "kind": verdict.kind,
        "step": verdict.step,
        "steps": steps,
        "loss": summary,
        "targets": list(result.targets),
        "last_decode": list(decodes),
        "likely_causes": causes,
        "lr": lr,
        "optimizer": result.optimizer,
        "blank_bias_gap": gap,
        "clipping": result.clipping,
    }
    return finding(verdict.code, message, hint, evidence)


# ----------------------------------------------------------------------------- the run


def _device(choice: str) -> "torch.device":
    import torch

    choice = (choice or "auto").lower()
    if choice == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if choice.startswith("cuda") and not torch.cuda.is_available():
        raise UserInputError("--device cuda: no CUDA device is available here", "Use --device cpu (or auto).")
    try:
        return torch.device(choice)
    except RuntimeError as error:
        raise UserInputError(f"--device {choice!r}: {error}", "Use auto, cpu or cuda.") from None


def _static_checks(setup: "Setup", model: "torch.nn.Module", raw: Any, spec: str, samples: Sequence[int]):
    from ctcdoctor.context import Context, Options
    from ctcdoctor.runner import run_checks, select

    context = Context(dataclasses.replace(setup, model=model, loader=[raw]), Options(max_batches=1, scan_batches=1), spec)
    findings, results = run_checks(context, select(STATIC_CHECKS))
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
    setup: "Setup",
    spec: str,
    options: OverfitOptions,
    on_progress: Callable[[Progress], None] | None = None,
    on_phase: Callable[[str], None] | None = None,
) -> tuple[list[Finding], list["CheckResult"], OverfitResult]:
    """Run the overfit test. Returns (findings, static check results, result)."""
    import torch

    previous_threads = torch.get_num_threads()
    if options.threads and not str(options.device).lower().startswith("cuda"):
        torch.set_num_threads(options.threads)
    try:
        return _run_overfit(setup, spec, options, on_progress, on_phase)
    finally:
        torch.set_num_threads(previous_threads)


def _run_overfit(setup, spec, options, on_progress, on_phase):
    import torch

    from ctcdoctor.batches import normalise_batch, split_targets
    from ctcdoctor.probe import move_inputs, to_tnc

    phase = on_phase or (lambda text: None)
    if options.steps < 1:
        raise UserInputError(f"--steps {options.steps}: need at least one step", "Use --steps 500 or so.")
    if options.eval_every < 1 or options.patience < 1:
        raise UserInputError("--eval-every and --patience must be at least 1", "Use the defaults (10 and 3).")
    device = _device(options.device)
    phase("taking the sample(s)")
    raw, source = pick_samples(setup.loader, options.samples)
    batch = normalise_batch(raw, 0, 0)
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
            raise UserInputError(f"Setup.optimizer(params) raised {type(error).__name__}: {error}", "Make it return a torch.optim.Optimizer for the given parameters.") from error
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
        frames = output.shape[1] if layout == "NTC" else output.shape[0]
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
        decodes = greedy_decode(log_probs.detach(), out_lengths, blank=blank)
        last_decodes = decodes
        distance = sum(_edit(d, t) for d, t in zip(decodes, target_lists))
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
            "median_grad_norm": _median(finite) if finite else None,
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
        verdict = classify_failure(losses, final_blank, empty, result.nonfinite_step)
        result.diagnosis = verdict.code
        context = {
            "blank_bias_gap": _blank_bias_gap(model, result.head, blank, int(output.shape[-1])),
            "frozen_modules": frozen_modules,
        }
        findings.append(explain_failure(verdict, result, findings, context))
    elif result.final_decode and list(result.final_decode) != list(result.targets):
        result.notes.append(
            "the training-mode decode fits but the eval-mode decode differs "
            f"({', '.join(map(_quote, result.final_decode))}): dropout or BatchNorm statistics differ between the modes"
        )
    return list(findings), list(check_results), result


def _edit(a: Sequence[int], b: Sequence[int]) -> int:
    from ctcdoctor.ctc import edit_distance

    return edit_distance(a, b)


def _final_state(result, model, inputs, layout, out_lengths, targets, target_lengths, target_lists, blank, alpha, text, model_returns_lengths) -> None:
    """Eval-mode decode, edit distance, spikiness and the per-frame plot data of the first sample."""
    import torch
    import warnings

    from ctcdoctor.ctc import greedy_decode, pseudo_ground_truth, spikiness
    from ctcdoctor.probe import evaluating, to_tnc

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
    result.edit_distance = tuple(_edit(d, t) for d, t in zip(decodes, target_lists))
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
