"""Output frames per sample for a streamed scan, by the one precedence rule of DESIGN §2.

The model runs on the data set's first batch only (every shard runs it on the same batch, so
every shard decides alike): its output gives the class count and layout, the lengths it may
return, and a length model probed from it when needed. Then, in order: the lengths the model
returns (for that batch; the rest from `Setup.output_lengths` or the probed model);
`Setup.output_lengths`; all `T` frames while every input has the first batch's common length
(a sample of another length switches the scan to the probed model, as a whole-table scan
would); otherwise the probed model.

Declared lengths (returned by the model, or `Setup.output_lengths`) that CTC003 finds wrong on
the first batch (longer than the output, negative, not one per sample) are not used for the
spare frames: the scan reads the lengths measured by probing the model instead ("measured"), or,
when the model cannot be probed, calls them unknown (`measured_rule`).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ctcdoctor.engine import Context, InputUnavailable, Options
from ctcdoctor.load.batches import Batch, time_width
from ctcdoctor.measure.lengths import (
    LengthModel,
    OutputLengths,
    call_length_function,
    overcount_phrase,
    padding_overcount,
    probe_lengths,
)
from ctcdoctor.protocol import Setup


@dataclass
class ModelFacts:
    """What the first batch's model run tells: the class count, lengths returned, the probe; or why it failed."""

    context: Context
    first: Batch
    failure: tuple[str, str] | None = None
    """(exception type, message) of the model's failure on the first batch."""
    num_classes: int | None = None
    returned: torch.Tensor | None = None
    frames: int | None = None
    """T of the first batch's output."""
    _probe: LengthModel | None = None
    _probe_error: str | None = None

    def probe(self) -> LengthModel | None:
        """The length model probed on the first batch (once); None, with `probe_error`, when probing fails."""
        if self._probe is None and self._probe_error is None:
            try:
                self._probe = self.context.get("length_model")
            except Exception as error:
                cause = getattr(error, "error", error)
                self._probe_error = str(cause)
        return self._probe


def probe_points(first: Batch) -> torch.Tensor:
    """Input lengths to probe the model at: the first batch's own, and a ladder up to its longest with two
    neighbours at the top (so that the subsampling offset is pinned down, whatever the batch holds)."""
    top = int(first.input_lengths.max()) if first.size else 0
    ladder = torch.tensor([top // 4, top // 2, (3 * top) // 4, top - 1, top], dtype=torch.long)
    return torch.unique(torch.cat([first.input_lengths, ladder]).clamp(min=1))


def model_facts(setup: Setup, first: Batch, device: str | None = None) -> ModelFacts:
    """Run the model on the first batch through the check engine (one run, cached)."""
    context = Context(setup, Options(max_batches=1, scan_batches=1, device=device), {"batches": [first]})
    context.put("length_model", lambda: probe_lengths(context.model, context.runs[0].batch, context.layout.layout, probe_points(first)))
    facts = ModelFacts(context, first)
    try:
        runs = context.get("runs")
        layout = context.get("layout")
    except InputUnavailable as error:
        facts.failure = (type(error.error).__name__, str(error.error))
        return facts
    facts.num_classes = int(runs[0].output.shape[-1])
    facts.returned = runs[0].returned_lengths
    facts.frames = int(runs[0].output.shape[1] if layout.layout == "NTC" else runs[0].output.shape[0])
    return facts


@dataclass
class FramesRule:
    """Output frames for the samples of each chunk; `source`/`detail` as `OutputLengths` reads them."""

    source: str
    detail: str
    setup_lengths: Callable[..., Any] | None = None
    facts: ModelFacts | None = None
    common_length: int | None = None
    """"full": the first batch's common input length, whose samples get all `facts.frames` frames."""
    uniform: bool = True
    """"full": every input so far had `common_length`."""
    first_size: int = 0
    notes: list[str] = field(default_factory=list)

    def frames(self, ids: np.ndarray, input_lengths: np.ndarray) -> np.ndarray:
        if self.source == "setup":
            return call_length_function(self.setup_lengths, torch.from_numpy(input_lengths)).numpy()  # type: ignore[arg-type]
        if self.source == "model":
            return self._returned(ids, input_lengths)
        if self.source == "full":
            return self._full(input_lengths)
        if self.source in ("probed", "measured") and self.facts is not None and self.facts.probe() is not None:
            return self.facts.probe()(torch.from_numpy(input_lengths)).numpy()  # type: ignore[misc]
        return np.full(input_lengths.shape, -1, dtype=np.int64)

    def _returned(self, ids: np.ndarray, input_lengths: np.ndarray) -> np.ndarray:
        assert self.facts is not None and self.facts.returned is not None
        out = np.full(input_lengths.shape, -1, dtype=np.int64)
        returned = self.facts.returned.numpy()
        first = ids < self.first_size
        if returned.shape[0] == self.first_size:
            out[first] = returned[ids[first]]
        rest = ~first
        if rest.any():
            if self.setup_lengths is not None:
                out[rest] = call_length_function(self.setup_lengths, torch.from_numpy(input_lengths[rest])).numpy()
            elif self.facts.probe() is not None:
                out[rest] = self.facts.probe()(torch.from_numpy(input_lengths[rest])).numpy()  # type: ignore[misc]
        return out

    def _full(self, input_lengths: np.ndarray) -> np.ndarray:
        assert self.facts is not None and self.facts.frames is not None
        same = input_lengths == self.common_length
        out = np.full(input_lengths.shape, self.facts.frames, dtype=np.int64)
        if same.all():
            return out
        self.uniform = False
        probe = self.facts.probe()
        if probe is None:
            out[~same] = -1
        else:
            out[~same] = probe(torch.from_numpy(input_lengths[~same])).numpy()
        return out

    def final(self) -> tuple[str, str]:
        """(source, detail) once the whole shard is read: "full" stays full only if every input had one length."""
        if self.source != "full" or self.uniform:
            return self.source, self.detail
        assert self.facts is not None
        probe = self.facts.probe()
        if probe is None:
            return "unknown", self.facts._probe_error or "probing failed"
        return "probed", f"estimated by probing the model: {probe.describe()}"


def choose_rule(setup: Setup, facts: ModelFacts) -> FramesRule:
    """The frames rule for the whole scan, decided from the set-up and the first batch."""
    first = facts.first
    if facts.failure is None and facts.returned is not None:
        return FramesRule("model", "returned by the model with its output", setup.output_lengths, facts, first_size=first.size)
    if setup.output_lengths is not None:
        return FramesRule("setup", "from Setup.output_lengths", setup.output_lengths, facts)
    if facts.failure is not None:
        return FramesRule("unavailable", facts.failure[1], facts=facts)
    lengths = first.input_lengths
    if lengths.numel() and int(lengths.min()) == int(lengths.max()):
        detail = f"every input has the same length, so every sample gets all {facts.frames} frames"
        return FramesRule("full", detail, facts=facts, common_length=int(lengths[0]))
    probe = facts.probe()
    if probe is None:
        return FramesRule("unknown", facts._probe_error or "probing failed", facts=facts)
    return FramesRule("probed", f"estimated by probing the model: {probe.describe()}", facts=facts)


#: Who declared the output lengths of each declared source, as the report names them.
DECLARED_BY = {"setup": "Setup.output_lengths", "model": "the lengths the model returns"}


def measured_rule(facts: ModelFacts, rule: FramesRule) -> FramesRule:
    """The rule once CTC003 found the declared lengths (`rule`) wrong on the first batch: the lengths measured by
    probing the model, or "unknown" (detail: why probing failed) when it cannot be probed."""
    probe = facts.probe()
    if probe is None:
        return FramesRule("unknown", facts._probe_error or "probing failed", facts=facts)
    detail = f"measured by probing the model: {probe.describe()}, not {DECLARED_BY[rule.source]} (wrong: CTC003)"
    return FramesRule("measured", detail, facts=facts)


def overcount_rule(facts: ModelFacts, rule: FramesRule) -> FramesRule | None:
    """The measured rule when the lengths the model returns on the first batch only count a few frames past the end of
    its padded samples (CTC007 in `check`): the scan then judges every sample by the frames the model gives it on its
    own, as `check` does, not by lengths that depend on the batch a sample lands in. None otherwise."""
    if rule.source != "model" or facts.returned is None:
        return None
    probe = facts.probe()
    first = facts.first
    if probe is None or probe.formula is None or facts.returned.shape != first.input_lengths.shape:
        return None
    found = time_width(first)
    width = found[1] if found is not None else int(first.input_lengths.max())
    overcount = padding_overcount(first.input_lengths, torch.full_like(first.input_lengths, width), facts.returned,
                                  probe(first.input_lengths), probe)
    if overcount is None:
        return None
    detail = (f"the model gives each sample on its own, measured by probing it, not the lengths it returns, which "
              f"{overcount_phrase(overcount)} (CTC007): {probe.formula}")
    return FramesRule("measured", detail, facts=facts)


def first_batch_lengths(rule: FramesRule, source: str, detail: str) -> OutputLengths:
    """The first batch's output lengths under the final rule, for CTC003 (the model ran on that batch only)."""
    assert rule.facts is not None
    first = rule.facts.first
    ids = np.arange(first.size, dtype=np.int64)
    if source == "model" and rule.facts.returned is not None:
        per_run = rule.facts.returned
    elif source in ("unknown", "unavailable"):
        per_run = torch.full((first.size,), -1, dtype=torch.long)
    else:
        probe_rule = FramesRule(source, detail, rule.setup_lengths, rule.facts, rule.common_length, first_size=first.size)
        per_run = torch.from_numpy(probe_rule.frames(ids, first.input_lengths.numpy()))
    return OutputLengths(per_run, (per_run,), source, detail)
