"""Length checks: does every sample get enough output frames for a CTC alignment?"""
from __future__ import annotations

from math import prod
from typing import TYPE_CHECKING, Any

from ctcdoctor.registry import SkipCheck, check, document, finding
from ctcdoctor.render.phrases import numbered, of_total, plural

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from ctcdoctor.findings import Finding
    from ctcdoctor.load.batches import TargetTable
    from ctcdoctor.measure.downsampling import TimeStrides
    from ctcdoctor.measure.labels import PaddingCounted
    from ctcdoctor.measure.lengths import DeclaredLengths, ModelFrames, OutputLengths
    from ctcdoctor.measure.model import LayoutDecision, ModelRun

#: A sample with fewer than this many output frames per required frame gets CTC002.
TIGHT_RATIO = 1.25
#: How many of the worst samples a finding lists.
WORST = 5


def _coverage(targets, output_lengths) -> tuple[int, str]:
    """(samples whose output length is known, a sentence saying what was not covered, or "").

    When the model returns its own output lengths, only the samples of the batches it ran on have
    one: say so, and point to `scan`, which estimates the others' lengths by probing the model, and to
    Setup.output_lengths."""
    covered = int((output_lengths.scanned >= 0).sum())
    if covered == targets.size:
        return covered, ""
    why = getattr(output_lengths, "uncovered", "") or "the others have no known output length"
    return covered, (
        f" Only the {covered} samples of the batches the model ran on were checked ({targets.size - covered} more were read): "
        f"{why}."
    )


#: When fewer than this share of the checked samples are infeasible, CTC001's fix drops them instead of changing the model.
OUTLIER_SHARE = 0.1


def _input_word(axis: str) -> str:
    return "width" if axis == "width" else "length"


def fixed_phrase(fixed: Any, measured: int | None) -> str:
    """CTC001's sentence on a model whose frames do not follow the input length (a `FixedLength`)."""
    where = f" {fixed.describe()} resamples every input to {fixed.size} along {fixed.axis}" if fixed.module else ""
    after = f", and its layers after that downsample time ×{measured}" if measured else ""
    return (f" The model gives {plural(fixed.frames, 'frame') if fixed.frames else 'the same frames'} whatever the "
            f"input {_input_word(fixed.axis)}{':' + where if where else ''}{after}.")


def frame_rule_phrase(ratio: float | None, output_lengths: Any, measured: int | None = None, fixed: Any = None,
                      rule: Any = None) -> str:
    """How many input steps make one output frame, by the rule the length checks used (shared with `scan`).

    `fixed`: a `FixedLength` when the model gives the same frames whatever the input length; the sentence then says
    so and what sets them. A probed `floor((L + k) / s)` states `s` itself: a median of `L / frames` over short inputs reads higher
    (floor(150 / 16) = 9 frames is one per 16.7 steps). So does `measured`, the product of the time strides of the
    model's layers, when the median agrees with it up to that rounding (within 15%); and `rule`, the model's
    `floor((L + k) / s)` rule measured by probing it, when no layer was found: "one per 16" beside a fix that
    says "frames = floor(L / 16)", never "about one per 17"."""
    from ctcdoctor.measure.lengths import rule_stride

    if fixed is not None:
        return fixed_phrase(fixed, measured)
    stride = getattr(output_lengths, "stride", None)
    if stride is None and output_lengths.source == "probed":
        stride = rule_stride(output_lengths.detail)  # a scan keeps the rule's words only
    if stride is not None and stride > 1:
        layers = f"its layers downsample time ×{measured}; " if measured == stride else ""
        phrase = f" The model keeps one output frame per {stride} input steps ({layers}frames {output_lengths.detail})."
        if measured is not None and measured > 1 and measured != stride:
            phrase += f" Its layers downsample time ×{measured}: the output lengths follow another rule."
        return phrase
    if ratio is None or ratio <= 1.05:
        return ""
    shown = f"{ratio:.0f}" if ratio >= 3 else f"{ratio:.2g}"
    source = output_lengths.detail if output_lengths.source == "full" else f"frames {output_lengths.detail}"
    probed = getattr(rule, "stride", None)
    if measured is None and probed is not None and probed > 1 and rule.formula and shown != str(probed):
        return f" The model keeps one output frame per {probed} input steps ({rule.formula}, measured by probing it; {source})."
    if measured is not None and measured > 1 and shown != str(measured) and abs(ratio - measured) <= 0.15 * measured:
        return f" The model keeps one output frame per {measured} input steps (its layers downsample time ×{measured}; {source})."
    phrase = f" The model keeps about one output frame per {shown} input steps ({source})."
    if measured is not None and measured > 1 and shown != str(measured):
        phrase += (f" Its layers downsample time ×{measured}: the output lengths add an offset or other steps of their "
                   "own.")
    return phrase


def _downsampling_ratio(targets, output_lengths) -> float | None:
    known = (output_lengths.scanned > 0) & (targets.input_lengths > 0)
    if not bool(known.any()):
        return None
    return float((targets.input_lengths[known].double() / output_lengths.scanned[known].double()).median())


def _describe_infeasible(item: dict[str, int]) -> str:
    repeats_part = f" + {plural(item['repeats'], 'repeat')}" if item["repeats"] else ""
    return (
        f"sample {item['sample']} has {plural(item['frames'], 'frame')} for {plural(item['labels'], 'label')}{repeats_part} "
        f"(needs {item['needed']}, {item['short_by']} short)"
    )


def _hardest(indices, available, required, input_lengths=None, offset: int = 0) -> dict[str, int] | None:
    """The infeasible sample that sets how far downsampling must be cut. `input_lengths` (given when the model's
    measured rule divides by exactly the layers' total stride): the one with the fewest input steps per needed frame,
    with its length and the rule's `offset`; else the one with the largest needed/available ratio."""
    usable = indices[available[indices] > 0]
    if input_lengths is not None:
        usable = usable[input_lengths[usable] > 0]
    if usable.numel() == 0:
        return None
    if input_lengths is None:
        pick = int(usable[(required[usable].double() / available[usable].double()).argmax()])
        return {"sample": pick, "frames": int(available[pick]), "needed": int(required[pick])}
    pick = int(usable[((input_lengths[usable].double() + min(offset, 0)) / required[usable].double()).argmin()])
    return {"sample": pick, "frames": int(available[pick]), "needed": int(required[pick]),
            "length": int(input_lengths[pick]), "offset": int(offset)}


def _numbered(items: list[dict[str, int]], targets: TargetTable) -> list[dict[str, int]]:
    """`items` with their "sample" (a row of the tables) as the number findings give it (`TargetTable.sample_id`)."""
    return [{**item, "sample": targets.sample_id(item["sample"])} for item in items]


def _longest(indices, available, required, labels, repeats) -> dict[str, int]:
    """The infeasible sample that needs the most frames (the input length that fits it fits every one)."""
    pick = int(indices[required[indices].argmax()])
    return {"sample": pick, "frames": int(available[pick]), "needed": int(required[pick]), "labels": int(labels[pick]),
            "repeats": int(repeats[pick])}


def _needs_phrase(item: dict[str, int]) -> str:
    repeats = f" + {plural(item['repeats'], 'repeat')}" if item.get("repeats") else ""
    return f"{item['needed']}: {plural(item['labels'], 'label')}{repeats}" if "labels" in item else str(item["needed"])


def longer_inputs(rule: Any, longest: dict[str, int] | None, axis: str, named: int | None = None) -> str:
    """"feed inputs at least 52 wide (frames = floor((L - 4) / 4) must reach 12: 11 labels + 1 repeat)": the input
    length the model's measured rule turns into the frames the longest infeasible sample needs; "feed longer inputs"
    when there is no invertible rule. `named`: the sample the fix named before (the one that sets the cut); when the
    longest is another, the phrase says why it names a second one."""
    stride, offset = getattr(rule, "stride", None), getattr(rule, "offset", None)
    if longest is None or stride is None or offset is None or stride < 1:
        return "feed longer inputs"
    least = max(1, longest["needed"] * stride - offset)
    size = f"{least} wide" if axis == "width" else f"{least} steps long"
    if named is not None and named != longest["sample"]:
        return (f"feed inputs at least {size} (enough for the sample that needs the most frames, sample "
                f"{longest['sample']}: {rule.formula} must reach {_needs_phrase(longest)})")
    return f"feed inputs at least {size} ({rule.formula} must reach {_needs_phrase(longest)}, sample {longest['sample']})"


def infeasible_message(count: int, covered: int, worst: list[dict[str, int]], rule: str, coverage: str, only_repeats: bool,
                       giver: str = "the model gives") -> str:
    """CTC001's message, word for word the same in `check` and `scan`; `giver`: what gives the frames, when the
    declared lengths are short but the model is not ("Setup.output_lengths gives")."""
    listed = ": " if count <= len(worst) else f"; the {len(worst)} furthest short: "
    message = (
        f"{of_total(count, covered, 'sample', 'needs', 'need')} more frames than {giver}{listed}"
        + "; ".join(_describe_infeasible(item) for item in worst) + "." + rule + coverage
    )
    if only_repeats:
        message += (
            " It would fit without its adjacent repeated labels"
            if count == 1 else " Every one of them would fit without its adjacent repeated labels"
        ) + ": CTC needs a blank frame between equal neighbours."
    return message


def tight_hint(ratio: float | None) -> str:
    """CTC002's fix; `ratio` as in `infeasible_hint`."""
    if keeps_every_step(ratio):
        return ("Leave more room: the model keeps one frame per input step, so give it more input frames per label "
                "(a shorter feature hop) or shorten the label chunks.")
    return "Leave more room: reduce the time downsampling slightly or shorten the label chunks."


def _strides_to_cut(strides: tuple[Any, ...], allowed: float) -> tuple[list[tuple[Any, int]], int]:
    """(layer, its new time stride) for the latest layers that must change for the total to fit `allowed`, and the
    total left. From the last layer back, each takes the largest stride that fits: Conv2d(stride=(2, 4)) after a
    stride of 2 goes to (2, 2) for ×4, not to (2, 1) for ×2; a layer that cannot fit even at stride 1 goes to 1 and
    the one before it is cut next."""
    total = prod(item.stride for item in strides)
    changes = []
    for item in reversed(strides):
        if total <= allowed:
            break
        rest = total // item.stride
        new = max(1, min(item.stride - 1, int(allowed // rest)))
        changes.append((item, new))
        total = rest * new
    return changes, total


def _cut_phrase(changes: list[tuple[Any, int]], total: int, left: int) -> str:
    """"set the stride along width to 1 in MaxPool2d at cnn.5 (stride=(2, 1)) and ..., and to 2 in ... (×8 → ×2,
    about 4 times the frames)": what to write in each layer, the ones set to the same stride together."""
    groups: dict[int, list[Any]] = {}
    for item, new in changes:
        groups.setdefault(new, []).append(item)
    parts = []
    for new, items in groups.items():
        names = " and ".join(f"{item.kind} at {item.module}" + (f" ({item.setting_for(new)})" if item.setting_for(new)
                                                                  else "") for item in items)
        parts.append(f"to {new} in {names}")
    axis = changes[0][0].axis
    times = f"{total // left}" if total % left == 0 else f"{total / left:.2g}"
    return f"set the stride along {axis} " + ", and ".join(parts) + f" (×{total} → ×{left}, about {times} times the frames)"


def _allowed(strides: tuple[Any, ...], hardest: dict[str, int]) -> float:
    """The largest total time downsampling that gives the hardest sample the frames it needs (and so every
    infeasible one, since it is the hardest): from its input length L, (L + k) / needed, k the measured rule's offset
    when negative (steps lost at the edges; a positive one is padding that a smaller stride keeps giving); else from
    its frames, ×total · frames / needed."""
    if "length" in hardest:
        return (hardest["length"] + min(hardest.get("offset", 0), 0)) / hardest["needed"]
    return prod(item.stride for item in strides) * hardest["frames"] / hardest["needed"]


NO_DOWNSAMPLING = 1.05
"""Input steps per output frame up to this: the model keeps (about) every input step as a frame."""


def keeps_every_step(ratio: float | None) -> bool:
    return ratio is not None and ratio <= NO_DOWNSAMPLING


def share(count: int, total: int) -> str:
    """`count` of `total` as a percentage a reader can tell from zero: 0.05% for 1 of 2000, 12% for 240 of 2000."""
    percent = 100 * count / total if total else 0.0
    return f"{percent:.2g}%" if 0 < percent < 1 else f"{percent:.0f}%"


def _fixed_hint(fixed: Any, strides: tuple[Any, ...], hardest: dict[str, int], needs: str) -> str:
    """CTC001's fix for a model that resamples every input to a fixed size: longer inputs do not help; its output
    size does, or the downsampling after it."""
    who = f"{fixed.describe()} resamples every input to {fixed.size} along {fixed.axis}" if fixed.module else (
        "something in forward() resizes every input to one size")
    head = (f"Sample {hardest['sample']} {needs}, and longer inputs will not help: the model gives "
            f"{plural(hardest['frames'], 'frame')} whatever the input {_input_word(fixed.axis or 'width')}, because {who}.")
    least = fixed.size_for(hardest["needed"])
    tps = " (for a TPS transformation, the I_r_size it is built with: the imgW option)" if "TPS" in fixed.kind.upper() else ""
    if fixed.module and least is not None:
        size = (f" Raise the size it resamples to along {fixed.axis}{tps} to at least {least} "
                f"({fixed.rule.formula.replace('frames', 'frames after it')}, L its output {fixed.axis}, must reach "
                f"{_needs_phrase(hardest)})")
    elif fixed.module:
        size = f" Raise the size it resamples to along {fixed.axis}{tps}"
    else:
        size = " Raise that size"
    if not strides:
        return head + size + "; or split long labels into shorter chunks."
    total = prod(item.stride for item in strides)
    layers = ", ".join(item.describe() for item in strides)
    allowed = total * hardest["frames"] / hardest["needed"]
    cut = ""
    if allowed >= 1:
        changes, left = _strides_to_cut(strides, allowed)
        cut = f", or {_cut_phrase(changes, total, left)}"
    return (head + f" After it the time axis is downsampled ×{total} by {layers}." + size + cut
            + "; or split long labels into shorter chunks.")


def infeasible_hint(count: int, covered: int, worst: list[dict[str, int]], strides: tuple[Any, ...] = (),
                    hardest: dict[str, int] | None = None, ratio: float | None = None, manifest: bool = False,
                    fixed: Any = None, rule: Any = None, longest: dict[str, int] | None = None) -> str:
    """CTC001's fix: drop a few outliers; or name the layers that downsample time and how far to cut them.

    `hardest`: the sample needing the most frames per frame it has, when known beyond the `worst` listed.
    `ratio`: input steps per output frame (median), when known: a model that keeps every step has no
    downsampling to reduce. `manifest`: the samples come from `scan --manifest` (the drop-list is a flag of the
    same command, and a clean copy of the manifest can be written). `fixed`: a `FixedLength` when the model gives
    the same frames whatever the input length (longer inputs do not help; its resampler's size does). `rule`: the
    model's measured `floor((L + k) / s)` length rule, and `longest`, the infeasible sample that needs the most
    frames: the fix then says how long the inputs must be."""
    axis = next((item.axis for item in strides), "")
    others = f"{longer_inputs(rule, longest, axis)}, or split long labels into shorter chunks."
    if strides and usable_hardest(worst, hardest) is not None:  # the cut names this sample: say why another follows
        others = (f"{longer_inputs(rule, longest, axis, usable_hardest(worst, hardest))}, or split long labels into "
                  "shorter chunks.")
    if covered and count / covered < OUTLIER_SHARE:  # the same test as the check's `outliers`
        how = ("(add `--drop-list drop.txt` to this scan for the ids of every such sample, `--clean-manifest FILE` for a "
               "copy of the manifest without them)" if manifest else
               "(`ctcdoctor scan` on the same spec with `--drop-list drop.txt` writes the ids of every such sample)")
        one = count == 1
        return (
            f"Only {count} of {covered} samples ({share(count, covered)}) {'is' if one else 'are'} too long for "
            f"their input: the {'frame count' if manifest else 'model' + chr(39) + 's downsampling'} "
            f"suits the others, so drop {'that sample' if one else 'those samples'} or split {'its label' if one else 'their labels'} "
            f"into shorter chunks {how}."
        )
    usable = [item for item in [*worst, *([hardest] if hardest else [])] if item["frames"] > 0]
    if not strides and keeps_every_step(ratio):
        return ("The model keeps one output frame per input step, so there is no downsampling to cut: give it more "
                "input frames per label (a shorter hop between feature frames, e.g. 10 ms instead of 20 ms, or less "
                "trimming), use a coarser label unit (word pieces instead of characters), or split long labels into "
                "shorter chunks.")
    if fixed is not None and usable:
        top = max(usable, key=lambda item: item["needed"] / item["frames"])
        return _fixed_hint(fixed, strides, longest or top, f"needs {top['needed']} frames and gets {top['frames']}"
                           if longest is None else f"needs {longest['needed']} frames and gets {longest['frames']}")
    if not strides or not usable:
        return "Reduce the downsampling along time (smaller pooling/stride on the time or width axis), " + others
    total = prod(item.stride for item in strides)
    if hardest is None or "length" not in hardest:  # the hardest by frames, among those known
        hardest = max(usable, key=lambda item: item["needed"] / item["frames"])
    allowed = _allowed(strides, hardest)
    layers = ", ".join(item.describe() for item in strides)
    needs = f"needs {hardest['needed']} frames and gets {hardest['frames']}"
    if any(item["sample"] == hardest["sample"] for item in worst):
        who = f"Sample {hardest['sample']} {needs}"
    else:  # not among the furthest short in frames: say why this one sets the cut
        who = (f"Sample {hardest['sample']}, short by the largest factor (it {needs}, "
               f"{hardest['needed'] / hardest['frames']:.2g}× too few)")
    head = f"{who}: the time axis is downsampled ×{total} by {layers}."
    if allowed < 1:
        return head + f" Even with no downsampling at all sample {hardest['sample']} stays short: {others}"
    bound = min(int(allowed), total - 1)
    changes, left = _strides_to_cut(strides, bound)
    if bound == 1:  # nothing between ×1 and ×2: only removing every time stride gives it its frames
        return (head + f" A smaller downsampling is not enough: only removing all of it gives sample "
                f"{hardest['sample']} its {hardest['needed']} frames: {_cut_phrase(changes, total, left)}. Without "
                f"changing the model, {others}")
    return head + f" Cut that to ×{bound} or less: {_cut_phrase(changes, total, left)}; or {others}"


def usable_hardest(worst: list[dict[str, int]], hardest: dict[str, int] | None) -> int | None:
    """The sample that sets CTC001's cut in the downsampling (as `infeasible_hint` picks it), or None."""
    usable = [item for item in [*worst, *([hardest] if hardest else [])] if item["frames"] > 0]
    if not usable:
        return None
    if hardest is None or "length" not in hardest:
        hardest = max(usable, key=lambda item: item["needed"] / item["frames"])
    return hardest["sample"]


def _needs(targets: TargetTable, padding: PaddingCounted | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(frames needed, repeats, labels) per sample; with target_lengths that count the padding (CTC012), the true
    ones, so that the padding is not counted as labels twice over."""
    if padding is not None:
        return padding.required, padding.repeats, padding.real_lengths
    return targets.required_frames(), targets.repeats(), targets.valid_lengths


@check("CTC001", "error", "output shorter than target plus repeats: CTC cannot align it")
def infeasible_alignment(
    targets: TargetTable, output_lengths: OutputLengths, time_strides: TimeStrides | None = None,
    padding_counted: PaddingCounted | None = None, model_frames: ModelFrames | None = None,
) -> list[Finding]:
    """
    **What it checks.** Every sample needs at least `U + R` output frames, where `U` is the
    target length and `R` the number of adjacent equal labels ("ll" in "hello"): CTC must
    put a blank between two equal labels, or they collapse into one.

    **Why it matters.** A sample with fewer frames has no valid alignment: its loss is
    `inf` (or silently zero with `zero_infinity=True`), and the model cannot overfit even
    one such sample. It does not crash; training just never converges.

    **Example.** A CRNN pools a 128-pixel-wide image by 16, leaving 8 frames, but the word
    "bookkeeper" has 10 letters and 3 doubled pairs: it needs 13 frames.

    ```
    error CTC001 3 of 64 samples need more frames than the model gives:
      sample 7 has 8 frames for 10 labels + 3 repeats (needs 13, 5 short)
    ```

    When the model returns its own output lengths, only the samples of the batches it ran on
    (`--max-batches`) have one: the finding says how many were checked and points to
    `ctcdoctor scan`, which estimates the other samples' lengths by probing the model (or
    `Setup.output_lengths`, the model's formula, which gives every sample an exact one).

    **Fix.** When only a few samples (under 10%) are too long, drop them or split their labels:
    `ctcdoctor scan SPEC --drop-list drop.txt` writes their ids. Otherwise give the model more
    output frames: the fix names the layers that downsample time (measured by running the
    model at two input lengths, e.g. `MaxPool2d at cnn.3.3 (stride 2 along width)`; "along
    time" when the input is audio or features rather than an image; a module with a plain
    `stride` attribute, as torchaudio's `_TimeReduction`, by that attribute), the largest total
    downsampling that gives every sample its frames (from the input length of the hardest one:
    `Cut that to ×4 or less`), and which strides to lower to get there, last layer first (e.g.
    `Conv2d(stride=(2, 4))` to `stride=(2, 2)`, ×8 → ×4); or feed longer inputs (with the input length that
    gives the longest label its frames, from the model's measured rule, e.g. `feed inputs at
    least 52 wide (frames = floor((L - 4) / 4) must reach 12: 11 labels + 1 repeat)`), or cut
    long labels into shorter chunks. If only the repeats push a sample over, remember each
    doubled letter costs an extra frame.

    A model that resamples every input to a fixed size (a TPS spatial transformer's
    `grid_sample` to `I_r_size`, an adaptive pool to a fixed width) gives the same frames
    whatever the input length: longer inputs do not help. The finding names that module and
    the size it must resample to instead, and only the layers after it that downsample time;
    layers of a branch that ends in a global or adaptive pool (a localization network) set no
    frame count and are never named.

    When the declared output lengths disagree with the model (CTC004), the model is judged
    on the frames measured by probing it, and the finding says so: if the model gives too
    few, the fix names its layers (and the length rule to update); if only the declared
    lengths are short, the fix is the model's rule for `Setup.output_lengths`, e.g.
    `frames = floor((L - 12) / 4)`, and the layers stay as they are. When the lengths the model
    returns only count a frame or two past the end of padded samples (CTC007), each sample is
    judged by the frames the model gives it on its own, in `check` and `scan` alike, and a fix
    that changes strides reminds you that what computes those lengths must follow.
    """
    if not output_lengths.known:
        raise SkipCheck("output lengths are unknown (CTC003)")
    required, repeats, labels = _needs(targets, padding_counted)
    judged = output_lengths
    if model_frames is not None:  # the declared lengths disagree with the model (CTC004): judge the model itself
        if _short(model_frames.lengths.scanned, required, repeats, labels)[1]:
            judged = model_frames.lengths
        elif _short(output_lengths.scanned, required, repeats, labels)[1]:
            return [_stale_lengths(targets, output_lengths, model_frames, (required, repeats, labels))]
        else:
            return []
    indices, worst, only_repeats = _short(judged.scanned, required, repeats, labels)
    if not worst:
        return []
    available, count = judged.scanned, indices.numel()
    covered, coverage = _coverage(targets, judged)
    outliers = bool(covered) and count / covered < OUTLIER_SHARE
    layers = time_strides.layers() if time_strides is not None and not outliers else ()
    fixed = time_strides.fixed() if time_strides is not None and not outliers else None
    length_rule = time_strides.rule() if time_strides is not None and not outliers and fixed is None else None
    measured = prod(item.stride for item in layers) if layers else None
    ratio = _downsampling_ratio(targets, judged)
    rule = frame_rule_phrase(ratio, judged, measured, fixed, length_rule)
    worst = _numbered(worst, targets)
    message = infeasible_message(count, covered, worst, rule, coverage, only_repeats)
    (longest,) = _numbered([_longest(indices, available, required, labels, repeats)], targets)
    exact = length_rule is not None and measured is not None and length_rule.stride == measured
    hardest = _hardest(indices, available, required, targets.input_lengths if exact else None,
                       length_rule.offset or 0 if exact and length_rule is not None else 0)
    hardest = _numbered([hardest], targets)[0] if hardest is not None else None
    hint = infeasible_hint(count, covered, worst, layers, hardest, ratio,
                           fixed=fixed, rule=length_rule, longest=longest)
    if "Cut that to" in hint:  # the bound comes from the samples read; the rest of the data set may need a lower one
        hint += (f" That bound holds for the {plural(targets.size, 'sample')} checked: `ctcdoctor scan SPEC` gives it "
                 "for the whole data set.")
    evidence = {"count": count, "total": covered, "scanned": targets.size, "worst": worst, "only_repeats": only_repeats,
                "lengths_source": judged.source, **({"time_strides": [vars(item) for item in layers]} if layers else {}),
                **fixed_evidence(fixed, longest["needed"])}
    if length_rule is not None and length_rule.formula is not None:
        evidence["measured_formula"] = length_rule.formula
    if model_frames is not None and model_frames.overcount is None:
        hint += (f" {model_frames.who[0].upper()}{model_frames.who[1:]} disagree with the model as well (CTC004): today "
                 f"the model gives {model_frames.formula} (in Python `{model_frames.python}`); after changing its layers, "
                 "run `ctcdoctor check` again for the new rule.")
        evidence.update(declared_disagree=model_frames.who, measured_formula=model_frames.formula)
    elif output_lengths.source == "model" and layers and ("set the stride" in hint):
        hint += " " + follow_strides(model_frames.overcount if model_frames is not None else None)
    if model_frames is not None and model_frames.overcount is not None:
        evidence.update(padding_overcount=model_frames.overcount.frames, measured_formula=model_frames.formula)
    return [finding("CTC001", message, hint, evidence)]


def follow_strides(overcount: Any = None, sliced: bool = False) -> str:
    """CTC001's reminder, when its fix changes strides of a model that returns its own output lengths: whatever
    computes those lengths must change with them (`overcount`: a `PaddingOvercount` naming the module, if known;
    `sliced`: a scan that knows only that the lengths come from a mask subsampled by slicing)."""
    where = ""
    if overcount is not None and overcount.module:
        where = f" (here the forward of {overcount.module}, which subsamples the padding mask by slicing)"
    elif overcount is not None or sliced:
        where = " (here a padding mask subsampled by slicing in the model's forward)"
    return (f"The model returns its own output lengths: what computes them{where} must follow a stride change, or "
            "they no longer match the frames; run `ctcdoctor check` again after the change.")


def fixed_evidence(fixed: Any, needed: int) -> dict[str, Any]:
    """CTC001's evidence of a fixed resampling (shared with `scan`): `{"fixed_frames": ...}` with the size the
    resampler needs for `needed` frames; {} when the frames follow the input length."""
    if fixed is None:
        return {}
    return {"fixed_frames": {"frames": fixed.frames, "module": fixed.module, "kind": fixed.kind, "axis": fixed.axis,
                             "size": fixed.size, "needed_size": fixed.size_for(needed)}}


def _short(available: torch.Tensor, required: torch.Tensor, repeats: torch.Tensor,
           labels: torch.Tensor) -> tuple[torch.Tensor, list[dict[str, int]], bool]:
    """(the samples with fewer frames than they need, the WORST furthest short of them, whether their adjacent
    repeats alone make every one of them short)."""
    indices = ((available >= 0) & (available < required)).nonzero().flatten()
    if indices.numel() == 0:
        return indices, [], False
    deficit = (required - available)[indices]
    # Worst first; ties in sample order, so the list reads naturally.
    order = indices[deficit.argsort(descending=True, stable=True)][:WORST]
    worst = [
        {"sample": int(i), "frames": int(available[i]), "labels": int(labels[i]), "repeats": int(repeats[i]),
         "needed": int(required[i]), "short_by": int(required[i] - available[i])}
        for i in order
    ]
    only_repeats = bool((available[indices] >= labels[indices]).all()) and bool((repeats[indices] > 0).all())
    return indices, worst, only_repeats


_FIX_DECLARED = {
    "Setup.output_lengths": "Set Setup.output_lengths (and the output lengths your loss uses) to the model's rule",
    "the lengths the model returns": "Make the model return the lengths its layers give",
}


def _stale_lengths(targets: TargetTable, output_lengths: OutputLengths, model_frames: ModelFrames,
                   needs: tuple[torch.Tensor, torch.Tensor, torch.Tensor]) -> Finding:
    """CTC001 when only the declared lengths are short: the model itself gives every sample enough frames, so the
    fix is the length rule, not the layers."""
    indices, worst, only_repeats = _short(output_lengths.scanned, *needs)
    covered, coverage = _coverage(targets, output_lengths)
    first = worst[0]["sample"]
    rule = (f" These frames come from {model_frames.who}, which disagree with the model (CTC004): the model itself "
            f"gives every sample enough frames (sample {targets.sample_id(first)}: "
            f"{plural(int(model_frames.lengths.scanned[first]), 'frame')}; {model_frames.formula}, measured by probing it).")
    worst = _numbered(worst, targets)
    giver = f"{model_frames.who} {'gives' if model_frames.who.startswith('Setup') else 'give'}"
    message = infeasible_message(indices.numel(), covered, worst, rule, coverage, only_repeats, giver)
    hint = (f"{_FIX_DECLARED.get(model_frames.who, 'Use the model' + chr(39) + 's rule')}: {model_frames.formula} "
            f"(in Python `{model_frames.python}`), measured by probing your model. Its layers need no change: they "
            "leave every sample enough frames.")
    return finding("CTC001", message, hint, {
        "count": int(indices.numel()), "total": covered, "scanned": targets.size, "worst": worst,
        "only_repeats": only_repeats, "lengths_source": output_lengths.source, "declared_disagree": model_frames.who,
        "measured_formula": model_frames.formula, "model_frames_suffice": True})


@check("CTC002", "warning", "length budget tight: few spare frames per label")
def tight_length_budget(targets: TargetTable, output_lengths: OutputLengths,
                        padding_counted: PaddingCounted | None = None, model_frames: ModelFrames | None = None) -> list[Finding]:
    """
    **What it checks.** Samples that can be aligned but have fewer than 1.25
    output frames per frame they need (`U + repeats`).

    **Why it matters.** With almost no spare frames, CTC must emit a label on nearly every
    frame: there is little room for blanks, training is slow and brittle, and a slightly
    longer label at test time becomes impossible.

    **Example.** `warning CTC002 9 of 64 samples have fewer than 1.25 frames per needed frame:
    sample 12 has 11 frames for 10 needed.`

    **Fix.** Reduce the time downsampling a little (e.g. pool width by 2 instead of 4 in the
    last block), or use shorter label chunks.

    When the declared output lengths disagree with the model (CTC004), the budget is the
    model's: the frames measured by probing it, which the finding says it used.
    """
    if not output_lengths.known:
        raise SkipCheck("output lengths are unknown (CTC003)")
    judged = output_lengths if model_frames is None else model_frames.lengths
    required = _needs(targets, padding_counted)[0]
    available = judged.scanned
    tight = (available >= required) & (required > 0) & (available.double() < TIGHT_RATIO * required.double())
    count = int(tight.sum())
    if count == 0:
        return []
    indices = tight.nonzero().flatten()
    ratio = available[indices].double() / required[indices].double()
    order = indices[ratio.argsort(stable=True)][:WORST]
    worst = [{"sample": targets.sample_id(int(i)), "frames": int(available[i]), "needed": int(required[i])} for i in order]
    covered, coverage = _coverage(targets, judged)
    source = "" if model_frames is None else f" Frames {judged.detail}."
    message = (
        f"{of_total(count, covered, 'sample', 'has', 'have')} almost no spare frames (fewer than {TIGHT_RATIO} per needed frame): "
        + "; ".join(f"sample {item['sample']} has {item['frames']} frames for {item['needed']} needed" for item in worst)
        + "."
        + source
        + coverage
    )
    evidence = {"count": count, "total": covered, "scanned": targets.size, "ratio_threshold": TIGHT_RATIO, "worst": worst}
    if model_frames is not None and model_frames.overcount is not None:
        evidence.update(lengths_source=judged.source, padding_overcount=model_frames.overcount.frames,
                        measured_formula=model_frames.formula)
    elif model_frames is not None:
        evidence.update(lengths_source=judged.source, declared_disagree=model_frames.who,
                        measured_formula=model_frames.formula)
    return [finding("CTC002", message, tight_hint(_downsampling_ratio(targets, judged)), evidence)]


document(
    "CTC006",
    "warning",
    "manifest durations look like sample counts, not seconds",
    """
    **What it means.** `scan --manifest` read a `duration` field, and most of the durations
    are over 10 minutes: sample counts (16,000 per second of 16 kHz audio) or milliseconds
    written where NeMo-style manifests hold seconds. The output lengths computed from them are
    then thousands of times too long, so every sample looks easy to align and infeasible
    ones (CTC001) go unseen: "no problems found" would be wrong.

    **Example.** `warning CTC006 2 of 2 durations are over 600 s (largest 32,000, at line 1):
    sample counts rather than seconds?`

    **Fix.** Write the durations in seconds (divide by the sample rate), or pass
    `--length-key` with a field that holds seconds; with `--frames`, write the conversion into
    the expression (e.g. `floor(L / 16000 * 100) // 4 + 1`).
    """,
)


@check("CTC003", "error", "output lengths unknown or inconsistent with the output tensor")
def inconsistent_output_lengths(runs: list[ModelRun], layout: LayoutDecision, output_lengths: OutputLengths) -> list[Finding]:
    """
    **What it checks.** That ctcdoctor knows how many output frames each sample has, and
    that those lengths fit the output tensor: one per sample, none negative, none longer
    than the output's time axis, and that the output has an axis of the batch size at all.

    **Why it matters.** `F.ctc_loss` trusts `input_lengths`: lengths longer than the output
    read padding frames as if they were speech or ink; a wrong count silently shifts samples.

    **Example.** The model returns `(output, lengths)` where `lengths` are the raw input
    widths (128) for an output of 32 frames: `error CTC003 batch 0: 16 of 16 output lengths
    exceed the 32 frames of the output (largest 128).`

    **Fix.** Return `(output, output_lengths)` with lengths after downsampling, or set
    `Setup.output_lengths = lambda input_lengths: ...` with the model's subsampling formula.
    """
    found = []
    if layout.layout is None and layout.detail and "no axis" in layout.detail:
        found.append(
            finding(
                "CTC003",
                f"the output has no batch axis: {layout.detail}.",
                "Return the output as (T, N, C), (N, T, C) or (N, C, T) with N the batch size; check reshapes/views in forward().",
                {"detail": layout.detail},
            )
        )
        return found
    if not output_lengths.known:
        found.append(
            finding(
                "CTC003",
                f"cannot tell how many output frames each sample has: inputs have different lengths, the model returns "
                f"no lengths, Setup.output_lengths is not set, and probing failed ({output_lengths.detail}).",
                "Set Setup.output_lengths = lambda input_lengths: <frames after downsampling>, "
                "or return (output, output_lengths) from the model.",
                {"detail": output_lengths.detail},
            )
        )
        return found
    # One finding per kind of problem across all model batches, not one per batch.
    time_axis = {"NTC": 1, "NCT": 2}.get(layout.layout or "TNC", 0)
    miscounted, too_long, negative = [], [], []
    total = 0
    for run, lengths in zip(runs, output_lengths.per_run):
        frames = int(run.output.shape[time_axis])
        total += run.batch.size
        if lengths.shape[0] != run.batch.size:
            miscounted.append((run.batch.index, int(lengths.shape[0]), run.batch.size))
            continue
        too_long += [(run.batch.sample_id(i), int(lengths[i]), frames) for i in (lengths > frames).nonzero().flatten().tolist()]
        negative += [run.batch.sample_id(i) for i in (lengths < 0).nonzero().flatten().tolist()]
    if miscounted:
        batch, count, size = miscounted[0]
        found.append(
            finding(
                "CTC003",
                f"batch {batch}: {count} output lengths for {size} samples ({output_lengths.detail})"
                + (f"; {len(miscounted) - 1} more batches alike." if len(miscounted) > 1 else "."),
                "Return one output length per sample.",
                {"batches": [item[0] for item in miscounted], "lengths": count, "samples": size},
            )
        )
    if too_long:
        sample, largest, frames = max(too_long, key=lambda item: item[1] - item[2])
        found.append(
            finding(
                "CTC003",
                f"{of_total(len(too_long), total, 'sample', 'has', 'have')} an output length longer than the output's "
                f"{frames} frames (sample {sample}: {largest}; lengths {output_lengths.detail}).",
                "Output lengths count frames after downsampling; compute them with the model's subsampling formula "
                "(for lengths you declare, CTC004 gives the rule measured by probing the model).",
                {"count": len(too_long), "samples": [item[0] for item in too_long[:20]], "frames": frames, "largest": largest},
            )
        )
    if negative:
        found.append(
            finding(
                "CTC003",
                f"output lengths are negative for {numbered(negative, 'sample')}.",
                "Output lengths must be >= 0; check the subsampling formula for short inputs.",
                {"samples": negative[:20]},
            )
        )
    return found


@check("CTC004", "error", "declared output lengths disagree with the model")
def declared_lengths_disagree(declared_lengths: DeclaredLengths) -> list[Finding]:
    """
    **What it checks.** When you give output lengths (`Setup.output_lengths`, or lengths the
    model returns), ctcdoctor runs the model on one sample cut to several input lengths,
    counts the frames it really produces, and compares.

    **Why it matters.** Raw frame counts instead of downsampled ones make CTC read padding;
    an off-by-one subsampling formula (floor vs ceil, a forgotten kernel-size term) drops or
    invents a frame per sample. Neither crashes; both quietly hurt training.

    **Example.** `Setup.output_lengths = lambda lengths: lengths` for a model that pools the
    width by 4: `error CTC004 Setup.output_lengths disagrees with the model at 6 of 6 probed
    input lengths: for 128 input steps it says 128 frames, the model gives 32.`

    **Fix.** Use the formula the finding reports (measured from your model), e.g.
    `frames = floor((L + 3) / 4)`, or derive it layer by layer:
    `L_out = floor((L + 2*padding - kernel) / stride) + 1` for each conv/pool along time.
    """
    comparison = declared_lengths
    if comparison.overcount is not None:  # only frames past the end of padded samples: CTC007 (info) says so
        return padded_overcount(comparison)
    declared, measured, probed_inputs = comparison.declared, comparison.measured, comparison.input_lengths
    wrong = (declared != measured).nonzero().flatten()
    if wrong.numel() == 0:
        return []
    first = int(wrong[0])
    difference = (declared[wrong] - measured[wrong]).tolist()
    if bool((declared[wrong] == probed_inputs[wrong]).all()):
        cause = "they are the raw input lengths, not the downsampled frame counts"
    elif all(abs(d) == 1 for d in difference):
        cause = "off by one: check floor vs ceil and the kernel-size/padding terms of the subsampling formula"
    else:
        cause = "the subsampling formula does not match the layers"
    message = (
        f"{comparison.who} disagree with the model at {wrong.numel()} of {declared.numel()} checked input lengths: "
        f"for {int(probed_inputs[first])} input steps they say {int(declared[first])} frames, the model gives {int(measured[first])}; "
        f"{cause}."
    )
    return [
        finding(
            "CTC004",
            message,
            f"Compute output lengths as the model does: {comparison.formula} (measured by probing your model)."
            if not comparison.unfitted else
            f"No floor((L + k) / s) rule fits the frames your model gives ({comparison.unfitted}): derive the output "
            "lengths layer by layer (L_out = floor((L + 2*padding - kernel) / stride) + 1 for each conv/pool along "
            "time) and check them against those frames.",
            {
                "source": comparison.source,
                "input_lengths": probed_inputs[wrong][:10].tolist(),
                "declared": declared[wrong][:10].tolist(),
                "measured": measured[wrong][:10].tolist(),
                "measured_formula": comparison.formula,
            },
        )
    ]


document(
    "CTC007",
    "info",
    "returned output lengths count frames past the end of padded samples",
    """
    **What it means.** The lengths the model returns are 1 to 3 frames more than the frames
    it gives a sample, but only for samples that are padded in their batch; for a sample run
    alone (no padding) they agree. That is what a padding mask subsampled by slicing does:
    ESPnet's `Conv2dSubsampling` returns `x_mask[:, :, :-2:2][:, :, :-2:2]`, which keeps
    positions whose conv windows reach past the sample's end into the padding.

    **Why it matters.** Little: the frames exist in the output tensor, so CTC may align labels
    over a frame or two computed from padding. ESPnet trains this way. It is not the wrong
    rule CTC004 reports, so CTC004 stays quiet. The length checks (CTC001, CTC002, in `check`
    and `scan` alike) judge each sample by the frames the model gives it on its own, the
    frames it has when it is the longest of its batch, which do not change with the batch it
    lands in.

    **Example.** `info CTC007 the lengths the model returns count up to 2 frames past the
    end of padded samples: 13 of 14 padded samples ... (sample 5: for 198 input steps they
    say 50 frames, the model gives 48); for one sample alone they agree at 12 probed lengths.`

    **Fix.** Nothing is needed. For exact lengths, compute them from the input lengths with
    the model's rule (the finding gives it, e.g. `(L - 3) // 4`) where the model's forward
    turns the subsampled mask into lengths (the finding names the module whose output holds
    them, e.g. `embed (Conv2dSubsampling)`).

    The CTC004 check reports it (it is the same comparison): `--select CTC004` runs it,
    `--ignore CTC007` hides it.
    """,
)


def padded_overcount(declared_lengths: DeclaredLengths) -> list[Finding]:
    """CTC007 (documented above), reported by CTC004's check in place of an error."""
    overcount = declared_lengths.overcount
    if overcount is None:
        return []
    row, length, returned, frames = overcount.example
    ids = declared_lengths.sample_ids
    sample = ids[row] if row < len(ids) else row
    alone = (f"for one sample run alone (no padding) they agree with the model's frames at "
             f"{plural(overcount.alone, 'probed length')}" if overcount.alone else
             "for the samples that fill their batch (no padding) they agree")
    where = f" in the forward of {overcount.module}" if overcount.module else " where the model's forward computes them"
    python = f"`{overcount.python}`" if overcount.python else declared_lengths.formula.replace("frames = ", "")
    message = (
        f"the lengths the model returns count up to {plural(overcount.frames, 'frame')} past the end of padded samples: "
        f"{of_total(overcount.samples, overcount.padded, 'padded sample', 'gets', 'get')} more than the model gives "
        f"(sample {sample}: for {length} input steps they say {returned} frames, the model gives {frames}); {alone}. "
        "A padding mask subsampled by slicing does this (mask[:, :-2:2][:, :-2:2], as ESPnet's Conv2dSubsampling "
        "does): CTC may align labels over those frames, computed from padding; usually harmless. The length checks "
        f"judge each sample by the frames the model gives it on its own: {declared_lengths.formula}."
    )
    hint = (f"Nothing needs to change. For exact lengths, compute them from the input lengths as {python}{where} "
            "instead of counting the subsampled mask; in a library's layer (ESPnet) leave it: ESPnet trains this way.")
    return [finding("CTC007", message, hint, {
        "frames": overcount.frames, "samples": overcount.samples, "padded": overcount.padded,
        "example": {"sample": sample, "input_length": length, "returned": returned, "measured": frames},
        "alone_agree": overcount.alone, "module": overcount.module, "measured_formula": declared_lengths.formula})]


@check("CTC005", "info", "output lengths estimated by probing the model")
def estimated_output_lengths(output_lengths: OutputLengths) -> list[Finding]:
    """
    **What it means.** Inputs in a batch have different lengths, the model returns no output
    lengths and `Setup.output_lengths` is not set, so ctcdoctor measured the model's frame
    counts by running it on one sample cut to several lengths, and used that estimate for
    the length checks.

    **Why it matters.** The estimate is usually right, but your training loop must compute
    the same lengths for `F.ctc_loss`: if it passes padded lengths, CTC reads padding.

    **Example.** `info CTC005 output lengths estimated by probing the model:
    frames = floor((L + 3) / 4).`

    **Fix.** Nothing is wrong; to make the check exact, set `Setup.output_lengths` to the
    function your training code uses.
    """
    if output_lengths.source != "probed":
        return []
    return [
        finding(
            "CTC005",
            f"output lengths {output_lengths.detail}.",
            "Set Setup.output_lengths to the function your training loop uses, so the length checks test that.",
            {"detail": output_lengths.detail},
        )
    ]
