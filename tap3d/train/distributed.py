"""torchrun support in a handful of calls (after torchvision's reference ``utils.py``): the one
module that knows about ranks.

Under ``torchrun`` (``WORLD_SIZE`` > 1) :func:`setup` pins this process to its GPU
(``torch.cuda.set_device(LOCAL_RANK)``) and initialises the process group: NCCL on CUDA, gloo
on the CPU, or the backend that the environment variable ``TAP3D_DIST_BACKEND`` names (``gloo``
lets several ranks share one GPU, which NCCL refuses: give them ``--device cuda:0``). A single
process needs nothing, and every helper here is then the identity or a plain call.

The collectives (:func:`all_gather`, :func:`reduce_across_processes`, :func:`barrier`) must be
called by every rank, in the same order; :func:`save_on_main` writes on rank 0 only, through
:func:`atomic_save`, the one writer of checkpoints (``step_N.pt``, ``last.pt``, ``best.pt``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch

__all__ = ["Process", "setup", "teardown", "barrier", "wrap", "all_gather",
           "reduce_across_processes", "atomic_save", "save_on_main", "BACKEND_VARIABLE"]

#: The environment variable that overrides the process group's backend (``nccl``, ``gloo``).
BACKEND_VARIABLE = "TAP3D_DIST_BACKEND"

_OPS = {"sum": "SUM", "max": "MAX", "min": "MIN", "product": "PRODUCT"}


@dataclass(frozen=True)
class Process:
    """This process's place: ``rank`` of ``world`` processes, ``local_rank`` on its node."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        """True on rank 0, the process that writes the run folder."""
        return self.rank == 0


def setup() -> Process:
    """This process's :class:`Process`; under torchrun (a collective of every rank) first
    ``torch.cuda.set_device(LOCAL_RANK)`` where that GPU exists (so NCCL and every ``cuda``
    tensor of the rank land on its own GPU), then the process group (backend: see the module
    docstring)."""
    if int(os.environ.get("WORLD_SIZE", "1")) == 1:
        return Process()
    import torch.distributed as dist

    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    cuda = torch.cuda.is_available()
    if cuda and local_rank < torch.cuda.device_count():
        torch.cuda.set_device(local_rank)
    if not dist.is_initialized():
        dist.init_process_group(os.environ.get(BACKEND_VARIABLE) or ("nccl" if cuda else "gloo"))
    return Process(dist.get_rank(), dist.get_world_size(), local_rank)


def teardown(process: Process) -> None:
    """Destroy the process group :func:`setup` made (every rank, at the end; a no-op in a
    single process): gloo's threads then end before the interpreter does, instead of aborting
    it ("terminate called without an active exception")."""
    if process.world > 1 and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


def barrier(process: Process) -> None:
    """Wait for every rank (a collective; no-op in a single process)."""
    if process.world > 1:
        torch.distributed.barrier()


def wrap(model: torch.nn.Module, process: Process, device: torch.device) -> torch.nn.Module:
    """``model`` in DistributedDataParallel when there are several processes, else itself."""
    if process.world == 1:
        return model
    return torch.nn.parallel.DistributedDataParallel(
        model, device_ids=[device.index] if device.type == "cuda" else None)


def all_gather(obj, process: Process) -> list:
    """Every rank's ``obj`` (any picklable value), a list of ``process.world`` indexed by rank
    (``torch.distributed.all_gather_object``); ``[obj]`` in a single process.

    A collective: every rank calls it at the same point.
    """
    if process.world == 1:
        return [obj]
    gathered = [None] * process.world
    torch.distributed.all_gather_object(gathered, obj)
    return gathered


def reduce_across_processes(value, process: Process, op: str = "sum"):
    """``value`` reduced over the ranks (``torch.distributed.all_reduce``); ``value`` itself in a
    single process.

    Args:
        value: a tensor of any shape (reduced where it lies, on the process's device; not
            changed in place) or a Python number (put on this rank's GPU under NCCL, on the CPU
            under gloo).
        process: this process.
        op: ``sum``, ``max``, ``min`` or ``product``, element-wise over the ranks.

    Returns:
        A tensor of ``value``'s shape, dtype and device for a tensor; a Python number for a
        number.

    A collective: every rank calls it at the same point, with the same shape and dtype.
    """
    if op not in _OPS:
        raise ValueError(f"op must be one of {', '.join(_OPS)}, got {op!r}")
    if process.world == 1:
        return value
    dist = torch.distributed
    if isinstance(value, torch.Tensor):
        reduced = value.detach().clone()
    else:
        device = torch.device("cuda", torch.cuda.current_device()) \
            if dist.get_backend() == "nccl" else torch.device("cpu")
        reduced = torch.tensor(value, device=device)
    dist.all_reduce(reduced, getattr(dist.ReduceOp, _OPS[op]))
    return reduced if isinstance(value, torch.Tensor) else reduced.item()


def atomic_save(obj, path: str) -> str:
    """``torch.save(obj)`` to ``path``, atomically: written to ``path + ".tmp"``, then renamed
    into place (a reader never sees half a file; an interrupted write leaves the old file).
    Not a collective: the caller picks the rank (see :func:`save_on_main`).

    Returns:
        ``path``.
    """
    path = os.fspath(path)
    torch.save(obj, path + ".tmp")
    os.replace(path + ".tmp", path)
    return path


def save_on_main(obj, path: str, process: Process) -> str | None:
    """:func:`atomic_save` of ``obj`` to ``path`` on rank 0; other ranks write nothing.

    Not a collective (no rank waits): call :func:`barrier` on every rank before others read
    the file.

    Returns:
        ``path`` on rank 0, ``None`` elsewhere.
    """
    return atomic_save(obj, path) if process.main else None
