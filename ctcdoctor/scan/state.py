"""A scan's mergeable state (summary + what the model said), merging parts, and judging it.

One scan, a shard (`--shard I/N`), a torchrun rank and a manifest scan all end in a `ScanState`;
`merge_states` joins the parts of one data set; `judge` turns a state into the report's
findings, check results and `result` by running the scan's checks through the engine (so
skipped inputs, CTC999 and timings work as in `check`). A single scan is judged through the
same path as a merge of its parts, which is why both give the same report.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from ctcdoctor.config import Settings
from ctcdoctor.engine import Context, Options, run_checks
from ctcdoctor.errors import UserInputError
from ctcdoctor.findings import CheckResult, Finding, Severity
from ctcdoctor.registry import all_codes, apply_ignore, matches, sort_findings
from ctcdoctor.scan.findings import SUMMARY_CHECKS
from ctcdoctor.scan.summary import Summary

#: Codes `scan` runs: lengths and labels, minus CTC004 (it compares with the model per batch) and CTC014.
#: CTC005 says the lengths were estimated by probing the model, as `check` does.
SCAN_CODES = ("CTC001", "CTC002", "CTC003", "CTC005", "CTC010", "CTC011", "CTC012", "CTC013", "CTC015")
#: Codes a manifest scan runs.
MANIFEST_CODES = ("CTC001", "CTC002", "CTC011", "CTC012", "CTC013", "CTC090")
#: Version of the `state` object in the JSON; `scan merge` refuses others.
STATE_SCHEMA = 1
#: When two parts decided the output lengths differently, the merged source is the least certain one.
SOURCE_ORDER = ("unavailable", "unknown", "probed", "measured", "full", "setup", "model", "manifest")


@dataclass
class ScanState:
    """Everything a report of this scan needs, JSON-ready (`to_json`) and mergeable (`merge_states`)."""

    spec: str
    summary: Summary
    source: str
    """Where the output lengths came from (see `ctcdoctor.scan.frames`), or "manifest"."""
    detail: str
    blank: int = 0
    alphabet: Any = None
    num_classes: int | None = None
    failure: tuple[str, str] | None = None
    """(exception type, message) when the model failed on the first batch."""
    ctc003: list[dict[str, Any]] | None = None
    """CTC003's findings on the first batch (None when the model could not run)."""
    shard: tuple[int, int] = (0, 1)
    reader: str = "loader"
    """"loader", "sample_labels" or "manifest"."""
    seconds: float = 0.0
    stopped: str | None = None
    """Why the scan stopped before the end of the data (--max-samples), if it did."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Reader-specific additions to `result` (a manifest's unknown symbols, its file)."""
    parts: int = 1
    stride: int | None = None
    """Input steps per output frame of a `floor((L + k) / s)` Setup.output_lengths (`measure.lengths.declared_stride`)."""
    time_strides: list[dict[str, Any]] = field(default_factory=list)
    """The layers that downsample time (`TimeStride` fields), measured when a sample cannot be aligned (CTC001's fix)."""
    fixed_length: dict[str, Any] | None = None
    """A resampling of every input to one size (`FixedLength.to_json`), measured with `time_strides`: longer inputs
    then do not help (CTC001's fix)."""
    rejected: str | None = None
    """Who declared the output lengths CTC003 found wrong on the first batch ("Setup.output_lengths", "the lengths the
    model returns"): the spare frames then come from measured lengths (source "measured"), or none ("unknown")."""
    uncovered: str | None = None
    """Why samples past the first batch have no output length (the model returns its own and probing it failed), with
    the fix; None when every sample has one or the reason is another."""
    framework: str | None = None
    """"transformers" for a Hugging Face CTC model: labels padded with its pad id are CTC107's (a `check` finding),
    never read as padding that target_lengths count, as in `check`."""

    @property
    def padding_counted(self) -> bool:
        """target_lengths count the padding (CTC012), as `measure.labels.find_padding_counted` decides in `check`."""
        return self.framework is None and self.summary.padding_counted

    @property
    def judged_summary(self) -> Summary:
        """The summary the findings and the result read: with the true lengths when the lengths count the padding."""
        return self.summary.judged(self.padding_counted)

    def to_json(self) -> dict[str, Any]:
        data = {name: getattr(self, name) for name in self.__dataclass_fields__}
        data["summary"] = self.summary.to_json()
        data["alphabet"] = list(self.alphabet) if isinstance(self.alphabet, (list, tuple)) else self.alphabet
        return {"schema": STATE_SCHEMA, **data}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ScanState:
        if data.get("schema") != STATE_SCHEMA:
            raise UserInputError(f"scan state schema {data.get('schema')!r} is not {STATE_SCHEMA}",
                                 "Merge parts written by this version of ctcdoctor.")
        values = {name: data[name] for name in cls.__dataclass_fields__ if name in data}
        values["summary"] = Summary.from_json(data["summary"])
        values["shard"] = tuple(data["shard"])
        values["failure"] = tuple(data["failure"]) if data.get("failure") else None
        return cls(**values)


def merge_states(states: list[ScanState], names: list[str] | None = None) -> ScanState:
    """The state of the whole from the states of its shards (each shard exactly once). `names` (the part files)
    let a refusal name the file of each shard."""
    check_shards(states, names)
    specs = {state.spec for state in states}
    if len(specs) != 1:
        raise UserInputError(f"the parts scanned different specs: {', '.join(sorted(specs))}", "Merge the shards of one scan.")
    states = sorted(states, key=lambda state: state.shard[0])
    chosen = min(states, key=lambda state: SOURCE_ORDER.index(state.source) if state.source in SOURCE_ORDER else 0)
    merged = dataclasses.replace(states[0], summary=Summary.from_json(states[0].summary.to_json()), source=chosen.source,
                                 detail=chosen.detail, ctc003=chosen.ctc003, shard=(0, 1), parts=len(states),
                                 seconds=max(state.seconds for state in states))
    for state in states[1:]:
        merged.summary.merge(state.summary)
        merged.num_classes = merged.num_classes if merged.num_classes is not None else state.num_classes
        merged.failure = merged.failure or state.failure
        merged.stopped = merged.stopped or state.stopped
        merged.time_strides = merged.time_strides or state.time_strides  # the same model and first batch in every part
        merged.fixed_length = merged.fixed_length or state.fixed_length
        merged.stride = merged.stride if merged.stride is not None else state.stride
    merged.extra = {key: value for key, value in merged.extra.items() if key != "drop_list"}
    lists = [state.extra["drop_list"] for state in states if state.extra.get("drop_list")]
    if lists:
        merged.extra["drop_list_parts"] = lists
    return merged


def check_shards(states: list[ScanState], names: list[str] | None = None) -> None:
    """Refuse parts that are not every shard I/N of one scan exactly once, naming the missing or repeated shard
    and the file each part came from."""
    names = names if names is not None and len(names) == len(states) else [f"part {index + 1}" for index in range(len(states))]
    given = ", ".join(f"{name} (shard {state.shard[0]}/{state.shard[1]})" for name, state in zip(names, states))
    counts = sorted({state.shard[1] for state in states})
    spec = states[0].spec if states else "SPEC"
    if len(counts) != 1:
        ways = " and ".join(f"{n} ways" if n > 1 else "not at all" for n in counts)
        raise UserInputError(f"the parts are not the shards of one scan: they were split {ways}: "
                             f"{given}", "Merge every shard I/N of one scan exactly once (the N of each --shard must agree).")
    total = counts[0]
    by_index: dict[int, list[str]] = {}
    for name, state in zip(names, states):
        by_index.setdefault(state.shard[0], []).append(name)
    repeated = {index: files for index, files in sorted(by_index.items()) if len(files) > 1}
    missing = [index for index in range(total) if index not in by_index]
    if repeated:
        index, files = next(iter(repeated.items()))
        also = f"; shard {', '.join(f'{i}/{total}' for i in missing)} missing" if missing else ""
        raise UserInputError(f"the parts are not the shards of one scan: shard {index}/{total} is given {len(files)} times "
                             f"({', '.join(files)}){also}; got {given}", "Pass each shard's --output file once, every shard I/N of the scan.")
    if missing:
        shown = ", ".join(f"{index}/{total}" for index in missing)
        runs = "; ".join(f"ctcdoctor scan {spec} --shard {index}/{total} --output part{index}.json" for index in missing[:3])
        raise UserInputError(
            f"the parts are not the shards of one scan: shard{'s' if len(missing) > 1 else ''} {shown} "
            f"{'are' if len(missing) > 1 else 'is'} missing (torchrun rank{'s' if len(missing) > 1 else ''} "
            f"{', '.join(str(index) for index in missing)}); got {given}",
            f"Scan the missing shard{'s' if len(missing) > 1 else ''} ({runs}) and pass every part to `ctcdoctor scan merge`.",
        )


# ---------------------------------------------------------------- judging


class _Lengths:
    """What the length checks read of the output lengths once the scan is over."""

    def __init__(self, source: str, detail: str, time_strides: list[dict[str, Any]] = (),  # type: ignore[assignment]
                 stride: int | None = None, uncovered: str = "", fixed_length: dict[str, Any] | None = None) -> None:
        from ctcdoctor.measure.downsampling import FixedLength, TimeStride

        self.source, self.detail, self.stride, self.uncovered = source, detail, stride, uncovered
        self.time_strides = tuple(TimeStride(**item) for item in time_strides)
        self.fixed_length = FixedLength.from_json(fixed_length) if fixed_length else None

    @property
    def known(self) -> bool:
        return self.source not in ("unknown", "unavailable")


def _finding(item: dict[str, Any]) -> Finding:
    return Finding(item["code"], Severity.parse(item["severity"]), item["title"], item["message"], item.get("hint", ""),
                   dict(item.get("evidence") or {}))


def inconsistent_output_lengths(model_checks: list[dict[str, Any]]) -> list[Finding]:
    """CTC003 as the real check found it on the first batch (the only batch the model ran on)."""
    return [_finding(item) for item in model_checks]


def sample_count_durations(found: dict[str, Any]) -> Finding:
    """CTC006: most durations of a manifest are too long to be seconds (found by `scan.metadata.manifest_state`)."""
    from ctcdoctor.registry import finding

    count, total, above = found["count"], found["total"], found["above_seconds"]
    return finding(
        "CTC006",
        f"{count:,} of {total:,} durations are over {above:,} s (largest {found['largest']:,.10g}, at {found['where']}): "
        "sample counts rather than seconds? The output lengths computed from them would be thousands of times too long, "
        "and samples CTC cannot align would go unseen.",
        "Write the durations in seconds (e.g. divide by 16000 for 16 kHz audio), or pass --length-key with a field that "
        "holds seconds; with --frames, put the conversion in the expression (e.g. 'floor(L / 16000 * 100) // 4 + 1').",
        dict(found),
    )


def _context(state: ScanState) -> Context:
    lengths = _Lengths(state.source, state.detail, state.time_strides, state.stride, state.uncovered or "", state.fixed_length)
    context = Context(None, Options(), {"scan": state.judged_summary, "blank": state.blank, "alphabet": state.alphabet,  # type: ignore[arg-type]
                                        "padding_counted": state.padding_counted})

    def runs() -> None:
        if state.failure is not None:
            exception = type(state.failure[0], (Exception,), {})
            raise exception(state.failure[1])

    def needs_model(value: Any) -> Any:
        context.get("runs")
        return value

    context.put("runs", runs)
    context.put("num_classes", lambda: needs_model(state.num_classes))
    context.put("model_checks", lambda: needs_model(state.ctc003 or []))
    if state.source == "unavailable":
        context.put("output_lengths", lambda: needs_model(lengths))
    else:
        context.put("output_lengths", lambda: lengths)
    return context


def judge(state: ScanState, settings: Settings, worst: int = 10) -> tuple[list[Finding], list[CheckResult], dict[str, Any]]:
    """(findings, check results, the JSON `result`) of a scan state under the command's settings."""
    from ctcdoctor.checks.labels import blank_out_of_range
    from ctcdoctor.checks.lengths import estimated_output_lengths
    from ctcdoctor.scan.findings import labels_outside_alphabet

    replaced = {**{code: function for code, (function, _) in SUMMARY_CHECKS.items()},
                "CTC003": inconsistent_output_lengths, "CTC005": estimated_output_lengths, "CTC090": labels_outside_alphabet,
                "CTC015": blank_out_of_range}
    # A manifest: no model runs, classes come from the alphabet; symbols outside it are CTC090, not CTC010.
    codes = MANIFEST_CODES if state.reader == "manifest" else SCAN_CODES
    known = {info.code: info for info in all_codes()}
    chosen = [dataclasses.replace(known[code], check=replaced[code]) for code in codes
              if (not settings.select or matches(code, settings.select)) and not (settings.ignore and matches(code, settings.ignore))]
    findings, results = run_checks(_context(state), chosen)
    long_durations = state.extra.get("long_durations")
    if long_durations and (not settings.select or matches("CTC006", settings.select)):
        findings.append(sample_count_durations(long_durations))
    findings = apply_ignore(findings, settings.ignore)
    return list(sort_findings(findings)), results, scan_result(state, worst)


def scan_result(state: ScanState, worst: int = 10) -> dict[str, Any]:
    """The JSON `result`: today's fields, then the additions (percentiles, shards, the mergeable state)."""
    summary = state.judged_summary
    known = state.source not in ("unknown", "unavailable") and summary.known > 0
    spare: dict[str, Any] = {"known": 0}
    if known:
        spare = {"known": summary.known, "infeasible": summary.infeasible, "min": summary.spare.minimum,
                 "p1": summary.spare.quantile(0.01), "p5": summary.spare.quantile(0.05), "median": summary.spare.quantile(0.5),
                 "max": summary.spare.maximum, "histogram": summary.spare.histogram(split=0)}
    seconds = state.seconds
    return {
        "samples": summary.samples,
        "batches": summary.batches,
        "seconds": round(seconds, 4),
        "samples_per_second": round(summary.samples / seconds, 1) if seconds > 0 else None,
        "lengths_source": state.source,
        "lengths_detail": state.detail,
        "lengths_rejected": state.rejected,
        "spare_frames": spare,
        "worst": summary.worst.values()[:worst] if known else [],
        "max_target_length": summary.label_lengths.maximum or 0,
        "label_lengths": summary.label_lengths.percentiles(),
        "padding_counted": state.padding_counted,
        "output_frames": summary.frames.percentiles() if known else {"count": 0},
        "reader": state.reader,
        "parts": state.parts,
        "stopped": state.stopped,
        **state.extra,
        "state": state.to_json(),
    }
