"""What the model emits: log-probabilities, probabilities, or raw logits, and over which axis."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ctcdoctor.engine import Context, provides

#: A frame counts as normalised when its class sum (or log-sum-exp) is within this of 1 (0).
SUM_TOLERANCE = 1e-3
#: Share of frames that must be normalised for an axis to count as the softmax axis.
FRAME_SHARE = 0.99
AXIS_NAMES = {0: "time", 1: "batch", 2: "class"}


def log_softmax_call(layout: str | None) -> str:
    """The log_softmax a fix should name for the model's own output: the class axis is last in (T, N, C) and
    (N, T, C), the middle one of an (N, C, T) output (a Conv1d head, torchaudio's Wav2Letter)."""
    return "log_softmax(dim=1)" if layout == "NCT" else "log_softmax(dim=-1)"


@dataclass(frozen=True)
class OutputKind:
    kind: str
    """"log_probs", "probs", "logits" or "empty"."""
    axis: int
    """The (T, N, C) axis the softmax was taken over (2 = classes, the right one)."""
    nan: int
    posinf: int
    neginf: int
    min: float
    max: float

    @property
    def wrong_axis(self) -> bool:
        return self.kind in ("log_probs", "probs") and self.axis != 2


def _normalised_over(values: torch.Tensor, axis: int, as_log: bool) -> bool:
    if values.shape[axis] < 2:
        return False
    totals = torch.logsumexp(values, dim=axis) if as_log else values.sum(dim=axis) - 1
    judged = ~torch.isnan(totals)  # slices touching a NaN/+inf frame are left out
    if not bool(judged.any()):
        return False
    close = totals[judged].abs() < SUM_TOLERANCE
    return float(close.double().mean()) >= FRAME_SHARE


def classify_output(tnc: torch.Tensor) -> OutputKind:
    """Classify a (T, N, C) output. Frames with NaN or +inf are left out of the classification."""
    values = tnc.detach().to("cpu", torch.float64)
    nan = int(torch.isnan(values).sum())
    posinf = int(torch.isposinf(values).sum())
    neginf = int(torch.isneginf(values).sum())
    bad_frames = (torch.isnan(values) | torch.isposinf(values)).any(dim=2)
    finite = values[~torch.isinf(values) & ~torch.isnan(values)]
    low = float(finite.min()) if finite.numel() else float("nan")
    high = float(finite.max()) if finite.numel() else float("nan")
    if bool(bad_frames.all()) or values.numel() == 0:
        return OutputKind("empty", 2, nan, posinf, neginf, low, high)
    # Judge on whole frames without NaN/+inf; -inf is a legal log-probability of zero.
    clean = values.masked_fill(bad_frames.unsqueeze(-1), float("nan"))
    in_unit = low >= -1e-6 and high <= 1 + 1e-4 and neginf == 0
    for axis in (2, 0, 1):
        if in_unit and _normalised_over(clean, axis, as_log=False):
            return OutputKind("probs", axis, nan, posinf, neginf, low, high)
        if high <= 1e-4 and _normalised_over(clean, axis, as_log=True):
            return OutputKind("log_probs", axis, nan, posinf, neginf, low, high)
    return OutputKind("logits", 2, nan, posinf, neginf, low, high)


def nonfinite_output_samples(runs: list, outputs: list[torch.Tensor]) -> list[int]:
    """Global indices of the samples whose (T, N, C) output holds NaN or ±Inf."""
    samples: list[int] = []
    for run, tnc in zip(runs, outputs):
        bad = (~torch.isfinite(tnc.detach())).any(dim=2).any(dim=0)
        samples.extend(run.batch.first_sample + int(i) for i in bad.nonzero().flatten().tolist())
    return samples


def nonfinite_input_samples(input_stats: list | None) -> set[int]:
    """Samples with NaN or Inf in any measured input tensor (CTC040)."""
    return {sample for stats in input_stats or [] for sample in stats.nonfinite_samples}


@provides("output_kinds")
def _output_kinds(context: Context):
    """How each run's output is normalised (log-probs, probs, logits; which axis)."""
    return [classify_output(output) for output in context.outputs]
