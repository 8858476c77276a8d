"""The parts of a model that behave differently in train and eval mode, found in the model itself.

When the train-mode and eval-mode decodes of an overfit run disagree, the report names what
explains it, from what the model actually contains: dropout, layer drop (stochastic depth),
SpecAugment-style masking, BatchNorm. Each is found by module type, by module attribute
(`nn.LSTM(dropout=...)`, `layerdrop`, `drop_path`) or by the model's configuration (a Hugging
Face `config` with `hidden_dropout`, `layerdrop`, `mask_time_prob`, ...). Pure reading: nothing is run.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

#: Configuration keys (Hugging Face and similar) that switch on dropout in train mode.
DROPOUT_KEYS = ("hidden_dropout", "attention_dropout", "activation_dropout", "feat_proj_dropout", "final_dropout",
                "hidden_dropout_prob", "attention_probs_dropout_prob", "dropout", "dropout_rate")
#: ... layer drop (whole layers skipped at random).
LAYERDROP_KEYS = ("layerdrop", "layer_drop", "drop_path_rate", "stochastic_depth_prob")
#: ... SpecAugment-style masking of time steps or features.
MASK_KEYS = ("mask_time_prob", "mask_feature_prob")
#: Class names of masking and stochastic-depth modules (torchaudio, timm, torchvision, custom code).
MASK_CLASSES = ("SpecAugment", "TimeMasking", "FrequencyMasking", "TimeMask", "FreqMask")
DEPTH_CLASSES = ("DropPath", "StochasticDepth", "LayerDrop")


@dataclass(frozen=True)
class StochasticPart:
    """One kind of train-mode-only behaviour in the model."""

    kind: str
    """"dropout", "layer drop", "masking" or "BatchNorm"."""
    where: str
    """What shows it: module names or configuration keys with their values."""

    def describe(self) -> str:
        return f"{self.kind} ({self.where})"

    def as_dict(self) -> dict[str, str]:
        return {"kind": self.kind, "where": self.where}


def _listing(names: list[str], most: int = 3) -> str:
    shown = ", ".join(names[:most])
    return shown + (f" and {len(names) - most} more" if len(names) > most else "")


def _positive(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0


def _configs(model: Any) -> list[Any]:
    """Each distinct `config` object found on the model or its sub-modules (Hugging Face keeps one per model)."""
    found: dict[int, Any] = {}
    for module in model.modules():
        config = getattr(module, "config", None)
        if config is not None and not callable(config):
            found.setdefault(id(config), config)
    return list(found.values())


def _config_parts(model: Any) -> list[StochasticPart]:
    parts: list[StochasticPart] = []
    for config in _configs(model):
        def values(keys: Iterable[str], config: Any = config) -> list[str]:
            return [f"config.{key}={getattr(config, key):g}" for key in keys if _positive(getattr(config, key, None))]

        dropout, layerdrop = values(DROPOUT_KEYS), values(LAYERDROP_KEYS)
        masks = values(MASK_KEYS) if getattr(config, "apply_spec_augment", True) else []
        for kind, found in (("dropout", dropout), ("layer drop", layerdrop), ("masking", masks)):
            if found:
                parts.append(StochasticPart(kind, _listing(found)))
    return parts


def _module_kind(name: str, module: Any) -> tuple[str, str] | None:
    """(kind, description) for one module that behaves differently in train mode, or None."""
    from torch import nn

    cls = type(module).__name__
    if isinstance(module, nn.modules.dropout._DropoutNd) and module.p > 0:
        return "dropout", f"{name} p={module.p:g}"
    if isinstance(module, nn.RNNBase) and module.dropout > 0 and module.num_layers > 1:
        return "dropout", f"{name} ({cls} dropout={module.dropout:g} between layers)"
    if isinstance(module, nn.MultiheadAttention) and module.dropout > 0:
        return "dropout", f"{name} (attention dropout={module.dropout:g})"
    if isinstance(module, nn.modules.batchnorm._BatchNorm) and module.track_running_stats:
        return "BatchNorm", name
    if any(cls.endswith(suffix) for suffix in MASK_CLASSES):
        return "masking", f"{name} ({cls})"
    masks = [f"{key}={getattr(module, key):g}" for key in MASK_KEYS if _positive(getattr(module, key, None))]
    if masks:
        return "masking", f"{name} ({', '.join(masks)})"
    if any(cls.endswith(suffix) for suffix in DEPTH_CLASSES) or _positive(getattr(module, "layerdrop", None)):
        return "layer drop", f"{name} ({cls})"
    return None


def stochastic_parts(model: Any) -> list[StochasticPart]:
    """What in `model` behaves differently in train mode than in eval mode, grouped by kind."""
    grouped: dict[str, list[str]] = {}
    for name, module in model.named_modules():
        found = _module_kind(name or type(module).__name__, module)
        if found is not None:
            grouped.setdefault(found[0], []).append(found[1])
    parts = _config_parts(model)
    configured = {part.kind for part in parts}
    for kind, names in grouped.items():
        count = f"{len(names)} module{'s' if len(names) != 1 else ''}: " if len(names) > 1 else ""
        if kind in configured and kind == "dropout":
            continue  # the configuration already names the rates of these Dropout modules
        parts.append(StochasticPart(kind, count + _listing(names)))
    order = ("masking", "layer drop", "dropout", "BatchNorm")
    return sorted(parts, key=lambda part: order.index(part.kind))


def explain_disagreement(parts: list[StochasticPart]) -> str:
    """The words for "train and eval mode differ because ...", from what the model contains."""
    if not parts:
        return ("the model contains no dropout, layer drop, masking or BatchNorm that ctcdoctor recognises: "
                "look for code that branches on self.training in forward()")
    return "the model's " + "; ".join(part.describe() for part in parts)
