"""Alphabet checks (CTC091) for `Setup.alphabet`; CTC090 (label text) is raised by `ctcdoctor labels`."""
from __future__ import annotations

from typing import TYPE_CHECKING

from ctcdoctor.registry import SkipCheck, check, document, finding

if TYPE_CHECKING:  # pragma: no cover
    from ctcdoctor.findings import Finding
    from ctcdoctor.protocol import Alphabet

document(
    "CTC090",
    "warning",
    "label text problems: byte-order mark, bad bytes, symbols outside the alphabet, empty labels",
    """
    **What it checks.** `ctcdoctor labels FILE --alphabet ...` reads a label file
    (`path<TAB>text`, `path<TAB>width<TAB>text` as `scan --manifest` reads it, ICDAR-style
    `path, "text"`, or `path text` per line; lines starting with `#` are comments) and reports:
    a byte-order mark at the start (or U+FEFF inside lines), a UTF-16 file, bytes that are not UTF-8,
    characters outside the alphabet (with what an encoder that skips unknown symbols
    would keep, e.g. `'café' → 'caf'`), and labels that are empty or become empty once
    unknown symbols are dropped. The longest labels are listed in the result. A file it
    cannot judge is refused (exit 2) with the conversion to make: an empty file, a binary
    one, and formats it would misread (a header row as in Common Voice's `validated.tsv`
    or a CSV export, more than three tab-separated columns, IAM's `lines.txt`).

    **Why it matters.** None of these raise: a BOM becomes an invisible first symbol, a
    cp1252 file decodes to replacement characters, and a silent encoder drops what it
    does not know, so the model is trained on targets that do not match the images or
    audio, and on empty targets that teach it to output only blanks (CTC013).

    **Example.**
    ```
    warning CTC090 14 characters in 9 of 500 labels are outside the alphabet (3 distinct);
      an encoder that skips unknown symbols would silently drop them:
      'É' ×6 (line 12: 'École' → 'cole'); ...
    ```

    **Fix.** Open UTF-8 label files with `encoding="utf-8-sig"` (or re-save them without the
    BOM), convert cp1252 and UTF-16 files to UTF-8 (`iconv -f UTF-16 -t UTF-8`), add the
    missing symbols to the alphabet (one output class each) or map them explicitly
    (e.g. lower-case the text; labels in decomposed Unicode, whose combining marks such as
    U+0301 are outside the alphabet, need `unicodedata.normalize('NFC', text)`), and drop or
    fix empty labels.
    """,
)


@check("CTC091", "warning", "alphabet problems: duplicates, whitespace-only symbols, failed round trip")
def alphabet_problems(alphabet: Alphabet) -> list[Finding]:
    """
    **What it checks.** When `Setup.alphabet` is given (and in `ctcdoctor labels`):
    duplicate symbols; empty or whitespace-only symbols (`"\\n"`, `"\\t"`, `"  "`; a
    single `" "` is accepted as the word separator) and symbols with surrounding
    whitespace (`"a "`); symbols in decomposed Unicode (not NFC); and an encode→decode
    round trip of every symbol with a greedy longest-match encoder (each symbol must
    encode to exactly its own class and decode back to itself).

    **Why it matters.** A duplicated symbol gets two output classes but every target uses
    only the last one (a dict keeps the last index); an alphabet read from a file with a
    trailing newline has a `"\\n"` class that matches nothing and shifts nothing visibly;
    a decomposed `"é"` never matches NFC label text; a symbol made of other symbols
    (`"a"`, `"b"`, `"ab"`) makes the encoding ambiguous. The model trains, on the wrong
    classes.

    **Example.** `warning CTC091 2 symbols appear more than once: 'l' at classes [12, 27],
    'o' at classes [15, 28].`

    **Fix.** Build the alphabet once from the normalised label text
    (`sorted(set(unicodedata.normalize("NFC", t) for t in texts for ...))`), strip
    newlines when reading it from a file, and keep `len(alphabet) + 1` output classes.
    """
    if alphabet is None:
        raise SkipCheck("no Setup.alphabet given", applicable=False)
    from ctcdoctor.labels import alphabet_problems as problems_of

    return [finding("CTC091", problem.message, problem.hint, {"problem": problem.kind, **problem.evidence}, title=problem.title)
            for problem in problems_of(alphabet)]
