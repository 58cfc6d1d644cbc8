"""Point operations in plain torch (the trainer runs where only torch is installed).

Farthest-point sampling, k nearest neighbours, ball query and gathering, batched, on any device;
every backbone and the stream use these, one copy each.
"""

from __future__ import annotations

import torch

__all__ = ["farthest_point_sample", "knn", "ball_query", "gather"]


@torch.no_grad()
def farthest_point_sample(xyz: torch.Tensor, count: int,
                          start: torch.Tensor | int | None = None) -> torch.Tensor:
    """Indices of farthest-point samples.

    Args:
        xyz: ``(B, N, 3)`` or ``(N, 3)`` float coordinates.
        count: samples per cloud (``1 <= count <= N``).
        start: index of the first sample, an int or ``(B,)`` int64 (default 0: deterministic,
            as the authors' CUDA ``furthest_point_sample``).

    Returns:
        ``(B, count)`` (or ``(count,)`` for unbatched input) int64 indices; each is the point
        farthest (Euclidean) from those chosen before it, the lowest index on ties.

    The samples of a farthest-point ordering are themselves in farthest-point order: sampling
    ``m`` points from the first ``n >= m`` samples (same start) returns the first ``m`` of them,
    so a hierarchy of stages needs one call (the backbones take prefixes). On CUDA the loop of
    ``count`` small steps is recorded once per shape as a CUDA graph and replayed (one launch
    instead of four kernels launched from Python per sample); :data:`CUDA_GRAPHS` switches that
    off.

    Raises:
        ValueError: ``count`` outside ``[1, N]``, or ``xyz`` not ``(..., N, 3)``.
    """
    unbatched = xyz.dim() == 2
    if unbatched:
        xyz = xyz[None]
    if xyz.dim() != 3 or xyz.shape[-1] != 3:
        raise ValueError(f"xyz must be (B, N, 3) or (N, 3), got {tuple(xyz.shape)}")
    if not 1 <= count <= xyz.shape[1]:
        raise ValueError(f"count must be in [1, {xyz.shape[1]}], got {count}")
    B = xyz.shape[0]
    first = torch.zeros(B, dtype=torch.long, device=xyz.device)
    if start is not None:
        first = first + torch.as_tensor(start, dtype=torch.long, device=xyz.device)
    xyz = xyz.contiguous()
    if xyz.is_cuda and CUDA_GRAPHS and not torch.cuda.is_current_stream_capturing():
        chosen = _graphed_fps(xyz, count, first)
    else:
        chosen = _fps_loop(xyz, count, first)
    chosen = chosen.t().contiguous()
    return chosen[0] if unbatched else chosen


CUDA_GRAPHS = True
"""Replay farthest-point sampling on CUDA from a recorded CUDA graph (see
:func:`farthest_point_sample`); ``False`` launches every step from Python."""

_GRAPHS: dict = {}  # (shape, count, dtype, device) -> (graph, xyz, first, chosen) or None


def _fps_loop(xyz: torch.Tensor, count: int, first: torch.Tensor) -> torch.Tensor:
    """``(B, N, 3)``, ``(B,)`` start indices -> ``(count, B)``: four kernels per sample."""
    B, N, _ = xyz.shape
    chosen = torch.empty(count, B, dtype=torch.long, device=xyz.device)
    chosen[0] = first
    distance = torch.full((B, N), float("inf"), device=xyz.device, dtype=xyz.dtype)
    for i in range(1, count):
        centre = torch.gather(xyz, 1, chosen[i - 1].view(B, 1, 1).expand(B, 1, 3))
        d = torch.cdist(centre, xyz, compute_mode="donot_use_mm_for_euclid_dist")[:, 0]
        torch.minimum(distance, d, out=distance)
        torch.argmax(distance, dim=-1, out=chosen[i])
    return chosen


def _graphed_fps(xyz: torch.Tensor, count: int, first: torch.Tensor) -> torch.Tensor:
    key = (tuple(xyz.shape), count, xyz.dtype, xyz.device)
    if key not in _GRAPHS:
        if len(_GRAPHS) >= 32:  # shapes seen once (a last batch) do not pile up
            _GRAPHS.pop(next(iter(_GRAPHS)))
        _GRAPHS[key] = _record_fps(xyz, count, first)
    if _GRAPHS[key] is None:  # recording failed once for this shape: run eagerly
        return _fps_loop(xyz, count, first)
    graph, static_xyz, static_first, chosen = _GRAPHS[key]
    static_xyz.copy_(xyz)
    static_first.copy_(first)
    graph.replay()
    return chosen.clone()  # the next replay overwrites the recorded output


def _record_fps(xyz: torch.Tensor, count: int, first: torch.Tensor):
    """Record :func:`_fps_loop` for this shape as a CUDA graph; None (with a warning) when the
    recording fails."""
    import warnings

    try:
        with torch.cuda.device(xyz.device):
            static_xyz, static_first = xyz.clone(), first.clone()
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):  # warm-up outside the capture, as PyTorch advises
                _fps_loop(static_xyz, count, static_first)
            torch.cuda.current_stream().wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph, capture_error_mode="thread_local"):
                chosen = _fps_loop(static_xyz, count, static_first)
        return graph, static_xyz, static_first, chosen
    except RuntimeError as error:
        warnings.warn(f"farthest_point_sample: recording a CUDA graph for {tuple(xyz.shape)} "
                      f"failed ({error}); sampling eagerly", RuntimeWarning, stacklevel=3)
        return None


@torch.no_grad()
def knn(query: torch.Tensor, xyz: torch.Tensor, k: int) -> torch.Tensor:
    """``(B, S, k)`` int64 indices into ``xyz`` ``(B, N, D)`` of the ``k`` points nearest to each
    of ``query`` ``(B, S, D)`` (Euclidean, any ``D``: coordinates, or features as DGCNN's
    dynamic graphs; a query point in ``xyz`` finds itself first)."""
    return torch.cdist(query, xyz).topk(k, dim=-1, largest=False).indices


@torch.no_grad()
def ball_query(query: torch.Tensor, xyz: torch.Tensor, radius: float, k: int,
               order: str = "index") -> torch.Tensor:
    """``(B, S, k)`` int64 indices of up to ``k`` points of ``xyz`` ``(B, N, 3)`` within
    ``radius`` of each ``query`` ``(B, S, 3)`` point (squared distance below ``radius ** 2``).

    Args:
        order: ``index`` (default): the first ``k`` such points in index order, as PointNet++'s
            CUDA ``ball_query`` (``pointnet2_batch``, which openpoints and so the TAP authors'
            PointNet++ use) scans them; ``nearest``: the ``k`` nearest.

    Slots beyond the points found repeat the first one found, as the CUDA kernel pads; a query
    with no point inside gets index 0 (the kernel's zero-filled output). With ``nearest`` the
    nearest point is always kept, so a group is never empty.

    Raises:
        ValueError: an unknown ``order``.
    """
    if order == "nearest":
        distance, index = torch.cdist(query, xyz).topk(min(k, xyz.shape[1]), dim=-1,
                                                       largest=False)
        outside = distance > radius
        outside[..., 0] = False
        return torch.where(outside, index[..., :1].expand_as(index), index)
    if order != "index":
        raise ValueError(f"order must be 'index' or 'nearest', got {order!r}")
    N = xyz.shape[1]
    positions = torch.arange(N, device=xyz.device, dtype=torch.int32)
    key = torch.where(torch.cdist(query, xyz) < radius, positions, N)  # (B, S, N)
    first = key.topk(min(k, N), dim=-1, largest=False, sorted=True).values.long()
    hit = first[..., :1]
    hit = torch.where(hit == N, 0, hit)
    return torch.where(first == N, hit.expand_as(first), first)


def gather(values: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``values`` ``(B, N, C)`` at ``index`` ``(B, ...)`` int64 -> ``(B, ..., C)``."""
    B = values.shape[0]
    flat = index.reshape(B, -1)
    out = torch.gather(values, 1, flat[..., None].expand(-1, -1, values.shape[-1]))
    return out.reshape(*index.shape, values.shape[-1])
