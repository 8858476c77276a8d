"""The overfit test: can the model memorise one sample (or a small batch)? If not, why not?

Every CTC guide says it first: "if it cannot overfit one sample, the set-up is broken".
`run_overfit` makes that one call and explains a failure:

1. take the sample(s) and run the static length, label and output checks on them (and the
   criterion audit, CTC03x, when the criterion trains); an error that makes training meaningless
   (an infeasible length, a label out of range, NaN outputs, ...) is reported and training is
   skipped (`ctcdoctor.overfit.prepare`);
2. train a deep copy of the model (the user's model is never touched) in train mode with
   `Setup.optimizer` or Adam(1e-3), gradient clipping, and the user's own `Setup.criterion`
   when given, else ctcdoctor's `ctc_loss` (`ctcdoctor.overfit.loss`);
3. every `eval_every` steps decode greedily in eval mode, as inference runs, and stop once the
   decode equals the target at `patience` evaluations in a row (`ctcdoctor.overfit.loop`);
4. after training, decode in eval mode once more and compare with the training steps' own decode,
   naming what in the model explains a difference (`ctcdoctor.overfit.final`);
5. with `--lr-probe`, train again at lr/10 and 10·lr (`ctcdoctor.overfit.probe`); with several
   samples that do not fit, train the worst one alone (`ctcdoctor.overfit.several`);
6. on failure, or a negative loss, diagnose (`ctcdoctor.overfit.diagnose`: CTC070-CTC074).

No printing here: progress goes through callbacks, results are data. Torch is imported inside the
functions (the CLI imports this module).
"""
from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ctcdoctor.errors import UserInputError
from ctcdoctor.findings import CheckResult, Finding
from ctcdoctor.load.limits import armed_timeout, cut_short, doing, stoppable
from ctcdoctor.overfit.caveats import qualify
from ctcdoctor.overfit.diagnose import diagnose, explain_failure
from ctcdoctor.overfit.explain import still_falling
from ctcdoctor.overfit.extend import blocks_extension, cut_note, extension_note
from ctcdoctor.overfit.final import compare_modes, final_state, same_weights_train_decode
from ctcdoctor.overfit.loop import Hooks, Log, train
from ctcdoctor.overfit.loss import choose_loss, divided_loss_note, weights_shared
from ctcdoctor.overfit.negative import negative_loss
from ctcdoctor.overfit.prepare import Prepared, Run, find_head, new_run, prepare, validate_options
from ctcdoctor.overfit.result import OverfitOptions, OverfitResult, Progress

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from ctcdoctor.protocol import Setup

__all__ = ["ctc_path", "find_head", "normalisation_note", "run_overfit", "train_alone"]


def ctc_path(log_probs: torch.Tensor) -> str:
    """Which CTC implementation `ctcdoctor.ctc.ctc_loss` runs on `log_probs` (asked of its own dispatch).

    A `CTCDOCTOR_KERNEL` setting that cannot run here is a usage error (exit 2).
    """
    from ctcdoctor.ctc.dispatch import describe_path

    try:
        return describe_path(log_probs)
    except (RuntimeError, ValueError) as error:
        raise UserInputError(str(error), "Unset CTCDOCTOR_KERNEL, or set it to a path that can run on this device.") from None


def hf_model_name(setup: Setup) -> str | None:
    """The Hugging Face model's class name ("Wav2Vec2ForCTC") when the Setup wraps one (setup_from_hf), else None."""
    from ctcdoctor.frameworks.hf_model import HFCTCModel

    return type(setup.model.model).__name__ if isinstance(setup.model, HFCTCModel) else None


def own_criterion(setup: Setup, options: OverfitOptions) -> tuple[Any, str]:
    """The criterion overfit may train, and a note: a Hugging Face model's own loss (setup_from_hf's default criterion)
    runs the model again on the batch instead of using the output, so ctcdoctor's ctc_loss trains in its place, on the
    same log_softmax of the logits; unless --loss criterion asks for it."""
    from ctcdoctor.frameworks.hf_model import HFModelLoss, blank_attribute

    if not isinstance(setup.criterion, HFModelLoss) or options.loss == "criterion":
        return setup.criterion, ""
    name = hf_model_name(setup) or "the model"
    return None, (f"no Setup.criterion given: {name}'s own loss (labels=...) runs the model again, so overfit trains "
                  f"ctcdoctor's ctc_loss on log_softmax of its logits, as that loss computes it "
                  f"(blank = config.{blank_attribute(setup.criterion.model)})")


def normalisation_note(kind: str | None, axis: int | None, criterion: bool = False, hf_model: str | None = None) -> str:
    """What the trained loss makes of this model's output kind."""
    if hf_model is not None and not criterion:
        return (f"{hf_model} emits raw logits; overfit takes log_softmax over the classes, as the model's own CTC loss does: "
                "trained as Hugging Face trains it")
    if criterion:
        return "trained with your own Setup.criterion on the output as the model returns it: judged exactly as written"
    if kind == "log_probs" and axis == 2:
        return "the model emits log-probabilities; log_softmax leaves them unchanged: trained exactly as written"
    if kind == "logits":
        return "the model emits raw logits (CTC021); overfit applies log_softmax over classes, i.e. trains with that fix applied"
    if kind == "probs" and axis == 2:
        return (
            "the model emits probabilities (CTC020); overfit trains on log_softmax of them as written, which caps "
            "every frame's confidence: a failure here is that bug, not your data"
        )
    if kind in ("log_probs", "probs"):
        return (
            "the model normalises over the wrong axis (CTC024); overfit applies log_softmax over classes on top, which "
            "partly hides the bug: fix CTC024 whatever the overfit says"
        )
    return "overfit trains CTC on log_softmax over the class axis of the model output"


def _blank_bias_gap(model: torch.nn.Module, head: str | None, blank: int, num_classes: int) -> float | None:
    """How many nats the head's bias favours blank over the mean other class (None if unknown)."""
    if head is None:
        return None
    bias = getattr(dict(model.named_modules()).get(head), "bias", None)
    if bias is None or bias.dim() != 1 or bias.shape[0] != num_classes or num_classes < 2:
        return None
    values = bias.detach().double().cpu()
    others = (values.sum() - values[blank]) / (num_classes - 1)
    return float(values[blank] - others)


@dataclass
class Trained:
    """One finished run: its result and what the diagnosis needs beyond it."""

    result: OverfitResult
    context: dict[str, Any]


def _skeleton(prepared: Prepared, options: OverfitOptions) -> OverfitResult:
    import torch

    from ctcdoctor.load.device import resolve_device

    device = resolve_device(options.device)
    return OverfitResult(samples=tuple(options.samples), source=prepared.source, targets=prepared.targets,
                         seed=options.seed, device=str(device), ctc_path=ctc_path(torch.zeros(1, 1, 2, device=device)))


def _record(result: OverfitResult, run: Run, log: Log, options: OverfitOptions) -> None:
    """The training numbers into the result."""
    from ctcdoctor.overfit.curve import median

    result.losses, result.norms, result.evaluations = log.losses, log.norms, log.evaluations
    if log.timed_out:  # judged on the steps run, and said so (provisional while the loss still fell)
        falling = still_falling(result.loss_summary())
        result.timed_out = {"timeout": armed_timeout(), "step": log.steps, "budget": log.budget, "still_falling": falling}
        log.stopped_early = cut_note(log.steps, log.budget, armed_timeout(), falling)
    result.steps_run, result.seconds, result.trained = log.steps, log.seconds, True
    result.nonfinite_step, result.stopped_early = log.nonfinite_step, log.stopped_early
    result.fitted = result.decode_matches = log.streak >= options.patience
    if result.fitted:
        result.steps_to_fit, result.seconds_to_fit = log.fit_step, log.fit_seconds
    result.first_exact = tuple(log.first_exact)
    result.train_decode = tuple(result.evaluations[-1].train_decodes) if result.evaluations else ()
    result.optimizer, result.lr, result.head, result.parameters = run.optimizer_name, run.lr, run.head, run.parameters
    result.loss_source, result.loss_function = log.loss.source, log.loss.describe()
    if log.loss.source == "criterion":
        result.ctc_path = "inside Setup.criterion (its own CTC call)"
    finite = [value for value in log.norms if value == value and value != float("inf")]
    clip = float(options.clip or 0.0)
    result.clipping = {
        "max_norm": clip, "steps": len(log.norms),
        "clipped_steps": sum(1 for v in log.norms if clip > 0 and (v != v or v > clip)),
        "median_grad_norm": median(finite) if finite else None, "max_grad_norm": max(finite) if finite else None,
        "first_grad_norm": median(finite[:10]) if finite else None,
        "last_grad_norm": median(finite[-max(10, len(finite) // 4):]) if finite else None,
    }
    result.budget = {"steps": options.steps, "extended_to": log.budget if log.extensions else None, "limit": options.extend_to}
    result.notes.extend(note for note in (log.loss.note, log.lengths_note, log.eval_failed, log.stopped_early,
                                          extension_note(log.extensions, log.budget, options.extend_to)) if note)


def train_once(setup: Setup, prepared: Prepared, options: OverfitOptions, hooks: Hooks,
               phase: Callable[[str], None]) -> Trained:
    """Train a fresh copy of the model on the prepared samples and measure the result (no verdict yet)."""
    problem = prepared.problem
    assert problem is not None, "training was skipped"
    with doing("preparing training: copying the model, building the optimizer"):
        result = _skeleton(prepared, options)
        run = new_run(setup, problem, options)
        criterion, why = own_criterion(setup, options)
        loss = choose_loss(criterion, options.loss, options.alpha, options.gamma)
        loss = dataclasses.replace(loss, note=loss.note or why)
    phase("training")
    # The command's own run: a --timeout that lands here cuts the training and the run is still reported (loop.train)
    with stoppable() if hooks.stoppable else contextlib.nullcontext():
        with weights_shared(setup.model, run.model, loss.criterion):  # a criterion that uses the model's own modules
            log = train(run, problem, loss, options, hooks)  # each step says which it is (see loop.train)
        _record(result, run, log, options)
        result.normalisation = normalisation_note(*prepared.loss_kind, log.loss.source == "criterion", hf_model_name(setup))
        if prepared.trained_kind is not None and result.normalisation.startswith("the model emits"):
            # A softmax that runs in eval mode only (CTC020's note): the loss sees the train-mode output.
            result.normalisation = "in train mode " + result.normalisation
        phase("final decode")
        with doing(f"the final decode (eval mode) after training step {log.steps}"):
            final_state(result, run, problem, log, prepared.output_kind, prepared.output_axis, options.alpha)
            same_weights_train_decode(result, run, problem, log)  # not the step's decode from before its update
            compare_modes(result, run.model)
    context = {"blank_bias_gap": _blank_bias_gap(run.model, run.head, problem.blank, log.classes),
               "frozen_modules": run.frozen_modules, "output_kind": prepared.loss_kind[0], "blank": problem.blank,
               "target_labels": sorted({label for labels in problem.target_lists for label in labels}),
               "patience": options.patience}
    return Trained(result, context)


def train_alone(setup: Setup, options: OverfitOptions) -> tuple[OverfitResult, str | None]:
    """Take the samples and train without static checks, probe or batch analysis: (result, verdict words or None)."""
    quiet: Callable[[str], None] = lambda text: None  # noqa: E731
    prepared = prepare(setup, dataclasses.replace(options, static_checks=False), quiet)
    if prepared.problem is None:
        return OverfitResult(samples=tuple(options.samples), source=prepared.source, targets=prepared.targets), "not trained"
    trained = train_once(setup, prepared, options, Hooks(), quiet)
    if trained.result.fitted:
        return trained.result, None
    verdict = diagnose(trained.result, prepared.findings, trained.context)
    return trained.result, f"{verdict.code} {verdict.kind.replace('_', ' ')}"


# ----------------------------------------------------------------------------- the command's entry


def run_overfit(
    setup: Setup,
    spec: str,
    options: OverfitOptions,
    on_progress: Callable[[Progress], None] | None = None,
    on_phase: Callable[[str], None] | None = None,
    *,
    loadable: bool = False,
) -> tuple[list[Finding], list[CheckResult], OverfitResult]:
    """Run the overfit test. Returns (findings, static check results, result).

    `loadable`: `spec` names a module that a fresh process can load again (the command line's
    SPEC), so the LR probe may run in separate processes.
    """
    import torch

    from ctcdoctor.load.state import seeded, torch_threads

    validate_options(options)
    threads = options.threads if options.threads and not str(options.device).lower().startswith("cuda") else None
    # seeded(None): seeding for the runs must not change the caller's random states (torch, numpy, random).
    with seeded(None), torch_threads(threads), torch.enable_grad():
        return _run(setup, spec if loadable else None, options, Hooks(on_progress, stoppable=True),
                    on_phase or (lambda text: None))


def _run(setup: Setup, spec: str | None, options: OverfitOptions, hooks: Hooks,
         phase: Callable[[str], None]) -> tuple[list[Finding], list[CheckResult], OverfitResult]:
    with doing("taking the sample(s) and running the static checks on them"):
        prepared = prepare(setup, options, phase)
    if prepared.samples and prepared.samples != tuple(options.samples):  # the batch holds them in another order
        options = dataclasses.replace(options, samples=prepared.samples)
    if blocks_extension(prepared.findings):  # a named cause: report it at the budget, not after 4x the steps
        options = dataclasses.replace(options, extend_to=None)
    if prepared.problem is None:
        result = _skeleton(prepared, options)
        result.skipped_because, result.diagnosis = tuple(prepared.blocking), prepared.blocking[0]
        result.notes.append(f"training skipped: {', '.join(prepared.blocking)} make(s) the overfit meaningless on this "
                            "sample; fix it first")
        return list(prepared.findings), list(prepared.check_results), result
    trained = train_once(setup, prepared, options, hooks, phase)
    result, findings = trained.result, divided_loss_note(list(prepared.findings), trained.result)
    # the probe's runs and a sample trained alone get the main run's final budget, fixed: comparable runs
    options = dataclasses.replace(options, steps=result.budget.get("extended_to") or options.steps, extend_to=None)
    # a negative loss is reported even when the decode fits: the criterion is not computing CTC (CTC074)
    verdict = None if result.fitted and negative_loss(result.losses) is None else diagnose(result, findings, trained.context)
    if cut_short() is not None:  # --timeout ran out: report this run now, without the extra runs
        skipped = [words for wanted, words in ((options.lr_probe, "the LR probe (--lr-probe)"),
                                               (len(options.samples) > 1 and verdict is not None and options.alone_check,
                                                "training the worst sample alone")) if wanted]
        if skipped:
            result.notes.append(f"skipped after --timeout ran out: {' and '.join(skipped)}")
        options = dataclasses.replace(options, lr_probe=False, alone_check=False)
    if options.lr_probe:
        _probe(setup, spec, prepared, options, trained, verdict, phase)
    if len(options.samples) > 1:
        _several(setup, prepared, options, trained, verdict, phase)
    if verdict is not None:
        verdict = diagnose(result, findings, trained.context)  # the probe and the batch analysis may change it
        result.diagnosis = verdict.code
        findings.append(explain_failure(verdict, result, findings, trained.context))
    qualify(result, findings)  # a matching decode under a static error that makes it no fit
    return findings, list(prepared.check_results), result


def _probe(setup: Setup, spec: str | None, prepared: Prepared, options: OverfitOptions, trained: Trained,
           verdict: Any, phase: Callable[[str], None]) -> None:
    from ctcdoctor.overfit.probe import probe_run, run_probe

    def in_process(item: OverfitOptions) -> Any:
        with doing(f"the LR probe at lr {item.lr:g}"):
            other = train_once(setup, prepared, item, Hooks(), lambda text: None)
        found = None if other.result.fitted else diagnose(other.result, prepared.findings, other.context)
        return probe_run(other.result, None if found is None else f"{found.code} {found.kind.replace('_', ' ')}")

    words = None if verdict is None else f"{verdict.code} {verdict.kind.replace('_', ' ')}"
    with doing("the LR probe"):
        trained.result.lr_probe = run_probe(trained.result, words, options, spec, in_process, phase)


def _several(setup: Setup, prepared: Prepared, options: OverfitOptions, trained: Trained, verdict: Any,
             phase: Callable[[str], None]) -> None:
    """The small-batch summary; when the batch did not fit (and not for a divergence or a collapse), the worst sample alone."""
    from ctcdoctor.overfit import several

    result = trained.result
    problem = prepared.problem
    assert problem is not None
    result.batch = several.summarise(result, [int(v) for v in problem.input_lengths.tolist()])
    alone, alone_verdict = None, None
    worst = several.worst_sample(result)
    if verdict is not None and verdict.code in ("CTC070", "CTC073") and options.alone_check and worst is not None:
        phase(f"training sample {worst} alone")
        with doing(f"training sample {worst} alone"):
            alone, alone_verdict = train_alone(setup, dataclasses.replace(options, samples=(worst,), lr_probe=False))
    several.conclude(result, alone, alone_verdict)
