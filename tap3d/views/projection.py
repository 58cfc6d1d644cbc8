"""How the stored cameras project: perspective or orthographic (parallel), and the per-view fit.

A dataset records its projection in the group attribute ``projection`` (``perspective`` when the
attribute is absent: every dataset of format_version 1). Both kinds store the same arrays; for a
world point ``X`` (normalized object frame) and the OpenCV camera point
``(x, y, z) = world_to_camera @ [X, 1]`` (x right, y down, z forward, object units):

- ``perspective``: ``[u, v, 1]^T ~ K (x, y, z)^T`` (pinhole; ``K`` from the vertical FoV);
- ``orthographic``: ``[u, v, 1]^T = K (x, y, 1)^T``: ``K[0, 0]``, ``K[1, 1]`` are pixels per
  object unit and ``K[:2, 2]`` the pixel position of the camera axis; ``z`` is only the depth.

``(u, v)`` are pixels with the centre of the top-left pixel at ``(0, 0)``.

The per-view fit (:func:`fit_parallel`) is the rule of the TAP authors' ``cal_scale_bias``
(wangzy22/TAP, ``openpoints/models/generation/view_transformer.py``): the projected cloud's
longer side spans ``obj - 3`` pixels, ``obj = round(fit * S)`` (their ``obj_size`` 200 of
``img_size`` 224), and its pixel bounding box is centred, both after their integer flooring.

This module imports numpy (and torch inside :func:`fit_parallel`), never pytorch3d.
"""

from __future__ import annotations

import numpy as np

__all__ = ["PROJECTIONS", "TAP_FIT", "projection_of", "project", "fit_parallel",
           "orthographic_intrinsics", "camera_centres"]

#: Projections a dataset can have.
PROJECTIONS = ("perspective", "orthographic")
#: The TAP authors' fit: the object spans ``obj_size`` 200 of ``img_size`` 224 pixels
#: (``cfgs/shapenet/pointmlp_pretrain.yaml``); other image sizes keep the ratio.
TAP_FIT = 200 / 224


def projection_of(attributes) -> str:
    """The projection of a dataset from its group attributes (``perspective`` when absent).

    Raises:
        ValueError: an unknown ``projection`` value.
    """
    projection = attributes.get("projection") or "perspective"
    if projection not in PROJECTIONS:
        raise ValueError(f"projection must be one of {', '.join(PROJECTIONS)}, got "
                         f"{projection!r}")
    return projection


def project(points: np.ndarray, K: np.ndarray, world_to_camera: np.ndarray,
            projection: str = "perspective") -> tuple[np.ndarray, np.ndarray]:
    """Pixel coordinates of world points through one stored camera (see the module docstring).

    Args:
        points: ``(N, 3)`` world points (normalized object frame).
        K: ``(3, 3)`` stored intrinsics.
        world_to_camera: ``(4, 4)`` stored OpenCV extrinsics.
        projection: ``perspective`` or ``orthographic``.

    Returns:
        ``uv`` ``(N, 2)`` float64 pixels (x right, y down, top-left pixel centre at (0, 0)) and
        the camera ``z`` ``(N,)`` float64 (object units, along the view direction).

    Raises:
        ValueError: an unknown projection.
    """
    if projection not in PROJECTIONS:
        raise ValueError(f"projection must be one of {', '.join(PROJECTIONS)}, got "
                         f"{projection!r}")
    K = np.asarray(K, np.float64)
    cam = np.asarray(points, np.float64) @ np.asarray(world_to_camera, np.float64)[:3, :3].T \
        + np.asarray(world_to_camera, np.float64)[:3, 3]
    if projection == "orthographic":
        uv = cam[:, :2] @ K[:2, :2].T + K[:2, 2]
    else:
        uvw = cam @ K.T
        uv = uvw[:, :2] / uvw[:, 2:3]
    return uv, cam[:, 2]


def fit_parallel(xy, image_size: int, fit: float):
    """The per-view scale and offset that fit a parallel projection to a cloud (TAP's rule).

    Along each image axis ``pixel = focal * xy + centre``. With ``obj = round(fit * S)``, the
    cloud's larger extent spans ``obj - 3`` pixels (``focal = (obj - 3) / extent``); the
    integer pixel cells ``floor((xy - min) * focal)`` of the points have their bounding box's
    (floored) middle cell put at ``obj / 2 - 1 + (S - obj) // 2``, as the authors'
    ``cal_scale_bias`` does. Their pixel positions are continuous with the image's top-left
    corner at 0; the returned ``centre`` is in the format's convention (top-left pixel centre at
    0), half a pixel less.

    Args:
        xy: ``(..., N, 2)`` float tensor: the cloud in camera coordinates (x right, y down;
            OpenCV), object units.
        image_size: ``S``, pixels.
        fit: share of the frame the object fills, ``3 / S < fit <= 1`` (TAP: :data:`TAP_FIT`).

    Returns:
        ``focal`` ``(...)`` pixels per object unit and ``centre`` ``(..., 2)`` pixels, float
        tensors of ``xy``'s dtype.

    Raises:
        ValueError: ``fit`` out of range.
    """
    import torch

    obj = round(image_size * fit)
    if not 3 < obj <= image_size:
        raise ValueError(f"fit must leave more than 3 of the {image_size} pixels to the object "
                         f"and at most all of them, got {fit}")
    low = xy.amin(-2)
    extent = (xy.amax(-2) - low).amax(-1).clamp_min(1e-12)
    unit = extent / (obj - 3)  # object units per pixel (the authors' grid_size)
    cells = torch.floor((xy - low[..., None, :]) / unit[..., None, None])
    middle = torch.floor((cells.amax(-2) + cells.amin(-2)) / 2)
    offset = obj / 2 - middle - 1 + (image_size - obj) // 2
    return 1.0 / unit, offset - low / unit[..., None] - 0.5


def orthographic_intrinsics(focal, centre) -> np.ndarray:
    """The stored ``K`` of orthographic views.

    Args:
        focal: ``(V,)`` pixels per object unit; centre: ``(V, 2)`` pixels (u, v) of the axis.

    Returns:
        ``(V, 3, 3)`` float32: ``[[f, 0, cu], [0, f, cv], [0, 0, 1]]``.
    """
    focal, centre = np.asarray(focal, np.float64), np.asarray(centre, np.float64)
    K = np.zeros(focal.shape + (3, 3))
    K[..., 0, 0] = K[..., 1, 1] = focal
    K[..., :2, 2] = centre
    K[..., 2, 2] = 1.0
    return K.astype(np.float32)


def camera_centres(world_to_camera: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Camera centres and viewing directions of OpenCV extrinsics.

    Args:
        world_to_camera: ``(V, 4, 4)`` float, ``X_cam = R X_world + t``.

    Returns:
        ``(centres, forward)``, ``(V, 3)`` each, world frame: the centres ``-R^T t`` and the
        camera's +z axis (the direction it looks along).
    """
    R, t = world_to_camera[:, :3, :3], world_to_camera[:, :3, 3]
    return -np.einsum("vji,vj->vi", R, t), R[:, 2, :]
