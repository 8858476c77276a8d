"""The metadata tier: scan a manifest's lengths and texts without decoding any audio or image.

Readers (picked by the file's suffix):
  `.jsonl`/`.json`   NeMo-style manifests, one JSON object per line: a length (`duration` in seconds,
                     or `input_length`, `length`, `width`) and `text`.
  `.tsv`/`.txt`/…    OCR label files: `path<TAB>width<TAB>text`, or `path<TAB>text` with each image's
                     width and height read from its file header (PNG, JPEG, GIF, BMP; a few bytes each).
  `.parquet`, `.arrow`, a saved Hugging Face data set folder: a length column and a text column (or a
                     column of label ids, e.g. `labels`); needs pyarrow, imported only here.

A label file is parsed a block at a time with numpy on its code points (no Python per line);
text becomes class indices through a code-point table (single-character alphabets) or, for
multi-character symbols, the greedy longest-match tokeniser `ctcdoctor labels` uses. Symbols
outside the alphabet are kept as negative placeholders (-(code point + 1)), so the summary
counts them (CTC090) and they still count towards the frames a label needs. Sample ids are
record numbers from 0 (blank lines skipped): the data set index of a data set built in order.
"""
from __future__ import annotations

import json
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ctcdoctor.errors import UserInputError
from ctcdoctor.labels import decode_failure

#: Bytes of a label file parsed at once: 4 MB blocks measured 1.5-2x faster than 32 MB ones (smaller numpy temporaries).
BLOCK = 4 << 20
#: Records per chunk for JSONL and columnar readers.
RECORDS = 1 << 16
LENGTH_KEYS = ("duration", "input_length", "length", "width")
SEPARATOR = "\x00"
BOM = b"\xef\xbb\xbf"


@dataclass
class Columns:
    """One block of a manifest: texts (or label ids) and length columns, record ids from `first`."""

    first: int
    lengths: dict[str, np.ndarray]
    """"L" always; "W" and "H" for image sizes."""
    texts: list[str] | None = None
    label_ids: tuple[np.ndarray, np.ndarray] | None = None
    """(kept per record, flat class indices) for a column of label ids."""
    cps: np.ndarray | None = None
    spans: tuple[np.ndarray, np.ndarray] | None = None
    """(starts, ends) of each record's text within `cps` (a label file's block of code points)."""
    paths: list[str] | None = None
    """Image paths, when the sizes must come from the images' headers."""
    lines: int = 0
    """Lines of the file this block spans (blank ones included), for line numbers in messages."""
    line_numbers: np.ndarray | None = None
    """The file's line number (from 1) of each record, where the file has lines (JSONL, label files)."""
    length_key: str | None = None
    """The field or column the lengths come from (None for a label file's widths or image sizes)."""

    @property
    def size(self) -> int:
        return int(self.lengths["L"].shape[0])


@dataclass
class Encoder:
    """Text -> class indices for an alphabet (blank skipped in the class order)."""

    alphabet: Sequence[str]
    blank: int = 0
    table: np.ndarray = field(init=False)
    single: bool = field(init=False)

    def __post_init__(self) -> None:
        symbols = list(self.alphabet)
        classes = [index if index < self.blank else index + 1 for index in range(len(symbols))]
        self.single = all(len(symbol) == 1 for symbol in symbols)
        self.lookup = dict(zip(symbols, classes))
        top = max((ord(symbol) for symbol in symbols if len(symbol) == 1), default=0)
        self.table = -(np.arange(top + 1, dtype=np.int64) + 1)
        for symbol, index in self.lookup.items():
            if len(symbol) == 1:
                self.table[ord(symbol)] = index

    def code_points(self, cps: np.ndarray) -> np.ndarray:
        """Classes of code points; -(code point + 1) for those outside the alphabet. One gather through a
        table that covers every code point seen so far (unknown ones filled with their placeholder)."""
        top = int(cps.max(initial=0))
        if top >= self.table.shape[0]:
            grown = -(np.arange(top + 1, dtype=np.int64) + 1)
            known = self.table >= 0
            grown[: self.table.shape[0]][known] = self.table[known]
            self.table = grown
        return self.table[cps]

    def texts(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """(kept per text, flat classes) for multi-character symbols, greedy longest match."""
        from ctcdoctor.labels import tokenizer

        tokenize = tokenizer(self.alphabet)
        kept, flat = [], []
        for text in texts:
            tokens, position, out = tokenize(text)[0], 0, []
            for token in tokens:  # unknown characters sit between the tokens: re-walk to keep their places
                while not text.startswith(token, position):
                    out.append(-(ord(text[position]) + 1))
                    position += 1
                out.append(self.lookup[token])
                position += len(token)
            out += [-(ord(ch) + 1) for ch in text[position:]]
            kept.append(len(out))
            flat += out
        return np.asarray(kept, dtype=np.int64), np.asarray(flat, dtype=np.int64)


def spans_to_labels(cps: np.ndarray, starts: np.ndarray, ends: np.ndarray, encoder: Encoder) -> tuple[np.ndarray, np.ndarray]:
    """(kept, flat classes) of the text spans [starts, ends) of a code-point array, all at once."""
    kept = (ends - starts).astype(np.int64)
    # Positions of every text code point, span after span: arange shifted by each span's start.
    offsets = np.cumsum(kept) - kept
    positions = np.arange(int(kept.sum()), dtype=np.int64) + np.repeat(starts - offsets, kept)
    return kept, encoder.code_points(cps[positions])


def encode_columns(columns: Columns, encoder: Encoder) -> tuple[np.ndarray, np.ndarray]:
    if columns.label_ids is not None:
        return columns.label_ids
    if columns.cps is not None and columns.spans is not None and encoder.single:
        return spans_to_labels(columns.cps, *columns.spans, encoder)
    texts = columns.texts if columns.texts is not None else _span_texts(columns)
    if not encoder.single:
        return encoder.texts(texts)
    joined = SEPARATOR.join(texts) + SEPARATOR
    cps = np.frombuffer(joined.encode("utf-32-le"), dtype=np.uint32)
    ends = np.flatnonzero(cps == 0)
    starts = np.concatenate([[0], ends[:-1] + 1]).astype(np.int64)
    return spans_to_labels(cps, starts, ends, encoder)


def _span_texts(columns: Columns) -> list[str]:
    assert columns.cps is not None and columns.spans is not None
    text = columns.cps.tobytes().decode("utf-32-le")
    return [text[start:end] for start, end in zip(*(part.tolist() for part in columns.spans))]


# ---------------------------------------------------------------- label files (path, width, text)


def _read_blocks(path: Path, block: int | None = None) -> Iterator[bytes]:
    """The file in blocks that end at a line end (the last one completed with a newline)."""
    block, rest = block or BLOCK, b""
    with open(path, "rb") as handle:
        while True:
            data = handle.read(block)
            if not data:
                break
            data = rest + data
            cut = data.rfind(b"\n") + 1
            if cut == 0:
                rest = data
                continue
            rest = data[cut:]
            yield data[:cut]
    if rest:
        yield rest + b"\n"


def _digits(cps: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Whole numbers written in the spans [starts, ends); -1 where a span is empty or not all digits.
    Read right to left, one digit position of every span per pass."""
    lengths = ends - starts
    value = np.zeros(starts.shape[0], dtype=np.int64)
    valid = (lengths > 0) & (lengths < 12)
    scale = 1
    for k in range(int(lengths.max(initial=0))):
        has = lengths > k
        digit = cps[np.where(has, ends - 1 - k, 0)].astype(np.int64) - 48
        valid &= ~has | ((digit >= 0) & (digit <= 9))
        value += np.where(has, digit, 0) * scale
        scale *= 10
    return np.where(valid, value, -1)


def _two_tabs(tabs: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """(first, second) tab of each line when every line has exactly two (the usual path<TAB>width<TAB>text), else None."""
    if tabs.shape[0] != 2 * starts.shape[0]:
        return None
    pairs = tabs.reshape(-1, 2)
    if not ((pairs[:, 0] > starts) & (pairs[:, 1] < ends)).all() or not (pairs[1:, 0] > ends[:-1]).all():
        return None
    return pairs[:, 0], pairs[:, 1]


def _first_per_line(positions: np.ndarray, starts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(line of each position, first position per line or -1) for sorted positions."""
    lines = np.searchsorted(starts, positions, side="right") - 1
    first = np.full(starts.shape[0], -1, dtype=np.int64)
    where = np.flatnonzero(np.diff(lines, prepend=-2) != 0)  # positions are sorted: a line's first is where its number starts
    first[lines[where]] = positions[where]
    return lines, first


def label_block(data: bytes, first_id: int, where: str, line_offset: int, widths: bool) -> Columns:
    """One block of a label file: every line's width (or path, for image headers) and text span, found with
    array operations on the block's code points."""
    try:
        cps = np.frombuffer(data.decode("utf-8").encode("utf-32-le"), dtype=np.uint32)
    except UnicodeDecodeError as error:
        raise decode_failure(data, where, where, error, line_offset + 1) from None
    newlines = np.flatnonzero(cps == 10)
    count = int(newlines.shape[0])
    starts = np.concatenate([[0], newlines[:-1] + 1]).astype(np.int64)
    ends = newlines.astype(np.int64)
    ends = ends - ((ends > starts) & (cps[np.maximum(ends - 1, 0)] == 13))
    numbers = np.arange(starts.shape[0]) + line_offset + 1
    keep = ends > starts
    starts, ends, numbers = starts[keep], ends[keep], numbers[keep]
    tabs = np.flatnonzero(cps == 9)
    pairs = _two_tabs(tabs, starts, ends) if widths else None
    if pairs is not None:
        first_tab, second_tab = pairs
        width = _digits(cps, first_tab + 1, second_tab)
        if (width >= 0).all():
            return Columns(first_id, {"L": width}, cps=cps, spans=(second_tab + 1, ends), lines=count, line_numbers=numbers)
    lines, first_tab = _first_per_line(tabs, starts)
    if (first_tab < 0).any():
        line = int(numbers[np.flatnonzero(first_tab < 0)[0]])
        raise UserInputError(f"{where}, line {line}: no tab", "Write each line as path<TAB>width<TAB>text (or path<TAB>text).")
    if not widths:
        paths = _span_strings(cps, starts, first_tab)
        return Columns(first_id, {"L": np.zeros(starts.shape[0])}, cps=cps, spans=(first_tab + 1, ends), paths=paths, lines=count,
                       line_numbers=numbers)
    _, second_tab = _first_per_line(tabs[tabs != first_tab[lines]], starts)
    width = _digits(cps, first_tab + 1, np.where(second_tab >= 0, second_tab, first_tab + 1))
    if (width < 0).any():
        line = int(numbers[np.flatnonzero(width < 0)[0]])
        raise UserInputError(
            f"{where}, line {line}: no width: the second field is not a whole number of pixels",
            "Write path<TAB>width<TAB>text on every line, or path<TAB>text on every line (sizes then come from the images).",
        )
    return Columns(first_id, {"L": width}, cps=cps, spans=(second_tab + 1, ends), lines=count, line_numbers=numbers)


def _span_strings(cps: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> list[str]:
    text = cps.tobytes().decode("utf-32-le")
    return [text[start:end] for start, end in zip(starts.tolist(), ends.tolist())]


def has_widths(path: Path) -> bool:
    """Does the label file give widths (path<TAB>width<TAB>text)? Read off its first line."""
    with open(path, "rb") as handle:
        for raw in handle:
            line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
            if line.strip():
                fields = line.split("\t")
                return len(fields) >= 3 and fields[1].isdigit()
    return True


def label_file_columns(path: Path, max_records: int | None) -> Iterator[Columns]:
    widths = has_widths(path)
    first, lines = 0, 0
    for data in _read_blocks(path):
        if first == 0 and lines == 0 and data.startswith(BOM):
            data = data[len(BOM):]  # a UTF-8 byte-order mark (Notepad writes one): not part of the first path
        columns = label_block(data, first, str(path), lines, widths)
        lines += columns.lines
        if not widths:
            columns = with_image_sizes(columns, path.parent)
        first += columns.size
        yield columns
        if max_records is not None and first >= max_records:
            return


# ---------------------------------------------------------------- image sizes from headers


def image_size(path: Path) -> tuple[int, int]:
    """(width, height) from a PNG, GIF, BMP or JPEG header, reading only the first bytes (JPEG: up to its SOF marker)."""
    with open(path, "rb") as handle:
        head = handle.read(32)
        if head[:8] == b"\x89PNG\r\n\x1a\n":
            return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")
        if head[:6] in (b"GIF87a", b"GIF89a"):
            return int.from_bytes(head[6:8], "little"), int.from_bytes(head[8:10], "little")
        if head[:2] == b"BM":
            return int.from_bytes(head[18:22], "little", signed=True), abs(int.from_bytes(head[22:26], "little", signed=True))
        if head[:2] == b"\xff\xd8":
            return _jpeg_size(handle)
    raise ValueError("not a PNG, JPEG, GIF or BMP file")


def _jpeg_size(handle: Any) -> tuple[int, int]:
    handle.seek(2)
    while True:
        marker = handle.read(2)
        if len(marker) < 2 or marker[0] != 0xFF:
            raise ValueError("no frame header in the JPEG")
        if marker[1] in (0xD8, 0x01) or 0xD0 <= marker[1] <= 0xD7:
            continue
        size = int.from_bytes(handle.read(2), "big")
        if 0xC0 <= marker[1] <= 0xCF and marker[1] not in (0xC4, 0xC8, 0xCC):
            frame = handle.read(5)
            return int.from_bytes(frame[3:5], "big"), int.from_bytes(frame[1:3], "big")
        handle.seek(size - 2, 1)


def with_image_sizes(columns: Columns, root: Path) -> Columns:
    assert columns.paths is not None
    widths, heights = np.zeros(len(columns.paths)), np.zeros(len(columns.paths))
    for row, name in enumerate(columns.paths):
        try:
            widths[row], heights[row] = image_size(root / name)
        except (OSError, ValueError) as error:
            raise UserInputError(f"cannot read the size of image {name!r} (record {columns.first + row}): {error}",
                                 f"Paths are relative to {root}; give widths in the label file (path<TAB>width<TAB>text).") from error
    columns.lengths = {"L": widths, "W": widths, "H": heights}
    return columns


# ---------------------------------------------------------------- JSONL and columnar manifests


def _length_key(record: dict[str, Any], wanted: str | None, where: str) -> str:
    if wanted is not None:
        return wanted
    for key in LENGTH_KEYS:
        if key in record:
            return key
    raise UserInputError(f"{where}: no length field ({', '.join(LENGTH_KEYS)}) in {sorted(record)}", _length_hint(record))


def _length_hint(record: dict[str, Any]) -> str:
    numbers = [key for key, value in record.items() if isinstance(value, (int, float)) and not isinstance(value, bool)]
    if len(numbers) == 1:
        return f"Pass --length-key {numbers[0]}: the field that holds each sample's length."
    if numbers:
        return f"Pass --length-key with the field that holds each sample's length (one of {sorted(numbers)})."
    return "Pass --length-key with the field that holds each sample's length (seconds, frames or pixels)."


#: Fields that usually hold the transcript, in the order a `--text-key` suggestion prefers them.
TEXT_KEYS = ("text", "transcript", "sentence", "normalized_text", "label", "labels", "transcription")


def _suggest_text_key(record: dict[str, Any], length_key: str | None) -> str | None:
    strings = [key for key, value in record.items() if isinstance(value, str) and key != length_key]
    preferred = [key for key in TEXT_KEYS if key in strings]
    plain = [key for key in strings if "path" not in key.lower() and "file" not in key.lower()]
    found = preferred or plain
    return found[0] if found else None


def _record_error(record: Any, number: int, where: str, key: str | None, text_key: str) -> UserInputError:
    """Why one parsed JSONL line cannot be read, naming the keys it has and the flag to pass."""
    if not isinstance(record, dict):
        return UserInputError(f"{where}, line {number}: a JSON {type(record).__name__}, not an object",
                              "Write one JSON object per line, e.g. {\"audio_filepath\": ..., \"duration\": 3.2, \"text\": ...}.")
    found = sorted(record)
    if key is not None and key not in record:
        return UserInputError(f"{where}, line {number}: no length field {key!r} (--length-key) in {found}",
                              _length_hint(record))
    if text_key not in record:
        suggestion = _suggest_text_key(record, key)
        flag = f"--text-key {suggestion}" if suggestion else "--text-key FIELD"
        return UserInputError(f"{where}, line {number}: no text field {text_key!r} (--text-key) in {found}",
                              f"Pass {flag}: the field that holds the transcript.")
    if record[text_key] is not None and not isinstance(record[text_key], str):
        return UserInputError(f"{where}, line {number}: the text field {text_key!r} is {record[text_key]!r}, not a string",
                              "Pass --text-key with the field that holds the transcript as a string.")
    return UserInputError(f"{where}, line {number}: the length field {key!r} is {record.get(key)!r}, not a number",
                          f"Write a number in {key!r} on every line, or pass --length-key with the field that holds one.")


def _json_error(error: json.JSONDecodeError, line: str, number: int, where: str, last: bool) -> UserInputError:
    """A line that is not JSON, at the file's line and the column within it (json counts the line's own newline as a line)."""
    text = line.rstrip("\r\n")
    column = error.colno if error.lineno == 1 else len(text) + 1
    if last and column > len(text):  # it ends before the object does: a copy cut short, or a writer still writing
        return UserInputError(f"{where}, line {number}, column {column}: the last line is cut off ({error.msg} at its end)",
                              f"Complete or delete line {number}: each line must be one whole JSON object.")
    return UserInputError(f"{where}, line {number}, column {column}: not JSON ({error.msg})",
                          "Write one JSON object per line (JSON Lines), with a length and a text field.")


def _jsonl_lines(path: Path) -> Iterator[tuple[int, str]]:
    """(line number, text) of the non-blank lines, decoded one line at a time so that text that is not UTF-8 is
    named at its line; a UTF-8 byte-order mark at the start is skipped (as `ctcdoctor labels` does)."""
    with open(path, "rb") as handle:
        for number, raw in enumerate(handle, start=1):
            if number == 1 and raw.startswith(BOM):
                raw = raw[len(BOM):]
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as error:
                raise decode_failure(raw, str(path), str(path), error, number) from None
            if line.strip():
                yield number, line


def _usable_length(value: float, key: str, place: str, where: str) -> float:
    """A length is a finite number, 0 or more: NaN, infinity or a negative one is a usage error at its `place`
    ("line 3", "row 2")."""
    if math.isfinite(value) and value >= 0:
        return value
    what = "not a number (NaN)" if math.isnan(value) else "infinite" if math.isinf(value) else "negative"
    raise UserInputError(f"{where}, {place}: the length field {key!r} is {value!r}, {what}",
                         f"Fix {place}: every sample needs its length ({key}: seconds, frames or pixels, 0 or more); "
                         "remove the record if its length is unknown.")


def _jsonl_record(line: str, number: int, lines: Iterator[tuple[int, str]], path: Path, key: str | None,
                  text_key: str) -> tuple[str, float, str]:
    """(length key, length, text) of one JSONL line, or the usage error that names what is wrong with it."""
    try:
        record = json.loads(line)
    except json.JSONDecodeError as error:
        try:
            last = next(lines, None) is None
        except UserInputError:
            last = False
        raise _json_error(error, line, number, str(path), last) from None
    try:
        if not isinstance(record, dict):
            raise TypeError(type(record).__name__)
        key = key or _length_key(record, None, f"{path}, line {number}")
        length, text = float(record[key]), record[text_key]
        if text is not None and not isinstance(text, str):
            raise TypeError(text_key)
    except (KeyError, TypeError, ValueError) as error:
        raise _record_error(record, number, str(path), key, text_key) from error
    return key, _usable_length(length, key, f"line {number}", str(path)), text or ""  # a null text is an empty label (CTC013)


def jsonl_columns(path: Path, length_key: str | None, text_key: str, max_records: int | None) -> Iterator[Columns]:
    first, key = 0, length_key
    texts: list[str] = []
    lengths: list[float] = []
    numbers: list[int] = []

    def block() -> Columns:
        return Columns(first, {"L": np.asarray(lengths)}, texts=texts, line_numbers=np.asarray(numbers, dtype=np.int64),
                       length_key=key)

    lines = _jsonl_lines(path)
    for number, line in lines:
        key, length, text = _jsonl_record(line, number, lines, path, key, text_key)
        lengths.append(length)
        texts.append(text)
        numbers.append(number)
        if len(texts) == RECORDS or (max_records is not None and first + len(texts) >= max_records):
            yield block()
            first, texts, lengths, numbers = first + len(texts), [], [], []
            if max_records is not None and first >= max_records:
                return
    if texts:
        yield block()


def arrow_columns(path: Path, length_key: str | None, text_key: str, max_records: int | None) -> Iterator[Columns]:
    """Parquet, Arrow IPC, or a folder saved by `datasets.Dataset.save_to_disk` (its .arrow files), read in record batches."""
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError as error:
        raise UserInputError(f"reading {path} needs pyarrow, which is not installed",
                             "pip install pyarrow (or datasets, which brings it), or export the manifest as JSONL.") from error
    files = sorted(path.glob("*.arrow")) if path.is_dir() else [path]
    first = 0
    for file in files:
        if file.suffix == ".parquet":
            batches = pq.ParquetFile(file).iter_batches(batch_size=RECORDS)
        else:
            with open(file, "rb") as handle:
                head = handle.read(6)
            reader = pa.ipc.open_file(file) if head == b"ARROW1" else pa.ipc.open_stream(pa.memory_map(str(file)))
            batches = (reader.get_batch(i) for i in range(reader.num_record_batches)) if head == b"ARROW1" else iter(reader)
        for batch in batches:
            columns = _arrow_batch(batch, first, length_key, text_key, str(file))
            first += columns.size
            yield columns
            if max_records is not None and first >= max_records:
                return


def _arrow_batch(batch: Any, first: int, length_key: str | None, text_key: str, where: str) -> Columns:
    names = batch.schema.names
    key = length_key or next((name for name in LENGTH_KEYS if name in names), None)
    if key is None or key not in names or text_key not in names:
        raise UserInputError(f"{where}: columns {names} lack the length ({key or ' / '.join(LENGTH_KEYS)}) or text ({text_key!r})",
                             "Name them with --length-key and --text-key (a column of label ids works as --text-key).")
    lengths = np.asarray(batch.column(key).to_numpy(zero_copy_only=False), dtype=np.float64)
    bad = np.flatnonzero(~np.isfinite(lengths) | (lengths < 0))
    if bad.size:
        _usable_length(float(lengths[bad[0]]), key, f"row {first + int(bad[0])}", where)
    column = batch.column(text_key)
    if str(column.type).startswith(("list", "large_list")):
        kept = np.diff(np.asarray(column.offsets)).astype(np.int64)
        return Columns(first, {"L": lengths}, label_ids=(kept, np.asarray(column.flatten().to_numpy(zero_copy_only=False), np.int64)),
                       length_key=key)
    return Columns(first, {"L": lengths}, texts=[text or "" for text in column.to_pylist()], length_key=key)


def _saved_dataset_folder(path: Path) -> None:
    """A folder is read only when `datasets.Dataset.save_to_disk` wrote it (its .arrow files); anything else is a usage
    error that says what the folder holds."""
    if any(path.glob("*.arrow")):
        return
    splits = sorted(child.name for child in path.iterdir() if child.is_dir() and any(child.glob("*.arrow")))
    if splits:
        raise UserInputError(f"--manifest {path} holds the splits {', '.join(splits)} of a saved DatasetDict, not one data set",
                             f"Scan one split: --manifest {path / splits[0]}.")
    names = sorted(child.name for child in path.iterdir())
    shown = ", ".join(names[:3]) + (f", … ({len(names)} entries)" if len(names) > 3 else "") if names else "nothing"
    raise UserInputError(f"--manifest {path} is a folder, not a saved data set (no .arrow files in it; it holds {shown})",
                         "Give the manifest file (JSONL with a duration and a text per line, a label file "
                         "path<TAB>width<TAB>text, Parquet), or a folder written by datasets' save_to_disk.")


def manifest_columns(path: Path, length_key: str | None, text_key: str, max_records: int | None) -> Iterator[Columns]:
    if not path.exists():
        raise UserInputError(f"--manifest {path}: no such file", "Check the path.")
    suffix = path.suffix.lower()
    if path.is_dir():
        _saved_dataset_folder(path)
    if path.is_dir() or suffix in (".parquet", ".arrow"):
        return arrow_columns(path, length_key, text_key, max_records)
    if suffix in (".jsonl", ".json"):
        return jsonl_columns(path, length_key, text_key, max_records)
    return label_file_columns(path, max_records)
