"""The overfit run's settings and results: plain data shared by the trainer, the diagnosis and the renderers."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ctcdoctor.overfit.curve import loss_summary

# ----------------------------------------------------------------------------- settings

DEFAULT_STEPS = 1000
"""Step budget. The CRNN example fits one word in about 150 Adam steps at 1e-3, but a tiny GRU on
random features needed 570 (its loss creeps for 300 steps before the last label appears): with 500
a healthy model failed (CTC070). A fitted run stops early, so the budget only costs failing runs
(about 10 s on one CPU thread for a small model); a run that ends with the loss still falling says
so and suggests a larger --steps."""
DEFAULT_EVAL_EVERY = 10
"""Decode and check every this many steps; the steps between stay a plain training loop."""
DEFAULT_PATIENCE = 3
"""Fitted = the decode equals the target at this many evaluations in a row."""
DEFAULT_CLIP = 5.0
"""Gradient clipping max norm (0 disables); 5 is common for CTC recipes (ESPnet, wav2letter)."""
DEFAULT_LR = 1e-3
"""Adam's learning rate when the Setup has no optimizer."""
MAX_SAMPLES = 64
"""Most samples `--samples` may name: overfit trains a small batch, not a data set."""
PROGRESS_EVERY = 100
"""Plain progress lines (stderr not a terminal) every this many steps, and at least every PROGRESS_SECONDS."""
PROGRESS_SECONDS = 30.0
LOSS_CHOICES = ("auto", "criterion", "ctc")
"""--loss: auto = Setup.criterion when given (and no --alpha/--gamma), else ctcdoctor's ctc_loss."""
PROBE_FACTORS = (0.1, 1.0, 10.0)
"""--lr-probe: the learning rates tried, as multiples of the run's own."""

STATIC_CHECKS = ("CTC00", "CTC01", "CTC02", "CTC04")
"""Static checks run on the chosen samples before training: lengths, labels, outputs, inputs (CTC03, the criterion
audit, too when it is trained). An input finding on the sample is named first among a failure's likely causes
(ctcdoctor.overfit.inputs): unnormalised features make a run look merely short of steps."""
LOADER_CHECKS = ("CTC010", "CTC011", "CTC012", "CTC013", "CTC028", "CTC030", "CTC04", "CTC1")
"""Checks of the set-up's encoding and configuration run on the loader's first batch as well (check runs them there),
for what one sample alone cannot show: a label beyond the model's classes (CTC010), a blank used as a letter (CTC011),
target_lengths that count the padding of a batch (CTC012; one sample collated alone has no padding), empty targets
(CTC013), a model that mixes the samples of a batch (CTC028) or a criterion that reads the batch wrongly (CTC030: a
.view where a transpose belongs is the identity for one sample), NaN, unnormalised or constant inputs (CTC040-CTC042)
in other samples, a Hugging Face configuration (CTC100-CTC107). Their errors show, set the exit code and make a
matching decode no fit (ctcdoctor.overfit.caveats), but do not block training on samples they do not touch."""

#: Output notes that name a bug in the output the trained loss keeps (probabilities, the wrong axis): a likely cause of
#: a failure. The others are neutral (the output trained as written, or as the model's own loss takes it) and stay
#: notes, on the report's `output` line.
CAUSE_NOTES = ("(CTC020)", "(CTC024)")


def note_is_cause(note: str) -> bool:
    """Whether the output note (`ctcdoctor.overfit.train.normalisation_note`) names a cause of a failed fit, not a
    neutral fact."""
    return any(code in note for code in CAUSE_NOTES)


BLOCKING = ("CTC001", "CTC003", "CTC010", "CTC011", "CTC012", "CTC015", "CTC023", "CTC026", "CTC999")
"""Static errors that make training meaningless: an infeasible alignment (the loss is inf),
unusable lengths or labels (F.ctc_loss fails or reads garbage), a blank outside the model's
classes (CTC cannot use it), NaN or non-float outputs, a model that crashed. Training is
skipped when one of them fires. Output-format problems (CTC020, CTC021, CTC024, CTC025) do not block: see `normalisation_note`;
except an output exactly 0 everywhere (log_softmax over an axis of size 1: ctcdoctor.overfit.degenerate)."""




@dataclass(frozen=True)
class OverfitOptions:
    samples: tuple[int, ...] = (0,)
    steps: int = DEFAULT_STEPS
    extend_to: int | None = None
    """While the run is still learning when `steps` run out, train `steps` more at a time up to this many
    (ctcdoctor.overfit.extend); None: a fixed budget. The command sets it when --steps is not given."""
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
    loss: str = "auto"
    """Which loss trains: see LOSS_CHOICES."""
    lr_probe: bool = False
    """Also train at lr/10 and 10*lr (PROBE_FACTORS) and turn the comparison into the diagnosis."""
    probe_jobs: int | None = None
    """Processes for the LR probe's extra runs; None: automatic (see ctcdoctor.overfit.probe.probe_jobs)."""
    alone_check: bool = True
    """When several samples do not fit together, train the worst one alone to tell the batch from the sample."""


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
    """One evaluation: the eval-mode decode (which judges the fit) and the training step's own decode."""

    step: int
    loss: float
    cer: float
    """CER of the eval-mode decode."""
    decodes: tuple[str, ...]
    """Eval-mode greedy decode of each sample."""
    blank_ratio: float
    seconds: float
    train_decodes: tuple[str, ...] = ()
    """Greedy decode of the training step's own (train-mode) output."""
    train_cer: float | None = None
    exact: tuple[bool, ...] = ()
    """Per sample: the eval-mode decode equals the target."""


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
    """Greedy decode of the last training step's own (train-mode) output."""
    edit_distance: tuple[int, ...] = ()
    cer: float | None = None
    losses: list[float] = field(default_factory=list)
    """Loss of every step."""
    norms: list[float] = field(default_factory=list)
    """Gradient norm (before clipping) of every step."""
    evaluations: list[Evaluation] = field(default_factory=list)
    nonfinite_step: int | None = None
    spikiness: dict[str, Any] | None = None
    ctc_path: str = ""
    loss_function: str = ""
    loss_source: str = "ctcdoctor"
    """"criterion" (Setup.criterion was trained) or "ctcdoctor" (ctcdoctor.ctc.ctc_loss on log_softmax)."""
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
    stochastic: list[dict[str, str]] = field(default_factory=list)
    """What in the model behaves differently in train mode (ctcdoctor.overfit.stochastic)."""
    clipped_labels: tuple[str, ...] = ()
    """Target labels missing from the final decode whose score sits at a clipped floor (tied with other classes at
    the frame's minimum) on every frame: a ReLU or clamp on the output keeps them from ever getting a gradient."""
    modes_agree: bool | None = None
    """Whether the last train-mode and eval-mode decodes were equal (None: not compared)."""
    stopped_early: str | None = None
    """Why training stopped before the budget without a fit, if it did: nothing could change any more, or --timeout
    cut it (then `timed_out` says where)."""
    timed_out: dict[str, Any] | None = None
    """--timeout cut the training: {"timeout": seconds, "step": the last step run, "budget": the budget then,
    "still_falling": the loss was still falling, so the verdict is provisional}. In the JSON only when it did."""
    first_exact: tuple[int | None, ...] = ()
    """Per sample: the first evaluation step whose eval-mode decode equalled its target."""
    lr_probe: dict[str, Any] | None = None
    """--lr-probe: the runs at each learning rate and the conclusion (ctcdoctor.overfit.probe)."""
    batch: dict[str, Any] | None = None
    """Several samples: how many fit, when, and the worst one trained alone (ctcdoctor.overfit.several)."""
    decode_matches: bool = False
    """The eval-mode decode equalled every target at `patience` evaluations in a row (`fitted`, unless a caveat)."""
    caveats: list[dict[str, str]] = field(default_factory=list)
    """Why a matching decode is not a fit ({"code", "words"}: ctcdoctor.overfit.caveats); `fitted` is then false."""
    output_frames: int | None = None
    """Frames the model outputs for the first sample (T of its output)."""
    decoded_frames: tuple[int, ...] = ()
    """Per sample: the output frames the loss and the decode used (the declared or returned output lengths)."""
    budget: dict[str, Any] = field(default_factory=dict)
    """The step budget: `steps` (the first), `extended_to` (the last, when the run was extended while still learning;
    else None) and `limit` (the most an extension may reach; None: a fixed budget)."""

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
                {"step": e.step, "loss": e.loss, "cer": e.cer, "decode": list(e.decodes), "blank_ratio": e.blank_ratio,
                 "train_decode": list(e.train_decodes), "train_cer": e.train_cer}
                for e in self.evaluations
            ],
            "spikiness": self.spikiness,
            "ctc_path": self.ctc_path,
            "loss_function": self.loss_function,
            "loss_source": self.loss_source,
            "optimizer": self.optimizer,
            "lr": self.lr,
            "device": self.device,
            "seed": self.seed,
            "clipping": self.clipping,
            "parameters": self.parameters,
            "head": self.head,
            "normalisation": self.normalisation,
            "notes": list(self.notes),
            "stochastic": list(self.stochastic),
            "clipped_labels": list(self.clipped_labels),
            "modes_agree": self.modes_agree,
            "stopped_early": self.stopped_early,
            "lr_probe": self.lr_probe,
            "batch": self.batch,
            "decode_matches": self.decode_matches,
            "caveats": list(self.caveats),
            "output_frames": self.output_frames,
            "decoded_frames": list(self.decoded_frames),
            "budget": dict(self.budget),
            **({"timed_out": dict(self.timed_out)} if self.timed_out else {}),  # absent from a run that was not cut
        }




def command_line(spec: str, options: OverfitOptions, result: OverfitResult, own_optimizer: bool) -> str:
    """The run as a command line that reproduces it (the report's summary line): the samples, the step budget,
    the learning rate it trained with, the seed and every option that differs from its default; then, in
    parentheses, the optimizer and where it came from. `own_optimizer`: it is Setup.optimizer."""
    chosen = options.samples
    steps = result.budget.get("extended_to") or options.steps  # the budget it ran to: an explicit --steps reproduces it
    parts = [spec, f"--samples {','.join(map(str, chosen))}" if len(chosen) > 1 else f"--sample {chosen[0]}",
             f"--steps {steps}"]
    lr = result.lr if result.lr is not None else options.lr
    if lr is not None:
        parts.append(f"--lr {lr:g}")
    parts.append(f"--seed {options.seed}")
    flags = [
        (options.freeze_except_head, "--freeze-except-head"), (options.lr_probe, "--lr-probe"),
        (options.loss != "auto", f"--loss {options.loss}"), (options.alpha is not None, f"--alpha {options.alpha}"),
        (bool(options.gamma), f"--gamma {options.gamma:g}"), (options.clip != DEFAULT_CLIP, f"--clip {options.clip:g}"),
        (options.eval_every != DEFAULT_EVAL_EVERY, f"--eval-every {options.eval_every}"),
        (options.patience != DEFAULT_PATIENCE, f"--patience {options.patience}"),
        (options.device != "auto", f"--device {options.device}"),
    ]
    parts += [flag for wanted, flag in flags if wanted]
    line = " ".join(parts)
    if result.trained and result.optimizer:
        line += f" ({result.optimizer.split('(')[0]}, {'Setup.optimizer' if own_optimizer else 'the default optimizer'})"
    return line
