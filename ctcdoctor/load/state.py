"""The process state a command borrows from its caller and gives back: the random generators,
torch's thread count, and `sys.argv` while the user's module loads.

A report must be reproducible (the same seed before `build()` gives the same model, the same
batches, the same findings) and a command must leave its caller as found: `ctcdoctor.check()`
from a notebook or a test suite must not move the caller's global random state or thread
count. Each helper here is a context manager that sets one thing and restores it on the way
out, whatever happens inside.
"""
from __future__ import annotations

import contextlib
import random
import sys
from collections.abc import Iterator
from typing import Any

#: Threads `check` runs torch with: its work is many small ops on small tensors, where OpenMP's
#: start-up per op costs more than it saves (measured in the notes of issue 17; see
#: benchmarks/check_threads.py).
CHECK_THREADS = 1


def _numpy_random() -> Any:
    """numpy's legacy global generator (np.random.seed), or None when numpy is not installed."""
    try:
        import numpy
    except ImportError:  # pragma: no cover - torch depends on numpy, but only optionally
        return None
    return numpy.random


@contextlib.contextmanager
def seeded(seed: int | None) -> Iterator[None]:
    """Seed torch, numpy and random with `seed` for the block (None: leave them unseeded), and restore
    the caller's states of all three afterwards (CUDA generators too, where CUDA is initialised)."""
    import torch

    python_state = random.getstate()
    numpy_random = _numpy_random()
    numpy_state = numpy_random.get_state() if numpy_random is not None else None
    # fork_rng restores the CPU generator and those of the listed CUDA devices; listing none when CUDA
    # is not initialised keeps it from initialising CUDA just to save a state.
    devices = list(range(torch.cuda.device_count())) if torch.cuda.is_initialized() else []
    with torch.random.fork_rng(devices=devices):
        try:
            if seed is not None:
                random.seed(seed)
                torch.manual_seed(seed)
                if numpy_random is not None:
                    numpy_random.seed(seed % 2**32)
            yield
        finally:
            random.setstate(python_state)
            if numpy_random is not None:
                numpy_random.set_state(numpy_state)


@contextlib.contextmanager
def torch_threads(count: int | None) -> Iterator[None]:
    """Run the block with `count` intra-op threads (None: as they are), then restore the caller's count."""
    import torch

    previous = torch.get_num_threads()
    if count is not None and count != previous:
        torch.set_num_threads(count)
    try:
        yield
    finally:
        if torch.get_num_threads() != previous:
            torch.set_num_threads(previous)


@contextlib.contextmanager
def script_argv(program: str) -> Iterator[None]:
    """`sys.argv` as the user's script would see it run with no arguments (`python train.py`), not
    ctcdoctor's own (`ctcdoctor check train.py --format json`): an argparse at import time then
    takes its defaults instead of failing on ctcdoctor's options. Restored afterwards."""
    previous = sys.argv
    sys.argv = [program]
    try:
        yield
    finally:
        sys.argv = previous
