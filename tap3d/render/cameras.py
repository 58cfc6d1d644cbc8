"""View layouts and the cameras built from them.

A *layout* is a list of (azimuth, elevation, distance) triples in degrees, degrees and
normalized object units. :func:`make_cameras` turns it into PyTorch3D
``FoVPerspectiveCameras`` and :func:`make_orthographic_cameras` into ``OrthographicCameras``
with a per-view fit (parallel projection; see :mod:`tap3d.views.projection`); PyTorch3D's view
frame has +X left, +Y up, +Z into the screen, row vectors, ``X_view = X_world @ R + T``.
:func:`opencv_cameras` turns them into OpenCV matrices
(x right, y down, z forward, column vectors, pixel centres at integer coordinates with the
top-left pixel centre at (0, 0)).

Sources of the layouts (see docs/format.md, "View layouts"):

- ``clip2point``: CLIP2Point supplement, section 5 (Huang et al., ICCV 2023): six orthogonal
  views plus four corners, rendered with PyTorch3D ``look_at_view_transform``.
- ``orthogonal``: the six orthogonal views of the same supplement (zero-shot evaluation).
- ``mvcnn``: MVCNN (Su et al., ICCV 2015), 12 views at 30 degree azimuth steps, elevation 30.
- ``sphere``: a Fibonacci lattice on the sphere (Gonzalez, Math. Geosci. 2010).
- ``random``: directions uniform on the sphere; distance jittered by U[0.9, 1.1) as in the
  CLIP2Point supplement's pre-training renders.

Any layout's distance can be jittered per view (``distance_jitter``): CLIP2Point's
pre-training renders (supplement, section 5) draw each view's camera distance from [0.9, 1.1)
of the initial one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = [
    "LAYOUTS",
    "ViewLayout",
    "make_layout",
    "resolve_layout_name",
    "make_cameras",
    "make_orthographic_cameras",
    "orthographic_cameras",
    "opencv_cameras",
    "pytorch3d_from_opencv",
]

#: Elevation and azimuth (degrees) of the CLIP2Point 10-view layout: front, top, back,
#: bottom, four corners, left, right.
CLIP2POINT_ELEVATION = (0.0, 90.0, 180.0, 270.0, 225.0, 225.0, 315.0, 315.0, 0.0, 0.0)
CLIP2POINT_AZIMUTH = (0.0, 0.0, 0.0, 0.0, -45.0, 45.0, -45.0, 45.0, -90.0, 90.0)
#: Indices into the CLIP2Point lists giving front, back, left, right, top, bottom.
_ORTHOGONAL_INDEX = (0, 2, 8, 9, 1, 3)
#: Default camera distance in normalized object units (the CLIP2Point unit distance x 2).
DEFAULT_DISTANCE = 2.0
#: Default vertical field of view in degrees.
DEFAULT_FOV = 60.0

LAYOUTS = ("auto", "clip2point", "orthogonal", "mvcnn", "sphere", "random")


@dataclass(frozen=True)
class ViewLayout:
    """Camera placements for the views of one object.

    Attributes:
        name: layout name (one of :data:`LAYOUTS` except ``auto``).
        azimuth: ``(V,)`` float32, degrees, PyTorch3D convention (rotation about +Y from +Z).
        elevation: ``(V,)`` float32, degrees above the XZ plane; values past 90 go over the top.
        distance: ``(V,)`` float32, camera distance from the origin in normalized object units.
    """

    name: str
    azimuth: np.ndarray
    elevation: np.ndarray
    distance: np.ndarray

    @property
    def num_views(self) -> int:
        return int(self.azimuth.shape[0])


def resolve_layout_name(layout: str, num_views: int) -> str:
    """Return the concrete layout name for ``--layout`` and ``--views``.

    ``auto`` picks ``clip2point`` for 10 views, ``orthogonal`` for 6, ``mvcnn`` for 12 and
    ``sphere`` otherwise.

    Raises:
        ValueError: unknown layout, ``num_views < 1``, or a fixed layout asked for a view count
            it does not have.
    """
    if num_views < 1:
        raise ValueError(f"views must be at least 1, got {num_views}")
    if layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}; choose one of {', '.join(LAYOUTS)}")
    if layout == "auto":
        layout = {10: "clip2point", 6: "orthogonal", 12: "mvcnn"}.get(num_views, "sphere")
    fixed = {"clip2point": 10, "orthogonal": 6, "mvcnn": 12}
    if layout in fixed and fixed[layout] != num_views:
        raise ValueError(
            f"layout {layout!r} has {fixed[layout]} views, but --views {num_views} was given"
        )
    return layout


def _fibonacci_sphere(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Azimuth and elevation (degrees) of ``n`` points of a Fibonacci lattice."""
    i = np.arange(n, dtype=np.float64) + 0.5
    y = 1.0 - 2.0 * i / n  # sin(elevation), evenly spaced in (-1, 1)
    golden = math.pi * (3.0 - math.sqrt(5.0))
    azimuth = np.degrees((golden * np.arange(n)) % (2 * math.pi))
    elevation = np.degrees(np.arcsin(y))
    return azimuth, elevation


def make_layout(
    layout: str,
    num_views: int,
    distance: float = DEFAULT_DISTANCE,
    rng: np.random.Generator | None = None,
    distance_jitter: tuple[float, float] | None = None,
) -> ViewLayout:
    """Build the camera placements of a view layout.

    Args:
        layout: a name from :data:`LAYOUTS` (``auto`` is resolved by :func:`resolve_layout_name`).
        num_views: number of views ``V``.
        distance: base camera distance, normalized object units.
        rng: generator for the ``random`` layout and the jitter (seeded per object by the
            caller); unused by the deterministic layouts without jitter.
        distance_jitter: ``(low, high)``: each view's distance is ``distance`` times a draw from
            U[low, high) (CLIP2Point pre-training: 0.9, 1.1); for ``random`` it replaces that
            layout's own U[0.9, 1.1). None: the layout's own distances.

    Returns:
        A :class:`ViewLayout` with ``(V,)`` float32 arrays.

    Raises:
        ValueError: as :func:`resolve_layout_name`; ``random`` or a jitter without ``rng``; a
            jitter that is not ``0 < low <= high``.
    """
    name = resolve_layout_name(layout, num_views)
    dist = np.full(num_views, distance, dtype=np.float64)
    if name == "clip2point":
        azim, elev = np.array(CLIP2POINT_AZIMUTH), np.array(CLIP2POINT_ELEVATION)
    elif name == "orthogonal":
        idx = list(_ORTHOGONAL_INDEX)
        azim = np.array(CLIP2POINT_AZIMUTH)[idx]
        elev = np.array(CLIP2POINT_ELEVATION)[idx]
    elif name == "mvcnn":
        azim, elev = np.arange(12) * 30.0, np.full(12, 30.0)
    elif name == "sphere":
        azim, elev = _fibonacci_sphere(num_views)
    else:  # random
        if rng is None:
            raise ValueError("the random layout needs a seeded numpy Generator")
        direction = rng.normal(size=(num_views, 3))
        direction /= np.linalg.norm(direction, axis=1, keepdims=True)
        # PyTorch3D spherical angles: x = d cos(e) sin(a), y = d sin(e), z = d cos(e) cos(a)
        elev = np.degrees(np.arcsin(np.clip(direction[:, 1], -1.0, 1.0)))
        azim = np.degrees(np.arctan2(direction[:, 0], direction[:, 2]))
        if distance_jitter is None:
            dist = dist * rng.uniform(0.9, 1.1, size=num_views)
    if distance_jitter is not None:
        low, high = distance_jitter
        if not 0 < low <= high:
            raise ValueError(f"distance_jitter must be 0 < low <= high, got {distance_jitter}")
        if rng is None:
            raise ValueError("a distance jitter needs a seeded numpy Generator")
        dist = dist * rng.uniform(low, high, size=num_views)
    f32 = lambda a: np.ascontiguousarray(a, dtype=np.float32)  # noqa: E731
    return ViewLayout(name, f32(azim), f32(elev), f32(dist))


def make_cameras(layout: ViewLayout, fov: float = DEFAULT_FOV, device="cpu"):
    """PyTorch3D cameras for a layout, looking at the origin with +Y up.

    Args:
        layout: camera placements (``V`` views).
        fov: vertical field of view, degrees.
        device: torch device for the cameras.

    Returns:
        ``pytorch3d.renderer.FoVPerspectiveCameras`` with ``V`` cameras, ``R`` ``(V, 3, 3)`` and
        ``T`` ``(V, 3)`` float32, built by ``look_at_view_transform`` (PyTorch3D convention,
        ``X_view = X_world @ R + T``). ``znear`` 0.01 and ``zfar`` 100 object units.
    """
    from pytorch3d.renderer import FoVPerspectiveCameras

    R, T = _look_at(layout)
    return FoVPerspectiveCameras(
        R=R, T=T, fov=fov, degrees=True, znear=0.01, zfar=100.0, device=device
    )


def _look_at(layout: ViewLayout):
    """PyTorch3D ``R`` ``(V, 3, 3)`` and ``T`` ``(V, 3)`` looking at the origin, +Y up."""
    import torch
    from pytorch3d.renderer import look_at_view_transform

    return look_at_view_transform(
        dist=torch.from_numpy(layout.distance),
        elev=torch.from_numpy(layout.elevation),
        azim=torch.from_numpy(layout.azimuth),
        degrees=True,
    )


def make_orthographic_cameras(layout: ViewLayout, image_size: int, verts=None,
                              fit: float | None = None, device="cpu"):
    """PyTorch3D parallel-projection cameras for a layout, fitted per view to a mesh.

    The cameras sit where :func:`make_cameras` puts them (``distance`` only sets the depth
    origin) and project along their viewing direction. With ``fit``, each view's scale and
    offset follow :func:`tap3d.views.projection.fit_parallel` on the projected ``verts`` (the
    TAP authors' ``cal_scale_bias`` rule: the object's projection spans that share of the frame,
    centred); without it every view maps the unit sphere onto the frame (``S / 2`` pixels per
    object unit, the axis at the image centre).

    Args:
        layout: camera placements (``V`` views).
        image_size: ``S``, pixels.
        verts: ``(M, 3)`` float tensor, the mesh's vertices (normalized object frame); needed
            with ``fit``.
        fit: share of the frame the object fills (TAP: ``200 / 224``), or None.
        device: torch device for the cameras.

    Returns:
        ``(cameras, focal, centre)``: ``pytorch3d.renderer.OrthographicCameras`` (NDC focal
        length and principal point, ``in_ndc``), ``focal`` ``(V,)`` float64 pixels per object
        unit and ``centre`` ``(V, 2)`` float64 OpenCV pixel position of the camera axis (the
        stored ``K``, :func:`tap3d.views.projection.orthographic_intrinsics`).

    Raises:
        ValueError: ``fit`` without ``verts``, or out of range.
    """
    import torch

    from tap3d.views.projection import fit_parallel

    R, T = _look_at(layout)
    S, V = image_size, layout.num_views
    if fit is None:
        focal = torch.full((V,), S / 2.0, dtype=torch.float64)
        centre = torch.full((V, 2), (S - 1) / 2.0, dtype=torch.float64)
    else:
        if verts is None:
            raise ValueError("a fitted orthographic camera needs the mesh's vertices")
        view = verts.detach().cpu().double()[None] @ R.double() + T.double()[:, None]
        focal, centre = fit_parallel(-view[..., :2], S, fit)  # OpenCV x, y = -PyTorch3D X, Y
    focal, centre = focal.numpy(), centre.numpy()
    return orthographic_cameras(R, T, focal, centre, S, device), focal, centre


def orthographic_cameras(R, T, focal, centre, image_size: int, device="cpu"):
    """PyTorch3D ``OrthographicCameras`` (NDC) of stored orthographic cameras.

    PyTorch3D maps ``X_ndc = f_ndc X_view + p_ndc`` (+X left, +Y up) and puts OpenCV pixel
    ``u`` at NDC ``1 - (2 u + 1) / S``; with OpenCV ``u = f x + c`` and ``x = -X_view`` that is
    ``f_ndc = 2 f / S`` and ``p_ndc = 1 - (2 c + 1) / S``.

    Args:
        R: ``(V, 3, 3)``, T: ``(V, 3)``: PyTorch3D extrinsics (array or tensor).
        focal: ``(V,)`` pixels per object unit; centre: ``(V, 2)`` OpenCV pixels of the axis
            (``K[:, 0, 0]`` and ``K[:, :2, 2]`` of the stored orthographic ``K``).
        image_size: ``S``, pixels.
        device: torch device for the cameras.
    """
    import torch
    from pytorch3d.renderer import OrthographicCameras

    focal = torch.as_tensor(np.asarray(focal, np.float64))
    centre = torch.as_tensor(np.asarray(centre, np.float64))
    focal_ndc = (2.0 * focal / image_size)[:, None].expand(len(focal), 2)
    principal = 1.0 - (2.0 * centre + 1.0) / image_size
    return OrthographicCameras(focal_length=focal_ndc.float(), principal_point=principal.float(),
                               R=torch.as_tensor(R).float(), T=torch.as_tensor(T).float(),
                               in_ndc=True, device=device)


def opencv_cameras(
    R: np.ndarray, T: np.ndarray, fov: np.ndarray | float, image_size: int
) -> tuple[np.ndarray, np.ndarray]:
    """OpenCV intrinsics and extrinsics equal to PyTorch3D ``FoVPerspectiveCameras``.

    PyTorch3D's view frame has +X left and +Y up; OpenCV's has x right and y down, so
    ``X_cv = diag(-1, -1, 1) X_view``. For a square image of ``S`` pixels PyTorch3D's NDC range
    [-1, 1] spans the image with pixel ``j``'s centre at NDC ``1 - (2 j + 1) / S``, which gives
    ``f = S / (2 tan(fov / 2))`` and ``c = (S - 1) / 2`` with the top-left pixel centre at (0, 0).

    Args:
        R: ``(..., 3, 3)`` PyTorch3D rotations (row-vector convention).
        T: ``(..., 3)`` PyTorch3D translations.
        fov: vertical field of view in degrees, scalar or broadcastable to ``(...)``.
        image_size: ``S``, the square image's side in pixels.

    Returns:
        ``K`` ``(..., 3, 3)`` and ``world_to_camera`` ``(..., 4, 4)`` float32, such that
        ``[u, v, 1]^T ~ K (world_to_camera @ [X, 1])[:3]`` (column vectors).
    """
    R = np.asarray(R, dtype=np.float64)
    T = np.asarray(T, dtype=np.float64)
    batch = R.shape[:-2]
    flip = np.array([-1.0, -1.0, 1.0])
    rotation_cv = flip[:, None] * np.swapaxes(R, -1, -2)  # diag(flip) @ R^T
    translation_cv = flip * T
    world_to_camera = np.zeros(batch + (4, 4))
    world_to_camera[..., :3, :3] = rotation_cv
    world_to_camera[..., :3, 3] = translation_cv
    world_to_camera[..., 3, 3] = 1.0
    focal = image_size / (2.0 * np.tan(np.radians(np.broadcast_to(fov, batch)) / 2.0))
    K = np.zeros(batch + (3, 3))
    K[..., 0, 0] = focal
    K[..., 1, 1] = focal
    K[..., 0, 2] = (image_size - 1) / 2.0
    K[..., 1, 2] = (image_size - 1) / 2.0
    K[..., 2, 2] = 1.0
    return K.astype(np.float32), world_to_camera.astype(np.float32)


def pytorch3d_from_opencv(world_to_camera: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """PyTorch3D ``R``, ``T`` of OpenCV extrinsics (the inverse of :func:`opencv_cameras`'s).

    Args:
        world_to_camera: ``(..., 4, 4)`` OpenCV extrinsics.

    Returns:
        ``R`` ``(..., 3, 3)`` and ``T`` ``(..., 3)`` float32, ``X_view = X_world @ R + T``.
    """
    w2c = np.asarray(world_to_camera, np.float64)
    flip = np.array([-1.0, -1.0, 1.0])
    R = np.swapaxes(w2c[..., :3, :3], -1, -2) * flip  # R_cv^T diag(flip)
    return R.astype(np.float32), (w2c[..., :3, 3] * flip).astype(np.float32)
