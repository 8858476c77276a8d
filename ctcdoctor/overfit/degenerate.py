"""An output that is exactly 0 on every frame and class: log_softmax over an axis of size 1.

With overfit's one-sample batch the batch axis has size 1, so a `log_softmax(dim=1)` on a `(T, N, C)` output (meant
for the classes of a batch-first classifier) gives log(1) = 0 everywhere: no class can ever be learnt, the gradient is
exactly 0, and the static checks read the zeros as clipped scores (CTC027) or raw logits (CTC021, CTC030). This names
the real mistake as CTC024 instead, and training is skipped.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ctcdoctor.findings import Finding

if TYPE_CHECKING:  # pragma: no cover
    import torch

AXIS_NAMES = {"T": "time", "N": "batch", "C": "class"}
MISREAD = ("CTC021", "CTC027")
"""What the static checks make of an all-zero output: raw logits, clipped scores."""


def size_one_axis(output: torch.Tensor, layout: str | None, samples: tuple[int, ...]) -> Finding | None:
    """CTC024 when `output` is exactly 0 everywhere and one of its axes (not the classes') has size 1."""
    import torch

    from ctcdoctor.registry import finding

    if not isinstance(output, torch.Tensor) or output.dim() != 3 or not output.is_floating_point() or output.numel() == 0:
        return None
    if bool(output.detach().ne(0).any()):
        return None
    order = layout if layout in ("TNC", "NTC", "NCT") else "TNC"
    ones = [axis for axis, size in enumerate(output.shape) if size == 1 and order[axis] != "C"]
    if not ones:
        return None
    axis = ones[0]
    name, classes = AXIS_NAMES[order[axis]], output.shape[order.index("C")]
    frames = output.shape[order.index("T")]
    shape = ", ".join(order)
    which = f"sample {samples[0]}" if len(samples) == 1 else f"samples {', '.join(map(str, samples))}"
    message = (
        f"[{which}] the output is exactly 0 on all {frames} frames and {classes} classes: log_softmax over an axis of "
        f"size 1 (the {name} axis of ({shape}), dim={axis}) gives log(1) = 0 everywhere, so no class can be learnt "
        f"(the gradient is 0). overfit trains on a batch of {output.shape[order.index('N')]}; on a full batch the same "
        f"mistake normalises over the {name} axis."
    )
    hint = f"Take log_softmax(dim=-1), over the classes: dim={axis} is the {name} axis of ({shape})."
    evidence: dict[str, Any] = {"axis": axis, "axis_name": name, "layout": order, "shape": list(output.shape),
                                "overfit_samples": list(samples)}
    return finding("CTC024", message, hint, evidence)


def replace_misreadings(findings: list[Finding], found: Finding) -> list[Finding]:
    """The findings without the misreadings of the all-zero output (CTC021, CTC027, a CTC030 'raw logits'), `found` added."""
    kept = [item for item in findings if item.code not in MISREAD and item.code != "CTC024"
            and not (item.code == "CTC030" and item.evidence.get("mistake") == "raw_logits")]
    return [found, *kept]
