"""Each command's own `result` (the JSON `result` object) as Rich renderables for the terminal.

Pure functions of the JSON-ready dictionaries, so a saved report renders the same as a live one.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rich.console import Group, RenderableType
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from ctcdoctor.overfit.caveats import verdict as caveat_verdict
from ctcdoctor.render.phrases import number, plural

BAR_WIDTH = 40


def check(result: dict[str, Any], every: int | None = None) -> RenderableType:
    """One dim line: what the checks read the output as (the layout is inferred unless Setup.layout says it)."""
    shape = "(" + ", ".join(str(size) for size in result["output_shape"]) + ")"
    axes = {"TNC": "(T, N, C)", "NTC": "(N, T, C)", "NCT": "(N, C, T)"}.get(result.get("layout") or "")
    if axes is None:
        output = f"output {shape}, layout undecided"
    elif result.get("layout_source") == "setup":
        output = f"output {shape} as {axes} (Setup.layout)"
    else:
        detail = str(result.get("layout_detail", ""))
        why = detail.split(": ", 1)[1] if ": " in detail else detail
        output = f"output {shape} as {axes}" + (f" ({why})" if why else "")
    parts = [output]
    if "classes" in result:
        parts.append(f"{result['classes']} classes, blank {result['blank']}")
    if result.get("frames_detail"):
        parts.append(f"frames {result['frames_detail']}")
    if result.get("returned"):
        parts.append(str(result["returned"]))
    if result.get("sample_numbers"):
        parts.append(str(result["sample_numbers"]))
    return Text("read: " + "; ".join(parts), style="dim")


def overfit(result: dict[str, Any], every: int | None = None) -> RenderableType:
    """A headline (fitted / did not fit / not run), then the numbers behind it."""
    targets = ", ".join(f'"{t}"' for t in result["targets"])
    chosen = result["samples"]
    samples = ("sample " if len(chosen) == 1 else "samples ") + ", ".join(map(str, chosen))
    if not result["trained"]:
        head = Text.assemble(
            ("■ overfit not run ", "bold red"),
            f"on {samples} ({targets}): fix {', '.join(result['skipped_because'])} above first; training could not succeed.",
        )
        return Group(head, Text(""))
    if result.get("caveats") and result.get("decode_matches"):
        head = Text.assemble(
            ("▲ decode matches ", "bold yellow"),
            f"{samples} ({targets}) in {result['steps_to_fit']} steps, {result['seconds_to_fit']:.1f} s, but ",
            ("; ".join(item["words"] for item in result["caveats"]) + ": " + caveat_verdict(result["caveats"]), "bold red"),
        )
    elif result["fitted"]:
        head = Text.assemble(
            ("✔ fitted ", "bold green"),
            f"{samples} ({targets}) in {result['steps_to_fit']} steps, {result['seconds_to_fit']:.1f} s "
            f"(stopped after {result['steps']} steps, {result['seconds']:.1f} s)",
        )
        if result.get("diagnosis"):  # fitted, yet the run is wrong (CTC074: a negative loss)
            head.append(f"; but see {result['diagnosis']}: the loss is not CTC's", style="bold red")
    else:
        head = Text.assemble(
            (f"✖ did not fit ({result['diagnosis']}) ", "bold red"),
            f"{samples} ({targets}) in {result['steps']} steps, {result['seconds']:.1f} s",
        )
    return Group(head, _overfit_table(result), Text(""))


def _overfit_table(result: dict[str, Any]) -> Table:
    table = Table(show_header=False, box=None, padding=(0, 2), pad_edge=False)
    table.add_column(style="dim")
    table.add_column()
    decode = ", ".join(f'"{d}"' for d in result["final_decode"]) or "-"
    distances = ", ".join(str(distance) for distance in result["edit_distance"])
    cer = result["cer"] if result["cer"] is not None else float("nan")
    table.add_row("final decode", escape(f"{decode}  (eval mode; edit distance {distances}, CER {cer:.2f})"))
    if result.get("modes_agree") is False:
        train = ", ".join(f'"{d}"' for d in result["train_decode"])
        table.add_row("train decode", escape(f"{train}  (the training steps' own output, train mode)"))
    loss = result["loss"]
    table.add_row("loss", f"{number(loss['first'])} → {number(loss['last'])} (best {number(loss['best'])} at step {loss['best_step']})")
    table.add_row("trained loss", escape(result["loss_function"]))
    if result.get("loss_source", "ctcdoctor") == "ctcdoctor":
        table.add_row("CTC path", escape(result["ctc_path"]))
    table.add_row("optimizer", escape(f"{result['optimizer']} on {result['device']}, seed {result['seed']}"))
    table.add_row("gradients", _gradients(result["clipping"]))
    parameters = result["parameters"]
    trained = f"{parameters.get('trainable', 0):,} of {parameters.get('total', 0):,} parameters trained"
    if parameters.get("freeze_except_head"):
        trained += f" (only the head: {result['head']})"
    table.add_row("parameters", escape(trained))
    if result.get("spikiness"):
        s = result["spikiness"]
        table.add_row(
            "spikiness",
            f"blank ratio {s['blank_ratio']:.2f}, spike width {s['spike_width']:.2f} frames, "
            f"peak p {s['peak_prob']:.2f}, entropy {s['entropy']:.2f} nats",
        )
    table.add_row("output", escape(result["normalisation"]))
    _probe_rows(table, result.get("lr_probe"))
    batch = result.get("batch")
    if batch and batch.get("verdict"):
        table.add_row("small batch", escape(batch["verdict"] + (". " + batch["advice"] if batch.get("advice") else "")))
    for note in result["notes"]:
        table.add_row("note", escape(note))
    if result.get("plot"):
        table.add_row("plot", escape(result["plot"]))
    return table


def _gradients(clipping: dict[str, Any]) -> str:
    norms = (f"norm {number(clipping.get('first_grad_norm'))} at the start, {number(clipping.get('last_grad_norm'))} at the end, "
             f"max {number(clipping.get('max_grad_norm'))}") if "first_grad_norm" in clipping else (
             f"median norm {number(clipping.get('median_grad_norm'))}, max {number(clipping.get('max_grad_norm'))}")
    if clipping.get("max_norm"):
        return f"{norms}; clipped at {clipping['max_norm']:g} on {clipping['clipped_steps']} of {clipping['steps']} steps"
    return f"{norms}; clipping off"


def _probe_rows(table: Table, probe: dict[str, Any] | None) -> None:
    if not probe:
        return
    for run in probe["runs"]:
        if run["fitted"]:
            words = f"fitted in {run['steps_to_fit']} steps, {run['seconds_to_fit']:.1f} s"
        else:
            words = f"did not fit in {run['steps']} steps ({run['verdict']}), best loss {number(run['best_loss'])}"
        table.add_row(f"lr {run['lr']:g}", escape(words + ("  ← this run" if run["lr"] == probe["base_lr"] else "")))
    table.add_row("LR probe", escape(f"{probe['conclusion']} (runs {probe['how']})"))  # how: "in sequence, ..." / "in 2 processes"


def scan(result: dict[str, Any], every: int | None = None) -> RenderableType:
    """The spare-frames histogram and the tightest samples (nothing when the lengths are unknown)."""
    parts: list[RenderableType] = []
    if result["spare_frames"].get("known"):
        parts += [_histogram(result), _worst(result)]
    lengths = _lengths_line(result)
    if lengths:
        parts.append(Text(lengths, style="dim"))
    drops = result.get("drop_list") or {}
    if drops.get("file"):
        parts.append(Text(_drop_line(drops, result.get("samples")), style="dim"))
    elif drops.get("refused"):
        parts.append(Text(drops["refused"], style="bold yellow"))
    if drops.get("clean_manifest"):
        clean = drops["clean_manifest"]
        parts.append(Text(f"clean manifest written to {clean['file']}: {clean['kept']:,} records kept", style="dim"))
    if result.get("plot"):
        parts.append(Text(f"plot written to {result['plot']}", style="dim"))
    return Group(*parts)


#: What each --drop reason drops, as the drop-list line says it.
DROP_WORDS = {"infeasible": "cannot be aligned", "empty": "empty target", "alphabet": "label outside the classes or alphabet",
              "tight": "tight length budget"}


def _drop_line(drops: dict[str, Any], samples: int | None) -> str:
    """`drop-list written to FILE: 3 of 64 samples to drop (checked: cannot be aligned, …)`, or `…: empty, no sample …`."""
    reasons = ", ".join(words for reason, words in DROP_WORDS.items() if reason in drops["reasons"])
    lengths = "; judged by the true lengths (target_lengths count the padding)" if drops.get("lengths") == "true" else ""
    if not drops["count"]:
        return f"drop-list written to {drops['file']}: empty, no sample to drop (checked: {reasons}){lengths}"
    total = f" of {samples:,}" if samples else ""
    return f"drop-list written to {drops['file']}: {drops['count']:,}{total} samples to drop (checked: {reasons}){lengths}"


def _lengths_line(result: dict[str, Any]) -> str:
    """Labels and output frames per sample: median, p99, max (percentiles are exact)."""
    pieces = []
    # With target_lengths that count the padding, the labels are those before it (as CTC001 and CTC002 count them).
    padding = " (before the padding that target_lengths count)" if result.get("padding_counted") else ""
    for key, name in (("label_lengths", "labels per sample" + padding), ("output_frames", "output frames per sample")):
        stats = result.get(key) or {}
        if stats.get("count"):
            pieces.append(f"{name}: median {stats['median']:g}, p99 {stats['p99']:g}, max {stats['max']}")
    return "; ".join(pieces)


def _histogram(result: dict[str, Any]) -> Table:
    bins = result["spare_frames"].get("histogram", [])
    title = "spare frames per sample (output frames − labels − repeats)"
    if result.get("lengths_rejected"):
        title += f", from measured output lengths: {result['lengths_rejected']} are wrong (CTC003)"
    table = Table(title=title, box=None, padding=(0, 1),
                  header_style="bold", title_justify="left", pad_edge=False)
    table.add_column("spare", justify="right")
    table.add_column("samples", justify="right")
    table.add_column("")
    top = max((item["count"] for item in bins), default=0) or 1
    for item in bins:
        label = str(item["from"]) if item["from"] == item["to"] else f"{item['from']}..{item['to']}"
        bar = "█" * max(1 if item["count"] else 0, round(BAR_WIDTH * item["count"] / top))
        table.add_row(label, f"{item['count']:,}", Text(bar, style="red" if item["to"] < 0 else "cyan"))
    return table


def _worst(result: dict[str, Any]) -> Table:
    table = Table(title="tightest samples", box=None, padding=(0, 1), header_style="bold", title_justify="left", pad_edge=False)
    columns = ("sample", "frames", "labels", "repeats", "needed", "spare")
    for column in columns:
        table.add_column(column, justify="right")
    for item in result["worst"]:
        table.add_row(*(str(item[key]) for key in columns))
    return table


def labels(result: dict[str, Any], every: int | None = None) -> RenderableType:
    """The longest labels of each file."""
    if "files" in result:
        return Group(*(labels(item) for item in result["files"]))
    counted = plural(int(result["lines"]), "label")
    title = f"{result['file']}: {counted}; longest" if result.get("file") else f"{counted}; longest"
    # Without --alphabet only the file itself is read: say so, or "no problems found" reads as "the symbols are fine".
    unchecked = "symbols not checked against an alphabet (give --alphabet)" if result.get("alphabet_size", 0) is None else None
    table = Table(title=title, caption=unchecked, caption_style="yellow", box=None, padding=(0, 2), header_style="bold",
                  pad_edge=False)
    table.add_column("line", justify="right")
    table.add_column("symbols", justify="right")
    table.add_column("text")
    for item in result["longest"]:
        table.add_row(str(item["line"]), str(item["length"]), escape(item["text"]))
    return table


def simulate(result: dict[str, Any], every: int | None = None) -> RenderableType:
    """The metrics every `every` steps (default: a tenth of the run), then when the decode first came right."""
    steps = result["steps"]
    every = every or max(1, steps // 10)
    table = Table(show_header=True, header_style="bold", box=None, padding=(0, 2), pad_edge=False)
    for column in ("step", "loss", "blank ratio", "non-blank mass", "spike width", "peak prob", "entropy", "decode"):
        table.add_column(column, justify="left" if column == "decode" else "right")
    for metrics in result.get("history", []):
        if metrics["step"] % every == 0 or metrics["step"] == steps:
            decoded = metrics["decoded"] if isinstance(metrics["decoded"], str) else " ".join(map(str, metrics["decoded"]))
            table.add_row(
                str(metrics["step"]), f"{metrics['loss']:.3f}", f"{metrics['blank_ratio']:.2f}", f"{metrics['nonblank_mass']:.2f}",
                _spike_width(metrics), f"{metrics['peak_prob']:.2f}", f"{metrics['entropy']:.2f}", escape(repr(decoded)),
            )
    first = result["first_correct_step"]
    verdict = Text(
        f"first correct greedy decode at step {first}" if first is not None else f"never decoded correctly in {steps} steps",
        style="bold green" if first is not None else "bold yellow",
    )
    parts: list[RenderableType] = [table, verdict]
    if result.get("plot"):
        parts.append(Text(f"figure written to {result['plot']}", style="dim"))
    return Group(*parts)


def _spike_width(metrics: dict[str, Any]) -> str:
    """The mean width of the non-blank runs; a step where blank wins every frame has no run, and no width ("—"),
    though the metrics carry 0.0 for it."""
    return "—" if metrics["blank_ratio"] >= 1.0 else f"{metrics['spike_width']:.2f}"


def logs(result: dict[str, Any], every: int | None = None) -> RenderableType:
    """Which log was read and what each curve did, then the notes (what was assumed or not seen)."""
    series = result.get("series", {})
    loss = series.get("loss", {})
    head = Text.assemble(("read ", "dim"), (result["source"], "bold"), f" ({result['format']} log")
    if loss.get("points"):
        values = f"{loss['points']:,} value{'' if loss['points'] == 1 else 's'}"
        head.append(f", {values} of {loss['tag']}, {result['unit']}s {loss.get('first_step', 0):,}-{loss.get('last_step', 0):,}")
    head.append(")")
    table = Table(show_header=True, header_style="bold", box=None, padding=(0, 2), pad_edge=False)
    for column in ("role", "tag", "values", "first", "last", "min", "max", "non-finite"):
        table.add_column(column, justify="left" if column in ("role", "tag") else "right")
    for role, item in series.items():
        role = role.split(":", 1)[0].replace("_", " ")  # "eval_cer:val_cer" -> "eval cer", "part:loss_ctc" -> "part"
        table.add_row(escape(role), escape(item["tag"]), f"{item['points']:,}", number(item.get("first")), number(item.get("last")),
                      number(item.get("min")), number(item.get("max")), str(item["non_finite"] or ""))
    # a run the check stopped before step 1 logged no value: no table of empty curves (a note says why)
    parts: list[RenderableType] = [head, table] if loss.get("points") else [head]
    if result.get("other_scalars"):
        parts.append(Text("also logged: " + ", ".join(result["other_scalars"][:20]), style="dim"))
    parts += [Text(f"note: {note}", style="yellow") for note in result.get("notes", [])]
    if result.get("plot"):
        parts.append(Text(f"plot written to {result['plot']}", style="dim"))
    return Group(*parts, Text(""))


def monitor(result: dict[str, Any], every: int | None = None) -> RenderableType:
    """Where the run got to, what its outputs looked like at the last evaluation, and the files written."""
    step = result.get("step")
    head = Text.assemble(("step ", "dim"), (f"{step:,}" if step is not None else "-", "bold"),
                         f" ({result['steps_seen']:,} steps seen, {result['evaluations']} evaluations every {result['every']})")
    if result.get("stopped"):
        head.append(f"; stopped at step {result['stopped']['step']:,} on {result['stopped']['code']}", style="bold red")
    parts: list[RenderableType] = [head]
    latest = result.get("latest")
    if latest:
        table = Table(show_header=False, box=None, padding=(0, 2), pad_edge=False)
        table.add_column(style="dim")
        table.add_column()
        rates = f"CER {number(latest.get('cer'))}" + (f", WER {number(latest['wer'])}" if "wer" in latest else "")
        table.add_row("decodes", rates + f", {number(latest.get('empty_rate'))} empty")
        table.add_row("blank", f"argmax {number(latest.get('blank_ratio'))}, probability {number(latest.get('blank_prob'))}, "
                      f"labels need {number(latest.get('label_density'))} of the frames")
        table.add_row("infeasible", f"{int(latest.get('infeasible', 0))} of {int(latest.get('evaluated', 0))} samples")
        for sample in latest.get("samples", []):
            table.add_row("sample", escape(f"{sample['target']!r} → {sample['decoded']!r}"))
        parts.append(table)
    files = {name: path for name, path in (result.get("files") or {}).items() if path}
    if files:
        parts.append(Text("files: " + ", ".join(f"{name} {path}" for name, path in files.items()), style="dim"))
    return Group(*parts, Text(""))


#: command -> renderer of its `result`.
RESULTS: dict[str, Callable[[dict[str, Any], int | None], RenderableType]] = {
    "check": check,
    "overfit": overfit,
    "scan": scan,
    "labels": labels,
    "simulate": simulate,
    "logs": logs,
    "monitor": monitor,
}
