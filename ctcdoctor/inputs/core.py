"""Core inputs: scanned batches, targets, model outputs, layout, class count, output lengths."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ctcdoctor.batches import Batch, TargetTable, build_target_table, iterate_batches
from ctcdoctor.context import Context, provides
from ctcdoctor.probe import (
    LayoutDecision,
    LengthModel,
    ModelRun,
    call_length_function,
    decide_layout,
    probe_lengths,
    run_model,
    to_tnc,
)


@provides("blank")
def _blank(context: Context) -> int:
    return context.setup.blank


@provides("alphabet")
def _alphabet(context: Context):
    return context.setup.alphabet


@provides("batches")
def _batches(context: Context) -> list[Batch]:
    """Read up to `scan_batches` batches; a loader that yields non-batches ends the command (exit 2)."""
    wanted = max(context.options.scan_batches, context.options.max_batches)
    return list(iterate_batches(context.setup.loader, wanted))


@provides("model_batches")
def _model_batches(context: Context) -> list[Batch]:
    return context.batches[: context.options.max_batches]


@provides("targets")
def _targets(context: Context) -> TargetTable:
    return build_target_table(context.batches)


@provides("runs")
def _runs(context: Context) -> list[ModelRun]:
    runs = []
    for batch in context.model_batches:
        try:
            runs.append(run_model(context.model, batch))
        except Exception as error:
            shape = tuple(batch.inputs.shape) if isinstance(batch.inputs, torch.Tensor) else type(batch.inputs).__name__
            raise RuntimeError(f"model(inputs) failed on batch {batch.index} (inputs {shape}): {type(error).__name__}: {error}") from error
    return runs


@provides("layout")
def _layout(context: Context) -> LayoutDecision:
    return decide_layout(context.model, context.runs[0], context.setup.layout)


@provides("num_classes")
def _num_classes(context: Context) -> int:
    return int(context.runs[0].output.shape[-1])


@provides("outputs")
def _outputs(context: Context) -> list[torch.Tensor]:
    """Each run's output as a (T, N, C) view, in the dtype the model produced."""
    return [to_tnc(run.output, context.layout.layout) for run in context.runs]


@provides("length_model")
def _length_model(context: Context) -> LengthModel:
    return probe_lengths(context.model, context.runs[0].batch, context.layout.layout, context.targets.input_lengths)


@dataclass(frozen=True)
class OutputLengths:
    """Frames each sample gets after the model's downsampling, and where that number came from."""

    scanned: torch.Tensor
    """(M,) for every scanned sample; -1 where unknown."""
    per_run: tuple[torch.Tensor, ...]
    """(N,) for each batch the model ran on."""
    source: str
    """"model" (returned by the model), "setup" (Setup.output_lengths), "full" (every input has the full
    length, so every output has T frames), "probed" (estimated from the model), or "unknown"."""
    detail: str

    @property
    def known(self) -> bool:
        return self.source != "unknown"


def _frames(run: ModelRun, layout: str | None) -> int:
    return int(run.output.shape[1] if layout == "NTC" else run.output.shape[0])


@provides("output_lengths")
def _output_lengths(context: Context) -> OutputLengths:
    runs, batches, setup = context.runs, context.batches, context.setup
    layout = context.layout.layout
    input_lengths = context.targets.input_lengths
    unknown = torch.full_like(input_lengths, -1)

    def for_all_batches(function) -> torch.Tensor:
        return torch.cat([function(batch) for batch in batches])

    if runs[0].returned_lengths is not None:
        per_run = tuple(run.returned_lengths for run in runs)
        scanned = unknown.clone()
        covered = sum(run.batch.size for run in runs)
        returned = torch.cat(per_run)
        if returned.shape[0] == covered:
            scanned[:covered] = returned
        if len(batches) > len(runs) and setup.output_lengths is not None:
            scanned[covered:] = call_length_function(setup.output_lengths, input_lengths[covered:])
        return OutputLengths(scanned, per_run, "model", "returned by the model with its output")
    if setup.output_lengths is not None:
        scanned = call_length_function(setup.output_lengths, input_lengths)
        per_run = tuple(call_length_function(setup.output_lengths, run.batch.input_lengths) for run in runs)
        return OutputLengths(scanned, per_run, "setup", "from Setup.output_lengths")
    full_length = all(
        isinstance(batch.inputs, torch.Tensor) and bool((batch.input_lengths == batch.input_lengths.max()).all())
        for batch in batches
    ) and int(input_lengths.min()) == int(input_lengths.max())
    if full_length:
        frames = _frames(runs[0], layout)
        per_run = tuple(torch.full_like(run.batch.input_lengths, _frames(run, layout)) for run in runs)
        return OutputLengths(torch.full_like(input_lengths, frames), per_run, "full", f"every input has the same length, so every sample gets all {frames} frames")
    try:
        model = context.length_model
    except Exception as error:
        return OutputLengths(unknown, tuple(torch.full_like(run.batch.input_lengths, -1) for run in runs), "unknown", str(getattr(error, "error", error)))
    per_run = tuple(model(run.batch.input_lengths) for run in runs)
    return OutputLengths(model(input_lengths), per_run, "probed", f"estimated by probing the model: {model.describe()}")


@provides("input_stats")
def _input_stats(context: Context):
    from ctcdoctor.input_stats import input_statistics

    return input_statistics(context.batches)


@provides("output_kinds")
def _output_kinds(context: Context):
    """How each run's output is normalised (log-probs, probs, logits; which axis)."""
    from ctcdoctor.output_kind import classify_output

    return [classify_output(output) for output in context.outputs]
