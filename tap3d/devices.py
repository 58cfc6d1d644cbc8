"""Where tensors go: one resolver of device names for the build and the trainer."""

from __future__ import annotations

__all__ = ["resolve_device"]


def resolve_device(device: str = "auto", local_rank: int = 0) -> str:
    """A concrete torch device name.

    Args:
        device: ``auto`` (CUDA when this process sees a GPU, else CPU), ``cpu``, ``cuda`` or
            ``cuda:N``.
        local_rank: the GPU that ``auto`` picks under torchrun (``LOCAL_RANK``).

    Returns:
        ``"cpu"`` or ``"cuda:N"``/``"cuda"``.

    Raises:
        ValueError: any other name.
    """
    import torch

    if device == "auto":
        return f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu"
    if device in ("cpu", "cuda") or device.startswith("cuda:"):
        return device
    raise ValueError(f"device must be auto, cpu, cuda or cuda:N, got {device!r}")
