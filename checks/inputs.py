"""Input checks: are the features the model sees finite, varied and normalised?"""
from __future__ import annotations

from typing import TYPE_CHECKING

from ctcdoctor.registry import SkipCheck, check, finding
from ctcdoctor.render.phrases import numbered, of_total

if TYPE_CHECKING:  # pragma: no cover
    from ctcdoctor.findings import Finding
    from ctcdoctor.frameworks.hf_facts import HFFacts
    from ctcdoctor.measure.inputs import InputStats
    from ctcdoctor.measure.normaliser import FirstLayer, InputNormaliser

#: |mean| above this (in units of the data) reads as "not centred".
MEAN_LIMIT = 3.0
#: A spread above this reads as "not scaled".
STD_LIMIT = 10.0
#: Raw pixel data: whole numbers reaching above this.
PIXEL_MAX = 10.0


def _measured(input_stats: list[InputStats]) -> list[InputStats]:
    """The statistics to judge, or a skip saying why there are none (inputs that are not tensors)."""
    if not input_stats:
        raise SkipCheck("the inputs hold no floating-point tensor with a batch axis to measure")
    return input_stats


def _prefix(stats: InputStats) -> str:
    """Structured inputs: say which tensor (`inputs['features']: ...`)."""
    return f"{stats.name}: " if stats.structured else ""


def _evidence(stats: InputStats, evidence: dict) -> dict:
    return {**evidence, "tensor": stats.name} if stats.structured else evidence


@check("CTC040", "error", "inputs contain NaN or Inf")
def nonfinite_inputs(input_stats: list[InputStats]) -> list[Finding]:
    """
    **What it checks.** NaN and Inf values in the inputs, within each sample's valid length.
    Structured inputs (a tuple such as `(padded, lengths)`, a mapping, a named tuple, a
    `PackedSequence`) are measured tensor by tensor: every floating-point tensor whose first
    axis is the batch and that holds more than one number per sample (integer tensors, 0/1
    masks and per-sample scalars such as float lengths are left out). CTC041 and CTC042
    judge the same tensors.

    **Why it matters.** A single NaN input turns the output, the loss and every gradient
    into NaN; after one optimizer step all weights are NaN.

    **Example.** Per-utterance normalisation divides by the standard deviation of a silent
    clip: `error CTC040 3 of 64 samples contain NaN or Inf (12 NaN, 0 Inf): samples 5, 17, 40.`

    **Fix.** Guard divisions (`x / (std + 1e-5)`), clip `log(0)` (`log(x + 1e-6)`), and
    filter corrupt files in the dataset.
    """
    return [
        finding(
            "CTC040",
            f"{_prefix(stats)}{of_total(len(stats.nonfinite_samples), stats.samples, 'sample', 'contains', 'contain')} NaN or Inf "
            f"({stats.nan} NaN, {stats.inf} Inf): {numbered(list(stats.nonfinite_samples), 'sample')}.",
            "Guard the feature pipeline: x / (std + 1e-5), log(x + 1e-6); drop corrupt samples.",
            _evidence(stats, {"samples": list(stats.nonfinite_samples[:20]), "nan": stats.nan, "inf": stats.inf}),
        )
        for stats in _measured(input_stats) if stats.nonfinite_samples
    ]


@check("CTC041", "warning", "inputs not normalised", variants=(("info", "inputs not normalised, but the model normalises them"),))
def unnormalised_inputs(
    input_stats: list[InputStats], hf: HFFacts | None = None, input_normaliser: FirstLayer | None = None
) -> list[Finding]:
    """
    **What it checks.** The mean and spread of the inputs over the valid regions of the
    scanned samples. Thresholds: whole-number data above 10 reads as raw 0–255 pixels; a
    mean below −3 or above 3, or a standard deviation above 10, reads as unnormalised.

    **Why it matters.** Large or far-off-centre inputs saturate the first layers and make
    the first updates huge: the loss jumps around (a speech model whose loss went
    2000 → 180 → 430 on log-spectrograms near −40) or the model settles on all-blank output.

    **Example.** Images fed as 0–255 floats: `warning CTC041 inputs look like raw 0-255
    pixel values (range 0 to 255, mean 187).` Log-spectrograms: `warning CTC041 inputs have
    mean -38.2 and std 9.1: far below zero, as unnormalised log-spectrograms are.`

    When the first layer the model runs on its input is a normalisation layer (LayerNorm,
    BatchNorm*, InstanceNorm*, GroupNorm), the model normalises the input itself: the finding
    is then info, naming that layer, not a warning.

    **Fix.** Scale images to [0, 1] (`x / 255`) and optionally standardise; standardise
    features per channel (`(x - mean) / std` from the training set), or per utterance. For a
    Hugging Face audio model: `Wav2Vec2FeatureExtractor(..., do_normalize=True)`, and int16
    audio divided by 32768 when it is read.
    """
    found = [item for item in (_unnormalised(stats, hf) for stats in _measured(input_stats) if stats.values) if item is not None]
    normaliser = input_normaliser.normaliser() if found and input_normaliser is not None else None
    return [_normalised_by_model(item, normaliser) for item in found]


def _normalised_by_model(found: Finding, normaliser: InputNormaliser | None) -> Finding:
    """The model's first layer normalises its input: the raw range is no problem, say so as info."""
    if normaliser is None:
        return found
    return finding(
        "CTC041",
        f"{found.message[:-1]}; the model's first layer, {normaliser.describe()}, normalises them before anything else "
        "sees them, so this is fine.",
        f"Nothing to change; if you remove {normaliser.describe()}, normalise the inputs in the data pipeline instead.",
        {**found.evidence, "normalised_by": {"module": normaliser.module, "kind": normaliser.kind}},
        severity="info",
        title="inputs not normalised, but the model normalises them",
    )


def _unnormalised(stats: InputStats, hf: HFFacts | None = None) -> Finding | None:
    numbers = f"range {stats.min:.4g} to {stats.max:.4g}, mean {stats.mean:.4g}, std {stats.std:.4g}"
    evidence = _evidence(stats, {"mean": stats.mean, "std": stats.std, "min": stats.min, "max": stats.max})
    what = stats.name if stats.structured else "inputs"
    if stats.integral and stats.min >= 0 and stats.max > PIXEL_MAX and stats.max <= 255:
        return finding(
            "CTC041",
            f"{what} look like raw 0-255 pixel values ({numbers}).",
            "Scale images to [0, 1] with x / 255 (and optionally standardise with the dataset mean and std).",
            evidence,
        )
    if stats.mean < -MEAN_LIMIT:
        return finding(
            "CTC041",
            f"{what} sit far below zero ({numbers}), as unnormalised log-spectrograms do.",
            "Standardise the features: (x - mean) / std per channel, with statistics from the training set (or per utterance).",
            evidence,
        )
    if abs(stats.mean) > MEAN_LIMIT or stats.std > STD_LIMIT:
        return finding(
            "CTC041",
            f"{what} are not normalised ({numbers}).",
            _hf_audio_hint(hf) or "Standardise the inputs to mean 0 and std 1 (or scale to [0, 1]).",
            evidence,
        )
    return None


def _hf_audio_hint(hf: HFFacts | None) -> str | None:
    """The fix in Hugging Face terms for raw audio (`input_values`): the feature extractor's do_normalize."""
    if hf is None or hf.input_name != "input_values":
        return None
    int16 = "; the values are whole numbers (int16 samples): divide them by 32768 when reading the audio" if hf.input_integral else ""
    now = f" (it is {hf.do_normalize} now)" if hf.do_normalize is not None else ""
    return f"Normalise each utterance in the feature extractor: Wav2Vec2FeatureExtractor(..., do_normalize=True){now}{int16}."


@check("CTC042", "warning", "inputs constant or nearly constant")
def constant_inputs(input_stats: list[InputStats]) -> list[Finding]:
    """
    **What it checks.** Samples whose valid region has no variation (all values equal), and
    inputs whose overall spread is essentially zero.

    **Why it matters.** A constant input carries no information: the model can only learn
    the label prior, which for CTC means blanks. Usually the loading pipeline is broken (a
    wrong path returns zeros, an image is read in the wrong mode, audio is silent).

    **Example.** `warning CTC042 64 of 64 samples are constant (every value 0).`

    **Fix.** Look at a few inputs (plot them); check file paths, decoding and the
    normalisation step for a division by a huge number.
    """
    return [
        finding(
            "CTC042",
            f"{_prefix(stats)}{of_total(len(stats.constant_samples), stats.samples, 'sample', 'is', 'are')} constant over "
            f"{'its' if len(stats.constant_samples) == 1 else 'their'} valid length "
            f"({numbered(list(stats.constant_samples), 'sample')}; overall range {stats.min:.4g} to {stats.max:.4g}).",
            "Plot a few inputs; check file paths, decoding and normalisation in the data pipeline.",
            _evidence(stats, {"samples": list(stats.constant_samples[:20]), "count": len(stats.constant_samples),
                              "min": stats.min, "max": stats.max}),
        )
        for stats in _measured(input_stats) if stats.constant_samples
    ]
