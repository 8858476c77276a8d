"""Before training: take the samples, run the static checks on them, and build each run's model and optimizer.

`prepare` runs once per command (the samples and the static checks); `new_run` once per training run
(the main run, each learning rate of `--lr-probe`, a sample trained alone), each on a fresh copy of
the user's model, seeded the same way, so runs differ only in what the caller changed.
"""
from __future__ import annotations

import contextlib
import copy
import dataclasses
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ctcdoctor.errors import UserInputError
from ctcdoctor.findings import CheckResult, Finding
from ctcdoctor.load.samples import samples_in_batch_order
from ctcdoctor.overfit.hints import hints_from_loader
from ctcdoctor.overfit.result import BLOCKING, DEFAULT_LR, LOADER_CHECKS, STATIC_CHECKS, OverfitOptions

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from ctcdoctor.protocol import Setup


SENTENCEPIECE_SPACE = "\u2581"
"""SentencePiece's word-start mark ("\u2581the"): a space before the word when decoded."""


@dataclass(frozen=True)
class Symbols:
    """Class indices as text, as the user's tokenizer would decode them: the alphabet's symbols joined, or the
    indices when there is no usable alphabet."""

    alphabet: Any
    blank: int
    delimiter: str | None = None
    """The word delimiter token of a multi-character vocabulary ("|" in Hugging Face CTC vocabularies): a space."""

    def name(self, label: int) -> str:
        """One class's symbol as the alphabet spells it ("|", "[UNK]"), for labels and plot legends."""
        if self.alphabet is None:
            return str(int(label))
        try:
            return str(self.alphabet[int(label) - (int(label) > self.blank)])
        except (IndexError, TypeError):
            return str(int(label))

    def text(self, sequence: Sequence[int]) -> str:
        """The decode, as the vocabulary's tokenizer would write it: a character alphabet's symbols joined; tokens
        of a vocabulary with a word delimiter or SentencePiece word marks joined, those marks becoming spaces
        (Wav2Vec2CTCTokenizer: "the cat", not "t h e | c a t"); other multi-character tokens (phonemes) spaced."""
        if self.alphabet is None:
            return " ".join(str(int(c)) for c in sequence)
        try:
            symbols = [str(self.alphabet[int(c) - (int(c) > self.blank)]) for c in sequence]
        except (IndexError, TypeError):
            return " ".join(str(int(c)) for c in sequence)
        if not any(len(str(symbol)) > 1 for symbol in self.alphabet):
            return "".join(symbols)  # a character alphabet: every symbol is itself, "|" included
        if self.delimiter is None and not any(str(symbol).startswith(SENTENCEPIECE_SPACE) for symbol in self.alphabet):
            return " ".join(symbols)  # phonemes ("ow m aa"): no word mark, so a space between tokens, as phoneme tokenizers do
        words = [" " if symbol == self.delimiter else symbol.replace(SENTENCEPIECE_SPACE, " ") for symbol in symbols]
        return " ".join("".join(words).split())


def word_delimiter(setup: Setup, alphabet: Any) -> str | None:
    """The tokenizer's word delimiter token (Wav2Vec2CTCTokenizer.word_delimiter_token) when the vocabulary has
    it, else "|" when the vocabulary has it and no space; None for a character alphabet."""
    if alphabet is None or isinstance(alphabet, str):
        return None
    symbols = [str(symbol) for symbol in alphabet]
    for tokenizer in (setup.tokenizer, getattr(setup.processor, "tokenizer", None)):
        token = getattr(tokenizer, "word_delimiter_token", None)
        if isinstance(token, str) and token in symbols:
            return token
    return "|" if "|" in symbols and " " not in symbols else None


@dataclass(frozen=True)
class Problem:
    """The chosen samples, ready to train on (tensors on the training device)."""

    raw: Any
    """The samples' batch as the loader gives it, on the device: the user's criterion's second argument."""
    inputs: Any
    targets: torch.Tensor
    target_lengths: torch.Tensor
    input_lengths: torch.Tensor
    target_lists: tuple[tuple[int, ...], ...]
    lengths: torch.Tensor | None
    """Output lengths from the static checks; None: from the model's own, or every frame."""
    layout: str | None
    blank: int
    symbols: Symbols
    device: torch.device

    @property
    def size(self) -> int:
        return len(self.target_lists)


@dataclass
class Prepared:
    """What `prepare` found: the problem (None when training is skipped), the static findings and the facts for the report."""

    problem: Problem | None
    source: str
    targets: tuple[str, ...]
    findings: list[Finding]
    check_results: list[CheckResult]
    blocking: list[str]
    output_kind: str | None = None
    output_axis: int | None = None
    trained_kind: str | None = None
    """The kind of output training sees when it differs from the eval-mode `output_kind` (a softmax that runs in eval
    mode only, ctcdoctor.measure.outputs.TrainingView); None when they are the same."""
    trained_axis: int | None = None
    samples: tuple[int, ...] = ()
    """The chosen samples in the order the batch holds them (a collate may sort them: `samples_in_batch_order`)."""

    @property
    def loss_kind(self) -> tuple[str | None, int | None]:
        """The kind and axis of the output the trained loss sees."""
        return (self.trained_kind, self.trained_axis) if self.trained_kind is not None else (self.output_kind, self.output_axis)


@dataclass
class Run:
    """One training run's own objects: a fresh model copy, what trains, and the optimizer."""

    model: torch.nn.Module
    params: list[torch.nn.Parameter]
    optimizer: Any
    optimizer_name: str
    lr: float | None
    head: str | None
    parameters: dict[str, Any]
    frozen_modules: list[str]


def validate_options(options: OverfitOptions) -> None:
    """Settings that cannot train are usage errors (exit 2), not crashes inside the optimizer."""
    from ctcdoctor.overfit.result import LOSS_CHOICES

    if options.steps < 1:
        raise UserInputError(f"--steps {options.steps}: need at least one step", "Use --steps 1000 or so.")
    if options.eval_every < 1 or options.patience < 1:
        raise UserInputError("--eval-every and --patience must be at least 1", "Use the defaults (10 and 3).")
    if options.lr is not None and not (math.isfinite(options.lr) and options.lr > 0):
        raise UserInputError(f"--lr {options.lr:g}: a learning rate must be a finite number above 0", "Try --lr 1e-3.")
    if options.loss not in LOSS_CHOICES:
        raise UserInputError(f"--loss {options.loss}: choose one of {', '.join(LOSS_CHOICES)}", "Use --loss auto.")
    if options.loss == "criterion" and (options.alpha is not None or options.gamma):
        raise UserInputError("--alpha/--gamma train ctcdoctor's modified CTC, not Setup.criterion",
                             "Drop --loss criterion (or drop --alpha/--gamma).")


def _static_checks(setup: Setup, model: Any, raw: Any, samples: Sequence[int], prefixes: tuple[str, ...] | None):
    """The static checks on the samples (none when `prefixes` is None), and the context that measured them."""
    from ctcdoctor.engine import Context, Options, run_checks
    from ctcdoctor.registry import select_checks

    context = Context(dataclasses.replace(setup, model=model, loader=[raw]), Options(max_batches=1, scan_batches=1))
    # A loss divided by a fixed batch size divides the chosen samples' loss by the loader's, not by theirs (CTC030).
    context.put("loader_batch_size", lambda: _loader_batch_size(setup))
    # Which end of the classes is the blank shows in the labels the data use, which one sample may not (CTC030).
    context.put("label_classes", lambda: _label_classes(setup, context))
    if prefixes is None:
        return context, [], []
    findings, results = run_checks(context, select_checks(prefixes))
    prefix = f"[sample {samples[0]}] " if len(samples) == 1 else f"[samples {', '.join(map(str, samples))}] "
    relabelled = [
        dataclasses.replace(item, message=prefix + user_ids(item.message, samples), hint=user_ids(item.hint, samples),
                            evidence={**renumber(item.evidence, samples), "overfit_samples": list(samples)})
        for item in findings
    ]
    return context, relabelled, list(results)


def _loader_batch_size(setup: Setup) -> int | None:
    """The batch size of the user's loader: as configured (a DataLoader), else that of its first batch; None when
    that cannot be read."""
    from ctcdoctor.load.batches import iterate_batches, loader_batch_size

    size = loader_batch_size(setup.loader)
    if size is not None:
        return size
    try:
        return next(iter(iterate_batches(setup.loader, 1, setup.batch_axis))).size
    except Exception:  # the loader fails: the audit goes on without it
        return None


def _label_classes(setup: Setup, context: Any) -> frozenset[int]:
    """The classes the chosen samples and the loader's first batch use as labels."""
    from ctcdoctor.load.batches import iterate_batches, split_targets

    batches = list(context.batches)
    with contextlib.suppress(Exception):  # the loader fails: the samples' own labels stand
        batches.append(next(iter(iterate_batches(setup.loader, 1, setup.batch_axis))))
    return frozenset(int(label) for batch in batches for sequence in split_targets(batch)[0] for label in sequence.tolist())


_SAMPLES = re.compile(r"\b([Ss]amples?) (\d+(?:(?:, | and )\d+)*)")
_SAMPLE_KEYS = ("sample", "samples", "infeasible", "sample_ids")


def user_ids(text: str, samples: Sequence[int]) -> str:
    """The checks number the chosen samples by their position in overfit's own batch (0, 1, ...): the user's ids
    instead ("sample 0" -> "sample 43"), and no "batch 0", a batch the user never made."""
    def one(number: str) -> str:
        return str(samples[int(number)]) if int(number) < len(samples) else number

    text = _SAMPLES.sub(lambda found: found.group(1) + " " + re.sub(r"\d+", lambda n: one(n.group(0)), found.group(2)), text)
    text = re.sub(r"\b([Oo])n batch 0\b", lambda found: found.group(1) + "n the chosen sample" + ("s" if len(samples) > 1 else ""), text)
    return re.sub(r"\bbatch 0: ", "", text)


def renumber(value: Any, samples: Sequence[int], key: str = "") -> Any:
    """Evidence with positions under sample keys ("sample", "samples", ...) turned into the user's sample ids."""
    if isinstance(value, dict):
        return {k: renumber(v, samples, k) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(renumber(v, samples, key) for v in value)
    if key in _SAMPLE_KEYS and isinstance(value, int) and not isinstance(value, bool) and 0 <= value < len(samples):
        return samples[value]
    return value


OUTPUT_FORMAT = frozenset({"CTC020", "CTC021", "CTC024"})
"""Output-format findings on the sample: the loader's first batch does not audit the criterion again (CTC030)."""


def _loader_checks(setup: Setup, model: Any, found: Sequence[Finding]) -> tuple[list[Finding], list[CheckResult]]:
    """The encoding and configuration checks (LOADER_CHECKS) on the loader's first batch, as check runs them, for
    what the chosen samples alone cannot show; codes the samples already raised are not repeated."""
    from ctcdoctor.engine import Context, Options, run_checks
    from ctcdoctor.registry import select_checks

    already = {item.code for item in found}
    if already & OUTPUT_FORMAT:
        already.add("CTC030")  # the criterion audit would only restate the output's format, found on the sample
    wanted = [info for info in select_checks(LOADER_CHECKS) if info.code not in already]
    if not wanted:
        return [], []
    context = Context(dataclasses.replace(setup, model=model), Options(max_batches=1, scan_batches=1))
    try:
        findings, results = run_checks(context, wanted)
    except Exception:  # the loader or the model fails on a full batch: the sample's own checks stand
        return [], []
    shown = [dataclasses.replace(item, message="[the loader's first batch] " + item.message) for item in findings]
    return shown, [result for result in results if result.applicable]


def _shape(inputs: Any) -> str:
    shapes = [tuple(value.shape) for value in (inputs.values() if isinstance(inputs, dict) else [inputs]) if hasattr(value, "shape")]
    return ", ".join(str(shape) for shape in shapes) or type(inputs).__name__


def _single_sample_failure(setup: Setup, model: Any, raw: Any, samples: Sequence[int], findings: list[Finding]) -> list[Finding]:
    """A model that fails on the chosen sample(s) but runs on the loader's full first batch has a hard-coded batch size
    (view(16, ...)): say that, instead of "run one batch through the model by hand"."""
    import torch

    from ctcdoctor.load.batches import iterate_batches, normalise_batch
    from ctcdoctor.measure.model import run_model

    failed = [item for item in findings if item.code == "CTC999" and item.evidence.get("input") == "runs"]
    if not failed:
        return findings
    try:
        full = next(iter(iterate_batches(setup.loader, 1, setup.batch_axis)))
        if full.size <= len(samples):
            return findings
        with torch.no_grad():
            run_model(model, full)
    except Exception:  # it fails on the full batch too: the checks' own message stands
        return findings
    mine = normalise_batch(raw, 0, 0, setup.batch_axis)
    item = failed[0]
    error = item.message.split("): ", 1)[1] if "): " in item.message else item.message
    message = (f"{item.message.split('] ', 1)[0]}] the model fails on {'a single sample' if len(samples) == 1 else f'{len(samples)} samples'} "
               f"(inputs {_shape(mine.inputs)}) though it runs on the loader's full batch of {full.size} (inputs {_shape(full.inputs)}): "
               f"a hard-coded batch size? overfit trains on N={len(samples)}. {error}")
    hint = ("Take the batch size from the input instead of a constant (x.view(x.size(0), ...) or x.reshape(-1, ...) "
            "rather than view(16, ...)), so the model runs on any batch size; overfit trains on the chosen samples alone.")
    changed = dataclasses.replace(item, message=message, hint=hint,
                                  evidence={**item.evidence, "full_batch_size": full.size, "runs_on_full_batch": True})
    return [changed if other is item else other for other in findings]


def _zero_output(context: Any, layout: str | None, samples: tuple[int, ...],
                 findings: list[Finding]) -> tuple[list[Finding], bool]:
    """An output exactly 0 everywhere is log_softmax over an axis of size 1 (CTC024), not what the checks guessed;
    True when it is (training cannot move it: the gradient is 0)."""
    from ctcdoctor.overfit.degenerate import replace_misreadings, size_one_axis

    try:
        output = context.runs[0].output
    except Exception:  # the model failed: CTC999 says so
        return findings, False
    found = size_one_axis(output, layout, samples)
    return (findings, False) if found is None else (replace_misreadings(findings, found), True)


def _with_loader_checks(setup: Setup, model: Any, findings: list[Finding],
                        results: list[CheckResult]) -> tuple[list[Finding], list[CheckResult]]:
    """The sample's findings and check results with the loader checks' added; a loader check that found something
    replaces the same check's result on the sample."""
    more, more_results = _loader_checks(setup, model, findings)
    replaced = {result.code for result in more_results if result.status == "findings"}
    ran = {result.code for result in results}
    merged = [r for r in results if r.code not in replaced] + [r for r in more_results if r.code in replaced or r.code not in ran]
    return findings + more, merged


def _context_facts(context: Any) -> dict[str, Any]:
    """Layout, class count, output lengths and output kind as the static checks measured them (what they could)."""
    facts: dict[str, Any] = {}
    try:
        facts["layout"] = context.layout.layout
        facts["num_classes"] = context.num_classes
        facts["lengths"] = context.output_lengths.per_run[0] if context.output_lengths.known else None
        facts["kind"], facts["axis"] = context.output_kinds[0].kind, context.output_kinds[0].axis
        view = context.training_view
        if view.differs:
            facts["trained_kind"], facts["trained_axis"] = view.kinds[0].kind, view.kinds[0].axis
    except Exception:
        pass
    return facts


def uses_criterion(setup: Setup, options: OverfitOptions) -> bool:
    """Whether the run trains Setup.criterion (see LOSS_CHOICES)."""
    if setup.criterion is None or options.loss == "ctc":
        return False
    return options.loss == "criterion" or (options.alpha is None and not options.gamma)


CRITERION_KEEPS_TRAINING = ("unknown", "raises", "probabilities", "wrong_blank", "wrong_axis")
"""CTC030 errors that do not skip training: a value no known mistake explains (CTC plus a term of the user's own may
still train as meant); a criterion that raises (ctcdoctor's ctc_loss trains instead, with a note); probabilities, or a
blank the targets use as a label, whose loss goes below 0 and stops the run at loop.NEGATIVE_STEPS with its own
verdict (CTC074), which shows the consequence; and an output the model itself normalises over time or the batch,
passed as it is (wrong_axis: CTC024 judges the run's decode, "decode matches ... not a fit")."""


def _criterion_not_ctc(findings: list[Finding]) -> bool:
    """Whether the sample's own CTC030 is an error that names the mistake (a wrong blank, log_softmax over time, raw
    logits, swapped or raw lengths): the criterion that would train is then proved not to be CTC, and training it
    only shows how that mistake trains (1000 steps or more). Training is skipped, as for the other static errors;
    `--loss ctc` trains ctcdoctor's CTC on the model instead (the criterion is then not audited)."""
    return any(item.code == "CTC030" and item.severity.value == "error"
               and item.evidence.get("mistake") not in CRITERION_KEEPS_TRAINING for item in findings)


def _spelled(target_lists: tuple[tuple[int, ...], ...], symbols: int, blank: int) -> bool:
    """Whether the alphabet spells every target label (blank skipped): the labels were then encoded with it, and the
    class count the model disagrees with (CTC014) is the model's mistake, not the alphabet's, so the targets read as text."""
    return all(0 <= label <= symbols and label != blank for labels in target_lists for label in labels)


def _skipped_training(item: Finding) -> Finding:
    """CTC030 that skipped training: its fix says how to train anyway."""
    return dataclasses.replace(item, hint=item.hint + " overfit does not train a criterion that is not CTC: fix it and "
                               "rerun, or add --loss ctc to train ctcdoctor's CTC on the model meanwhile.")


def prepare(setup: Setup, options: OverfitOptions, phase: Callable[[str], None]) -> Prepared:
    """Take the samples and run the static checks on them; `problem` is None when a static error blocks training."""
    import torch

    from ctcdoctor.load.batches import normalise_batch, split_targets
    from ctcdoctor.load.device import resolve_device
    from ctcdoctor.measure.model import move_inputs

    if options.loss == "criterion" and setup.criterion is None:
        raise UserInputError("--loss criterion: the Setup has no criterion", "Give Setup.criterion, or use --loss auto.")
    device = resolve_device(options.device)
    phase("taking the sample(s)")
    raw, source, order = samples_in_batch_order(setup.loader, options.samples, setup.batch_axis)
    if order != tuple(options.samples):  # a collate that sorts the chosen samples: number them as the batch holds them
        options = dataclasses.replace(options, samples=order)
    batch = normalise_batch(raw, 0, 0, setup.batch_axis)
    sequences, problems = split_targets(batch)
    prefixes = STATIC_CHECKS + (("CTC03",) if uses_criterion(setup, options) else ()) if options.static_checks else None
    phase("static checks on the sample(s)" if prefixes else "measuring the output")
    torch.manual_seed(options.seed)
    model = copy.deepcopy(setup.model).to(device)
    context, findings, results = _static_checks(setup, model, raw, options.samples, prefixes)
    facts = {"layout": setup.layout, **_context_facts(context)}
    findings, zero = _zero_output(context, facts.get("layout"), options.samples, findings)
    findings = _single_sample_failure(setup, model, raw, options.samples, findings)
    blocking = sorted({item.code for item in findings if item.code in BLOCKING and item.severity.value == "error"}
                      | ({"CTC024"} if zero else set()) | ({"CTC030"} if _criterion_not_ctc(findings) else set()))
    if "CTC030" in blocking:
        findings = [_skipped_training(item) if item.code == "CTC030" else item for item in findings]
    if prefixes is not None:
        findings = hints_from_loader(setup, model, findings, options.samples)
        phase("checking the configuration on the loader's first batch")
        findings, results = _with_loader_checks(setup, model, findings, results)
    alphabet = setup.alphabet
    target_lists = tuple(tuple(int(c) for c in sequence.tolist()) for sequence in sequences)
    if (facts.get("num_classes") is not None and alphabet is not None and len(alphabet) + 1 != facts["num_classes"]
            and not _spelled(target_lists, len(alphabet), setup.blank)):
        alphabet = None  # CTC014 reports it; decode to indices rather than mislabel labels the alphabet does not cover
    symbols = Symbols(alphabet, setup.blank, word_delimiter(setup, alphabet))
    if problems and "CTC012" not in blocking:
        blocking.append("CTC012")
    problem = None if blocking else Problem(
        raw=move_inputs(raw, device), inputs=move_inputs(batch.inputs, device), targets=batch.targets.to(device),
        target_lengths=batch.target_lengths.to(device), input_lengths=batch.input_lengths, target_lists=target_lists,
        lengths=None if facts.get("lengths") is None else facts["lengths"].to(device), layout=facts.get("layout"),
        blank=setup.blank, symbols=symbols, device=device,
    )
    return Prepared(problem, source, tuple(symbols.text(t) for t in target_lists), findings, results, blocking,
                    facts.get("kind"), facts.get("axis"), facts.get("trained_kind"), facts.get("trained_axis"),
                    tuple(options.samples))


# ----------------------------------------------------------------------------- one run's model and optimizer


def find_head(model: torch.nn.Module, inputs: Any) -> str:
    """Name of the final layer with parameters: the last module owning parameters to finish its
    forward on `inputs` (so definition order does not matter), or the last such module in
    `model.modules()` order when the forward cannot be traced."""
    from ctcdoctor.measure.model import call_model, evaluating, execution_order

    owners = [name for name, module in model.named_modules() if next(module.parameters(recurse=False), None) is not None]
    if not owners:
        raise UserInputError("--freeze-except-head: the model has no parameters", "Drop --freeze-except-head.")
    finished: list[str] = []
    try:
        with execution_order(model, when="post") as order, evaluating(model):
            call_model(model, inputs)
        finished = order
    except Exception:
        finished = []
    return finished[-1] if finished else owners[-1]


def _last_parameter_owner(model: torch.nn.Module) -> str | None:
    owners = [name for name, module in model.named_modules() if next(module.parameters(recurse=False), None) is not None]
    return owners[-1] if owners else None


def _describe_optimizer(optimizer: Any) -> tuple[str, float | None]:
    groups = getattr(optimizer, "param_groups", None) or [{}]
    lr = groups[0].get("lr")
    try:
        lr = float(lr) if lr is not None else None
    except (TypeError, ValueError):
        lr = None
    return f"{type(optimizer).__name__}(lr={lr:g})" if lr is not None else type(optimizer).__name__, lr


def build_optimizer(setup: Setup, params: list[Any], lr: float | None) -> Any:
    """Setup.optimizer(params) (its learning rate replaced by `lr` when given), else Adam(lr or 1e-3):
    torch.optim.Adam's update without torch.optim's torch._dynamo import (`adam`)."""
    from ctcdoctor.overfit.adam import Adam

    if setup.optimizer is None:
        return Adam(params, lr=lr if lr is not None else DEFAULT_LR)
    try:
        optimizer = setup.optimizer(params)
    except Exception as error:
        raise UserInputError(f"Setup.optimizer(params) raised {type(error).__name__}: {error}",
                             "Make it return a torch.optim.Optimizer for the given parameters.") from error
    if not (hasattr(optimizer, "step") and hasattr(optimizer, "zero_grad") and getattr(optimizer, "param_groups", None)):
        raise UserInputError(
            f"Setup.optimizer(params) returned {type(optimizer).__name__ if optimizer is not None else 'None'}, "
            "not an optimizer",
            "Return the optimizer: optimizer=lambda params: torch.optim.Adam(params, lr=1e-3).",
        )
    if lr is not None:
        for group in optimizer.param_groups:
            group["lr"] = lr
    return optimizer


def _trainable(model: torch.nn.Module, problem: Problem, freeze_except_head: bool) -> tuple[str | None, list[Any]]:
    head = None
    if freeze_except_head:
        head = find_head(model, problem.inputs)
        for name, parameter in model.named_parameters():
            if not (name == head or name.startswith(head + ".")) and head != "":
                parameter.requires_grad_(False)
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise UserInputError(
            "no parameter of the model requires a gradient" + (f" (--freeze-except-head kept only {head!r})" if head else ""),
            "Unfreeze at least the output layer (requires_grad=True).",
        )
    return head, params


def new_run(setup: Setup, problem: Problem, options: OverfitOptions) -> Run:
    """A fresh, seeded copy of the model on the device, what of it trains, and its optimizer."""
    import torch

    torch.manual_seed(options.seed)
    model = copy.deepcopy(setup.model).to(problem.device)
    head, params = _trainable(model, problem, options.freeze_except_head)
    every = list(model.parameters())
    parameters = {
        "total": sum(p.numel() for p in every),
        "trainable": sum(p.numel() for p in params),
        "frozen": sum(p.numel() for p in every if not p.requires_grad),
        "freeze_except_head": options.freeze_except_head,
    }
    frozen = sorted({name.rsplit(".", 1)[0] if "." in name else name for name, p in model.named_parameters() if not p.requires_grad})
    optimizer = build_optimizer(setup, params, options.lr)
    name, lr = _describe_optimizer(optimizer)
    return Run(model, params, optimizer, name, lr, head or _last_parameter_owner(model), parameters, frozen)
