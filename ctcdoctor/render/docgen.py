"""Generate docs/checks.md from the registry: the check docstrings are the documentation.

    python -m ctcdoctor.render.docgen > docs/checks.md

A test regenerates it and compares, so the page and `ctcdoctor explain` never drift apart.
"""
from __future__ import annotations

from ctcdoctor.registry import all_codes

HEADER = """# Check codes

Every finding ctcdoctor reports has a stable code. `ctcdoctor explain CODE` prints the same
text in a terminal; `ctcdoctor codes` lists them. Select or ignore codes by prefix
(`--select CTC0`, `--ignore CTC080`, or `ignore = [...]` under `[tool.ctcdoctor]`).

Severities: **error** — training cannot work as set up; **warning** — likely to hurt or slow
training; **info** — worth knowing. The exit code is 1 when a finding is at or above
`--fail-on` (default `error`).

This page is generated from the checks' docstrings (`python -m ctcdoctor.render.docgen > docs/checks.md`).
"""


def render() -> str:
    codes = all_codes()
    lines = [HEADER, "| code | severity | title |", "| --- | --- | --- |"]
    lines += [f"| [{info.code}](#{info.code.lower()}) | {' / '.join(dict.fromkeys(s.value for s, _ in info.documented))} "
              f"| {info.title} |" for info in codes]
    for info in codes:
        where = f"check `{info.check_name}`" if info.check is not None else "raised outside the check registry"
        lines += ["", f"## {info.code}", "", f"**{info.title}** — {info.severity.value}; {where}.", "", info.doc.strip()]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":  # pragma: no cover
    print(render(), end="")
