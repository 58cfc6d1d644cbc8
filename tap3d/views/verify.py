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

The checks of the attributes, the arrays' presence, shapes and dtypes, the status counts and
the index arrays run here; everything read shard by shard (decoding, NaN/inf, cameras) is one
task per shard (:func:`tap3d.views.shardcheck.check_shard`), run in this process or, with
``workers`` or ``scheduler``, on Dask workers (:class:`tap3d.views.cluster.DaskCluster`, as the
build runs). The shards' results are merged in shard order: the report is the same either way.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass, field

import numpy as np

from tap3d.views import schema as fmt
from tap3d.views.projection import PROJECTIONS
from tap3d.views.shardcheck import ROTATIONS, Defect, ShardCheck, check_shard
from tap3d.views.storage import StorageError, open_store, store_name

__all__ = ["Defect", "VerifyReport", "verify"]

#: Attributes every dataset carries (docs/format.md, "Group attributes").
REQUIRED_ATTRIBUTES = ("format", "format_version", "views", "image_size", "points_per_object",
                       "shard_size", "layout", "categories", "fov", "seed")


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


def verify(store, progress: bool = False, workers: int | None = None,
           scheduler: str | None = None) -> VerifyReport:
    """Check a dataset; see the module docstring for the checks.

    Args:
        store: dataset path or fsspec URL (with ``workers`` or ``scheduler``: one the workers
            can read).
        progress: show a progress bar over the shards.
        workers: check the shards on a local Dask cluster of this many worker processes;
            ``None`` or ``0``: in this process.
        scheduler: address of an existing Dask scheduler to check the shards on instead.

    Returns:
        A :class:`VerifyReport`; it does not raise on defects (``report.ok`` is false).

    Raises:
        StorageError: the storage failed to answer (nothing is known about the data).
    """
    import zarr

    report = VerifyReport(store_name(store))
    try:
        group = zarr.open_group(open_store(store, "r"), mode="r")
        attrs = dict(group.attrs)
    except StorageError:
        raise
    except Exception as error:  # noqa: BLE001
        report.defects.append(Defect("group", f"cannot be opened: {type(error).__name__}: {error}"))
        return report
    if not _check_attributes(attrs, report):
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
                            optional=tuple(name for name in fmt.OPTIONAL_ARRAYS
                                           if name in group))
    found: dict[str, list[Defect]] = {}  # before reading: missing, shape, dtype
    read, arrays = {}, {}
    for name, spec in specs.items():
        try:
            array = group[name]
        except StorageError:
            raise
        except KeyError:
            found[name] = [Defect(name, "missing")]
            continue
        if array.shape != spec.shape:
            found[name] = [Defect(name, f"shape {array.shape}, expected {spec.shape}")]
            continue
        expected = np.dtype("str") if spec.dtype is str else np.dtype(spec.dtype)
        if spec.dtype is not str and array.dtype != expected:
            found[name] = [Defect(name, f"dtype {array.dtype}, expected {expected}")]
        report.arrays_checked += 1
        read[name], arrays[name] = spec, array
    shards = _check_shards(store, arrays, fmt.shard_ranges(n, shard_size), read, shard_size,
                           size, workers, scheduler, progress)
    report.chunks_read = sum(shard.chunks_read for shard in shards)
    for name in specs:
        report.defects += found.get(name, [])
        for shard in shards:
            report.defects += shard.defects.get(name, [])
        not_finite = [i for shard in shards for i in shard.not_finite.get(name, [])]
        if not_finite:
            report.defects.append(Defect(name, f"NaN/inf in {len(not_finite)} objects, first "
                                               f"{not_finite[:10]}"))
    values = {name: np.concatenate([shard.values[name] for shard in shards])
              for name in (shards[0].values if shards else ())}
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
        _merge_cameras(shards, report)
    _check_index(values, list(attrs["categories"]), report)
    return report


def _check_attributes(attrs: dict, report: VerifyReport) -> bool:
    """Format name and version, projection, creation, required attributes; False when the
    rest cannot be checked."""
    if attrs.get("format") != fmt.FORMAT:
        report.defects.append(Defect("attributes", f"format is {attrs.get('format')!r}, "
                                                   f"expected {fmt.FORMAT!r}"))
        return False
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
        return False
    return True


def _check_shards(store, arrays: dict, ranges, specs: dict, shard_size: int, size: int,
                  workers: int | None, scheduler: str | None,
                  progress: bool) -> list[ShardCheck]:
    """:func:`~tap3d.views.shardcheck.check_shard` for every shard, in shard order: in this
    process (the arrays opened once), or one Dask task per shard (each worker opens the store
    once per verify)."""
    from tqdm.auto import tqdm

    bar = tqdm(total=len(ranges), desc="verify", unit="shard", disable=not progress)
    try:
        if not workers and scheduler is None:
            results = []
            for start, stop in ranges:
                results.append(check_shard(store, start, stop, specs, shard_size, size, arrays))
                bar.update()
            return results
        if not ranges:
            return []
        from dask.distributed import as_completed

        from tap3d.views.cluster import DaskCluster

        run = uuid.uuid4().hex  # each worker opens the store once for this verify
        if isinstance(store, (str, os.PathLike)) and "://" not in os.fspath(store):
            store = os.path.abspath(store)  # workers may run in another folder
        with DaskCluster(workers, scheduler) as cluster:
            futures = {cluster.client.submit(check_shard, store, start, stop, specs, shard_size,
                                             size, run=run, pure=False): i
                       for i, (start, stop) in enumerate(ranges)}
            results = [None] * len(ranges)
            for future in as_completed(futures):
                results[futures[future]] = future.result()  # raises the task's StorageError
                bar.update()
            return results
    finally:
        bar.close()


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


def _merge_cameras(shards: list[ShardCheck], report: VerifyReport) -> None:
    """The shards' camera checks as one defect per array: the first objects in order and the
    largest rotation error over every done object."""
    for name in ROTATIONS:
        checked = [shard.rotations[name] for shard in shards if name in shard.rotations]
        objects = [i for bad, _ in checked for i in bad]
        if objects:
            error = np.max([largest for _, largest in checked])
            report.defects.append(Defect(name, f"rotation not orthonormal with det +1 in objects "
                                               f"{objects[:10]} (max |R R^T - I| {error:.2e})"))
    objects = [i for shard in shards for i in (shard.intrinsics or [])]
    if objects:
        report.defects.append(Defect("cameras/K", f"not a valid intrinsic matrix in objects "
                                                  f"{objects[:10]}"))
