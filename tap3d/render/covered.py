"""What every rasterizer backend hands the shaders: the covered pixels of one mesh seen by ``N``
cameras (:class:`CoveredPixels`), and the one rule for splitting views into batches
(:func:`view_batches`) where work runs on per-view copies of a mesh."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

__all__ = ["CoveredPixels", "MAX_BATCH_FACES", "CUT_LAYERS", "view_batches"]

#: Memory bound of work on per-view copies of a mesh: mesh faces x views in one batch.
MAX_BATCH_FACES = 2_000_000
#: Surfaces a ray passes through at most where ``alphaMode: MASK`` cuts them away (foliage,
#: fences); a pixel whose nearest layers are all cut shows the background.
CUT_LAYERS = 8


class CoveredPixels(NamedTuple):
    """The covered pixels of ``N`` views of one mesh, in ascending ``pixel`` order (numpy).

    Attributes:
        pixel: ``(M,)`` int64 flat index into ``(N, S, S)`` (view, row, column).
        face: ``(M,)`` int64 face of the mesh (``0..F-1``) nearest along the pixel's ray.
        bary: ``(M, 3)`` float32 barycentric coordinates in that face (world space, so
            perspective-correct), of its vertices in order.
        depth: ``(M,)`` float32 view-space z of the surface point, object units.
        direction: ``(M, 3)`` float32 unit viewing direction of the pixel's ray (camera to
            surface, world frame) when the backend knows it (Embree's rays, orthographic
            cameras); None otherwise.
    """

    pixel: np.ndarray
    face: np.ndarray
    bary: np.ndarray
    depth: np.ndarray
    direction: np.ndarray | None



def view_batches(num_views: int, num_faces: int, max_batch_faces: int | None) -> list[range]:
    """Consecutive views in batches of at most ``max_batch_faces`` faces, a mesh of
    ``num_faces`` faces per view (at least one view a batch; None: all views in one)."""
    per_batch = num_views if max_batch_faces is None else \
        min(num_views, max_batch_faces // max(1, num_faces))
    per_batch = max(1, per_batch)
    return [range(start, min(start + per_batch, num_views))
            for start in range(0, num_views, per_batch)]
