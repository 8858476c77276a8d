"""Getting a torch model's CTC outputs to the monitor from a framework's training loop.

* `ForwardCapture(module)`: a forward hook that keeps the module's output of the step, only
  when armed (the monitor wants outputs at this step), so other steps cost one `if`.
* `BatchOutputs(blank, output_lengths, layout)`: turns a batch of the `build()` protocol
  (`(inputs, targets, input_lengths, target_lengths)` or the dict) and the model's output into
  the monitor's keyword arguments, with the output lengths by the one rule of
  `ctcdoctor.measure.lengths.resolve_output_lengths` (returned by the model, else the
  `output_lengths` function, else every frame when all inputs are as long, else probed once).

The Lightning callback uses both; a plain loop does not need them.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from ctcdoctor.load.batches import Batch, normalise_batch
from ctcdoctor.measure.lengths import LengthModel, probe_lengths, resolve_output_lengths
from ctcdoctor.measure.model import ModelRun, call_model, evaluating, split_output


class ForwardCapture:
    """Keep `module`'s forward output while armed; `take()` returns it once."""

    def __init__(self, module: torch.nn.Module) -> None:
        self.armed = False
        self._output: Any = None
        self._handle = module.register_forward_hook(self._hook)

    def _hook(self, module: torch.nn.Module, args: Any, output: Any) -> None:
        if self.armed:
            self._output = output

    def arm(self, armed: bool = True) -> None:
        self.armed = armed
        if not armed:
            self._output = None

    def take(self) -> Any:
        output, self._output, self.armed = self._output, None, False
        return output

    def remove(self) -> None:
        self._handle.remove()


class BatchOutputs:
    """The monitor's output arguments from one batch and the model's output on it."""

    def __init__(self, blank: int = 0, output_lengths: Callable[..., Any] | None = None, layout: str | None = None) -> None:
        self.blank, self.output_lengths, self.layout = blank, output_lengths, layout
        self._length_model: LengthModel | None = None

    def layout_of(self, output: torch.Tensor, size: int) -> str:
        """Declared, else read off the shape (the batch axis has N); "TNC" when T == N."""
        if self.layout is not None:
            return self.layout
        return "NTC" if output.shape[0] == size and output.shape[1] != size else "TNC"

    def arguments(self, raw_batch: Any, raw_output: Any, model: torch.nn.Module | None = None) -> dict[str, Any]:
        """`outputs`, `targets`, `target_lengths`, `output_lengths`, `layout` for `Monitor.update`.

        Without a captured output (`raw_output` None) the model is run on the batch in eval mode."""
        batch = normalise_batch(raw_batch, 0, 0)
        if raw_output is None:
            if model is None:
                raise ValueError("no captured output and no model to run")
            with torch.no_grad(), evaluating(model):
                raw_output = call_model(model, batch.inputs)
        output, returned = split_output(raw_output)
        layout = self.layout_of(output, batch.size)
        run = ModelRun(batch, output, returned)
        lengths = resolve_output_lengths(self.output_lengths, [run], batch.input_lengths, layout,
                                         lambda: self._probe(model, batch, layout))
        frames = lengths.per_run[0] if lengths.known else None
        return {"outputs": output, "targets": batch.targets, "target_lengths": batch.target_lengths,
                "output_lengths": frames, "layout": layout}

    def _probe(self, model: torch.nn.Module | None, batch: Batch, layout: str) -> LengthModel:
        if self._length_model is None:
            if model is None:
                raise ValueError("no model to probe output lengths with")
            self._length_model = probe_lengths(model, batch, layout, batch.input_lengths)
        return self._length_model
