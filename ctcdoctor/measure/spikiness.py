"""CTC080: spikiness metrics of the model's outputs at initialisation."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

from ctcdoctor.engine import Context, provides

# ---------------------------------------------------------------- CTC080: spikiness

@dataclass(frozen=True)
class OutputSpikiness:
    metrics: dict[str, Any] = field(default_factory=dict)
    frames: int = 0
    skipped: str | None = None


@provides("output_spikiness")
def _output_spikiness(context: Context) -> OutputSpikiness:
    from ctcdoctor.ctc import spikiness

    prepared = context.ctc_batches
    if prepared.skipped:
        return OutputSpikiness(skipped=prepared.skipped)
    frames = max(item.log_probs.shape[0] for item in prepared.items)
    # Pad every batch to the longest in time; frames past each sample's length are masked by the metric.
    log_probs = torch.cat([F.pad(item.log_probs, (0, 0, 0, 0, 0, frames - item.log_probs.shape[0])) for item in prepared.items], dim=1)
    lengths = torch.cat([item.lengths for item in prepared.items])
    if not bool(torch.isfinite(log_probs).all()):
        log_probs = log_probs.nan_to_num(nan=-1e4, neginf=-1e4, posinf=0.0)
    result = spikiness(log_probs, lengths, blank=context.setup.blank)
    return OutputSpikiness(result.as_dict(), int(lengths.sum()))
