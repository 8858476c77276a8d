"""When a decode that equals the target is still not a fit: a static error says the trained loss is not CTC's, or
the decode only matches by accident (the labels or the vocabulary are encoded wrongly), or only part of the output
was trained. The headline then says "decode matches, but ...: not a fit" and the JSON `fitted` is false."""
from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from ctcdoctor.findings import Finding

if TYPE_CHECKING:  # pragma: no cover
    from ctcdoctor.overfit.result import OverfitResult


def _axis(finding: Finding) -> str:
    found = re.search(r"over the (\w+) axis", finding.message)
    return f"over the {found.group(1)} axis" if found else "over the wrong axis"


MISTAKES = ("swapped_lengths", "layout", "wrong_blank", "probabilities", "raw_logits", "raw_input_lengths", "wrong_axis")
"""CTC030's named mistakes that change what is trained (a reduction or an unexplained constant offset do not)."""


def _mistake(finding: Finding) -> str:
    return str(finding.evidence.get("mistake")).replace("_", " ")


def _frames(finding: Finding, result: OverfitResult) -> str:
    decoded, total = result.decoded_frames, result.output_frames
    if not decoded or total is None or decoded[0] >= total:
        return "trained on the declared output lengths, not the frames the model outputs (CTC004)"
    return f"fitted on the {decoded[0]} declared frames only; the model outputs {total} (CTC004)"


LOADER = "[the loader's first batch] "
"""The prefix of the findings of the checks run on the loader's first batch (ctcdoctor.overfit.prepare)."""


def _elsewhere(finding: Finding, result: OverfitResult) -> bool:
    """A finding of the loader's first batch whose samples (its evidence) do not include the trained ones."""
    named = finding.evidence.get("samples")
    return (_where(finding) != "the sample" and isinstance(named, list)
            and not set(named) & set(result.samples))


LOADER_WORDS = ("the loader's first batch", "the labels of the loader's first batch")
"""How the reasons that come from the loader's first batch begin."""


def _where(finding: Finding) -> str:
    return "the loader's first batch" if finding.message.startswith(LOADER) else "the sample"


WORDS: dict[str, Callable[[Finding, OverfitResult], str]] = {
    "CTC024": lambda f, r: f"the output is normalised {_axis(f)} (CTC024)",
    "CTC020": lambda f, r: "the model outputs probabilities, not log-probabilities (CTC020)",
    "CTC030": lambda f, r: ("the loader's first batch shows that " if _where(f) != "the sample" else "")
                           + f"Setup.criterion does not compute CTC on the model output ({_mistake(f)}) (CTC030)",
    "CTC028": lambda f, r: f"{_where(f)} shows the model mixing samples along the batch axis (CTC028)",
    "CTC011": lambda f, r: ("the labels of the loader's first batch use the blank index as a letter (CTC011)"
                            if _elsewhere(f, r) else "the labels use the blank index as a letter (CTC011)"),
    "CTC014": lambda f, r: "the alphabet does not match the model's classes (CTC014)",
    "CTC101": lambda f, r: "config.pad_token_id is a letter, trained as the blank (CTC101)",
    "CTC107": lambda f, r: "the model's loss drops a letter from the transcripts (CTC107)",
    "CTC004": _frames,
    # The sample's own CTC010/CTC012 block training: here they come from the loader's first batch, whose samples the
    # real training sees; the chosen sample fits alone, but the set-up as the loader feeds it cannot learn.
    "CTC010": lambda f, r: f"{_where(f)} has labels outside the model's classes (CTC010)",
    "CTC012": lambda f, r: f"{_where(f)} has target_lengths that "
                           f"{'count the padding' if 'padding_counted' in f.evidence else 'do not match its targets'} (CTC012)",
    "CTC040": lambda f, r: f"{_where(f)} has NaN or Inf inputs (CTC040)",
    # A warning, but on the sample itself it voids the proof: a model fits a constant input by position alone.
    "CTC042": lambda f, r: "the sample's inputs are constant (CTC042): the model learned the labels by position, not "
                           "from the input",
}
"""Static errors that make a matching decode no fit, and how the headline says why (in this order)."""
BY_ACCIDENT = ("CTC011", "CTC014", "CTC101", "CTC107")
"""Encoding errors: the decode equals the target as the broken encoding spells it, not the transcript."""


def verdict(reasons: Sequence[dict[str, str]]) -> str:
    """The headline's and the plot title's ending after the reasons."""
    # Only an encoding error of the sample itself makes its decode an accident; one seen in other samples of the
    # loader's first batch leaves this sample's fit real (the set-up as a whole is still not ready).
    if any(item["code"] in BY_ACCIDENT and not item["words"].startswith(LOADER_WORDS) for item in reasons):
        return "the decode matches by accident, not a fit"
    if reasons and all(item["words"].startswith(LOADER_WORDS) for item in reasons):
        return "a fit of this sample alone, not of the set-up as its loader feeds it"
    return "not a fit"


def caveats(result: OverfitResult, findings: Sequence[Finding]) -> list[dict[str, str]]:
    """The reasons (code, words) a matching decode is not a fit, one per code, in WORDS' order."""
    errors = {item.code: item for item in findings
              if item.code in WORDS and (item.severity.value == "error" or (item.code == "CTC042" and _where(item) == "the sample"))}
    if "CTC030" in errors and errors["CTC030"].evidence.get("mistake") not in MISTAKES:
        errors.pop("CTC030")  # CTC plus a constant, or another reduction: the same gradients' direction, a real fit
    if "CTC024" in errors or "CTC020" in errors:
        errors.pop("CTC030", None)  # the criterion audit's mismatch is that same output, said once
    return [{"code": code, "words": say(errors[code], result)} for code, say in WORDS.items() if code in errors]


def qualify(result: OverfitResult, findings: Sequence[Finding]) -> None:
    """A decode that matched but is no fit: `fitted` false, `decode_matches` true, the reasons in `caveats`."""
    if not result.fitted:
        return
    reasons = caveats(result, findings)
    if not reasons:
        return
    if result.diagnosis == "CTC074":
        reasons.append({"code": "CTC074", "words": "the loss went negative: it is not CTC's (CTC074)"})
    result.caveats, result.decode_matches, result.fitted = reasons, True, False
    result.diagnosis = result.diagnosis or reasons[0]["code"]
