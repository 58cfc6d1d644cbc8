"""The backbone input, made in one place: centred on the centroid, unit radius, height feature.

Every backbone takes ``(B, N, 4)`` float32 features: xyz in the object's unit-sphere frame
(centred on the centroid, farthest point at distance 1, as TAP's pre-training and fine-tuning
feed them: openpoints ``PointCloudCenterAndNormalize``) and the height above the cloud's lowest
point along the up axis (openpoints ``heights``, the fourth channel of the authors' PointMLP
configs). The pre-training stream (:mod:`tap3d.stream`), the fine-tuning augmentation and the
test-time inputs (:mod:`tap3d.clouds.pipeline`) all call these functions, so the inputs of
pre-training and evaluation cannot drift apart.

Both NumPy arrays and torch tensors are accepted (the result is of the same kind, on the same
device); the centroid and the radius are computed in float64 whatever the input's dtype.
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["centroid_and_radius", "to_unit_sphere", "with_height", "backbone_input"]


def _tensor(points) -> torch.Tensor:
    return torch.from_numpy(np.asarray(points)) if not isinstance(points, torch.Tensor) \
        else points


def centroid_and_radius(points):
    """The centroid ``(..., 1, 3)`` and the distance of the farthest point from it
    ``(..., 1, 1)`` (at least 1e-12), float64, of ``(..., N, 3)`` clouds."""
    xyz = _tensor(points).double()
    centre = xyz.mean(dim=-2, keepdim=True)
    radius = (xyz - centre).norm(dim=-1).amax(dim=-1, keepdim=True)[..., None]
    radius = radius.clamp_min(1e-12)
    if isinstance(points, torch.Tensor):
        return centre, radius
    return centre.numpy(), radius.numpy()


def to_unit_sphere(points, scale=1.0):
    """``(..., N, 3)`` clouds centred on their centroid, scaled to unit radius, then by
    ``scale`` (a float or an array broadcasting against the points): ``(x - c) x scale / r``.

    Returns:
        ``(points, centre, factor)``: the moved points in float64 (cast them), the centroid
        ``(..., 1, 3)`` and ``factor = scale / r`` ``(..., 1, 1)`` (float64), so that cameras
        can follow: ``x' = (x - c) factor``.
    """
    centre, radius = centroid_and_radius(points)
    xyz = _tensor(points).double()
    c, r = _tensor(centre), _tensor(radius)
    factor = (torch.as_tensor(scale, dtype=torch.float64, device=xyz.device) / r)
    moved = (xyz - c) * factor
    if isinstance(points, torch.Tensor):
        return moved, c, factor
    return moved.numpy(), centre, factor.numpy()


def with_height(points, up_axis: int = 1):
    """``(..., N, 3)`` -> ``(..., N, 4)`` of the same dtype: xyz and the height above the
    lowest point along ``up_axis`` (index of the up axis: 1 for y-up)."""
    xyz = _tensor(points)
    up = xyz[..., up_axis:up_axis + 1]
    features = torch.cat([xyz, up - up.amin(dim=-2, keepdim=True)], dim=-1)
    return features if isinstance(points, torch.Tensor) else features.numpy()


def backbone_input(points, up_axis: int = 1):
    """The backbone input of ``(..., N, 3)`` clouds: :func:`to_unit_sphere`, cast to float32,
    :func:`with_height`: ``(..., N, 4)`` float32."""
    moved, _, _ = to_unit_sphere(points)
    moved = moved.float() if isinstance(moved, torch.Tensor) else moved.astype(np.float32)
    return with_height(moved, up_axis)
