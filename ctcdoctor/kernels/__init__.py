"""Custom GPU kernels. Optional: importing this package never requires triton.

``triton_available()`` says whether the Triton kernels can be imported; the fused CTC kernel is
``ctcdoctor.kernels.triton_ctc.forward_backward`` (also reachable as ``forward_backward`` here).
"""
from __future__ import annotations

import functools

__all__ = ["triton_available", "forward_backward"]


@functools.cache
def triton_available() -> bool:
    """True when triton imports (which does not mean a GPU is present)."""
    try:
        import triton  # noqa: F401
        import triton.language  # noqa: F401
    except Exception:  # a broken install can raise more than ImportError
        return False
    return True


def forward_backward(*args, **kwargs):
    """Fused CTC loss, gradient and posterior; see ``ctcdoctor.kernels.triton_ctc.forward_backward``.

    Imported lazily so that ``import ctcdoctor.kernels`` costs nothing and works without triton.
    """
    if not triton_available():
        raise RuntimeError("the Triton CTC kernel needs triton: pip install 'ctcdoctor[gpu]'")
    from ctcdoctor.kernels.triton_ctc import forward_backward as fb

    return fb(*args, **kwargs)
