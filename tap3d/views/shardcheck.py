"""The checks of :func:`tap3d.views.verify.verify` on one shard: one task, in process or on a
Dask worker.

:func:`check_shard` reads every array of one shard (``shard_size`` objects; a shard that fails
is read chunk by chunk to name the chunk), and checks NaN/inf in float arrays and, for done
objects, camera rotations and intrinsics. It returns a :class:`ShardCheck`, small enough to
send back: the defects and object indices it found, and the values that the driver's global
checks need (``status`` and the index arrays). The driver merges the shards' results in shard
order, so the report is the same whichever way the shards ran.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from tap3d.views import schema as fmt
from tap3d.views.storage import StorageError, open_store

__all__ = ["Defect", "ShardCheck", "check_shard", "DRIVER_ARRAYS", "ROTATIONS"]

#: Arrays whose values go back to the driver: status counts and the index checks.
DRIVER_ARRAYS = ("status", "object_id", "category", "label")
#: Arrays holding camera rotations: ``cameras/R`` and the rotation of ``world_to_camera``.
ROTATIONS = ("cameras/R", "cameras/world_to_camera")
_CAMERAS = ROTATIONS + ("cameras/K",)


@dataclass
class Defect:
    """One problem: the array (or ``attributes``), the chunk when known, the reason."""

    array: str
    reason: str
    chunk: str | None = None

    def __str__(self) -> str:
        where = f"{self.array} chunk {self.chunk}" if self.chunk else self.array
        return f"{where}: {self.reason}"


@dataclass
class ShardCheck:
    """What :func:`check_shard` found in the objects ``start`` to ``stop - 1``.

    Attributes:
        chunks_read: chunks decoded.
        defects: array -> the chunks that do not decode, in order.
        not_finite: float array -> objects (dataset indices) holding NaN or inf.
        values: the :data:`DRIVER_ARRAYS` read, for this shard's objects.
        rotations: rotation array -> (done objects whose rotation is not orthonormal with
            det +1, the largest ``|R R^T - I|`` over the shard's done objects); only arrays
            checked (read, with ``status``, and some object done).
        intrinsics: done objects whose ``K`` is not a valid intrinsic matrix, when checked.
    """

    start: int
    stop: int
    chunks_read: int = 0
    defects: dict[str, list[Defect]] = field(default_factory=dict)
    not_finite: dict[str, list[int]] = field(default_factory=dict)
    values: dict[str, np.ndarray] = field(default_factory=dict)
    rotations: dict[str, tuple[list[int], float]] = field(default_factory=dict)
    intrinsics: list[int] | None = None


def chunk_key(name: str, index: int, ndim: int) -> str:
    return f"{name}/c/" + "/".join([str(index)] + ["0"] * (ndim - 1))


def _read(array, name: str, spec, start: int, stop: int, shard_size: int,
          result: ShardCheck) -> tuple[np.ndarray, np.ndarray]:
    """``(data, readable)`` of one array's shard; a shard that fails is read chunk by chunk,
    and each chunk that fails is a defect (its objects read as zeros, not readable)."""
    per_chunk = array.chunks[0]
    try:
        data = array[start:stop]
        result.chunks_read += -(-(stop - start) // per_chunk)
        return data, np.ones(stop - start, dtype=bool)
    except StorageError:
        raise
    except Exception:  # noqa: BLE001 - find the chunk below
        pass
    dtype = object if spec.dtype is str else spec.dtype
    data = np.zeros((stop - start,) + spec.shape[1:], dtype=dtype)
    readable = np.ones(stop - start, dtype=bool)
    for first in range(start, stop, per_chunk):
        last = min(first + per_chunk, stop)
        try:
            data[first - start:last - start] = array[first:last]
            result.chunks_read += 1
        except StorageError:
            raise
        except Exception as error:  # noqa: BLE001
            readable[first - start:last - start] = False
            shard = f" (in shard file {chunk_key(name, start // shard_size, len(spec.shape))})" \
                if spec.sharded else ""
            result.defects.setdefault(name, []).append(Defect(
                name, f"does not decode{shard}: {type(error).__name__}: {error}",
                chunk=f"{first // per_chunk} (objects {first}-{last - 1})"))
    return data, readable


@lru_cache(maxsize=2)
def _opened(store: str, names: tuple[str, ...], run: str) -> dict:
    """The arrays ``names`` of ``store``, opened once per ``run`` (one verify) in a worker
    process: opening the group and its arrays took 60% as long as checking a shard of 64 tiny
    objects. ``run`` is new for every verify, so a dataset rewritten in between is opened
    again."""
    import zarr

    group = zarr.open_group(open_store(store, "r"), mode="r")
    return {name: group[name] for name in names}


def check_shard(store, start: int, stop: int, specs: dict, shard_size: int, image_size: int,
                arrays: dict | None = None, run: str | None = None) -> ShardCheck:
    """Check the objects ``start`` to ``stop - 1`` (one shard) of the arrays in ``specs``.

    Args:
        store: dataset path or fsspec URL (opened here unless ``arrays`` is given).
        start, stop: the shard's objects.
        specs: name -> :class:`~tap3d.views.schema.ArraySpec` of the arrays to read (present,
            with the expected shape), in the format's order.
        shard_size: objects per shard (names a sharded array's shard file).
        image_size: pixels per side (the principal point must lie in the image).
        arrays: name -> the opened zarr array, for every name of ``specs`` (in process:
            opened once for every shard).
        run: a token of this verify: a path or URL ``store`` is opened once per process and
            run (without ``arrays``).

    Raises:
        StorageError: the storage failed to answer.
    """
    if arrays is None and run is not None and isinstance(store, (str, os.PathLike)):
        arrays = _opened(os.fspath(store), tuple(specs), run)
    elif arrays is None:
        arrays = _opened.__wrapped__(store, tuple(specs), "")
    result = ShardCheck(start, stop)
    readable = np.ones(stop - start, dtype=bool)
    cameras = {}
    for name, spec in specs.items():
        data, ok = _read(arrays[name], name, spec, start, stop, shard_size, result)
        readable &= ok
        if spec.dtype is not str and np.dtype(spec.dtype).kind == "f":
            bad = ~np.isfinite(data.reshape(len(data), -1)).all(1) & ok
            if bad.any():
                result.not_finite[name] = (start + np.flatnonzero(bad)).tolist()
        if name in DRIVER_ARRAYS:
            result.values[name] = data
        elif name in _CAMERAS:
            cameras[name] = data
    if "status" in result.values:
        done = (result.values["status"] == fmt.STATUS_DONE) & readable
        if done.any():
            _check_cameras(cameras, done, start, image_size, result)
    return result


def _check_cameras(cameras: dict, done: np.ndarray, start: int, size: int,
                   result: ShardCheck) -> None:
    """Rotations orthonormal with det +1; K a pinhole matrix with the centre in the image."""
    objects = start + np.flatnonzero(done)
    for name in ROTATIONS:
        if name not in cameras:
            continue
        R = cameras[name][..., :3, :3][done].astype(np.float64)
        error = np.abs(R @ np.swapaxes(R, -1, -2) - np.eye(3)).max(axis=(-1, -2))
        det = np.linalg.det(R)
        bad = (error > 1e-4) | (np.abs(det - 1) > 1e-4)
        result.rotations[name] = (objects[bad.any(1)].tolist(), float(error.max()))
    if "cameras/K" in cameras:
        K = cameras["cameras/K"][done].astype(np.float64)
        bad = ((K[..., 0, 0] <= 0) | (K[..., 1, 1] <= 0) | (np.abs(K[..., 0, 1]) > 1e-6)
               | (np.abs(K[..., 1, 0]) > 1e-6) | (np.abs(K[..., 2, :] - [0, 0, 1]).max(-1) > 1e-6)
               | (K[..., 0, 2] < 0) | (K[..., 0, 2] > size - 1) | (K[..., 1, 2] < 0)
               | (K[..., 1, 2] > size - 1))
        result.intrinsics = objects[bad.any(1)].tolist()
