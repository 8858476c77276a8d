"""`torchrun --nproc-per-node K -m ctcdoctor scan SPEC`: one shard per rank, one report from rank 0.

torchrun sets RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT; each rank scans the strided shard
`RANK/WORLD_SIZE` of the data set's batches (see `ctcdoctor.scan.sources`), the partial states
(a few kilobytes each) are gathered to rank 0 over gloo, rank 0 merges them, judges and prints
the one report, and the exit code is broadcast so that every rank ends alike (torchrun reports
the worst exit code of its ranks). A rank that fails (exit 2 or an internal error) still joins
the gather with its error, so no rank is left waiting.
"""
from __future__ import annotations

import datetime
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ctcdoctor.errors import UserInputError


@dataclass(frozen=True)
class World:
    rank: int
    size: int


def detect_world() -> World | None:
    """The torchrun world from the environment, or None in a single process."""
    try:
        size = int(os.environ.get("WORLD_SIZE", "1"))
        rank = int(os.environ.get("RANK", "0"))
    except ValueError:
        return None
    if size <= 1 or "MASTER_ADDR" not in os.environ:
        return None
    return World(rank, size)


def _group(world: World, timeout: float | None) -> Any:
    """The process group for the gather: gloo (CPU objects of a few KB), created once."""
    import torch.distributed as dist

    wait = datetime.timedelta(seconds=timeout + 60 if timeout else 1800)
    if not dist.is_initialized():
        # gloo on CPU; where CUDA is present the default group also gets nccl for any GPU collectives.
        import torch

        backend = "cpu:gloo,cuda:nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend, rank=world.rank, world_size=world.size, timeout=wait)
    return dist.new_group(backend="gloo", timeout=wait) if dist.get_backend() != "gloo" else None


def gather_states(world: World, work: Callable[[], dict[str, Any]], timeout: float | None = None) -> list[dict[str, Any]] | None:
    """Run `work` (this rank's state as JSON) on every rank; rank 0 gets every rank's result in rank order.

    A rank's UserInputError travels as {"error", "hint"}, any other exception as {"internal"}; rank 0
    raises the first of them after the gather (exit 2 or 3 for every rank, see `finish`).
    """
    import torch.distributed as dist

    group = _group(world, timeout)
    try:
        mine: dict[str, Any] = {"state": work()}
    except UserInputError as error:
        mine = {"error": error.message, "hint": error.hint}
    except Exception as error:
        mine = {"internal": f"{type(error).__name__}: {error}"}
    gathered: list[Any] | None = [None] * world.size if world.rank == 0 else None
    dist.gather_object(mine, gathered, dst=0, group=group)
    return gathered


def finish(world: World, code: int) -> int:
    """Broadcast rank 0's exit code to every rank and close the group (after rank 0 has printed its report)."""
    import torch.distributed as dist

    box = [code]
    dist.broadcast_object_list(box, src=0, group=None)
    dist.barrier()
    dist.destroy_process_group()
    return int(box[0])


def exit_together(code: int) -> None:
    """End this rank now, with the others: torchrun stops every rank (SIGTERM) as soon as one exits non-zero,
    so ranks that each took their time to shut the interpreter down would not all end with `code`."""
    import sys

    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def first_error(gathered: list[dict[str, Any]]) -> None:
    """Raise the first rank's failure, naming the rank (exit 2 for a usage error, 3 for an internal one)."""
    for rank, item in enumerate(gathered):
        if "error" in item:
            raise UserInputError(f"rank {rank}: {item['error']}", item.get("hint", ""))
    for rank, item in enumerate(gathered):
        if "internal" in item:
            raise RuntimeError(f"rank {rank}: {item['internal']}")
