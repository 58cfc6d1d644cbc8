"""The Zarr format ``tap3d.views``, format_versions 1 and 2 (see ``docs/format.md``).

Version 2 adds the group attribute ``projection`` (see :mod:`tap3d.views.projection`): a
dataset with orthographic views is written as version 2, since a reader of version 1 would take
its ``K`` for a pinhole matrix; a perspective dataset is still written as version 1, unchanged.

One Zarr v3 group. The images (``rgb``, ``mask``, ``depth``) are chunked one object per chunk
and sharded ``shard_size`` objects per shard (one object's views decode alone); every other
per-object array (cameras, points, normals, ids, labels, status) is chunked ``shard_size``
objects per chunk, unsharded (datasets written before 2026-12 shard cameras, points and normals
like the images; readers take the layout from the metadata). Shard ``s`` therefore covers objects
``[s * shard_size, (s + 1) * shard_size)`` in every array, and the builder writes whole shards
only, one task per shard, so that no two tasks ever touch one storage object (concurrent writes
into one shard lose data, zarr-python #3682).

Every array carries ``dimension_names``; images carry a ``coordinates`` attribute so that
``xarray.open_zarr`` attaches ``object_id``, ``category`` and ``label`` to them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "READABLE_VERSIONS",
    "format_version",
    "up_axis_of",
    "STATUS_PENDING",
    "STATUS_DONE",
    "STATUS_FAILED",
    "ArraySpec",
    "OPTIONAL_ARRAYS",
    "array_specs",
    "shard_ranges",
    "empty_shard",
    "bytes_on_disk",
    "FormatError",
    "open_views",
    "CREATION",
    "CREATION_COMPLETE",
    "CREATION_INCOMPLETE",
]

FORMAT = "tap3d.views"
#: The newest format_version this code writes.
FORMAT_VERSION = 2
#: The format_versions this code reads.
READABLE_VERSIONS = (1, 2)
STATUS_PENDING, STATUS_DONE, STATUS_FAILED = 0, 1, 2
#: The group attribute that says whether creating the store finished (``docs/format.md``,
#: "Status"): ``incomplete`` from the group's first write until every array and index array
#: is written and the metadata consolidated, then ``complete``. Datasets written before it
#: existed do not carry it and were complete.
CREATION, CREATION_INCOMPLETE, CREATION_COMPLETE = "creation", "incomplete", "complete"


@dataclass(frozen=True)
class ArraySpec:
    """Shape, dtype and dimension names of one array of the format.

    ``sharded`` arrays (the images) have one object per chunk and ``shard_size`` objects per
    shard; the others have ``shard_size`` objects per chunk, unsharded: the stream reads a
    whole shard of each array at once, and zarr's cost per chunk (about 0.2 ms) outweighed
    decoding a camera matrix or a point cloud one object at a time.
    """

    shape: tuple[int, ...]
    dtype: object
    dims: tuple[str, ...]
    sharded: bool

    @property
    def fill_value(self):
        return "" if self.dtype is str else 0


#: The optional arrays a build writes on request (docs/format.md): ``normal`` (normal maps),
#: ``albedo`` (unlit base colour maps) and ``point_colors`` (base colour of each surface point).
OPTIONAL_ARRAYS = ("normal", "albedo", "point_colors")


def array_specs(num_objects: int, num_views: int, image_size: int,
                num_points: int, part_labels: bool = False,
                optional: tuple[str, ...] = ()) -> dict[str, ArraySpec]:
    """Every array of the format, keyed by its path in the group.

    Args:
        num_objects: ``N``, objects in the dataset.
        num_views: ``V``, views per object.
        image_size: ``S``, side of the square images in pixels.
        num_points: ``P``, surface points per object.
        part_labels: add the optional ``part`` array ``(N, P)`` int16: the global part id of
            every point (docs/partseg.md; with the ``parts`` group attribute).
        optional: names from :data:`OPTIONAL_ARRAYS` to add: ``normal`` ``(N, V, S, S, 3)``
            float16, unit surface normals of each pixel in the camera's OpenCV frame, 0 where
            ``mask`` is false (a build's ``--normal-maps``); ``albedo`` ``(N, V, S, S, 3)``
            uint8, the unlit sRGB base colour of each pixel, 0 where ``mask`` is false
            (``--albedo-maps``); ``point_colors`` ``(N, P, 3)`` uint8, the sRGB base colour at
            each surface point (``--point-colors``).

    Raises:
        ValueError: an unknown optional array.
    """
    N, V, S, P = num_objects, num_views, image_size, num_points
    ov = ("object", "view")
    unknown = set(optional) - set(OPTIONAL_ARRAYS)
    if unknown:
        raise ValueError(f"unknown optional arrays {sorted(unknown)}; the format has "
                         f"{', '.join(OPTIONAL_ARRAYS)}")
    extra = {"normal": ArraySpec((N, V, S, S, 3), "float16", ov + ("y", "x", "xyz"), True),
             "albedo": ArraySpec((N, V, S, S, 3), "uint8", ov + ("y", "x", "channel"), True),
             "point_colors": ArraySpec((N, P, 3), "uint8", ("object", "point", "channel"),
                                       False)}
    parts = {"part": ArraySpec((N, P), "int16", ("object", "point"), False)} if part_labels \
        else {}
    return {**parts, **{name: extra[name] for name in OPTIONAL_ARRAYS if name in optional},
        "rgb": ArraySpec((N, V, S, S, 3), "uint8", ov + ("y", "x", "channel"), True),
        "mask": ArraySpec((N, V, S, S), "bool", ov + ("y", "x"), True),
        "depth": ArraySpec((N, V, S, S), "float16", ov + ("y", "x"), True),
        "cameras/R": ArraySpec((N, V, 3, 3), "float32", ov + ("rotation_row", "rotation_col"), False),
        "cameras/T": ArraySpec((N, V, 3), "float32", ov + ("xyz",), False),
        "cameras/fov": ArraySpec((N, V), "float32", ov, False),
        "cameras/K": ArraySpec((N, V, 3, 3), "float32", ov + ("intrinsics_row", "intrinsics_col"),
                               False),
        "cameras/world_to_camera": ArraySpec(
            (N, V, 4, 4), "float32", ov + ("extrinsics_row", "extrinsics_col"), False),
        "cameras/azimuth": ArraySpec((N, V), "float32", ov, False),
        "cameras/elevation": ArraySpec((N, V), "float32", ov, False),
        "cameras/distance": ArraySpec((N, V), "float32", ov, False),
        "points": ArraySpec((N, P, 3), "float32", ("object", "point", "xyz"), False),
        "normals": ArraySpec((N, P, 3), "float32", ("object", "point", "xyz"), False),
        "normalization/center": ArraySpec((N, 3), "float32", ("object", "xyz"), False),
        "normalization/scale": ArraySpec((N,), "float32", ("object",), False),
        "object_id": ArraySpec((N,), str, ("object",), False),
        "category": ArraySpec((N,), str, ("object",), False),
        "label": ArraySpec((N,), "int32", ("object",), False),
        "status": ArraySpec((N,), "uint8", ("object",), False),
        "error": ArraySpec((N,), str, ("object",), False),
        "warnings": ArraySpec((N,), str, ("object",), False),
        "split": ArraySpec((N,), str, ("object",), False),
    }


#: Arrays written by the driver when the dataset is created (known from the source).
INDEX_ARRAYS = ("object_id", "category", "label", "split")
#: Arrays written by the shard tasks; ``status`` is written last, so a shard whose status is
#: not pending is complete.
SHARD_ARRAYS = tuple(
    name for name in array_specs(1, 1, 1, 1) if name not in INDEX_ARRAYS + ("status",)
) + ("status",)


def empty_shard(num_objects: int, num_views: int, image_size: int,
                num_points: int, optional: tuple[str, ...] = ()) -> dict[str, np.ndarray]:
    """Zeroed arrays of :data:`SHARD_ARRAYS` (and the ``optional`` ones) for
    ``num_objects`` objects, in the format's dtypes (strings as object arrays of ``""``;
    ``astype(str)`` them before writing)."""
    specs = array_specs(num_objects, num_views, image_size, num_points, optional=optional)
    names = tuple(name for name in OPTIONAL_ARRAYS if name in optional) + SHARD_ARRAYS
    arrays = {name: np.zeros(specs[name].shape, dtype=object if specs[name].dtype is str
                             else specs[name].dtype) for name in names}
    for name in names:
        if specs[name].dtype is str:
            arrays[name][:] = ""
    return arrays


def format_version(attributes: dict) -> int:
    """The format_version a dataset with these group attributes is written as: 2 when its
    ``projection`` is not perspective, else 1 (readers of version 1 read it unchanged)."""
    return 1 if attributes.get("projection", "perspective") == "perspective" else 2


def up_axis_of(attributes) -> int:
    """The up axis of a dataset's object frame from its group attributes: ``up_axis`` (0, 1 or
    2), 1 (y-up, ShapeNetCore and every tap3d build) when absent; datasets imported from the TAP
    authors' data are z-up (2).

    Raises:
        FormatError: an ``up_axis`` that is not 0, 1 or 2.
    """
    axis = attributes.get("up_axis", 1)
    if axis not in (0, 1, 2):
        raise FormatError(f"up_axis attribute must be 0, 1 or 2, got {axis!r}")
    return int(axis)


def shard_ranges(num_objects: int, shard_size: int) -> list[tuple[int, int]]:
    """``[(start, stop), ...]`` object ranges of the shards, in order."""
    return [(s, min(s + shard_size, num_objects)) for s in range(0, num_objects, shard_size)]


def bytes_on_disk(store) -> int:
    """Total size in bytes of the files (objects) under a local path or fsspec URL; 0 when
    the storage cannot list them."""
    import fsspec

    fs, path = fsspec.core.url_to_fs(os.fspath(store))
    try:
        return int(fs.du(path, total=True))
    except Exception:  # noqa: BLE001 - size is informative only
        return 0


class FormatError(ValueError):
    """A store that is not a readable ``tap3d.views`` dataset of a version this code reads."""


def open_views(store, mode: str = "r"):
    """The dataset's ``zarr.Group``, after checking that it is one: every reader opens it here.

    Args:
        store: a local path, an fsspec URL or a zarr store (opened through
            :func:`tap3d.views.storage.open_store`, so that storage failures name it).
        mode: ``r`` (read) or ``r+`` (write into an existing dataset).

    Returns:
        The open ``zarr.Group``.

    Raises:
        FormatError: the store does not hold a group, is not a ``tap3d.views`` group, has a
            ``format_version`` not in :data:`READABLE_VERSIONS`, or its creation never finished
            (the message names the store and the reason).
        StorageError: the storage failed to answer (a network error, not a format error).
    """
    import zarr

    from tap3d.views.storage import StorageError, open_store, store_name

    name = store_name(store)
    try:
        group = zarr.open_group(open_store(store, mode), mode=mode, zarr_format=3)
        attrs = group.attrs
        found = attrs.get("format")
    except StorageError:
        raise
    except Exception as error:  # noqa: BLE001 - any other failure to open is the same for a reader
        raise FormatError(f"{name}: cannot be opened as a {FORMAT} dataset "
                          f"({type(error).__name__}: {error})") from None
    if found != FORMAT:
        raise FormatError(f"{name}: not a {FORMAT} dataset (format {found!r})")
    if attrs.get("format_version") not in READABLE_VERSIONS:
        raise FormatError(f"{name}: format_version {attrs.get('format_version')!r}, this "
                          f"version of tap3d reads {', '.join(map(str, READABLE_VERSIONS))}")
    if attrs.get(CREATION, CREATION_COMPLETE) != CREATION_COMPLETE:
        raise FormatError(f"{name}: its creation never finished (a build interrupted before "
                          "rendering began); run the same build command again")
    return group
