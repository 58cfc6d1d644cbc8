"""Where tensors go: one resolver of device names for the build and the trainer."""

from __future__ import annotations

__all__ = ["resolve_device"]


def resolve_device(device: str = "auto", local_rank: int = 0) -> str:
    """A concrete torch device name.

    Args:
        device: ``auto`` (CUDA when this process sees a GPU, else CPU), ``cpu``, ``cuda`` (this
            process's GPU) or ``cuda:N`` (GPU N, as given).
        local_rank: the GPU that ``auto`` and ``cuda`` pick: ``LOCAL_RANK`` under torchrun, so
            that each rank of a machine works on its own GPU.

    Returns:
        ``"cpu"`` or ``"cuda:N"``.

    Raises:
        ValueError: any other name.
    """
    import torch

    if device == "auto":
        return f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu"
    if device == "cuda":
        return f"cuda:{local_rank}"
    if device == "cpu" or device.startswith("cuda:"):
        return device
    raise ValueError(f"device must be auto, cpu, cuda or cuda:N, got {device!r}")
