"""Checking a ``tap3d.views`` dataset end to end: ``tap-cli verify``.

:func:`verify` opens a dataset (path or fsspec URL) and checks, in this order: the format name
and version and the attributes the format requires; that its creation finished (the
``creation`` attribute); every array's presence, shape and dtype
against :func:`tap3d.views.schema.array_specs`; that every chunk decodes (each array is read
shard by shard, and a shard that fails is read object by object to name the chunk; every chunk
carries a CRC-32C, so corrupted bytes fail instead of decoding to wrong values); status counts
(pending objects mean an unfinished build); NaN/inf in float arrays; that camera rotations are
orthonormal with determinant +1 (``cameras/R`` and the rotation of ``world_to_camera``); that
every ``K`` is a valid pinhole intrinsic matrix (positive focal lengths, zero skew, last row
``0 0 1``, principal point inside the image; for orthographic datasets the same checks on the
affine ``K``, see :mod:`tap3d.views.projection`); the index arrays: object ids non-empty and
unique, every ``label`` an index of the ``categories`` attribute (or -1 with no categories) and
``category`` the entry it indexes. Geometry checks cover done objects only (failed objects keep
the fill value 0). A failure of the storage itself is not a defect of the data: it raises
:class:`~tap3d.views.storage.StorageError`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from tap3d.views import schema as fmt
from tap3d.views.projection import PROJECTIONS
from tap3d.views.storage import StorageError, open_store, store_name

__all__ = ["Defect", "VerifyReport", "verify"]

#: Attributes every dataset carries (docs/format.md, "Group attributes").
REQUIRED_ATTRIBUTES = ("format", "format_version", "views", "image_size", "points_per_object",
                       "shard_size", "layout", "categories", "fov", "seed")


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
class VerifyReport:
    """What :func:`verify` found. ``ok`` is true when there is no defect."""

    store: str
    objects: int = 0
    status: dict[str, int] = field(default_factory=dict)
    arrays_checked: int = 0
    chunks_read: int = 0
    defects: list[Defect] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.defects

    def format(self) -> str:
        lines = [f"{self.store}: {'OK' if self.ok else f'{len(self.defects)} defect(s)'}",
                 f"  objects {self.objects}: " + ", ".join(f"{k} {v}"
                                                            for k, v in self.status.items()),
                 f"  arrays checked {self.arrays_checked}, chunks decoded {self.chunks_read}"]
        lines += [f"  DEFECT {d}" for d in self.defects]
        return "\n".join(lines)


def _chunk_key(name: str, index: int, ndim: int) -> str:
    return f"{name}/c/" + "/".join([str(index)] + ["0"] * (ndim - 1))


def _read_shards(group, name: str, spec, shard_size: int, report: VerifyReport):
    """Yield ``(start, data, readable)`` shard by shard (never the whole array at once)."""
    array = group[name]
    per_chunk = array.chunks[0]
    dtype = object if spec.dtype is str else spec.dtype
    for start, stop in fmt.shard_ranges(spec.shape[0], shard_size):
        try:
            data = array[start:stop]
            report.chunks_read += -(-(stop - start) // per_chunk)
            yield start, data, np.ones(stop - start, dtype=bool)
            continue
        except StorageError:
            raise
        except Exception:  # noqa: BLE001 - find the chunk below
            pass
        data = np.zeros((stop - start,) + spec.shape[1:], dtype=dtype)
        readable = np.ones(stop - start, dtype=bool)
        for first in range(start, stop, per_chunk):
            last = min(first + per_chunk, stop)
            try:
                data[first - start:last - start] = array[first:last]
                report.chunks_read += 1
            except StorageError:
                raise
            except Exception as error:  # noqa: BLE001
                readable[first - start:last - start] = False
                shard = f" (in shard file {_chunk_key(name, start // shard_size, len(spec.shape))})" \
                    if spec.sharded else ""
                report.defects.append(Defect(
                    name, f"does not decode{shard}: {type(error).__name__}: {error}",
                    chunk=f"{first // per_chunk} (objects {first}-{last - 1})"))
        yield start, data, readable


def verify(store, progress: bool = False) -> VerifyReport:
    """Check a dataset; see the module docstring for the checks.

    Args:
        store: dataset path or fsspec URL.
        progress: show a progress bar over the arrays.

    Returns:
        A :class:`VerifyReport`; it does not raise on defects (``report.ok`` is false).

    Raises:
        StorageError: the storage failed to answer (nothing is known about the data).
    """
    import zarr
    from tqdm.auto import tqdm

    report = VerifyReport(store_name(store))
    try:
        group = zarr.open_group(open_store(store, "r"), mode="r")
        attrs = dict(group.attrs)
    except StorageError:
        raise
    except Exception as error:  # noqa: BLE001
        report.defects.append(Defect("group", f"cannot be opened: {type(error).__name__}: {error}"))
        return report
    if attrs.get("format") != fmt.FORMAT:
        report.defects.append(Defect("attributes", f"format is {attrs.get('format')!r}, "
                                                   f"expected {fmt.FORMAT!r}"))
        return report
    if attrs.get("format_version") not in fmt.READABLE_VERSIONS:
        report.defects.append(Defect("attributes", f"format_version "
                                     f"{attrs.get('format_version')!r}, this reader knows "
                                     f"{', '.join(map(str, fmt.READABLE_VERSIONS))}"))
    elif attrs.get("format_version") < fmt.format_version(attrs):
        report.defects.append(Defect("attributes", f"format_version "
                                     f"{attrs.get('format_version')!r} cannot hold projection "
                                     f"{attrs.get('projection')!r} (needs "
                                     f"{fmt.format_version(attrs)})"))
    if attrs.get("projection", "perspective") not in PROJECTIONS:
        report.defects.append(Defect("attributes", f"unknown projection "
                                                   f"{attrs.get('projection')!r}"))
    if attrs.get(fmt.CREATION, fmt.CREATION_COMPLETE) != fmt.CREATION_COMPLETE:
        report.defects.append(Defect("attributes", "creation never finished (a build interrupted "
                                                   "while creating the store: run it again)"))
    missing = [key for key in REQUIRED_ATTRIBUTES if key not in attrs]
    if missing:
        report.defects.append(Defect("attributes", f"missing {', '.join(missing)}"))
        return report
    try:
        n = group["object_id"].shape[0]
    except StorageError:
        raise
    except Exception as error:  # noqa: BLE001
        report.defects.append(Defect("object_id", f"missing or unreadable: {error}"))
        return report
    report.objects = n
    views, size, points = attrs["views"], attrs["image_size"], attrs["points_per_object"]
    shard_size = attrs["shard_size"]
    specs = fmt.array_specs(n, views, size, points, part_labels="part" in group,
                            normal_maps="normal" in group)
    values: dict[str, np.ndarray] = {}
    readable = np.ones(n, dtype=bool)
    for name, spec in tqdm(specs.items(), desc="verify", unit="array", disable=not progress):
        try:
            array = group[name]
        except StorageError:
            raise
        except KeyError:
            report.defects.append(Defect(name, "missing"))
            continue
        if array.shape != spec.shape:
            report.defects.append(Defect(name, f"shape {array.shape}, expected {spec.shape}"))
            continue
        expected = np.dtype("str") if spec.dtype is str else np.dtype(spec.dtype)
        if spec.dtype is not str and array.dtype != expected:
            report.defects.append(Defect(name, f"dtype {array.dtype}, expected {expected}"))
        report.arrays_checked += 1
        keep = name in ("status", "cameras/R", "cameras/K", "cameras/world_to_camera",
                        "object_id", "category", "label")
        floating = spec.dtype is not str and np.dtype(spec.dtype).kind == "f"
        kept, not_finite = [], []
        for start, data, ok in _read_shards(group, name, spec, shard_size, report):
            readable[start:start + len(ok)] &= ok
            if floating:
                bad = ~np.isfinite(data.reshape(len(data), -1)).all(1) & ok
                not_finite += (start + np.flatnonzero(bad)).tolist()
            if keep:
                kept.append(data)
        if not_finite:
            report.defects.append(Defect(name, f"NaN/inf in {len(not_finite)} objects, first "
                                               f"{not_finite[:10]}"))
        if keep:
            values[name] = np.concatenate(kept)
    if "status" in values:
        status = values["status"]
        names = {fmt.STATUS_PENDING: "pending", fmt.STATUS_DONE: "done",
                 fmt.STATUS_FAILED: "failed"}
        report.status = {label: int((status == code).sum()) for code, label in names.items()}
        unknown = ~np.isin(status, list(names))
        if unknown.any():
            report.defects.append(Defect("status", f"unknown values at objects "
                                                   f"{np.flatnonzero(unknown)[:10].tolist()}"))
        if report.status["pending"]:
            report.defects.append(Defect("status", f"{report.status['pending']} objects pending "
                                         "(an unfinished build: run the same command again)"))
        done = (status == fmt.STATUS_DONE) & readable
        _check_cameras(values, done, size, report)
    _check_index(values, list(attrs["categories"]), report)
    return report


def _check_index(values: dict, categories: list, report: VerifyReport) -> None:
    """Object ids non-empty and unique; ``label`` indexes ``categories`` (-1 when there are
    none); ``category`` is the entry ``label`` indexes. Arrays that could not be read are left
    out (their chunks are already defects)."""
    ids, names, labels = (values.get(key) for key in ("object_id", "category", "label"))
    if ids is not None:
        ids = np.array(ids.tolist(), dtype=str)
        empty = np.flatnonzero(ids == "")
        if len(empty):
            report.defects.append(Defect("object_id", f"empty in {len(empty)} objects, first "
                                                      f"{empty[:10].tolist()}"))
        unique, counts = np.unique(ids[ids != ""], return_counts=True)
        if (counts > 1).any():
            repeated = unique[counts > 1][:5].tolist()
            report.defects.append(Defect("object_id", f"not unique: {repeated}"))
    if labels is None:
        return
    if categories:
        outside = np.flatnonzero((labels < 0) | (labels >= len(categories)))
        allowed = f"[0, {len(categories) - 1}] (the categories attribute)"
    else:
        outside = np.flatnonzero(labels != -1)
        allowed = "-1 (the categories attribute is empty)"
    if len(outside):
        report.defects.append(Defect("label", f"not in {allowed} in {len(outside)} objects, "
                                              f"first {outside[:10].tolist()}"))
        return
    if names is not None:
        expected = np.array([categories[i] if i >= 0 else "" for i in labels.tolist()],
                            dtype=str)
        wrong = np.flatnonzero(np.array(names.tolist(), dtype=str) != expected)
        if len(wrong):
            i = int(wrong[0])
            report.defects.append(Defect("category", f"not the category its label names in "
                                                     f"{len(wrong)} objects, first {i} "
                                                     f"({names[i]!r}, label {labels[i]} = "
                                                     f"{expected[i]!r})"))


def _check_cameras(values: dict, done: np.ndarray, size: int, report: VerifyReport) -> None:
    """Rotations orthonormal with det +1; K a pinhole matrix with the centre in the image."""
    rotations = {"cameras/R": values.get("cameras/R")}
    if values.get("cameras/world_to_camera") is not None:
        rotations["cameras/world_to_camera"] = values["cameras/world_to_camera"][..., :3, :3]
    for name, R in rotations.items():
        if R is None or not done.any():
            continue
        R = R[done].astype(np.float64)
        error = np.abs(R @ np.swapaxes(R, -1, -2) - np.eye(3)).max(axis=(-1, -2))
        det = np.linalg.det(R)
        bad = (error > 1e-4) | (np.abs(det - 1) > 1e-4)
        if bad.any():
            objects = np.flatnonzero(done)[np.flatnonzero(bad.any(1))][:10].tolist()
            report.defects.append(Defect(name, f"rotation not orthonormal with det +1 in objects "
                                               f"{objects} (max |R R^T - I| {error.max():.2e})"))
    K = values.get("cameras/K")
    if K is not None and done.any():
        K = K[done].astype(np.float64)
        bad = ((K[..., 0, 0] <= 0) | (K[..., 1, 1] <= 0) | (np.abs(K[..., 0, 1]) > 1e-6)
               | (np.abs(K[..., 1, 0]) > 1e-6) | (np.abs(K[..., 2, :] - [0, 0, 1]).max(-1) > 1e-6)
               | (K[..., 0, 2] < 0) | (K[..., 0, 2] > size - 1) | (K[..., 1, 2] < 0)
               | (K[..., 1, 2] > size - 1))
        if bad.any():
            objects = np.flatnonzero(done)[np.flatnonzero(bad.any(1))][:10].tolist()
            report.defects.append(Defect("cameras/K", f"not a valid intrinsic matrix in objects "
                                                      f"{objects}"))
