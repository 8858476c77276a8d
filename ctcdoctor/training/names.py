"""Which logged scalar plays which role, recognised by its name.

A tag is split into lowercase words (`Loss/train` -> loss, train; `val_cer` -> val, cer;
`lr-AdamW/pg1` -> lr, adamw, pg1). Words then decide:

* **held-out data**: val, valid, validation, eval, evaluation, dev, test (test last);
* **loss**: the word loss. The train loss is the loss tag with no other words than
  train/training/total/step/batch/epoch/avg/mean; other words (ctc, att, aux, kl, ...)
  make it a *part* of a summed loss. `_step` tags win over `_epoch` ones (more points);
* **learning rate**: lr, or learning + rate; **gradient norm**: grad(ient) + norm;
* **error rates**: cer, wer, per, ler, error_rate; **accuracy**: acc, accuracy;
* **blank ratio**: blank.

Any role can be chosen by tag instead (`loss=`, `eval_loss=`, `metric=`, `lr=`, `grad_norm=`).
"""
from __future__ import annotations

import re
from dataclasses import replace

import numpy as np

from ctcdoctor.errors import UserInputError
from ctcdoctor.training.series import Curves, Metric, Run, Series

HELD_OUT = ("val", "valid", "validation", "eval", "evaluation", "dev", "test")
TRAIN_WORDS = {"train", "training", "tr"}
PLAIN_LOSS_WORDS = {"loss", "total", "step", "batch", "epoch", "avg", "mean", "overall", "objective"}
IGNORED = {"runtime", "samples", "per", "second", "flos", "steps"}
ERROR_RATES = {"cer": "cer", "wer": "wer", "per": "per", "ler": "ler", "ter": "ler"}

_SPLIT = re.compile(r"[^a-z0-9]+")
_CAMEL = re.compile(r"(?<=[a-z])(?=[A-Z][a-z])")


def words(tag: str) -> list[str]:
    """`Loss/train` -> ['loss', 'train']; `eval_wer` -> ['eval', 'wer']; `valLoss` -> ['val', 'loss']."""
    return [word for word in _SPLIT.split(_CAMEL.sub("_", tag).lower()) if word]


def held_out(tag_words: list[str]) -> bool:
    return any(word in HELD_OUT for word in tag_words)


def is_throughput(tag_words: list[str]) -> bool:
    """eval_runtime, train_samples_per_second, total_flos: bookkeeping, never a curve."""
    return "runtime" in tag_words or "flos" in tag_words or ("per" in tag_words and "second" in tag_words)


def is_loss(tag_words: list[str]) -> bool:
    return "loss" in tag_words and not is_throughput(tag_words)


def is_lr(tag_words: list[str]) -> bool:
    return "lr" in tag_words or ("learning" in tag_words and "rate" in tag_words)


def is_grad_norm(tag_words: list[str]) -> bool:
    return any(word.startswith("grad") for word in tag_words) and "norm" in tag_words


def metric_kind(tag_words: list[str]) -> str | None:
    if is_throughput(tag_words) or is_loss(tag_words):
        return None
    for word in tag_words:
        if word in ERROR_RATES and not (word == "per" and "second" in tag_words):
            return ERROR_RATES[word]
    if "error" in tag_words and "rate" in tag_words:
        return "error"
    if "acc" in tag_words or "accuracy" in tag_words:
        return "accuracy"
    return None


def _qualifiers(tag_words: list[str]) -> set[str]:
    """Words of a loss tag that make it something other than the plain train/eval loss."""
    return set(tag_words) - PLAIN_LOSS_WORDS - TRAIN_WORDS - set(HELD_OUT) - {"loss"}


def _loss_rank(series: Series, tag_words: list[str]) -> tuple:
    """Lower is better: no qualifiers, then per-step rather than per-epoch, then most points."""
    return (len(_qualifiers(tag_words)), "epoch" in tag_words, -int(np.isfinite(series.values).sum()), -len(series))


def _eval_rank(series: Series, tag_words: list[str]) -> tuple:
    return ("test" in tag_words, len(_qualifiers(tag_words)), "epoch" not in tag_words and "step" in tag_words, -len(series))


ROLE_NOUNS = {"lr": "a learning rate", "grad_norm": "a gradient norm", "eval_loss": "an eval loss", "loss": "a loss"}


def _pick(run: Run, tag: str, role: str, fits=None) -> Series:
    """The series tagged `tag` (any case); else a usage error whose example is a tag that fits the role (`fits`
    judges a tag's words), never the loss offered as a learning rate."""
    if tag in run.scalars:
        return run.scalars[tag]
    lowered = {name.lower(): name for name in run.scalars}
    if tag.lower() in lowered:
        return run.scalars[lowered[tag.lower()]]
    option = f"--{role.replace('_', '-')}"
    suitable = [name for name in run.scalars if fits is None or fits(words(name))]
    hint = (f"Pass one of the tags found, e.g. {option} {suitable[0]!r}." if suitable else
            f"None of the tags found looks like {ROLE_NOUNS.get(role, 'a ' + role.replace('_', ' '))}: leave {option} out, "
            "or pass the tag your trainer logs it under.")
    raise UserInputError(f"{option} {tag!r}: no such scalar in {run.source}; found: {_listing(run)}", hint)


def _listing(run: Run, limit: int = 12) -> str:
    names = sorted(run.scalars)
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "") if names else "no scalars"


MONITOR_RATES = ("cer", "wer", "eval_cer", "eval_wer")
"""Error rates of the monitor's JSONL (ctcdoctor.training.monitor_format): fractions, whatever their size."""


def _as_fraction(series: Series, notes: list[str]) -> Series:
    """Error rates and accuracies logged in percent (WER 45.3) become fractions."""
    finite = series.values[np.isfinite(series.values)]
    if finite.size and finite.min() >= 0 and finite.max() > 2.0:
        notes.append(f"{series.tag} looks like a percentage (up to {finite.max():.3g}); read as a fraction")
        return replace(series, values=series.values / 100.0)
    return series


def _train_loss(run: Run, tagged: dict[str, list[str]], given: str | None) -> Series:
    if given:
        return _pick(run, given, "loss")
    candidates = [
        (tag, tag_words) for tag, tag_words in tagged.items()
        if is_loss(tag_words) and not held_out(tag_words) and len(run.scalars[tag])
    ]
    if not candidates:
        raise UserInputError(
            f"no training loss in {run.source} ({run.format} log): found {_listing(run)}",
            "Log the training loss under a name containing 'loss' (train_loss, loss, Loss/train), or pass --loss TAG.",
        )
    candidates.sort(key=lambda item: _loss_rank(run.scalars[item[0]], item[1]))
    return run.scalars[candidates[0][0]]


def _eval_loss(run: Run, tagged: dict[str, list[str]], given: str | None) -> Series | None:
    if given:
        return _pick(run, given, "eval_loss")
    held = [(tag, tag_words) for tag, tag_words in tagged.items() if is_loss(tag_words) and held_out(tag_words)]
    plain_held = [item for item in held if not _qualifiers(item[1])] or held
    plain_held.sort(key=lambda item: _eval_rank(run.scalars[item[0]], item[1]))
    return run.scalars[plain_held[0][0]] if plain_held else None


def _first(run: Run, tagged: dict[str, list[str]], chosen: set[str], predicate, given: str | None,
           role: str) -> Series | None:
    """The series chosen by tag, else the shortest-named unchosen tag the predicate accepts."""
    if given:
        return _pick(run, given, role, predicate)
    matches = sorted((tag for tag, tag_words in tagged.items() if tag not in chosen and predicate(tag_words)),
                     key=lambda tag: (len(tagged[tag]), -len(run.scalars[tag])))
    return run.scalars[matches[0]] if matches else None


def _metrics(run: Run, tagged: dict[str, list[str]], chosen: set[str], given: str | None,
             notes: list[str]) -> tuple[Metric, ...]:
    metrics: list[Metric] = []
    if given:
        series = _pick(run, given, "metric")
        kind = metric_kind(words(series.tag)) or "error"
        metrics.append(Metric(_as_fraction(series, notes), kind, held_out(words(series.tag))))
    else:
        for tag, tag_words in sorted(tagged.items()):
            found_kind = metric_kind(tag_words)
            if found_kind is not None and tag not in chosen and "blank" not in tag_words:
                series = run.scalars[tag]
                # the monitor writes its error rates as fractions: a CER of 25 is 25 (insertions), not 25%
                fraction = series if run.format == "monitor" and tag in MONITOR_RATES else _as_fraction(series, notes)
                metrics.append(Metric(fraction, found_kind, held_out(tag_words)))
    # eval metrics first: they are the ones a user judges a run by
    metrics.sort(key=lambda item: (not item.eval, item.kind == "accuracy", item.series.tag))
    return tuple(metrics)


def resolve(
    run: Run,
    *,
    loss: str | None = None,
    eval_loss: str | None = None,
    metric: str | None = None,
    lr: str | None = None,
    grad_norm: str | None = None,
) -> tuple[Curves, list[str]]:
    """Assign the run's scalars to roles; returns the curves and notes on what was assumed."""
    notes: list[str] = []
    tagged = {tag: words(tag) for tag in run.scalars}
    chosen = {value for value in (loss, eval_loss, metric, lr, grad_norm) if value}
    loss_series = _train_loss(run, tagged, loss)
    chosen.add(loss_series.tag)
    eval_series = _eval_loss(run, tagged, eval_loss)
    if eval_series is not None:
        chosen.add(eval_series.tag)
    lr_series = _first(run, tagged, chosen, is_lr, lr, "lr")
    grad_series = _first(run, tagged, chosen, is_grad_norm, grad_norm, "grad_norm")
    blank_series = _first(run, tagged, chosen, lambda tag_words: "blank" in tag_words and metric_kind(tag_words) is None,
                          None, "blank_ratio")
    metrics = _metrics(run, tagged, chosen, metric, notes)
    used = chosen | {series.tag for series in (lr_series, grad_series, blank_series) if series is not None}
    parts = tuple(
        run.scalars[tag] for tag, tag_words in sorted(tagged.items())
        if tag not in used and is_loss(tag_words) and not held_out(tag_words) and _qualifiers(tag_words)
    )
    curves = Curves(loss=loss_series, eval_loss=eval_series, lr=lr_series, grad_norm=grad_series, metrics=metrics,
                    blank_ratio=blank_series, parts=parts, unit=run.unit)
    return curves, notes
