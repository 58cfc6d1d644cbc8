"""torchrun support in a handful of calls (after torchvision's reference ``utils.py``).

Under ``torchrun`` (``WORLD_SIZE`` > 1) :func:`setup` initialises the process group (NCCL on
CUDA, gloo on CPU); a single process needs nothing.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch

__all__ = ["Process", "setup", "barrier", "wrap"]


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
    """This process's :class:`Process`; initialises the process group under torchrun."""
    if int(os.environ.get("WORLD_SIZE", "1")) == 1:
        return Process()
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return Process(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0)))


def barrier(process: Process) -> None:
    """Wait for every rank (no-op in a single process)."""
    if process.world > 1:
        torch.distributed.barrier()


def wrap(model: torch.nn.Module, process: Process, device: torch.device) -> torch.nn.Module:
    """``model`` in DistributedDataParallel when there are several processes, else itself."""
    if process.world == 1:
        return model
    return torch.nn.parallel.DistributedDataParallel(
        model, device_ids=[device.index] if device.type == "cuda" else None)
