"""The TAP authors' pre-training data as a ``tap3d.views`` dataset: ``tap-cli import-tap``.

The authors (Wang et al., "Take-A-Photo", ICCV 2023; wangzy22/TAP,
``openpoints/dataset/shapenet/shapenet55.py``) pre-train on ShapeNet55 point clouds and MVCNN's
renders of the same models::

    ROOT/pointclouds/{train,val,test}/model_XXXXXX.ply       1024 points (pointclouds_p2048/: 2048)
    ROOT/shapenet55v1/{train,val,test}/model_XXXXXX_001.jpg  ... _012.jpg, view v in _{v+1:03d}

(the image path is the point file's with ``pointclouds`` replaced by ``shapenet55v1`` and
``.ply`` by ``_{v+1:03d}.jpg``). Their loader reorders the points' axes ``[:, [2, 0, 1]]``
(ShapeNet's y-up becomes z-up), centres them on their centroid and scales them to unit radius;
an image pixel is foreground when any channel is below 1 (the renders have a white background).
View ``v`` is their ``rotate_theta_phi`` of ``theta = 2 pi v / 12`` and ``phi = -pi / 3``
(:func:`tap_view_matrices`), seen in parallel projection fitted per view to the cloud
(``cal_scale_bias``: :func:`tap3d.views.projection.fit_parallel` with 200 of 224 pixels).

:func:`import_tap` writes one object per point file, in their order (sorted folder listings,
train, val, test), with those points, images, masks and the cameras of their views, ``split``
from the folder. The dataset is orthographic and z-up (group attributes ``projection`` and
``up_axis`` 2); it has no ``depth`` (zeros) and no categories (the tree names none: category
empty, label -1). A missing view, a point file of another size or an unreadable file is an
error naming the file, or with ``skip_bad`` the object is recorded failed (``status`` 2 and the
error) and the import goes on.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from datetime import datetime, timezone

import numpy as np

from tap3d.buildconfig import BuildConfig, recorded_attributes
from tap3d.views import schema
from tap3d.views.projection import TAP_FIT, fit_parallel, orthographic_intrinsics

__all__ = ["TAP_VIEWS", "TAP_PHI", "SPLITS", "POINT_FOLDERS", "TapDataError", "TapObject",
           "ImportReport", "tap_view_matrices", "tap_cameras", "discover_tap", "read_tap_object",
           "import_tap"]

#: Views per object of the MVCNN renders.
TAP_VIEWS = 12
#: The authors' ``phi`` (``shapenet55.py``: ``(-1/2 + 1/6) pi``): elevation +30 degrees.
TAP_PHI = -math.pi / 3
#: Split folders, in the order their loader lists them.
SPLITS = ("train", "val", "test")
#: Point folder per point count (``shapenet55.py``).
POINT_FOLDERS = {1024: "pointclouds", 2048: "pointclouds_p2048"}
#: Camera distance (object units) of the stored cameras: a parallel projection does not depend
#: on it; it sets where ``depth`` would count from.
DISTANCE = 2.0
#: The up axis of the authors' frame (z, after the ``[2, 0, 1]`` reorder).
UP_AXIS = 2


class TapDataError(ValueError):
    """A file of the authors' tree that cannot be imported (the message names it)."""


@dataclass(frozen=True)
class TapObject:
    """One model of the tree: ``object_id`` (``split/model_XXXXXX``), ``split``, the point
    file and the 12 image files (view order)."""

    object_id: str
    split: str
    points: str
    images: tuple[str, ...]


@dataclass
class ImportReport:
    """What :func:`import_tap` wrote: objects done, failures ``(object_id, error)``."""

    store: str
    objects: int
    done: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)

    def format(self) -> str:
        lines = [f"{self.store}: {self.objects} objects, {self.done} done, "
                 f"{len(self.failed)} failed"]
        lines += [f"  {object_id}: {error}" for object_id, error in self.failed[:5]]
        return "\n".join(lines)


def _axis_rotation(angle: float, axis) -> np.ndarray:
    """``(3, 3)`` rotation by ``angle`` radians about the unit ``axis`` (right-handed)."""
    from scipy.spatial.transform import Rotation

    return Rotation.from_rotvec(angle * np.asarray(axis, np.float64)).as_matrix()


def tap_view_matrices(views: int = TAP_VIEWS, phi: float = TAP_PHI) -> np.ndarray:
    """The authors' view rotations (``rotate_theta_phi`` in ``openpoints/dataset/data_util.py``).

    View ``v``: ``theta = 2 pi v / views``; the rotation by ``-theta`` about z after the
    rotation by ``-phi`` about ``(sin theta, -cos theta, 0)``. Their ``rotate_point_clouds_batch``
    maps a point to ``M p``; the first coordinate runs down the image rows, the second along the
    columns, and the projection is along the third, which points at the camera. On their z-up
    axes this puts the camera of view ``v`` at elevation +30 degrees and azimuth ``30 v``
    degrees from +x towards +y; on ShapeNet's y-up axes (undoing ``[2, 0, 1]``) that is
    tap3d's ``mvcnn`` layout: elevation 30 and PyTorch3D azimuth ``30 v``, with the same image
    orientation (the tests check both).

    Returns:
        ``(views, 3, 3)`` float64 ``M`` (rows: image down, image right, towards the camera).
    """
    out = []
    for v in range(views):
        theta = 2 * math.pi * v / views
        out.append(_axis_rotation(-theta, (0, 0, 1))
                   @ _axis_rotation(-phi, (math.sin(theta), -math.cos(theta), 0)))
    return np.stack(out)


def tap_cameras(points: np.ndarray, image_size: int, fit: float = TAP_FIT) -> dict:
    """The stored cameras of the authors' 12 views of one cloud.

    Args:
        points: ``(N, 3)`` the normalized cloud (their axes and normalization).
        image_size: ``S``, pixels.
        fit: the share of the frame the cloud's projection fills (theirs: 200 of 224).

    Returns:
        The ``cameras/*`` arrays of one object (``K`` orthographic, ``fov`` 0; see
        :mod:`tap3d.views.projection`): ``world_to_camera`` has the rows image right, image
        down and away from the camera of :func:`tap_view_matrices`, the camera ``DISTANCE``
        from the origin; ``K`` is :func:`~tap3d.views.projection.fit_parallel` of the points.
    """
    import torch

    from tap3d.render.cameras import pytorch3d_from_opencv

    M = tap_view_matrices()
    V = len(M)
    w2c = np.zeros((V, 4, 4))
    w2c[:, 0, :3], w2c[:, 1, :3], w2c[:, 2, :3] = M[:, 1], M[:, 0], -M[:, 2]
    w2c[:, 2, 3], w2c[:, 3, 3] = DISTANCE, 1.0
    xy = np.einsum("vdc,nc->vnd", w2c[:, :2, :3], np.asarray(points, np.float64))
    focal, centre = fit_parallel(torch.from_numpy(xy), image_size, fit)
    R, T = pytorch3d_from_opencv(w2c)
    return {
        "cameras/R": R, "cameras/T": T,
        "cameras/fov": np.zeros(V, np.float32),
        "cameras/K": orthographic_intrinsics(focal.numpy(), centre.numpy()),
        "cameras/world_to_camera": w2c.astype(np.float32),
        "cameras/azimuth": (30.0 * np.arange(V)).astype(np.float32),
        # the camera direction M[2] is 90 + phi (in degrees) above the horizontal plane: 30
        "cameras/elevation": np.full(V, 90.0 + math.degrees(TAP_PHI), np.float32),
        "cameras/distance": np.full(V, DISTANCE, np.float32),
    }


def discover_tap(root: str, points: int = 1024) -> list[TapObject]:
    """The models of an authors' tree, in their loader's order.

    Args:
        root: the folder holding ``pointclouds/`` (or ``pointclouds_p2048/``) and
            ``shapenet55v1/`` (their ``data/ShapeNet55``).
        points: 1024 or 2048 (which point folder).

    Raises:
        TapDataError: another point count, or no split folder with point files.
    """
    if points not in POINT_FOLDERS:
        raise TapDataError(f"points must be one of {', '.join(map(str, POINT_FOLDERS))}, got "
                           f"{points}")
    folder = os.path.join(root, POINT_FOLDERS[points])
    objects = []
    for split in SPLITS:
        where = os.path.join(folder, split)
        if not os.path.isdir(where):
            continue
        for name in sorted(os.listdir(where)):
            if not name.endswith(".ply"):
                continue
            stem = name[:-len(".ply")]
            images = tuple(os.path.join(root, "shapenet55v1", split, f"{stem}_{v + 1:03d}.jpg")
                           for v in range(TAP_VIEWS))
            objects.append(TapObject(f"{split}/{stem}", split, os.path.join(where, name), images))
    if not objects:
        raise TapDataError(f"{folder}: no {'/'.join(SPLITS)} folders with .ply files")
    return objects


def _read_points(path: str, count: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Points and normals (their axes, normalized), the centroid and the radius of a PLY."""
    import open3d as o3d

    if not os.path.isfile(path):
        raise TapDataError(f"{path}: missing")
    cloud = o3d.io.read_point_cloud(path, format="ply")
    raw = np.asarray(cloud.points, np.float64)
    if len(raw) != count:
        raise TapDataError(f"{path}: {len(raw)} points, expected {count}"
                           + (" (unreadable or empty PLY)" if len(raw) == 0 else ""))
    if not np.isfinite(raw).all():
        raise TapDataError(f"{path}: NaN or infinite coordinates")
    xyz = raw[:, [2, 0, 1]]
    centre = xyz.mean(0)
    radius = float(np.linalg.norm(xyz - centre, axis=1).max())
    if radius <= 0:
        raise TapDataError(f"{path}: all points coincide")
    normals = np.zeros_like(xyz)
    if cloud.has_normals():
        normals = np.asarray(cloud.normals, np.float64)[:, [2, 0, 1]]
    return ((xyz - centre) / radius).astype(np.float32), normals.astype(np.float32), \
        centre.astype(np.float32), radius


def _read_image(path: str, size: int | None) -> np.ndarray:
    """``(S, S, 3)`` uint8 RGB of a JPEG; ``size`` the side every view must have (or None)."""
    from PIL import Image, UnidentifiedImageError

    if not os.path.isfile(path):
        raise TapDataError(f"{path}: missing view")
    try:
        with Image.open(path) as image:
            rgb = np.asarray(image.convert("RGB"))
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError) as error:
        raise TapDataError(f"{path}: unreadable image ({type(error).__name__}: {error})") \
            from None
    if rgb.shape[0] != rgb.shape[1] or (size is not None and rgb.shape[0] != size):
        expected = f"{size} x {size}" if size else "a square image"
        raise TapDataError(f"{path}: {rgb.shape[1]} x {rgb.shape[0]} pixels, expected "
                           f"{expected}")
    return rgb


def read_tap_object(obj: TapObject, points: int, image_size: int) -> dict:
    """One model's per-object arrays of the format (``status`` done).

    Raises:
        TapDataError: a missing, unreadable or wrongly sized file (the message names it).
    """
    xyz, normals, centre, radius = _read_points(obj.points, points)
    rgb = np.stack([_read_image(path, image_size) for path in obj.images])
    return {
        "rgb": rgb,
        "mask": (rgb < 255).any(-1),  # theirs: any channel below 1 of 255
        "depth": np.zeros(rgb.shape[:3], np.float16),
        **tap_cameras(xyz, image_size),
        "points": xyz,
        "normals": normals,
        "normalization/center": centre,
        "normalization/scale": np.float32(radius),
        "status": schema.STATUS_DONE,
        "error": "",
        "warnings": "",
    }


def _attributes(root: str, image_size: int, points: int, shard_size: int) -> dict:
    """The group attributes of an import: the settings its views match, recorded as a build
    records them (:func:`tap3d.buildconfig.recorded_attributes`), with None for what tap3d's
    renderer would decide and the authors' renders do not say."""
    import tap3d

    config = BuildConfig(views=TAP_VIEWS, layout="mvcnn", image_size=image_size,
                         distance=DISTANCE, points=points, shard_size=shard_size,
                         shading="plain", preset="tap", projection="orthographic", fit=TAP_FIT)
    return {
        **recorded_attributes(config),
        **dict.fromkeys(("shading", "textures", "shader", "obj_loader", "backend",
                         "texture_atlas_size", "lights")),
        "categories": [], "category_names": [],
        "layout": {"name": "tap", "azimuth": (30.0 * np.arange(TAP_VIEWS)).tolist(),
                   "elevation": [90.0 + math.degrees(TAP_PHI)] * TAP_VIEWS,
                   "distance": [DISTANCE] * TAP_VIEWS,
                   "note": "the TAP authors' rotate_theta_phi views, about the z (up) axis"},
        "up_axis": UP_AXIS,
        "source": {"root": os.path.abspath(root), "kind": "tap"},
        "tap3d_version": tap3d.__version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def import_tap(root: str, out: str, points: int = 1024, skip_bad: bool = False,
               shard_size: int = 64, overwrite: bool = False,
               progress: bool = True) -> ImportReport:
    """Write the authors' tree under ``root`` as a ``tap3d.views`` dataset at ``out``.

    Args:
        root: their ``data/ShapeNet55`` (see the module docstring).
        out: the dataset's path or fsspec URL.
        points: 1024 (``pointclouds/``) or 2048 (``pointclouds_p2048/``).
        skip_bad: record objects whose files are bad as failed and go on (default: stop).
        shard_size: objects per shard.
        overwrite: replace an existing dataset at ``out``.
        progress: a progress bar.

    Returns:
        An :class:`ImportReport`.

    Raises:
        TapDataError: an empty tree, or a bad file without ``skip_bad`` (the message names the
            file and the reason).
        FileExistsError: ``out`` exists and ``overwrite`` is not set.
    """
    from tqdm.auto import tqdm

    from tap3d.views.writer import create_dataset, write_shard

    objects = discover_tap(root, points)
    size = None
    for obj in objects:  # the image size: the first readable view's
        try:
            size = _read_image(obj.images[0], None).shape[0]
            break
        except TapDataError:
            if not skip_bad:
                raise
    if size is None:
        raise TapDataError(f"{root}: no readable view image")
    index = {"object_id": np.array([o.object_id for o in objects], dtype=str),
             "category": np.array([""] * len(objects), dtype=str),
             "label": np.full(len(objects), -1, np.int32),
             "split": np.array([o.split for o in objects], dtype=str)}
    try:
        group = create_dataset(out, schema.array_specs(len(objects), TAP_VIEWS, size, points),
                               shard_size, _attributes(root, size, points, shard_size), index,
                               overwrite=overwrite)
    except FileExistsError:
        raise FileExistsError(f"{out}: exists (overwrite it with --overwrite)") from None
    report = ImportReport(str(out), len(objects))
    bar = tqdm(total=len(objects), unit="object", disable=not progress, desc="import-tap")
    for start, stop in schema.shard_ranges(len(objects), shard_size):
        arrays = schema.empty_shard(stop - start, TAP_VIEWS, size, points)
        for i, obj in enumerate(objects[start:stop]):
            try:
                values = read_tap_object(obj, points, size)
                report.done += 1
            except TapDataError as error:
                if not skip_bad:
                    raise
                values = {"status": schema.STATUS_FAILED, "error": str(error)}
                report.failed.append((obj.object_id, str(error)))
            for name, value in values.items():
                arrays[name][i] = value
            bar.update()
        write_shard(group, start, {name: a.astype(str) if a.dtype == object else a
                                   for name, a in arrays.items()})
    bar.close()
    return report
