"""`ctcdoctor scan --manifest FILE`: the length and label checks from a manifest alone.

Lengths become output frames through `--frames EXPR` (see `ctcdoctor.scan.formula`), or through
the spec's `Setup.output_lengths` given input steps (`L × --rate` for durations); labels become
class indices through the alphabet (`--alphabet`, or the spec's `Setup.alphabet`). Nothing is
decoded and the model never runs, so the class count is `len(alphabet) + 1` by construction:
instead of CTC010 the scan reports symbols outside the alphabet (CTC090).
"""
from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from ctcdoctor.config import Settings
from ctcdoctor.errors import UserInputError
from ctcdoctor.scan.manifest import Columns, Encoder, encode_columns, manifest_columns
from ctcdoctor.scan.state import ScanState
from ctcdoctor.scan.summary import Chunk, Summary


def _frames_function(request: Any, setup: Any) -> tuple[Callable[[Columns], np.ndarray], str]:
    if request.frames is not None:
        from ctcdoctor.scan.formula import Frames

        formula = Frames(request.frames)
        return (lambda columns: formula(columns.lengths)), f"from the manifest: frames = {request.frames}"
    if setup is not None and setup.output_lengths is not None:
        import torch

        from ctcdoctor.measure.lengths import call_length_function

        rate = request.rate or 1.0

        def frames(columns: Columns) -> np.ndarray:
            if request.rate is None:
                _refuse_seconds(columns, request)
            steps = torch.from_numpy(np.floor(columns.lengths["L"] * rate).astype(np.int64))
            return call_length_function(setup.output_lengths, steps).numpy()

        scale = f" of L × {request.rate:g}" if request.rate else ""
        return frames, f"from the manifest: frames = Setup.output_lengths{scale}"
    raise UserInputError("--manifest needs --frames EXPR, or a spec whose Setup.output_lengths turns lengths into frames",
                         "Add e.g. --frames 'floor(L * 100) // 4 + 1' (10 ms features, 4x subsampling), or a SPEC.")


#: Durations above this many seconds (10 minutes) in most records read as sample counts written as seconds.
LONGEST_SECONDS = 600


def _refuse_seconds(columns: Columns, request: Any) -> None:
    """Setup.output_lengths takes input steps: durations in seconds without --rate would give it 1.61 for 161 feature
    frames, and every sample would look short of frames (the model blamed for a missing flag)."""
    lengths = columns.lengths["L"]
    fractions = np.flatnonzero(lengths != np.floor(lengths))
    if columns.length_key != "duration" and not fractions.size:
        return
    row = int(fractions[0]) if fractions.size else 0
    field = f"{columns.length_key!r}" if columns.length_key else "length"
    raise UserInputError(
        f"--manifest {request.manifest}: the lengths are seconds ({field} = {lengths[row]:g} at {_place(columns, row)}), "
        "but Setup.output_lengths takes input steps",
        "Pass --rate HZ, the input steps per second of your features (e.g. --rate 100 for 10 ms frames, --rate 16000 "
        "for raw 16 kHz audio), or --frames EXPR to give the frames yourself.",
    )


def _place(columns: Columns, row: int) -> str:
    """Where record `row` of a block sits in the manifest: its line, or its record number."""
    if columns.line_numbers is not None:
        return f"line {int(columns.line_numbers[row])}"
    return f"record {columns.first + row}"


def _frames_at(frames_of: Callable[[Columns], np.ndarray], columns: Columns, manifest: Any) -> np.ndarray:
    """The block's frames; an expression that gives none for some record names the record's line."""
    from ctcdoctor.scan.formula import UnusableFrames

    try:
        return frames_of(columns)
    except UnusableFrames as error:
        raise UserInputError(f"{manifest}, {_place(columns, error.row)}: {error.message}", error.hint) from None


def _no_records(path: Any) -> UserInputError:
    """A manifest without a single record is a usage error, as a loader without batches is: a green report would say
    nothing was wrong with a data set that was never read."""
    empty = path.is_file() and path.stat().st_size == 0
    return UserInputError(f"--manifest {path}: no records ({'the file is empty' if empty else 'nothing but blank lines'})",
                          "Point --manifest at the manifest of your data set: one record per line.")


def _alphabet(request: Any, setup: Any) -> Any:
    if request.alphabet is not None:
        from ctcdoctor.labels import read_alphabet_arg

        try:
            return read_alphabet_arg(request.alphabet)
        except OSError as error:
            raise UserInputError(f"cannot read --alphabet {request.alphabet!r}: {error.strerror or error}",
                                 "Give the symbols as a string, or @FILE.") from error
    if setup is not None and setup.alphabet is not None:
        return setup.alphabet
    raise UserInputError("--manifest needs the alphabet to turn text into classes",
                         "Add --alphabet SYMBOLS (or @FILE), or a SPEC with Setup.alphabet.")


def _blank(request: Any, setup: Any, num_classes: int) -> int:
    """The blank's class: --blank, else Setup.blank, else 0; one of the alphabet's classes or a usage error
    (the classes are len(alphabet) + 1 by construction, so a blank beyond them cannot be a class: CTC015 in check)."""
    given = request.blank is not None
    blank = int(request.blank if given else (setup.blank if setup is not None else 0))
    if 0 <= blank < num_classes:
        return blank
    named = f"--blank {blank}" if given else f"Setup.blank ({blank})"
    last = num_classes - 1
    raise UserInputError(
        f"{named} is outside the {num_classes} classes of the alphabet ({last} symbols + the blank: indices 0 to {last})",
        f"Pass the index your loss uses for the blank: --blank 0 (F.ctc_loss, keras.losses.CTC, the usual choice) or "
        f"--blank {last} (the last class: tf.nn.ctc_loss(blank_index=-1), Keras 2's ctc_batch_cost).",
    )


def _input_steps(columns: Columns, request: Any) -> np.ndarray:
    """Input steps for the downsampling phrase: L × rate, widths as they are, 0 (no phrase) for bare durations."""
    lengths = columns.lengths["L"]
    if lengths.dtype.kind in "iu" and not request.rate:
        return lengths.astype(np.int64, copy=False)
    if request.rate:
        return np.floor(lengths * request.rate).astype(np.int64)
    if np.all(lengths == np.floor(lengths)):
        return lengths.astype(np.int64)
    return np.zeros(lengths.shape[0], dtype=np.int64)


def manifest_state(request: Any, settings: Settings, on_samples: Callable[[int], None] | None, on_chunk: Any = None) -> ScanState:
    """Scan the manifest of `request` into a state (spec, if given, loaded for its Setup only)."""
    from ctcdoctor.load.limits import doing
    from ctcdoctor.scan.run import isolated

    started = time.perf_counter()
    with isolated(settings.seed):
        setup = None
        if request.spec is not None:
            from ctcdoctor.load.spec import load_setup

            setup = load_setup(request.spec)
        alphabet = _alphabet(request, setup)
        num_classes = len(alphabet) + 1
        blank = _blank(request, setup, num_classes)
        encoder = Encoder(alphabet, blank)
        frames_of, detail = _frames_function(request, setup)
        summary, long_ones = Summary(worst_count=max(request.worst, 10)), 0
        longest, longest_line = float("-inf"), ""
        for columns in manifest_columns(request.manifest, request.length_key, request.text_key, request.max_samples):
            with doing(f"scanning records {columns.first:,}-{columns.first + columns.size - 1:,} of {request.manifest}"):
                kept, labels = encode_columns(columns, encoder)
                ids = np.arange(columns.first, columns.first + columns.size, dtype=np.int64)
                chunk = Chunk(ids, kept, kept, labels, _input_steps(columns, request))
                frames = _frames_at(frames_of, columns, request.manifest)
                summary.add(chunk, frames, num_classes, blank)
                if on_chunk is not None:
                    on_chunk(chunk, frames, num_classes, blank)
            if on_samples is not None:
                on_samples(columns.size)
            if columns.length_key == "duration":
                long_ones += int((columns.lengths["L"] > LONGEST_SECONDS).sum())
                if columns.size and float(columns.lengths["L"].max()) > longest:
                    row = int(np.argmax(columns.lengths["L"]))
                    longest, longest_line = float(columns.lengths["L"][row]), _place(columns, row)
    if summary.samples == 0:
        raise _no_records(request.manifest)
    extra: dict[str, Any] = {"manifest": str(request.manifest), "unknown_symbols": unknown_symbols(summary)}
    if 2 * long_ones > summary.samples:
        extra["long_durations"] = {"count": long_ones, "total": summary.samples, "above_seconds": LONGEST_SECONDS,
                                   "largest": longest, "where": longest_line}
    return ScanState(str(request.manifest), summary, "manifest", detail, blank=blank, alphabet=alphabet, reader="manifest",
                     seconds=time.perf_counter() - started, extra=extra)


def unknown_symbols(summary: Summary) -> dict[str, int]:
    """Symbol -> occurrences of the text symbols outside the alphabet (the negative placeholders), most frequent first."""
    values, counts = summary.classes.items()
    found = {chr(-value - 1): count for value, count in zip(values, counts) if value < 0}
    return dict(sorted(found.items(), key=lambda item: (-item[1], item[0])))
