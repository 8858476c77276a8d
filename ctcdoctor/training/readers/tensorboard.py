"""TensorBoard event files (`events.out.tfevents.*`), read with tensorboard's own loader.

`tensorboard` is an optional dependency (`pip install 'ctcdoctor[tensorboard]'`); it is
imported here only. Scalars written by `torch.utils.tensorboard.SummaryWriter`
(`simple_value`) and by TensorFlow/Keras 2 (`tensor` with the scalars plugin) are both read.

Several event files of one run (a restarted writer) are merged by tag; files in sibling
folders named like splits (`train/`, `validation/`: Keras' TensorBoard callback) are
merged with the folder name as a tag prefix (`validation/epoch_loss`).

tensorboard's loader stops silently at a truncated or corrupt record. Here a file whose
records do not end exactly at the end of the file is an error (exit 2) unless
`allow_truncated` (a run still being written), in which case the complete records are read
and a note says where the file was cut.
"""
from __future__ import annotations

import struct
from pathlib import Path

from ctcdoctor.errors import UserInputError
from ctcdoctor.training.series import Run, Series

EXTRA_HINT = "Install the TensorBoard reader: pip install 'ctcdoctor[tensorboard]' (or pip install tensorboard)."


def _loader():
    try:
        from tensorboard.backend.event_processing import event_file_loader
        from tensorboard.util import tensor_util
    except ImportError:
        raise UserInputError("reading TensorBoard event files needs the tensorboard package, which is not installed",
                             EXTRA_HINT) from None
    return event_file_loader, tensor_util


def complete_records(path: Path) -> tuple[int, int, int]:
    """TFRecord framing without CRCs: (complete records, bytes they span, file size).

    Each record is an 8-byte length, a 4-byte CRC of it, the data, and a 4-byte CRC of
    the data; a file cut mid-record leaves bytes after the last complete one.
    """
    data = path.read_bytes()
    size, offset, count = len(data), 0, 0
    unpack = struct.Struct("<Q").unpack_from
    while offset + 12 <= size:
        (length,) = unpack(data, offset)
        end = offset + 12 + length + 4
        if end > size:
            break
        offset, count = end, count + 1
    return count, offset, size


def _scalar(value, tensor_util) -> float | None:
    if value.HasField("simple_value"):
        return float(value.simple_value)
    if value.HasField("tensor"):
        plugin = value.metadata.plugin_data.plugin_name if value.HasField("metadata") else ""
        array = tensor_util.make_ndarray(value.tensor)
        if array.size == 1 and array.dtype.kind in "fiu" and plugin in ("", "scalars"):
            return float(array.reshape(-1)[0])
    return None


def read_event_files(files: list[Path], prefixes: list[str], allow_truncated: bool = False) -> Run:
    """Read `files` (one run); `prefixes[i]` is put before the tags of `files[i]` ("" for none)."""
    event_file_loader, tensor_util = _loader()
    columns: dict[str, tuple[list[float], list[float]]] = {}
    notes: list[str] = []
    for path, prefix in zip(files, prefixes):
        count, end, size = complete_records(path)
        read = 0
        for event in event_file_loader.EventFileLoader(str(path)).Load():
            read += 1
            if not event.HasField("summary"):
                continue
            for value in event.summary.value:
                number = _scalar(value, tensor_util)
                if number is None:
                    continue
                column = columns.setdefault(prefix + value.tag, ([], []))
                column[0].append(float(event.step))
                column[1].append(number)
        problem = None
        if end < size:
            problem = f"{path.name} is truncated at byte {end} of {size} after {count} complete records"
        elif read < count:
            problem = f"{path.name} has a corrupt record (bad checksum) after {read} of {count} records"
        if problem:
            if not allow_truncated:
                raise UserInputError(
                    f"{problem}: expected complete TensorBoard event records",
                    "If the run is still writing, try again when it has flushed; otherwise pass the readable part "
                    "with allow_truncated (the records before the cut are read).",
                )
            notes.append(f"{problem}: read the records before it")
    if not columns:
        raise UserInputError(
            f"no scalars in {', '.join(path.name for path in files[:3])}: expected TensorBoard scalar summaries "
            "(SummaryWriter.add_scalar, tf.summary.scalar)"
        )
    scalars = {tag: Series.from_points(tag, steps, values) for tag, (steps, values) in columns.items()}
    unit = "epoch" if all(tag.split("/")[-1].startswith("epoch_") for tag in scalars) else "step"
    return Run(str(files[0]), "tensorboard", scalars, unit=unit, notes=tuple(notes))
