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

STATIC_CHECKS = ("CTC00", "CTC01", "CTC02")
"""Static checks run on the chosen samples before training."""
BLOCKING = ("CTC001", "CTC003", "CTC010", "CTC011", "CTC012", "CTC023", "CTC999")
"""Static errors that make training meaningless: an infeasible alignment (the loss is inf),
unusable lengths or labels (F.ctc_loss fails or reads garbage), NaN outputs, a model that
crashed. Training is skipped when one of them fires. Output-format problems (CTC020, CTC021,
CTC024, CTC025) do not block: see `normalisation_note`."""




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


