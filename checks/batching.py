"""Batch checks: is each sample's output its own, whatever else is in the batch?"""
from __future__ import annotations

from typing import TYPE_CHECKING

from ctcdoctor.registry import SkipCheck, check, finding
from ctcdoctor.render.phrases import listing

if TYPE_CHECKING:  # pragma: no cover
    from ctcdoctor.findings import Finding
    from ctcdoctor.measure.batching import BatchIndependence
    from ctcdoctor.measure.outputs import OutputKind


def _axis_words(independence: BatchIndependence) -> str:
    shape = independence.input_shape
    where = f"inputs {shape}" if shape else "the inputs"
    return f"{where} hold the samples on axis {independence.batch_axis}"


@check("CTC028", "error", "the model mixes samples along the batch axis")
def batch_mixing(batch_independence: BatchIndependence, output_kinds: list[OutputKind]) -> list[Finding]:
    """
    **What it checks.** In eval mode, a sample's output must not depend on the other samples
    of its batch. ctcdoctor runs two samples of the first batch alone (padded as they are in
    the batch) and compares each output with that sample's slice of the batch output. When
    they differ, it measures again on a float64 copy of the model and reports only a
    difference that stays: float32 round-off (a batch and a single sample take different
    kernels) can grow large through saturated gates without any sample being mixed.

    A model that cannot run a sample alone at the batch's padded length (torchaudio's
    `Conformer` builds its attention mask from `max(lengths)` and asserts that it matches the
    input) is measured the other way round: the sample stays in its batch, the other samples
    change (lengths and padding as they were), and its output on its own frames must not
    move. Cutting the sample to its own length would not do: such a model's convolutions read
    the padding after the last frame, so its last frames differ without any sample mixed.

    **Why it matters.** A model that mixes samples trains on the wrong sequences and gives
    different answers at another batch size. The usual cause is a recurrent layer reading
    the batch as time: `nn.LSTM`, `nn.GRU` and `nn.RNN` default to `batch_first=False` and
    take `(T, N, F)`; fed `(N, T, F)` they recur over the samples (sample 2 starts from the
    state sample 1 left) and treat the frames as a batch. The output still has the right
    shape, so nothing fails, and transposing the output only hides the bug. `nn.MultiheadAttention`
    with `batch_first=False` fed `(N, T, E)` attends across samples the same way.

    **Example.** `nn.LSTM(40, 96)` given `(16, 73, 40)` batches:
    ```
    error CTC028 sample 15's output alone differs from its output inside batch 0 (largest difference
      0.84, 0.84 in float64 too, values up to 3.3): the model mixes samples. inputs (16, 73, 40) hold the samples on axis 0, but LSTM 'rnn'
      has batch_first=False and got (16, 73, 40): it reads axis 0 as time and recurs over the samples.
    ```

    **Fix.** Create the layer with `batch_first=True` (`nn.LSTM(..., batch_first=True)`), or
    feed it time-major inputs (`x.transpose(0, 1)`) and transpose its output back. Inputs
    that are time-major on purpose need no change: ctcdoctor finds their batch axis from
    `input_lengths` (or `Setup.batch_axis`).
    """
    independence = batch_independence
    if independence.skipped:
        raise SkipCheck(independence.skipped)
    if any(kind.wrong_axis and kind.axis == 1 for kind in output_kinds):
        raise SkipCheck("the output is normalised over the batch axis, which mixes the samples (CTC024 reports it)")
    mixed = independence.mixed()
    if not mixed:
        return []
    worst = max(mixed, key=lambda i: independence.differences[i])
    sample, difference = independence.compared[worst], independence.differences[worst]
    again = independence.float64_differences
    in_float64 = f", {again[worst]:.3g} in float64 too" if again is not None else ""
    how = (f"output changes when the other samples of batch {independence.batch} change" if independence.others_replaced
           else f"output alone differs from its output inside batch {independence.batch}")
    message = (f"sample {sample}'s {how} (largest "
               f"difference {difference:.3g}{in_float64}, values up to {independence.scales[worst]:.3g}): the model "
               "mixes samples. "
               f"{_axis_words(independence)}")
    size = independence.input_shape[independence.batch_axis] if independence.input_shape else 0
    culprits = [layer for layer in independence.layers if layer.reads_samples_as_time(size)]
    if culprits:
        names = listing([f"{layer.kind} {layer.name!r}" for layer in culprits], 3)
        message += (f", but {names} {'has' if len(culprits) == 1 else 'have'} batch_first=False and got "
                    f"{culprits[0].input_shape}: " + ("it reads axis 0 as time and recurs" if len(culprits) == 1
                                                      else "they read axis 0 as time and recur") + " over the samples.")
        hint = (f"Create {names} with batch_first=True (e.g. nn.{culprits[0].kind}(..., batch_first=True)), or feed "
                f"{'it' if len(culprits) == 1 else 'them'} x.transpose(0, 1) and transpose the output back.")
    else:
        message += ", and a layer in forward() combines them."
        hint = ("Find the layer that works across the batch axis: an RNN or attention layer whose batch_first does not "
                "match its input, a reshape/view that moves values between samples, or statistics taken over the batch "
                "in forward().")
    evidence = {"batch": independence.batch, "batch_axis": independence.batch_axis, "samples": list(independence.compared),
                "differences": list(independence.differences),
                "float64_differences": None if again is None else list(again), "tolerance": independence.tolerance,
                "method": "others_replaced" if independence.others_replaced else "alone",
                "layers": [{"name": layer.name, "type": layer.kind, "batch_first": layer.batch_first,
                            "input_shape": list(layer.input_shape)} for layer in culprits]}
    return [finding("CTC028", message, hint, evidence)]
