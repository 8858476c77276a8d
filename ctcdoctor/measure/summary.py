"""What `check` read off the set-up: the output's shape and layout, the classes, the blank, where the frames come
from. The report's `result` for `check`, so that a user sees what the checks assumed (a layout inferred from the
shape can be wrong, and CTC029 and CTC022 are about exactly that)."""
from __future__ import annotations

from typing import Any

from ctcdoctor.engine import Context
from ctcdoctor.load.batches import position_numbers
from ctcdoctor.measure.model import returned_note


def setup_summary(context: Context) -> dict[str, Any] | None:
    """Only what the checks have already computed (nothing is run for it); None when the model never ran."""
    runs = context.known("runs")
    if not runs:
        return None
    summary: dict[str, Any] = {"output_shape": list(runs[0].output.shape), "blank": context.setup.blank}
    note = returned_note(runs[0].returned)
    if note is not None:  # a second head or a state beside the output: say which item the checks judged
        summary["returned"] = note
    layout = context.known("layout")
    if layout is not None:
        summary.update(layout=layout.layout, layout_source=layout.source, layout_detail=layout.detail)
    classes = context.known("num_classes")
    if classes is not None:
        summary["classes"] = classes
    lengths = context.known("output_lengths")
    if lengths is not None:
        summary.update(frames_source=lengths.source, frames_detail=lengths.detail)
    batches = context.known("batches")
    numbers = position_numbers(context.setup.loader, batches) if batches else None
    if numbers is not None:  # the findings' sample numbers would name other samples in a new pass
        summary["sample_numbers"] = numbers
    return summary
