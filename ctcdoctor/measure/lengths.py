"""Output lengths: how many frames each sample gets after the model's downsampling, and where
that number comes from (one rule, shared by `check` and `scan`); a length model probed from
the model; the comparison of declared lengths with the probed ones (CTC004)."""
from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from ctcdoctor.engine import Context, InputUnavailable, provides
from ctcdoctor.load.batches import Batch, sample_resizer, time_width
from ctcdoctor.measure.model import (
    ModelRun,
    call_model,
    evaluating,
    split_output,
    time_dim,
)
from ctcdoctor.registry import SkipCheck


@dataclass(frozen=True)
class LengthModel:
    """Output frames as a function of input length, measured by running the model.

    Integer-stride subsampling stacks compose to `floor((L + offset) / stride)`; the rule is kept only when every
    probed length (the data's own, and the bisection that pins the offset) fits it; otherwise the measured points
    are interpolated, and `describe()` says that no such rule fits.
    """

    probed: tuple[tuple[int, int], ...]
    """(input length, output frames) pairs measured on the model, by input length."""
    stride: int | None
    offset: int | None
    returned: tuple[tuple[int, int], ...] = ()
    """(input length, output length the model returned) at the probed lengths, for a sample run alone (no padding);
    () when the model returns no lengths."""

    def __call__(self, input_lengths: torch.Tensor) -> torch.Tensor:
        lengths = input_lengths.to(torch.long)
        if self.stride is not None and self.offset is not None:
            return torch.div(lengths + self.offset, self.stride, rounding_mode="floor").clamp(min=0)
        xs = torch.tensor([point[0] for point in self.probed], dtype=torch.float64)
        ys = torch.tensor([point[1] for point in self.probed], dtype=torch.float64)
        positions = torch.searchsorted(xs, lengths.to(torch.float64)).clamp(1, len(xs) - 1)
        x0, x1, y0, y1 = xs[positions - 1], xs[positions], ys[positions - 1], ys[positions]
        slope = (y1 - y0) / (x1 - x0).clamp(min=1)
        return (y0 + slope * (lengths - x0)).floor().to(torch.long).clamp(min=0)

    @property
    def formula(self) -> str | None:
        """The rule in words ("frames = floor((L - 12) / 4)"), or None when no `floor((L + k) / s)` rule fits."""
        if self.stride is None or self.offset is None:
            return None
        if self.offset == 0:
            return f"frames = floor(L / {self.stride})" if self.stride > 1 else "frames = L"
        sign = "+" if self.offset > 0 else "-"
        return f"frames = floor((L {sign} {abs(self.offset)}) / {self.stride})"

    @property
    def python(self) -> str | None:
        """The rule as Python over a tensor or int `L` ("(L - 12) // 4"), or None."""
        if self.stride is None or self.offset is None:
            return None
        shifted = "L" if self.offset == 0 else f"(L {'+' if self.offset > 0 else '-'} {abs(self.offset)})"
        return shifted if self.stride == 1 else f"{shifted} // {self.stride}"

    def table(self, limit: int = 12) -> str:
        """Measured `length->frames` pairs, at most `limit` of them spread over the range."""
        points = self.probed
        if len(points) > limit:
            picks = torch.linspace(0, len(points) - 1, limit).round().long().tolist()
            points = tuple(points[pick] for pick in sorted(set(picks)))
        return ", ".join(f"{x}->{y}" for x, y in points)

    def describe(self) -> str:
        return self.formula or (f"no floor((L + k) / s) rule fits the frames the model gives ({self.table()}); "
                                "lengths in between are interpolated")


_RULE = re.compile(r"frames = floor\(\(?L(?: [+-] \d+\))? / (\d+)\)")


def rule_stride(detail: str) -> int | None:
    """The stride of a `LengthModel.describe()` rule inside `detail` ("... frames = floor((L + 3) / 4)" -> 4): how a
    scan, whose lengths keep only their description, states the same rule as `check`."""
    match = _RULE.search(detail)
    return int(match.group(1)) if match else None


def _fits(stride: int, offset: int, points: list[tuple[int, int]]) -> bool:
    """Whether `max(0, floor((L + offset) / stride))` gives every measured (L, frames) pair, as `LengthModel` computes."""
    return all(max(0, (length + offset) // stride) == frames for length, frames in points)


def _fit(points: list[tuple[int, int]]) -> tuple[int | None, int | None]:
    (low_in, low_out), (high_in, high_out) = points[0], points[-1]
    if high_out == low_out:
        return None, None
    estimate = max(1, round((high_in - low_in) / (high_out - low_out)))
    # A few probes fit several rules (floor(L / 16) and floor(L / 17) both give 2, 2, 3, 3, 4, 4, 6, 8 frames for
    # 34, 43, 52, 61, 69, 75, 103, 138 steps): the endpoints' slope is only an estimate, so neighbouring strides are
    # tried too; the smallest offset wins (padding keeps real offsets within a kernel), then a stride made of the
    # small factors layers use (2, 3, 4, 5: 16, 320), then the one nearest the slope. Lengths of one residue
    # (every width a multiple of 4) fit several offsets of a stride: the lowest is kept, the one that never
    # promises more frames than the model gives between them (`probe_lengths` pins the offset by bisection).
    fits = [
        (abs(offset), not _smooth(stride), abs(stride - estimate), stride, offset)
        for stride in range(max(1, estimate - 2), estimate + 3)
        for offset in range(-4 * stride, 4 * stride + 1)
        if _fits(stride, offset, points)
    ]
    if not fits:
        return None, None
    *_, stride, _ = min(fits)
    return stride, min(item[-1] for item in fits if item[-2] == stride)


def _smooth(stride: int) -> bool:
    """Whether `stride` is a product of 2, 3, 5 and 7, as stacks of conv/pool strides are."""
    for factor in (2, 3, 5, 7):
        while stride % factor == 0:
            stride //= factor
    return stride == 1


def _spread(wanted: torch.Tensor, longest: int, max_probes: int) -> list[int]:
    """At most `max_probes` distinct positive lengths of `wanted`, spread over its range (two when it has one)."""
    distinct = sorted(set(int(length) for length in wanted.tolist() if length > 0))
    if len(distinct) > max_probes:
        picks = torch.linspace(0, len(distinct) - 1, max_probes).round().long().tolist()
        distinct = sorted({distinct[pick] for pick in picks})
    if len(distinct) < 2:
        top = distinct[0] if distinct else longest
        distinct = sorted({max(1, top // 2), top})
    return distinct


def _first_reaching(frames_at: Callable[[int], int], measured: dict[int, int], high: int, target: int,
                    span: int) -> int | None:
    """The shortest length up to `high` (where the model gives at least `target` frames) at which it gives `target`
    or more, by bisection from the longest measured length below it that gives fewer (or `high - span`); None when
    no length below gives fewer."""
    below = [length for length, frames in measured.items() if length < high and frames < target]
    low = max(below, default=0)
    if high - span > max(low, 0) and frames_at(high - span) < target:
        low = high - span
    if low < 1:
        return None
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (low, middle) if frames_at(middle) >= target else (middle, high)
    return high


def _pin(frames_at: Callable[[int], int], measured: dict[int, int]) -> tuple[int, int] | None:
    """`(stride, offset)` of `floor((L + offset) / stride)` from the two frame steps just below the longest probe:
    the model gives one frame more at each step, so the steps are a stride apart and the upper one fixes the offset
    (lengths of one residue alone cannot: floor((L - 9) / 4) and floor((L - 12) / 4) agree on multiples of 4)."""
    points = sorted(measured.items())
    estimate, _ = _fit(points)
    top, top_frames = points[-1]
    if estimate is None or top_frames < 2:
        return None
    span = 2 * estimate + 2
    upper = _first_reaching(frames_at, measured, top, top_frames, span)
    lower = None if upper is None else _first_reaching(frames_at, measured, upper - 1, top_frames - 1, span)
    if upper is None or lower is None or measured.get(upper) != top_frames or measured.get(lower) != top_frames - 1:
        return None
    stride = upper - lower
    return stride, stride * top_frames - upper


def probe_lengths(
    model: torch.nn.Module,
    batch: Batch,
    layout: str | None,
    wanted: torch.Tensor,
    max_probes: int = 8,
) -> LengthModel:
    """Run the model on one sample cut or padded to several lengths and fit the frame counts.

    The data's own lengths (up to `max_probes`, spread) first; then a bisection for the two frame steps below the
    longest, which pins the rule's stride and offset whatever residues the data's lengths have. A rule is kept only
    when every probed length fits it; a model that fails at a bisection length keeps the fit of the others."""
    resized = sample_resizer(batch)
    if resized is None:
        raise ValueError(
            "cannot tell which input axis input_lengths measure "
            f"(inputs {tuple(getattr(batch.inputs, 'shape', ()))}, longest length {int(batch.input_lengths.max())})"
        )
    frames_axis = time_dim(layout)
    measured: dict[int, int] = {}
    returned: dict[int, int] = {}

    def frames_at(length: int) -> int:
        if length not in measured:
            output, lengths = split_output(call_model(model, resized(length)))
            measured[length] = int(output.shape[frames_axis])
            if lengths is not None and lengths.numel() == 1:
                returned[length] = int(lengths[0])
        return measured[length]

    with evaluating(model):
        return _fitted(frames_at, measured, _spread(wanted, int(batch.input_lengths.max()), max_probes), returned)


def _fitted(frames_at: Callable[[int], int], measured: dict[int, int], lengths: list[int],
            returned: dict[int, int] | None = None) -> LengthModel:
    """Frames at `lengths`, then the bisection that pins the rule (`measured`: the cache `frames_at` fills;
    `returned`: the lengths the model returned at them, filled alike)."""
    for length in lengths:
        frames_at(length)
    try:
        pinned = _pin(frames_at, measured)
    except Exception:  # a model that takes only some lengths (multiples of its patch): those it took decide
        pinned = None
    points = sorted(measured.items())
    stride, offset = pinned if pinned is not None and _fits(*pinned, points) else _fit(points)
    return LengthModel(tuple(points), stride, offset, tuple(sorted((returned or {}).items())))


def fit_rule(frames_at: Callable[[int], int], lengths: list[int]) -> LengthModel:
    """The `floor((L + k) / s)` rule of `frames_at` (length -> frames, e.g. a model run with one module's output
    resized to L), probed at `lengths` and pinned by bisection as `probe_lengths` does."""
    measured: dict[int, int] = {}

    def cached(length: int) -> int:
        if length not in measured:
            measured[length] = frames_at(length)
        return measured[length]

    return _fitted(cached, measured, lengths)


def call_length_function(function: Callable[..., Any], input_lengths: torch.Tensor) -> torch.Tensor:
    """Apply `Setup.output_lengths`, accepting tensor-, list- or int-valued functions."""
    try:
        result = function(input_lengths.clone())
    except Exception:
        result = [function(int(length)) for length in input_lengths.tolist()]
    result = torch.as_tensor(result)
    if result.is_floating_point():
        result = result.floor()
    return result.to("cpu", torch.long).reshape(-1)


def declared_stride(function: Callable[..., Any], input_lengths: torch.Tensor) -> int | None:
    """The stride `s` when `Setup.output_lengths` is a `floor((L + k) / s)` rule over the lengths the data holds (`w // 16`:
    16), fitted on its own values at about 40 lengths up to the longest input (from the shortest, or half the longest
    if that is shorter); None otherwise. The
    findings then state `s` itself, where a median of `L / frames` over the data reads higher (floor(150 / 16) = 9
    frames is one per 16.7 steps)."""
    known = input_lengths[input_lengths > 0]
    if known.numel() == 0:
        return None
    high = int(known.max())
    low = max(1, min(int(known.min()), high // 2))  # a span even when every input has one length (a fixed width)
    ladder = torch.unique(torch.cat([torch.linspace(low, high, 32).round().long(), torch.arange(low, min(low + 8, high + 1))]))
    try:
        frames = call_length_function(function, ladder)
    except Exception:  # a function that only takes its own kind of argument: no stride to state
        return None
    if frames.shape != ladder.shape:
        return None
    stride, offset = _fit(list(zip(ladder.tolist(), frames.tolist())))
    return stride if stride is not None and offset is not None and stride > 1 else None


def probe_failed_for_the_rest(failure: str) -> str:
    """Why samples outside the batches the model ran on have no output length when the model returns its own and
    probing it failed (`failure`: "Type: message", may be empty), with the fix (shared with `scan`)."""
    why = f" ({failure[:120]})" if failure else ""
    return (f"the model returns its own output lengths, and probing it for the other samples failed{why}; set "
            "Setup.output_lengths (input lengths -> output frames, the model's formula) to check every sample")


#: The most frames past a padded sample's end that the lengths a model returns may count and still read as a mask
#: subsampled by slicing (ESPnet's Conv2dSubsampling: up to 2 at ×4); more is a length rule that counts the padding.
OVERCOUNT_LIMIT = 3


@dataclass(frozen=True)
class PaddingOvercount:
    """The lengths a model returns count a few frames past the end of the samples that are padded in their batch, and
    agree with its frames for a sample run alone: a padding mask subsampled by slicing (`mask[:, :-2:2][:, :-2:2]`, as
    ESPnet's Conv2dSubsampling does) keeps positions whose conv windows reach into the padding. Not a wrong rule."""

    frames: int
    """The most frames counted past a sample's end."""
    samples: int
    """Padded samples whose returned length is over their frames."""
    padded: int
    """Padded samples compared."""
    example: tuple[int, int, int, int]
    """(sample row, input length, length returned, frames the model gives it alone) of the first one over."""
    alone: int
    """Lengths at which the model, run on one sample alone (no padding), returned exactly the frames it gave."""
    python: str = ""
    """The model's rule in Python ("(L - 3) // 4"), when one fits."""
    module: str = ""
    """"embed (Conv2dSubsampling)": the innermost module whose output holds the returned lengths (a mask whose sum
    over time, or a length tensor), when one does; "" when none was found."""


def padding_overcount(input_lengths: torch.Tensor, widths: torch.Tensor, declared: torch.Tensor, measured: torch.Tensor,
                      model: LengthModel) -> PaddingOvercount | None:
    """A `PaddingOvercount` when the only disagreement of the returned lengths (`declared`) with the frames the model
    gives each sample alone (`measured`) is 1 to OVERCOUNT_LIMIT frames too many on samples shorter than their
    batch's padded `widths`, and the model returns its exact frames for a sample alone (at the probed lengths, or
    for the unpadded samples of the batches); None otherwise (a real disagreement: CTC004).

    In a batch of near-equal lengths (bucketed, as ESPnet sorts them) the sliced mask gives every padded sample the
    whole padded output's frames, as lengths that ignore the padding would: within OVERCOUNT_LIMIT frames the two
    cost the same, and lengths that ignore the padding show larger overcounts on any batch of spread lengths."""
    over = declared - measured
    wrong = over != 0
    if not bool(wrong.any()) or bool((over[wrong] < 1).any()) or bool((over[wrong] > OVERCOUNT_LIMIT).any()):
        return None
    padded = input_lengths < widths
    if bool((wrong & ~padded).any()):
        return None
    frames = dict(model.probed)
    if any(frames.get(length) != returned for length, returned in model.returned):
        return None
    if not model.returned and not bool((~padded).any()):
        return None  # nothing run without padding to show the lengths agree there
    first = int(wrong.nonzero()[0, 0])
    return PaddingOvercount(int(over[wrong].max()), int(wrong.sum()), int(padded.sum()),
                            (first, int(input_lengths[first]), int(declared[first]), int(measured[first])),
                            len(model.returned))


def lengths_module(model: torch.nn.Module, inputs: Any, returned: torch.Tensor) -> str:
    """"embed (Conv2dSubsampling)": the innermost submodule whose output holds `returned` (the lengths the model
    returned on `inputs`): a boolean mask whose count per sample equals them, or an integer tensor equal to them;
    "" when none does (the lengths are computed in the model's own forward) or the model cannot be run again."""
    from ctcdoctor.load.batches import tensor_leaves

    found: list[str] = []
    target = returned.to("cpu", torch.long).reshape(-1)

    def holds(value: Any) -> bool:
        for _, tensor in tensor_leaves(value):
            if tensor.dim() == 0 or tensor.shape[0] != target.shape[0]:
                continue
            if tensor.dtype == torch.bool and tensor.dim() >= 2:
                counted = tensor.reshape(tensor.shape[0], -1).sum(1).to("cpu", torch.long)
            elif not tensor.is_floating_point() and tensor.dim() == 1:
                counted = tensor.to("cpu", torch.long)
            else:
                continue
            if torch.equal(counted, target):
                return True
        return False

    def hook(name: str) -> Callable[..., None]:
        def record(module: torch.nn.Module, _args: Any, output: Any) -> None:
            if not found and holds(output):
                found.append(f"{name} ({type(module).__name__})")
        return record

    handles = [module.register_forward_hook(hook(name)) for name, module in model.named_modules() if name]
    try:
        with evaluating(model):
            call_model(model, inputs)
    except Exception:  # noqa: BLE001 - no module named: the finding names the model's forward
        return ""
    finally:
        for handle in handles:
            handle.remove()
    return found[0] if found else ""


def overcount_phrase(overcount: PaddingOvercount) -> str:
    """"count up to 2 frames past the end of padded samples": what the returned lengths do (CTC001/2, scan)."""
    return f"count up to {overcount.frames} {'frame' if overcount.frames == 1 else 'frames'} past the end of padded samples"


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
    uncovered: str = ""
    """Why some scanned samples have no length (-1), as a clause for a finding; empty when every sample has one."""
    stride: int | None = None
    """Input steps per output frame of a `floor((L + k) / stride)` rule, probed or declared (`declared_stride`); None
    when the lengths follow no such rule."""

    @property
    def known(self) -> bool:
        return self.source != "unknown"


def _frames(run: ModelRun, layout: str | None) -> int:
    return int(run.output.shape[time_dim(layout)])


def resolve_output_lengths(
    setup_lengths: Callable[..., Any] | None,
    runs: list[ModelRun],
    input_lengths: torch.Tensor,
    layout: str | None,
    length_model: Callable[[], LengthModel],
    probe_uncovered: bool = False,
) -> OutputLengths:
    """Output lengths for every scanned sample, by the one precedence rule of DESIGN §2.

    In order: the lengths the model returns (for the samples it ran on); `Setup.output_lengths`;
    all `T` frames when every input has the same length; a length model probed from the model.
    `input_lengths` covers every scanned sample, the runs' batches first. With
    `probe_uncovered` (scan: the model runs on one batch only), samples the model did not run
    on get the probed length model's estimate when the model returns its own lengths.
    """
    unknown = torch.full_like(input_lengths, -1)
    if runs[0].returned_lengths is not None:
        per_run = tuple(run.returned_lengths for run in runs if run.returned_lengths is not None)
        scanned = unknown.clone()
        covered = sum(run.batch.size for run in runs)
        returned = torch.cat(per_run)
        if returned.shape[0] == covered:
            scanned[:covered] = returned
        uncovered = ""
        if input_lengths.shape[0] > covered:
            if setup_lengths is not None:
                scanned[covered:] = call_length_function(setup_lengths, input_lengths[covered:])
            elif probe_uncovered:
                failure = ""
                try:
                    scanned[covered:] = length_model()(input_lengths[covered:])
                except Exception as error:  # noqa: BLE001 - no estimate: those samples stay unknown (-1)
                    failure = f"{type(error).__name__}: {error}"
                uncovered = "" if bool((scanned >= 0).all()) else probe_failed_for_the_rest(failure)
            else:
                uncovered = ("the model returns its own output lengths, so the others have none; `ctcdoctor scan` on the "
                             "same spec estimates theirs by probing the model, and Setup.output_lengths (the model's formula) "
                             "gives every sample an exact one")
        return OutputLengths(scanned, per_run, "model", "returned by the model with its output", uncovered)
    if setup_lengths is not None:
        scanned = call_length_function(setup_lengths, input_lengths)
        per_run = tuple(call_length_function(setup_lengths, run.batch.input_lengths) for run in runs)
        return OutputLengths(scanned, per_run, "setup", "from Setup.output_lengths",
                             stride=declared_stride(setup_lengths, input_lengths))
    if input_lengths.numel() and int(input_lengths.min()) == int(input_lengths.max()):
        frames = _frames(runs[0], layout)
        per_run = tuple(torch.full_like(run.batch.input_lengths, _frames(run, layout)) for run in runs)
        return OutputLengths(
            torch.full_like(input_lengths, frames), per_run, "full",
            f"every input has the same length, so every sample gets all {frames} frames",
        )
    try:
        model = length_model()
    except Exception as error:
        cause = getattr(error, "error", error)
        return OutputLengths(unknown, tuple(torch.full_like(run.batch.input_lengths, -1) for run in runs), "unknown", str(cause))
    per_run = tuple(model(run.batch.input_lengths) for run in runs)
    return OutputLengths(model(input_lengths), per_run, "probed", f"estimated by probing the model: {model.describe()}",
                         stride=model.stride if model.offset is not None else None)


@provides("output_lengths")
def _output_lengths(context: Context) -> OutputLengths:
    return resolve_output_lengths(
        context.setup.output_lengths, context.runs, context.targets.input_lengths, context.layout.layout,
        lambda: context.length_model,
    )


@provides("length_model")
def _length_model(context: Context) -> LengthModel:
    return probe_lengths(context.model, context.runs[0].batch, context.layout.layout, context.targets.input_lengths)


@dataclass(frozen=True)
class DeclaredLengths:
    """Declared output lengths (Setup.output_lengths or the model's own) next to the probed ones (CTC004)."""

    who: str
    """"Setup.output_lengths" or "the lengths the model returns"."""
    source: str
    input_lengths: torch.Tensor
    declared: torch.Tensor
    measured: torch.Tensor
    formula: str
    """The probed length model in words, e.g. "frames = floor(L / 4)"."""
    unfitted: str = ""
    """The measured `length->frames` pairs when no `floor((L + k) / s)` rule fits them all; "" when `formula` is one."""
    overcount: PaddingOvercount | None = None
    """When the only disagreement is a few frames counted past the end of padded samples (CTC007, not CTC004)."""
    sample_ids: tuple[int, ...] = ()
    """The sample number of each compared length (lengths the model returns), as findings give it."""


@provides("declared_lengths")
def _declared_lengths(context: Context) -> DeclaredLengths:
    """A skip when there is nothing to compare: lengths not declared (no problem), or the model cannot be probed."""
    lengths = context.output_lengths
    if lengths.source not in ("setup", "model"):
        raise SkipCheck("no output lengths declared (Setup.output_lengths, or lengths returned by the model) to compare",
                        applicable=False)
    try:
        model = context.length_model
    except Exception as error:
        cause = getattr(error, "error", error)
        raise SkipCheck(f"the model could not be probed at other input lengths: {type(cause).__name__}: {cause}") from None
    if lengths.source == "setup" and context.setup.output_lengths is not None:
        inputs = torch.tensor([point[0] for point in model.probed])
        measured = torch.tensor([point[1] for point in model.probed])
        declared = call_length_function(context.setup.output_lengths, inputs)
        return DeclaredLengths("Setup.output_lengths", "setup", inputs, declared, measured, model.describe(),
                               "" if model.formula else model.table())
    inputs = torch.cat([run.batch.input_lengths for run in context.runs])
    declared = torch.cat(lengths.per_run)
    if declared.shape != inputs.shape:
        raise SkipCheck("the model returns a different number of lengths than samples (CTC003)")
    measured = model(inputs)
    ids = tuple(run.batch.sample_id(i) for run in context.runs for i in range(run.batch.size))
    overcount = _returned_overcount(context, inputs, declared, measured, model)
    return DeclaredLengths("the lengths the model returns", "model", inputs, declared, measured, model.describe(),
                           "" if model.formula else model.table(), overcount, ids)


def _returned_overcount(context: Context, inputs: torch.Tensor, declared: torch.Tensor, measured: torch.Tensor,
                        model: LengthModel) -> PaddingOvercount | None:
    """`padding_overcount` over the batches the model ran on, with the module that computes the lengths."""
    widths = []
    for run in context.runs:
        found = time_width(run.batch)
        width = found[1] if found is not None else int(run.batch.input_lengths.max())
        widths.append(torch.full_like(run.batch.input_lengths, width))
    overcount = padding_overcount(inputs, torch.cat(widths), declared, measured, model)
    if overcount is None:
        return None
    run = context.runs[0]
    module = lengths_module(context.model, run.batch.inputs, run.returned_lengths) if run.returned_lengths is not None else ""
    return dataclasses.replace(overcount, module=module, python=model.python or "")


@dataclass(frozen=True)
class ModelFrames:
    """The frames the model gives every scanned sample, measured by probing it, when the declared output lengths
    disagree with it (CTC004): CTC001/CTC002 then judge the model on these, and point at the declared lengths."""

    who: str
    """"Setup.output_lengths" or "the lengths the model returns"."""
    lengths: OutputLengths
    """Source "probed", one length per scanned sample, from the verified rule."""
    formula: str
    """"frames = floor((L - 12) / 4)"."""
    python: str
    """"(L - 12) // 4"."""
    overcount: PaddingOvercount | None = None
    """Set when the declared lengths only count a few frames past the end of padded samples (CTC007): the checks
    then judge the frames the model gives each sample alone without calling the declared lengths wrong."""


@provides("model_frames")
def _model_frames(context: Context) -> ModelFrames | None:
    """None when the declared lengths agree with the model, none are declared, or no `floor((L + k) / s)` rule was
    verified on the model (an interpolation is no measurement to judge samples by)."""
    try:
        comparison, model = context.declared_lengths, context.length_model
        input_lengths = context.targets.input_lengths
    except InputUnavailable:
        return None
    if bool((comparison.declared == comparison.measured).all()) or model.formula is None or model.python is None:
        return None
    if comparison.overcount is not None:
        detail = (f"the model gives each sample on its own, measured by probing it, not the lengths it returns, which "
                  f"{overcount_phrase(comparison.overcount)} (CTC007): {model.formula}")
    else:
        detail = f"measured by probing the model, not from {comparison.who} (CTC004): {model.formula}"
    lengths = OutputLengths(model(input_lengths), (), "probed", detail, stride=model.stride)
    return ModelFrames(comparison.who, lengths, model.formula, model.python, comparison.overcount)
