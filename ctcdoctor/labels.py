"""Label files and alphabets: reading, tokenising, and what a silent encoder would drop.

Pure functions (no torch, no rich): `ctcdoctor labels` renders their results, and
`checks/alphabet.py` reuses `alphabet_problems` for `Setup.alphabet`.

Line formats, detected per line:
  `path<TAB>width<TAB>text` a whole number between two tabs is a width (docs/scan.md): the text follows it
  `path<TAB>text`          everything after the first tab is the label
  `path, "text"`           ICDAR style (quotes removed, `\\"` unescaped)
  `path text`              everything after the first run of spaces is the label
"""
from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ctcdoctor.render.phrases import numbered, of_total, plural

if TYPE_CHECKING:  # pragma: no cover
    from ctcdoctor.findings import Finding

BOMS = {
    b"\xef\xbb\xbf": "UTF-8",
    b"\xff\xfe": "UTF-16 LE",
    b"\xfe\xff": "UTF-16 BE",
}
ICDAR = re.compile(r'^(?P<path>[^,\s]+)\s*,\s*"(?P<text>.*)"\s*$')
WIDTH = re.compile(r"[0-9]+")
#: How many of the first lines decide whether a file is in a format `labels` does not read.
HEAD_LINES = 20
#: A single space is a legitimate symbol (the word separator); these are not.
WHITESPACE_OK = {" "}


@dataclass(frozen=True)
class LabelLine:
    number: int
    """1-based line number in the file."""
    path: str
    text: str
    format: str
    """"tab", "tab-width" (path<TAB>width<TAB>text), "icdar", "space" or "path-only"."""


@dataclass
class LabelFile:
    lines: list[LabelLine] = field(default_factory=list)
    bom: str | None = None
    """Which byte-order mark the file starts with, if any."""
    inner_boms: list[int] = field(default_factory=list)
    """Line numbers holding U+FEFF after the start (concatenated files)."""
    undecodable: list[tuple[int, str]] = field(default_factory=list)
    """(line number, the bytes that are not UTF-8, as a repr)."""
    blank_lines: int = 0
    comment_lines: int = 0
    """Lines starting with '#' (and holding no tab): comments, as in IAM's lines.txt header."""
    head: list[str] = field(default_factory=list)
    """The first lines that hold text (comments and blank lines left out), as written: to recognise other formats."""


def parse_line(text: str, number: int) -> LabelLine:
    if "\t" in text:
        path, _, label = text.partition("\t")
        width, tab, rest = label.partition("\t")
        if tab and WIDTH.fullmatch(width):  # path<TAB>width<TAB>text, the manifest format of docs/scan.md
            return LabelLine(number, path, rest, "tab-width")
        return LabelLine(number, path, label, "tab")
    match = ICDAR.match(text)
    if match:
        return LabelLine(number, match["path"], match["text"].replace('\\"', '"'), "icdar")
    parts = text.split(None, 1)
    if len(parts) == 2:
        # Keep inner spaces of the label; drop only the separator.
        return LabelLine(number, parts[0], text[len(parts[0]):].lstrip(" "), "space")
    return LabelLine(number, text.strip(), "", "path-only")


def read_label_bytes(data: bytes) -> LabelFile:
    result = LabelFile()
    for mark, name in BOMS.items():
        if data.startswith(mark):
            result.bom = name
            data = data[len(mark):]
            break
    if result.bom and result.bom.startswith("UTF-16"):
        data = data.decode("utf-16-le" if result.bom.endswith("LE") else "utf-16-be", errors="replace").encode("utf-8")
    pieces = data.split(b"\n")
    if pieces and pieces[-1] == b"":
        pieces.pop()  # the final newline ends the last line; it does not start a blank one
    for number, raw in enumerate(pieces, start=1):
        raw = raw[:-1] if raw.endswith(b"\r") else raw
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as error:
            result.undecodable.append((number, repr(raw[error.start:error.end + 3])))
            text = raw.decode("utf-8", errors="replace")
        if "\ufeff" in text:
            result.inner_boms.append(number)
            text = text.replace("\ufeff", "")
        if not text.strip():
            result.blank_lines += 1
            continue
        if text.startswith("#") and "\t" not in text:
            result.comment_lines += 1
            continue
        if len(result.head) < HEAD_LINES:
            result.head.append(text)
        result.lines.append(parse_line(text, number))
    return result


# ---------------------------------------------------------------- text files: what is not UTF-8 text

#: The first bytes of binary files a user may pass by mistake, and what they are.
MAGIC = {
    b"\x89PNG": "a PNG image", b"\xff\xd8\xff": "a JPEG image", b"GIF8": "a GIF image", b"%PDF": "a PDF document",
    b"PK\x03\x04": "a zip archive", b"\x1f\x8b": "a gzip archive", b"RIFF": "a RIFF (WAV/WebP) file",
    b"fLaC": "a FLAC file", b"ID3": "an MP3 file", b"OggS": "an Ogg file", b"PAR1": "a Parquet file",
    b"ARROW1": "an Arrow file", b"\x93NUMPY": "a NumPy array",
}


def utf16_name(data: bytes) -> str | None:
    """"UTF-16 LE"/"UTF-16 BE" when the bytes start with that byte-order mark (what PowerShell's > writes)."""
    return {b"\xff\xfe": "UTF-16 LE", b"\xfe\xff": "UTF-16 BE"}.get(data[:2])


def binary_kind(data: bytes) -> str | None:
    """What a file that is not text is ("a PNG image", "binary data"), or None for text (UTF-16 counts as text)."""
    head = data[:8192]
    if utf16_name(data) or (b"\x00" not in head and _utf8_head(head)):
        return None  # text, even when it starts like a magic number ("ID3_001.png<TAB>...")
    for magic, name in MAGIC.items():
        if data.startswith(magic):
            return name
    if b"\x00" in head:
        # Every other byte NUL: UTF-16 written without its byte-order mark.
        return "UTF-16 without a byte-order mark, or binary data" if head[1::2].count(0) > len(head) // 4 else "binary data"
    return None


def _utf8_head(head: bytes) -> bool:
    """Are these first bytes of a file UTF-8 (a character cut at the end of the head counts)?"""
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as error:
        return error.reason == "unexpected end of data"
    return True


def utf8_fix(path: str) -> str:
    """The shell command that converts a cp1252/Latin-1 file to UTF-8 next to it."""
    return f"iconv -f cp1252 -t UTF-8 {path} > {path}.utf8 (name the encoding it was written in, if not cp1252)"


def decode_utf8(data: bytes, where: str, path: str) -> str:
    """A whole file's bytes as UTF-8 text, or exit 2 naming the file, the line and the `iconv` command that converts
    it (a UTF-16 file, or a binary one, is named as such)."""
    try:
        if utf16_name(data) or binary_kind(data):
            raise UnicodeDecodeError("utf-8", data, 0, 1, "not UTF-8 text")
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise decode_failure(data, where, path, error) from None


def decode_failure(data: bytes, where: str, path: str, error: UnicodeDecodeError, first_line: int = 1) -> Exception:
    """The exit-2 error for bytes of a text file that are not UTF-8 (shared with the manifest readers of `scan`):
    UTF-16 or binary when `data` starts the file, else the line of the first bad byte and the `iconv` fix."""
    from ctcdoctor.errors import UserInputError

    name = utf16_name(data) if first_line == 1 else None
    if name is not None:
        return not_utf8_error(where, name, path)
    kind = binary_kind(data) if first_line == 1 else None
    if kind is not None:
        return UserInputError(f"{where}: not a text file ({kind})", "Pass the text file itself (UTF-8, one entry per line).")
    return undecodable_error(where, path, data, error, first_line)


def not_utf8_error(where: str, encoding: str, path: str) -> Exception:
    """A file in another Unicode encoding (UTF-16): exit 2 with the conversion (never `utf-8-sig`, which cannot read it)."""
    from ctcdoctor.errors import UserInputError

    return UserInputError(
        f"{where}: the file is {encoding} (it starts with that byte-order mark; PowerShell's > and Notepad's "
        "'Unicode' write it), not UTF-8",
        f"Convert it to UTF-8: iconv -f UTF-16 -t UTF-8 {path} > {path}.utf8",
    )


def undecodable_error(where: str, path: str, data: bytes, error: UnicodeDecodeError, first_line: int = 1) -> Exception:
    """Bytes that are not UTF-8: exit 2 at the file's line (counted from `first_line` at the start of `data`)."""
    from ctcdoctor.errors import UserInputError

    line = first_line + data.count(b"\n", 0, error.start)
    column = error.start - (data.rfind(b"\n", 0, error.start) + 1) + 1
    bad = data[error.start:error.end]
    return UserInputError(
        f"{where}, line {line}, column {column}: not UTF-8 (byte {bad.hex(' ')}; the file is probably cp1252/Latin-1, "
        "or mixes encodings)",
        f"Convert it to UTF-8: {utf8_fix(path)}",
    )


# ---------------------------------------------------------------- files `labels` cannot read: refused, not misread

#: Header names of a path column and of a text column (Common Voice, DeepSpeech, Hugging Face, NeMo exports).
PATH_NAMES = ("path", "file", "filename", "file_name", "filepath", "file_path", "audio", "audio_path", "audio_filepath",
              "wav", "wav_filename", "image", "image_path", "img", "img_path", "utt_id", "id", "key")
TEXT_NAMES = ("sentence", "text", "transcript", "transcription", "normalized_text", "label", "labels", "words", "target")
HEADER_FIELD = re.compile(r"[A-Za-z_][A-Za-z0-9_ .-]*")


def _header(first: str, file: str) -> tuple[str, str] | None:
    """(what it is, how to convert it) when the first line is a header row naming a path and a text column."""
    tab = "\t" in first
    spaced = not tab and "," not in first  # `path text` lists: only the two names, e.g. "filename text"
    names = [name.strip().strip('"').lower() for name in (first.split() if spaced else first.split("\t" if tab else ","))]
    if len(names) < 2 or not all(HEADER_FIELD.fullmatch(name) for name in names) or (spaced and len(names) != 2):
        return None
    path = next((names.index(name) for name in PATH_NAMES if name in names), None)
    text = next((names.index(name) for name in TEXT_NAMES if name in names), None)
    if path is None or text is None:
        return None
    out = str(Path(file).with_suffix(".labels.txt" if spaced else ".labels.tsv")) if file else "labels.tsv"
    if spaced:
        return (f"path text lines under a header row ({first.strip()})",
                f"Drop the header row: tail -n +2 {file or 'FILE'} > {out}")
    kind = ("a Common Voice TSV" if {"client_id", "path", "sentence"} <= set(names)
            else "a DeepSpeech CSV" if {"wav_filename", "transcript"} <= set(names)
            else f"a {'TSV' if tab else 'CSV'} table")
    what = f"{kind}: a header row ({', '.join(names[:6])}{', …' if len(names) > 6 else ''}) and {len(names)} columns"
    if tab:
        how = f"tail -n +2 {file or 'FILE'} | cut -f{path + 1},{text + 1} > {out}"
    else:
        how = (f"python -c \"import csv, sys; [print(r['{names[path]}'], r['{names[text]}'], sep='\\t') "
               f"for r in csv.DictReader(open(sys.argv[1], encoding='utf-8'))]\" {file or 'FILE'} > {out}")
    return what, f"Convert it to path<TAB>text, no header: {how}"


def _iam(line: str) -> bool:
    """An IAM lines.txt / words.txt record: `id ok|err` then five or six numbers, the text last ('|' between words)."""
    fields = line.split(" ")
    return len(fields) >= 8 and fields[1] in ("ok", "err") and all(f.lstrip("-").isdigit() for f in fields[2:7])


def foreign_format(head: list[str], file: str) -> tuple[str, str] | None:
    """(what the file looks like, how to convert it) for a format `labels` would misread: a header row, more
    columns than path<TAB>width<TAB>text, IAM's lines.txt. None for the formats it reads."""
    if not head:
        return None
    header = _header(head[0], file)
    if header is not None:
        return header
    majority = len(head) // 2 + 1
    if sum(_iam(line) for line in head) >= majority:
        return ("IAM's lines.txt/words.txt format (id, ok/err, gray level, bounding box, then the text with '|' "
                "between words)",
                "Convert it to path<TAB>text: awk '!/^#/ {t=$NF; gsub(/\\|/, \" \", t); print $1 \"\\t\" t}' "
                f"{file or 'lines.txt'} > {Path(file or 'lines.txt').with_suffix('.tsv')}")
    wide = [line.count("\t") + 1 for line in head if line.count("\t") >= 3]
    if len(wide) >= majority:
        return (f"a table of {max(wide)} tab-separated columns (path<TAB>width<TAB>text has 3)",
                "Keep the path and the text column: cut -f1,N FILE > labels.tsv, with N the text's column.")
    return None


def refuse_unreadable(data: bytes, parsed: LabelFile, file: str) -> None:
    """Exit 2 for a label file `labels` cannot judge: not text, no labels at all, or a format it would misread."""
    from ctcdoctor.errors import UserInputError

    where = file or "the label file"
    kind = binary_kind(data)
    if kind is not None:
        fix = (f"Convert it: iconv -f UTF-16LE -t UTF-8 {where} > {where}.utf8" if kind.startswith("UTF-16")
               else "Pass the label file: text, one path<TAB>text per line.")
        raise UserInputError(f"{where}: not a text file ({kind})", fix)
    if not parsed.lines:
        what = ("holds only comment lines" if parsed.comment_lines else "holds only blank lines" if parsed.blank_lines
                else "is empty")
        raise UserInputError(f"{where}: no labels: the file {what}",
                             "Pass the label file with its labels (one path<TAB>text per line); an empty one checks nothing.")
    found = foreign_format(parsed.head, file)
    if found is not None:
        raise UserInputError(f"{where}: looks like {found[0]}, which `ctcdoctor labels` would misread "
                             "(it reads path<TAB>text, path<TAB>width<TAB>text, ICDAR path, \"text\" and path text per line, "
                             "no header)",
                             found[1])


def read_alphabet_arg(value: str) -> str | list[str]:
    """`--alphabet`: a string of symbols, or `@file` (one line: its characters; several lines: one symbol per line).

    A value that names an existing file without the `@` is refused (exit 2): read as symbols, the
    path's own characters would silently become the alphabet."""
    from ctcdoctor.errors import UserInputError

    if value == "":
        raise UserInputError("--alphabet is empty: every character of every label would be outside it",
                             "Give the symbols (--alphabet 'abc…z ' or --alphabet @FILE), or leave --alphabet out.")
    if not value.startswith("@"):
        if ("/" in value or "\\" in value or "." in value) and Path(value).is_file():
            raise UserInputError(
                f"--alphabet {value!r} names a file: without @ the characters of its name would be the alphabet",
                f"Read the alphabet from the file with --alphabet @{value}.",
            )
        return value

    path = value[1:]
    text = decode_utf8(Path(path).read_bytes(), f"--alphabet {value}", path).removeprefix("\ufeff")
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    lines = [line[:-1] if line.endswith("\r") else line for line in lines]
    if not "".join(lines):
        raise UserInputError(f"--alphabet {value}: the file holds no symbols",
                             "Write the symbols on one line, or one symbol per line.")
    if len(lines) == 1:
        return lines[0]
    return lines


def tokenizer(alphabet: str | Sequence[str]):
    """Greedy longest-match tokenisation over the alphabet's symbols (what an encoder of multi-character symbols does).

    Returns a function text -> (tokens, unknown characters) where tokens are symbols or None for unknown characters.
    """
    symbols = set(alphabet)
    longest = max((len(symbol) for symbol in symbols), default=1)

    def tokenize(text: str) -> tuple[list[str], list[str]]:
        tokens, unknown, position = [], [], 0
        while position < len(text):
            for size in range(min(longest, len(text) - position), 0, -1):
                piece = text[position:position + size]
                if piece in symbols:
                    tokens.append(piece)
                    position += size
                    break
            else:
                unknown.append(text[position])
                position += 1
        return tokens, unknown

    return tokenize


@dataclass(frozen=True)
class Problem:
    kind: str
    message: str
    hint: str
    evidence: dict

    @property
    def title(self) -> str:
        """The finding's title: the specific problem, not the code's whole family."""
        return TITLES.get(self.kind, self.kind)


TITLES = {
    "bom": "the label file starts with a byte-order mark",
    "utf16": "the label file is UTF-16, not UTF-8",
    "inner_bom": "byte-order marks inside the label file",
    "undecodable": "label lines that are not UTF-8",
    "outside": "label symbols outside the alphabet",
    "empty": "empty labels",
    "duplicates": "duplicate symbols in the alphabet",
    "whitespace": "empty or whitespace symbols in the alphabet",
    "unicode": "alphabet symbols not in NFC Unicode form",
    "round_trip": "alphabet symbols that do not survive encode→decode",
}


def is_mark(char: str) -> bool:
    """A combining mark (U+0301 in a decomposed 'é'): printed raw it fuses with the quote before it."""
    return unicodedata.category(char) in ("Mn", "Mc", "Me")


def _show(symbol: str) -> str:
    marks = [char for char in symbol if is_mark(char)]
    if marks:
        escaped = "".join(f"\\u{ord(char):04x}" if is_mark(char) else char for char in symbol)
        return f"'{escaped}' (U+{ord(marks[0]):04X}, a combining mark)"
    if symbol.strip() == symbol and symbol.isprintable():
        return repr(symbol)
    return f"{symbol!r} (U+{ord(symbol[0]):04X}{'…' if len(symbol) > 1 else ''})"


def alphabet_problems(alphabet: str | Sequence[str]) -> list[Problem]:
    """Duplicates, whitespace-only or padded entries, non-NFC symbols, failed encode->decode round trips."""
    symbols = list(alphabet)
    duplicates = {symbol: count for symbol, count in Counter(symbols).items() if count > 1}
    found = [_duplicates(symbols, duplicates), _whitespace(symbols), _unicode(symbols), _round_trip(symbols, duplicates)]
    return [problem for problem in found if problem is not None]


def _duplicates(symbols: list[str], duplicates: dict[str, int]) -> Problem | None:
    if not duplicates:
        return None
    positions = {symbol: [i + 1 for i, s in enumerate(symbols) if s == symbol] for symbol in duplicates}
    return Problem(
        "duplicates",
        f"{plural(len(duplicates), 'symbol appears', 'symbols appear')} more than once: "
        + ", ".join(f"{_show(s)} at classes {positions[s]}" for s in list(duplicates)[:8])
        + ". An encoder's dict keeps the last class, so the first one is never a target but still gets output mass.",
        "Remove the duplicates (e.g. alphabet = ''.join(dict.fromkeys(alphabet))) and shrink the output layer to match.",
        {"duplicates": {s: positions[s] for s in list(duplicates)[:20]}},
    )


def _whitespace(symbols: list[str]) -> Problem | None:
    empty = [i + 1 for i, s in enumerate(symbols) if s == ""]
    whitespace = [(i + 1, s) for i, s in enumerate(symbols) if s and not s.strip() and s not in WHITESPACE_OK]
    padded = [(i + 1, s) for i, s in enumerate(symbols) if s.strip() and s != s.strip()]
    if not (empty or whitespace or padded):
        return None
    parts = []
    if empty:
        parts.append(f"empty symbols at classes {empty[:8]}")
    if whitespace:
        parts.append("whitespace-only symbols " + ", ".join(f"{_show(s)} at class {i}" for i, s in whitespace[:8]))
    if padded:
        parts.append("symbols with surrounding whitespace " + ", ".join(f"{s!r} at class {i}" for i, s in padded[:8]))
    return Problem(
        "whitespace",
        "; ".join(parts) + " (a single ' ' is accepted as the word separator). They usually come from reading an "
        "alphabet file with a trailing newline or tab, and match no label text.",
        "Strip each alphabet entry of newlines/tabs when reading it (keep a single ' ' only if labels contain spaces).",
        {"empty": empty[:20], "whitespace": [[i, s] for i, s in whitespace[:20]], "padded": [[i, s] for i, s in padded[:20]]},
    )


def _unicode(symbols: list[str]) -> Problem | None:
    not_nfc = [(i + 1, s) for i, s in enumerate(symbols) if unicodedata.normalize("NFC", s) != s]
    combining = [(i + 1, s) for i, s in enumerate(symbols) if len(s) == 1 and unicodedata.combining(s)]
    shown = not_nfc or combining
    if not shown:
        return None
    return Problem(
        "unicode",
        "symbols in decomposed (non-NFC) Unicode form: " + ", ".join(f"{_show(s)} at class {i}" for i, s in shown[:8])
        + ". Label text is usually NFC (é as one code point), so it never matches them.",
        "Normalise both the alphabet and the labels with unicodedata.normalize('NFC', text).",
        {"symbols": [[i, s] for i, s in shown[:20]]},
    )


def _round_trip(symbols: list[str], duplicates: dict[str, int]) -> Problem | None:
    """Encode each symbol's text with a greedy longest-match encoder and decode the indices back."""
    index = {symbol: i + 1 for i, symbol in enumerate(symbols)}
    tokenize = tokenizer(symbols)
    failed: list[dict[str, Any]] = []
    for position, symbol in enumerate(symbols, start=1):
        if not symbol or symbol in duplicates:
            continue  # a duplicate fails the round trip by definition: reported once, above
        tokens, unknown = tokenize(symbol)
        decoded = "".join(symbols[index[token] - 1] for token in tokens)
        if unknown or decoded != symbol or [index[token] for token in tokens] != [position]:
            failed.append({"class": position, "symbol": symbol, "encoded": [index[token] for token in tokens]})
    if not failed:
        return None
    return Problem(
        "round_trip",
        f"encode→decode does not give back {plural(len(failed), 'symbol')}: "
        + ", ".join(f"{_show(item['symbol'])} (class {item['class']}) encodes to {item['encoded']}" for item in failed[:8])
        + ". Symbols that are made of other symbols make the encoding ambiguous.",
        "Make every symbol unique and encode labels with the same tokenisation the decoder inverts.",
        {"failed": failed[:20]},
    )


@dataclass
class LabelReport:
    """What `ctcdoctor labels` found; all counts over non-blank lines."""

    lines: int
    formats: dict
    outside: Counter
    """Symbol -> occurrences of characters outside the alphabet."""
    outside_examples: dict
    """Symbol -> [(line, text, what a silent encoder keeps)]."""
    lines_with_outside: int
    empty: list[int]
    """Line numbers with an empty label."""
    emptied: list[int]
    """Line numbers whose label becomes empty once unknown symbols are dropped."""
    longest: list[tuple[int, int, str]]
    """(tokens, line, text) of the longest labels."""
    lengths: list[int]


def analyse_labels(parsed: LabelFile, alphabet: str | Sequence[str] | None, top: int = 5) -> LabelReport:
    tokenize = tokenizer(alphabet) if alphabet is not None else None
    outside: Counter = Counter()
    examples: dict = {}
    lines_with_outside = 0
    empty, emptied, sized, lengths = [], [], [], []
    formats = Counter(line.format for line in parsed.lines)
    for line in parsed.lines:
        if line.text == "":
            empty.append(line.number)
            lengths.append(0)
            continue
        if tokenize is not None:
            tokens, unknown = tokenize(line.text)
            if unknown:
                lines_with_outside += 1
                outside.update(unknown)
                kept = "".join(tokens)
                for symbol in set(unknown):
                    bucket = examples.setdefault(symbol, [])
                    if len(bucket) < 3:
                        bucket.append((line.number, line.text, kept))
                if not tokens:
                    emptied.append(line.number)
            size = len(tokens)
        else:
            size = len(line.text)
        lengths.append(size)
        sized.append((size, line.number, line.text))
    longest = sorted(sized, key=lambda item: (-item[0], item[1]))[:top]
    return LabelReport(len(parsed.lines), dict(formats), outside, examples, lines_with_outside, empty, emptied, longest, lengths)


def label_problems(parsed: LabelFile, report: LabelReport, alphabet, file: str = "") -> list[Problem]:  # noqa: ANN001
    """CTC090 problems of a label file."""
    problems: list[Problem] = []
    if parsed.bom and parsed.bom.startswith("UTF-16"):
        problems.append(Problem(
            "utf16",
            f"the file is {parsed.bom} (it starts with that byte-order mark; PowerShell's > and Notepad's 'Unicode' "
            "write it), not UTF-8: a loader that opens it as UTF-8 fails on its first byte.",
            f"Convert it to UTF-8: iconv -f UTF-16 -t UTF-8 {file or 'FILE'} > {file or 'FILE'}.utf8 (or open it with "
            "encoding='utf-16'; 'utf-8-sig' cannot read it).",
            {"encoding": parsed.bom, "line": 1},
        ))
    elif parsed.bom:
        problems.append(Problem(
            "bom",
            f"the file starts with a {parsed.bom} byte-order mark: read as plain UTF-8, the first path (or label) starts "
            "with U+FEFF, an invisible symbol outside any alphabet.",
            "Open the file with encoding='utf-8-sig', or re-save it without a BOM.",
            {"bom": parsed.bom},
        ))
    if parsed.inner_boms:
        problems.append(Problem(
            "inner_bom",
            f"U+FEFF (a byte-order mark) appears inside {plural(len(parsed.inner_boms), 'line')} ({numbered(parsed.inner_boms, 'line')}) "
            "(files concatenated with their BOMs).",
            "Strip '\\ufeff' from every line when reading the labels.",
            {"lines": parsed.inner_boms[:50]},
        ))
    if parsed.undecodable:
        problems.append(Problem(
            "undecodable",
            f"{plural(len(parsed.undecodable), 'line')} {'is' if len(parsed.undecodable) == 1 else 'are'} not valid UTF-8: "
            + ", ".join(f"line {number} ({raw})" for number, raw in parsed.undecodable[:5])
            + ". The file is probably Latin-1/cp1252, or mixes encodings.",
            "Convert the file to UTF-8 (e.g. iconv -f cp1252 -t utf-8), or open it with the encoding it was written in.",
            {"lines": [number for number, _ in parsed.undecodable[:50]]},
        ))
    if report.outside:
        problems.append(_outside_problem(report, alphabet))
    if report.empty or report.emptied:
        problems.append(_empty_problem(report))
    return problems


def _outside_problem(report: LabelReport, alphabet) -> Problem:  # noqa: ANN001 - a str or a sequence of symbols
    """Symbols outside the alphabet, with one example line each."""
    total = sum(report.outside.values())
    listed = []
    for symbol, count in report.outside.most_common(8):
        number, text, kept = report.outside_examples[symbol][0]
        listed.append(f"{_show(symbol)} ×{count} (line {number}: {text!r} → {kept!r})")
    hint = outside_hint(dict(report.outside), alphabet)
    where = of_total(report.lines_with_outside, report.lines, 'label', '', '').rstrip()  # the verb agrees with the characters
    return Problem(
        "outside",
        f"{plural(total, 'character')} in {where} {'is' if total == 1 else 'are'} outside the alphabet "
        f"({len(report.outside)} distinct); an encoder that skips unknown symbols would silently drop them: "
        + "; ".join(listed) + ".",
        hint,
        {"symbols": {s: c for s, c in report.outside.most_common(50)}, "lines_affected": report.lines_with_outside,
         "examples": {s: [{"line": n, "text": t, "kept": k} for n, t, k in v] for s, v in list(report.outside_examples.items())[:20]}},
    )


def outside_hint(outside: dict[str, int], alphabet) -> str:  # noqa: ANN001 - a str or a sequence of symbols
    """CTC090's fix (shared with a manifest scan): capitals whose lower case the alphabet holds are a case-folding
    problem, named with their counts; the other symbols must be added or mapped."""
    symbols = set(alphabet or ())
    marks = [symbol for symbol in outside if is_mark(symbol)]
    if marks:
        nfc = _nfc_hint(marks, symbols)
        rest = {symbol: count for symbol, count in outside.items() if symbol not in marks}
        return nfc + "." if not rest else nfc + "; for the other symbols: " + _lower_first(outside_hint(rest, alphabet))
    capitals = {symbol: count for symbol, count in outside.items()
                if symbol != symbol.lower() and symbol.lower() in symbols and symbol not in symbols}
    others = [symbol for symbol in outside if symbol not in capitals]
    if not capitals:
        return "Add these symbols to the alphabet (and one output class each), or map/remove them explicitly and log it."
    lower_only = not any(symbol != symbol.lower() for symbol in symbols)
    named = ", ".join(f"{symbol!r} ×{count}" for symbol, count in sorted(capitals.items(), key=lambda item: (-item[1], item[0]))[:8])
    head = (f"{named} {'is an upper-case letter' if len(capitals) == 1 else 'are upper-case letters'} whose lower case is in "
            f"the {'lower-case ' if lower_only else ''}alphabet: lower-case the labels (text.lower()) or add the capitals to the alphabet")
    if not others:
        return head + "."
    return (head + f"; add the other {'symbol' if len(others) == 1 else 'symbols'} ({', '.join(repr(symbol) for symbol in others[:8])}) "
            "to the alphabet (one output class each), or map/remove them explicitly and log it.")


def _nfc_hint(marks: list[str], symbols: set[str]) -> str:
    """Combining marks outside the alphabet: labels in decomposed (NFD) form, which NFC normalisation composes."""
    precomposed = any(unicodedata.normalize("NFD", symbol) != symbol for symbol in symbols)
    named = ", ".join(f"'\\u{ord(mark):04x}' (U+{ord(mark):04X})" for mark in marks[:4])
    return (f"{named} {'is a combining mark' if len(marks) == 1 else 'are combining marks'}: the labels are in decomposed "
            "(NFD) Unicode form ('e' + U+0301 for 'é'); normalise them with unicodedata.normalize('NFC', text)"
            + (", the form of the alphabet's accented letters" if precomposed else
               ", then add the accented letters to the alphabet"))


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:]


def _empty_problem(report: LabelReport) -> Problem:
    """Labels empty as written, or emptied once the symbols outside the alphabet are dropped."""
    parts = []
    if report.empty:
        parts.append(f"{plural(len(report.empty), 'label')} {'is' if len(report.empty) == 1 else 'are'} empty ({numbered(report.empty, 'line')})")
    if report.emptied:
        verb = "becomes" if len(report.emptied) == 1 else "become"
        parts.append(f"{plural(len(report.emptied), 'label')} {verb} empty once symbols outside the alphabet are dropped "
                     f"({numbered(report.emptied, 'line')})")
    return Problem(
        "empty",
        "; ".join(parts) + (": that sample teaches" if len(report.empty) + len(report.emptied) == 1 else ": those samples teach")
        + " the model to output only blanks.",
        "Drop these samples or fix their text; keep empty labels only for deliberate silence/blank images.",
        {"empty": report.empty[:50], "emptied": report.emptied[:50]},
    )


def check_labels(data: bytes, symbols: str | Sequence[str] | None, top: int = 5, file: str = "") -> tuple[list[Finding], dict[str, Any]]:
    """The findings (CTC090 for the labels, CTC091 for the alphabet) and the `result` of `ctcdoctor labels`."""
    from ctcdoctor.registry import finding

    parsed = read_label_bytes(data)
    refuse_unreadable(data, parsed, file)
    report = analyse_labels(parsed, symbols, top)
    found = [finding("CTC090", p.message, p.hint, {"problem": p.kind, **p.evidence}, title=p.title)
             for p in label_problems(parsed, report, symbols, file)]
    if symbols is not None:
        found += [finding("CTC091", p.message, p.hint, {"problem": p.kind, **p.evidence}, title=p.title)
                  for p in alphabet_problems(symbols)]
    lengths = sorted(report.lengths)
    result = {
        "file": file,
        "lines": report.lines,
        "blank_lines": parsed.blank_lines,
        "comment_lines": parsed.comment_lines,
        "formats": report.formats,
        "alphabet_size": len(symbols) if symbols is not None else None,
        "outside_symbols": dict(report.outside.most_common()),
        "empty_labels": report.empty,
        "longest": [{"line": line, "length": size, "text": text} for size, line, text in report.longest],
        "max_length": lengths[-1] if lengths else 0,
        "median_length": lengths[len(lengths) // 2] if lengths else 0,
    }
    return found, result
