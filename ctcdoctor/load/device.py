"""Turn a `--device` choice into a torch device, or a usage error naming what is wrong."""
from __future__ import annotations

from typing import TYPE_CHECKING

from ctcdoctor.errors import UserInputError

if TYPE_CHECKING:  # pragma: no cover
    import torch


def resolve_device(choice: str | None, default: str = "auto") -> torch.device:
    """`auto` picks CUDA when there is one; an unknown or unavailable device is exit 2, not a finding."""
    import torch

    text = (choice or default).strip().lower()
    if text == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(text)
    except RuntimeError:
        raise UserInputError(f"--device {choice!r} is not a device torch knows", "Use auto, cpu, cuda or cuda:N.") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise UserInputError(f"--device {choice}: no CUDA device is available here", "Use --device cpu (or auto).")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise UserInputError(
                f"--device {choice}: this machine has {torch.cuda.device_count()} CUDA device(s)",
                f"Use an index below {torch.cuda.device_count()}.",
            )
    elif device.type == "mps":
        backend = getattr(torch.backends, "mps", None)
        if backend is None or not backend.is_available():
            raise UserInputError(f"--device {choice}: MPS (the Apple GPU) is not available here", "Use --device cpu (or auto).")
    elif device.type != "cpu":
        raise UserInputError(f"--device {choice}: ctcdoctor runs models on cpu or cuda", "Use auto, cpu or cuda.")
    return device
