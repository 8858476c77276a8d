"""What `ctcdoctor scan` does, short of printing: resolve settings, scan (a spec, a shard of it, a
manifest) or merge parts into one state, and make the report. The command module renders."""
from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ctcdoctor.config import Settings
from ctcdoctor.errors import UserInputError
from ctcdoctor.findings import Report
from ctcdoctor.scan.state import ScanState, judge, merge_states

MERGE = "merge"


@dataclass
class Request:
    """The command line of one `scan`, as plain values."""

    targets: list[str] = field(default_factory=list)
    shard: str | None = None
    manifest: Path | None = None
    alphabet: str | None = None
    frames: str | None = None
    rate: float | None = None
    blank: int | None = None
    length_key: str | None = None
    text_key: str = "text"
    drop_list: Path | None = None
    drop: str = "infeasible,empty,alphabet"
    drop_anyway: bool = False
    clean_manifest: Path | None = None
    max_samples: int | None = None
    workers: int | None = None
    plot: Path | None = None
    worst: int = 10
    select: list[str] = field(default_factory=list)
    ignore: list[str] = field(default_factory=list)
    fail_on: Any = None
    device: str | None = None
    timeout: float | None = None
    seed: int | None = None
    output_format: Any = None

    @property
    def merging(self) -> bool:
        return bool(self.targets) and self.targets[0] == MERGE

    @property
    def spec(self) -> str | None:
        return None if self.merging or not self.targets else self.targets[0]

    def validate(self) -> None:
        """Flag combinations that cannot mean anything (exit 2 before any work)."""
        if self.merging:
            if len(self.targets) < 2:
                raise UserInputError("scan merge needs the JSON reports of the shards", "Run: ctcdoctor scan merge part*.json")
            if self.shard or self.manifest:
                raise UserInputError("scan merge takes no --shard or --manifest", "Merge the parts as they are.")
            return
        if len(self.targets) > 1:
            raise UserInputError(f"scan takes one SPEC, got {len(self.targets)}: {' '.join(self.targets)}",
                                 "Give one spec, or `scan merge PART...` to join shards.")
        if not self.targets and self.manifest is None:
            raise UserInputError("scan needs a SPEC, `merge PART...`, or --manifest FILE",
                                 "Run e.g. ctcdoctor scan train.py, or ctcdoctor scan --manifest train.jsonl -a @chars.txt --frames 'L*100//4'.")
        if self.manifest is not None and self.shard:
            raise UserInputError(f"--shard {self.shard} does not split a --manifest scan: the manifest is read whole",
                                 "Drop --shard: a manifest scan reads no batches and needs no shards (millions of lines take "
                                 "seconds).")
        if self.rate is not None and not (self.rate > 0 and math.isfinite(self.rate)):
            raise UserInputError(f"--rate {self.rate:g} is not a rate: it must be input steps per second, > 0",
                                 "Pass e.g. --rate 100 for 10 ms features or --rate 16000 for raw 16 kHz audio.")
        if self.manifest is not None and self.rate is not None and self.frames is not None:
            # --rate only scales L for Setup.output_lengths; next to --frames it would change nothing but
            # the report's input steps, and a user who gave both expects it to change the frames.
            raise UserInputError(f"--rate {self.rate:g} and --frames together: --frames takes L as the manifest gives it "
                                 "(seconds for a duration), and --rate only converts L for the spec's Setup.output_lengths",
                                 "Drop --rate and write the rate into the expression (e.g. --frames 'floor(L * 100) // 4 + 1'), "
                                 "or drop --frames to use Setup.output_lengths with --rate.")
        if self.manifest is None:
            for name, value in (("--frames", self.frames), ("--rate", self.rate), ("--clean-manifest", self.clean_manifest),
                                ("--alphabet", self.alphabet), ("--blank", self.blank), ("--length-key", self.length_key)):
                if value is not None:
                    raise UserInputError(f"{name} applies to --manifest scans only", f"Add --manifest FILE, or drop {name}.")


def settings_for(request: Request) -> Settings:
    from ctcdoctor.config import resolve_settings, spec_folder

    start = spec_folder(request.spec) if request.spec else (request.manifest.parent if request.manifest else None)
    return resolve_settings(start, fail_on=request.fail_on, select=request.select, ignore=request.ignore,
                            device=request.device, timeout=request.timeout, seed=request.seed)


def read_part(path: Path) -> ScanState:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise UserInputError(f"cannot read {path}: {error.strerror or error}", "Check the path of each part.") from error
    except json.JSONDecodeError as error:
        raise UserInputError(f"{path} is not JSON ({error})", "Pass the --output files of `scan --shard I/N` runs.") from error
    state = (document.get("result") or {}).get("state") if isinstance(document, dict) else None
    if document.get("command") != "scan" or not isinstance(state, dict):
        raise UserInputError(f"{path} is not the JSON report of a scan", "Pass the --output files of `scan --shard I/N` runs.")
    return ScanState.from_json(state)


def merged_state(paths: list[str]) -> ScanState:
    return merge_states([read_part(Path(path)) for path in paths], [str(path) for path in paths])


def make_report(state: ScanState, request: Request, settings: Settings, spec: str) -> Report:
    findings, results, result = judge(state, settings, request.worst)
    if settle_drops(state, request, findings):
        result["drop_list"], result["state"] = state.extra["drop_list"], state.to_json()
    result["seed"] = settings.seed
    if request.plot is not None:
        from ctcdoctor.render.figures import save
        from ctcdoctor.render.plot_scan import plot as draw

        save(draw(result), request.plot)
        result["plot"] = str(request.plot)
    return Report("scan", spec, tuple(findings), tuple(results), result,
                  config=str(settings.config_path) if settings.config_path else None)


def spec_state(request: Request, settings: Settings, shard: Any, on_samples: Callable[[int], None] | None,
               on_chunk: Any = None) -> ScanState:
    """Load the spec and scan it (or its shard) into a state, seeded, RNG and threads restored after."""
    from ctcdoctor.load.spec import load_setup
    from ctcdoctor.scan.run import ScanOptions, isolated, scan_setup

    assert request.spec is not None
    with isolated(settings.seed):
        setup = load_setup(request.spec)
        options = ScanOptions(shard=shard, worst=request.worst, max_samples=request.max_samples, device=settings.device,
                              workers=request.workers,
                              on_samples=on_samples, on_chunk=on_chunk,
                              indices_only=request.drop_list is not None)
        return scan_setup(setup, request.spec, options)



def drop_writer(request: Request, path: Path | None) -> Any:
    """The drop-list writer for this scan (None without --drop-list / --clean-manifest)."""
    if path is None:
        return None
    from ctcdoctor.scan.droplist import DropWriter, parse_reasons

    return DropWriter(path, parse_reasons(request.drop))


def finish_drops(state: ScanState, request: Request, writer: Any) -> None:
    """Close the drop-list and say it in the result; `settle_drops` decides, once the findings are known, whether it
    stays (and writes the clean manifest from it)."""
    if writer is None:
        return
    # Judged as the report is: with the true lengths when target_lengths count the padding. A shard or a rank keeps
    # the list judged the other way beside its own, for the merge (whose decision may differ from its own).
    keep_other = state.shard[1] > 1 and request.drop_list is not None
    info = writer.close(state.padding_counted, keep_other)
    if request.drop_list is None:
        info["temporary"] = True  # written for --clean-manifest only: settle_drops removes it
    state.extra["drop_list"] = info


def settle_drops(state: ScanState, request: Request, findings: list[Any]) -> bool:
    """Keep the drop-list, or remove it when it would hide a problem to fix in code (`scan.dropguard`; the whole data
    set only: a shard's list is a part of the merge's), saying why; then write the clean manifest from a kept list.
    True when there was a drop-list."""
    info = state.extra.get("drop_list")
    if not info or not info.get("file"):
        return False
    from ctcdoctor.scan.dropguard import refusal

    path, temporary = Path(str(info["file"])), bool(info.pop("temporary", False))
    refused = None if request.drop_anyway or state.shard[1] > 1 else \
        refusal(state, findings, int(info["count"]), frozenset(info["reasons"]))
    if refused:
        if path != request.drop_list:
            path.unlink(missing_ok=True)  # this run's list, written aside (`staged`); the user's files stay as they were
        info.update(file=None, refused=refused + _left_as_they_were(request))
        return True
    if request.drop_list is not None and path != request.drop_list and not temporary:
        path.replace(request.drop_list)
        path = request.drop_list
        info["file"] = str(path)
    if request.clean_manifest is not None and request.manifest is not None:
        from ctcdoctor.scan.droplist import clean_manifest

        kept = clean_manifest(request.manifest, path, request.clean_manifest)
        info["clean_manifest"] = {"file": str(request.clean_manifest), "kept": kept}
    if temporary:
        path.unlink(missing_ok=True)
        info["file"] = None
    return True


def staged(path: Path) -> Path:
    """Where a whole scan (or a merge) writes its drop-list until `settle_drops` keeps it: the user's file of that name
    stays as it was until then, and for good when the list is refused."""
    return path.with_name(f"{path.name}.ctcdoctor-partial")


def _left_as_they_were(request: Request) -> str:
    """The files of an earlier run that a refused list leaves in place, said so that they are not read as this run's."""
    earlier = [str(path) for path in (request.drop_list, request.clean_manifest) if path is not None and path.exists()]
    if not earlier:
        return ""
    one = len(earlier) == 1
    return f"; {' and '.join(earlier)} {'is' if one else 'are'} from an earlier run, left as {'it was' if one else 'they were'}"


def merge_drop_lists(state: ScanState, request: Request, out: Path | None = None) -> None:
    """`scan merge --drop-list OUT`: join the parts' drop-lists (each written by its own shard) into `out` (the
    staged file that `settle_drops` moves to OUT when the list is kept)."""
    if request.drop_list is None:
        return
    out = out or request.drop_list
    from ctcdoctor.scan.droplist import merge_lists, part_lists, side_files

    parts = [part for part in state.extra.pop("drop_list_parts", []) if part.get("file")]
    if len(parts) != state.parts:
        raise UserInputError(f"--drop-list: {len(parts)} of the {state.parts} parts wrote a drop-list",
                             "Run every shard with its own --drop-list FILE, then merge.")
    # Each part's list judged as the merged report is: its own decision on the padding may not be the data set's.
    files = part_lists(parts, state.padding_counted)
    missing = [str(path) for path in files if not path.exists()]
    if missing:
        raise UserInputError(f"--drop-list: the parts' list {', '.join(missing)} is missing",
                             "Merge the part files with the drop-lists their shards wrote beside them (FILE.true-lengths "
                             "or FILE.lengths-as-given), or rerun those shards with --drop-list.")
    count = merge_lists(files, out)
    state.extra["drop_list"] = {"file": str(out), "count": count, "reasons": parts[0].get("reasons", []),
                                "lengths": "true" if state.padding_counted else "given"}
    if not request.merging:  # torchrun: rank 0 removes the ranks' FILE.rankR, and the lists kept beside them here
        for path in side_files(parts):
            path.unlink(missing_ok=True)
