"""`eager_under_compile`: the public CTC functions run eagerly inside torch.compile (a graph break).

They do their bookkeeping on the host: lengths as int lists, labels as numpy arrays, Python
loops over samples. Dynamo cannot trace that faithfully: it rewrites numpy calls into torch ops,
and some of those have no kernel (the range check's max over a uint64 view raised
`"max_values_cpu" not implemented for 'UInt64'`). What they compute runs through PyTorch's
native CTC kernels or a custom autograd Function, so leaving them out of the graph loses nothing
that compiling would gain, and the value and gradient stay exactly the eager ones.

Why not `torch.compiler.disable` at import: building it imports torch._dynamo, which takes
seconds, for every user of ctcdoctor.ctc, compiling or not. The wrapper instead reads Dynamo's
"tracing now" flag (a fraction of a microsecond) and builds the disabled function only while
Dynamo traces, when torch._dynamo is loaded anyway.
"""
from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import ParamSpec, TypeVar

import torch

P = ParamSpec("P")
R = TypeVar("R")

# torch.compiler.is_compiling arrived in torch 2.3; torch._utils.is_compiling is the same flag in
# 2.1 and 2.2 (Dynamo reads it as True while it traces). The project's floor is torch 2.1.
_is_compiling: Callable[[], bool] = getattr(torch.compiler, "is_compiling", None) or torch._utils.is_compiling


def eager_under_compile(fn: Callable[P, R]) -> Callable[P, R]:
    """`fn` unchanged in eager mode; inside torch.compile, called through torch.compiler.disable."""
    disabled: list[Callable[P, R]] = []  # built on the first traced call

    @functools.wraps(fn)
    def public(*args: P.args, **kwargs: P.kwargs) -> R:
        if _is_compiling():
            if not disabled:
                disabled.append(torch.compiler.disable(fn))
            return disabled[0](*args, **kwargs)
        return fn(*args, **kwargs)

    return public


def user_stacklevel() -> int:
    """The `stacklevel` for warnings.warn that names the caller's line: the first frame outside
    ctcdoctor.ctc (and outside Dynamo's wrappers, under torch.compile), counted from the function
    that calls this. A fixed number would point inside the package on some paths."""
    frame = sys._getframe(1)
    level = 1
    while frame.f_back is not None and frame.f_globals.get("__name__", "").startswith(("ctcdoctor.ctc", "torch._dynamo")):
        frame = frame.f_back
        level += 1
    return level
