"""Point operations in plain torch (the trainer runs where only torch is installed).

Farthest-point sampling, k nearest neighbours, ball query and gathering, batched, on any device;
every backbone and the stream use these, one copy each.
"""

from __future__ import annotations

import torch

__all__ = ["farthest_point_sample", "knn", "ball_query", "gather"]


def farthest_point_sample(xyz: torch.Tensor, count: int,
                          start: torch.Tensor | int | None = None) -> torch.Tensor:
    """Indices of farthest-point samples.

    Args:
        xyz: ``(B, N, 3)`` or ``(N, 3)`` float coordinates.
        count: samples per cloud (``<= N``).
        start: index of the first sample, an int or ``(B,)`` int64 (default 0: deterministic).

    Returns:
        ``(B, count)`` (or ``(count,)`` for unbatched input) int64 indices; each is the point
        farthest from those chosen before it.
    """
    unbatched = xyz.dim() == 2
    if unbatched:
        xyz = xyz[None]
    B, N, _ = xyz.shape
    chosen = torch.zeros(B, count, dtype=torch.long, device=xyz.device)
    distance = torch.full((B, N), float("inf"), device=xyz.device, dtype=xyz.dtype)
    current = torch.zeros(B, dtype=torch.long, device=xyz.device)
    if start is not None:
        current = current + torch.as_tensor(start, dtype=torch.long, device=xyz.device)
    rows = torch.arange(B, device=xyz.device)
    for i in range(count):
        chosen[:, i] = current
        d = ((xyz - xyz[rows, current][:, None, :]) ** 2).sum(-1)
        distance = torch.minimum(distance, d)
        current = distance.argmax(-1)
    return chosen[0] if unbatched else chosen


def knn(query: torch.Tensor, xyz: torch.Tensor, k: int) -> torch.Tensor:
    """``(B, S, k)`` int64 indices into ``xyz`` ``(B, N, 3)`` of the ``k`` points nearest to each
    of ``query`` ``(B, S, 3)`` (Euclidean; a query point in ``xyz`` finds itself first)."""
    return torch.cdist(query, xyz).topk(k, dim=-1, largest=False).indices


def ball_query(query: torch.Tensor, xyz: torch.Tensor, radius: float, k: int) -> torch.Tensor:
    """``(B, S, k)`` int64 indices of up to ``k`` points of ``xyz`` ``(B, N, 3)`` within
    ``radius`` of each ``query`` ``(B, S, 3)`` point, the nearest first.

    Slots beyond the points found repeat the first (nearest) one, as PointNet++'s CUDA
    ``ball_query`` pads with its first hit; the nearest point is always kept, so a group is
    never empty.
    """
    distance, index = torch.cdist(query, xyz).topk(min(k, xyz.shape[1]), dim=-1, largest=False)
    outside = distance > radius
    outside[..., 0] = False
    return torch.where(outside, index[..., :1].expand_as(index), index)


def gather(values: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``values`` ``(B, N, C)`` at ``index`` ``(B, ...)`` int64 -> ``(B, ..., C)``."""
    B = values.shape[0]
    flat = index.reshape(B, -1)
    out = torch.gather(values, 1, flat[..., None].expand(-1, -1, values.shape[-1]))
    return out.reshape(*index.shape, values.shape[-1])
