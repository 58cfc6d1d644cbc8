"""Streaming a ``tap3d.views`` dataset into training: whole-shard reads, split without overlap.

:class:`ViewStream` is a ``torch.utils.data.IterableDataset``. Each epoch it shuffles the shard
order (seeded by ``seed`` and the epoch), deals the shards round-robin to the
``world_size x num_workers`` readers (distributed ranks x DataLoader workers), reads each shard
with one request per array, skips objects whose ``status`` is not done (and objects outside an
optional ``objects`` selection, e.g. those held out for evaluation), passes the objects through
a shuffle buffer and yields one sample per object. Every selected done object is therefore
yielded exactly once per epoch across all ranks and workers.

Per-sample randomness (point subset, views, scale) is seeded by ``(seed, epoch, object index)``,
so a sample does not depend on which reader produced it, and resuming an epoch part-way (by
skipping the samples already seen) replays the same data.

This module imports torch, numpy, zarr and pydantic (:mod:`tap3d.settings`) only, never
pytorch3d, so the trainer runs where only torch is installed.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch

from tap3d.geometry.features import to_unit_sphere, with_height
from tap3d.geometry.pointops import farthest_point_sample
from tap3d.settings import UpAxis, one_of, setting, settings
from tap3d.views.projection import fit_parallel, orthographic_intrinsics, projection_of
from tap3d.views.schema import STATUS_DONE, open_views, shard_ranges, up_axis_of

__all__ = ["ViewStream", "StreamSettings", "POINT_SAMPLINGS", "NORMALIZATIONS"]

#: Point subsets the stream can take (see :class:`StreamSettings`).
POINT_SAMPLINGS = ("random", "fps", "fixed")
#: Point-cloud frames the stream can feed (see :class:`StreamSettings`).
NORMALIZATIONS = ("none", "unit_sphere")

#: Arrays read per shard.
_ARRAYS = ("status", "points", "rgb", "mask", "cameras/K", "cameras/world_to_camera")


def _following(world_to_camera: np.ndarray, centre: np.ndarray, factor: float) -> np.ndarray:
    """``(V, 4, 4)`` float64 extrinsics of points moved by ``x' = (x - centre) factor``:
    ``[R | t]`` -> ``[R | factor (R centre + t)]``."""
    moved = world_to_camera.astype(np.float64)
    rotation, translation = moved[:, :3, :3], moved[:, :3, 3]
    moved[:, :3, 3] = factor * (rotation @ centre + translation)
    return moved


@settings(frozen=True)
class StreamSettings:
    """How :class:`ViewStream` makes a sample of an object (docs/pretraining.md, "The stream",
    says why each choice exists); :func:`tap3d.train.config.stream_settings` derives them from
    a ``TrainConfig``."""

    points: int = setting(1024, "Points per sample, subsampled from the stored ones.")
    views_per_sample: int = setting(0, "Views per sample (0: half the stored views).")
    sampling: one_of(POINT_SAMPLINGS) = setting(
        "random", "random: a new subset each epoch; fps: farthest points from a random start; "
        "fixed: the first stored points, every epoch.")
    scale_range: tuple[float, float] | None = setting(
        (0.9, 1.1), "Scaling U[low, high) of the points and the cameras together; None: off.")
    anisotropic: bool = setting(
        False, "The authors' per-axis scaling, then unit radius, each view's K refitted "
        "(orthographic datasets with a fit, normalize unit_sphere).")
    normalize: one_of(NORMALIZATIONS) = setting(
        "none", "none: the stored frame; unit_sphere: each sample centred at unit radius, the "
        "cameras following.")
    up_axis: UpAxis | None = setting(
        None, "Up axis of the height feature; none: the dataset's (tap3d.views.schema.up_axis_of).")
    seed: int = setting(0, "Base seed of the shard order and of each sample's draws.")
    shuffle: bool = setting(True, "Shuffle the shard order and the objects (a buffer).")
    buffer_size: int = setting(256, "Objects held in the shuffle buffer.")


class ViewStream(torch.utils.data.IterableDataset):
    """Samples for TAP pre-training, streamed from a dataset's shards.

    Args:
        store: dataset path or fsspec URL (anything ``zarr.open_group`` opens).
        settings: how samples are made (:class:`StreamSettings`; default its defaults).
        objects: indices of the objects to yield (default all); objects not done are skipped
            either way.
        rank, world_size: this process's distributed rank and the number of ranks; default from
            ``torch.distributed`` when it is initialised, else 0 and 1.

    Raises:
        ValueError: more points or views than stored, object indices outside the dataset, or
            ``anisotropic`` without an orthographic dataset with a ``fit`` and ``unit_sphere``.

    Each sample is a dict of tensors: ``points`` ``(points, 3)`` float32 (normalized, then
    scaled); ``features`` ``(points, 4)`` float32: xyz and the height above the sample's lowest
    point along ``up_axis``, from the final points (:mod:`tap3d.geometry.features`);
    ``images`` ``(V, 3, S, S)`` uint8 (convert with ``.float() / 255`` on the device);
    ``masks`` ``(V, S, S)`` bool; ``K`` ``(V, 3, 3)`` and ``world_to_camera`` ``(V, 4, 4)``
    float32 (OpenCV cameras moved with the points; :mod:`tap3d.views.projection`); ``index``
    (object index) and ``label`` int64.
    """

    def __init__(self, store, settings: StreamSettings | None = None, *, objects=None,
                 rank: int | None = None, world_size: int | None = None):
        super().__init__()
        settings = settings or StreamSettings()
        self.store, self.settings = store, settings
        group = open_views(store)
        self.num_objects, self.num_views, self.image_size = group["rgb"].shape[:3]
        self.shard_size = int(group.attrs["shard_size"])
        #: ``perspective`` or ``orthographic`` (the group attribute; perspective when absent).
        self.projection = projection_of(group.attrs)
        self.labels = group["label"][:].astype(np.int64)
        stored_points = group["points"].shape[1]
        if settings.points > stored_points:
            raise ValueError(f"{store}: {settings.points} points per sample > {stored_points} "
                             "stored")
        self.points = settings.points
        self.views_per_sample = settings.views_per_sample or max(1, self.num_views // 2)
        if self.views_per_sample > self.num_views:
            raise ValueError(f"views_per_sample {self.views_per_sample} > stored views "
                             f"{self.num_views}")
        self.sampling, self.shuffle = settings.sampling, settings.shuffle
        self.buffer_size = settings.buffer_size
        self.up_axis = up_axis_of(group.attrs) if settings.up_axis is None else settings.up_axis
        self.scale_range, self.seed = settings.scale_range, settings.seed
        self.normalize, self.anisotropic = settings.normalize, settings.anisotropic
        self.fit = group.attrs.get("fit")
        if self.anisotropic and (self.projection != "orthographic" or not self.fit
                                 or self.normalize != "unit_sphere"):
            raise ValueError(f"{store}: anisotropic scaling needs an orthographic dataset with "
                             f"a fit (projection {self.projection}, fit {self.fit}) and "
                             f"normalize='unit_sphere' (got {self.normalize!r})")
        if rank is None or world_size is None:
            dist = torch.distributed
            initialised = dist.is_available() and dist.is_initialized()
            rank = dist.get_rank() if initialised else 0
            world_size = dist.get_world_size() if initialised else 1
        self.rank, self.world_size = rank, world_size
        self.epoch = 0
        self.status = group["status"][:]
        selected = np.ones(self.num_objects, bool)
        if objects is not None:
            objects = np.asarray(objects, dtype=np.int64)
            if objects.size and (objects.min() < 0 or objects.max() >= self.num_objects):
                raise ValueError(f"{store}: object indices outside 0..{self.num_objects - 1}")
            selected = np.zeros(self.num_objects, bool)
            selected[objects] = True
        #: Objects this stream yields: done and selected.
        self.usable = (self.status == STATUS_DONE) & selected

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose shard order and sample randomness the next iteration uses."""
        self.epoch = epoch

    def __len__(self) -> int:
        """Objects yielded per epoch (done and selected; all ranks together)."""
        return int(self.usable.sum())

    def _shard_order(self) -> np.ndarray:
        """This epoch's order of the shard indices (seeded by ``seed`` and the epoch)."""
        count = len(shard_ranges(self.num_objects, self.shard_size))
        if not self.shuffle:
            return np.arange(count)
        return np.random.default_rng([self.seed, self.epoch]).permutation(count)

    def my_shards(self, worker: int = 0, num_workers: int = 1) -> list[tuple[int, int]]:
        """The shard ranges that one reader (this rank x ``worker``) reads this epoch."""
        shards = shard_ranges(self.num_objects, self.shard_size)
        reader = self.rank * num_workers + worker
        return [shards[i] for i in self._shard_order()[reader::self.world_size * num_workers]]

    def batches_per_epoch(self, batch_size: int, num_workers: int = 0) -> int:
        """Full batches that every rank gets this epoch: the minimum over ranks.

        A DataLoader batches each worker's samples separately, so a rank gets
        ``sum over workers of floor(objects / batch_size)`` full batches; ranks whose shards hold
        more objects than others must stop at the common count, or DistributedDataParallel's
        collectives would pair steps of different epochs. Every rank computes the same number
        from the status array, without communication.
        """
        readers = max(1, num_workers)
        starts = [start for start, _ in shard_ranges(self.num_objects, self.shard_size)]
        done_per_shard = np.add.reduceat(self.usable.astype(np.int64), starts)
        order = self._shard_order()
        total = self.world_size * readers
        per_reader = [int(done_per_shard[order[r::total]].sum()) // batch_size
                      for r in range(total)]
        return min(sum(per_reader[rank * readers:(rank + 1) * readers])
                   for rank in range(self.world_size))

    def sample_object(self, index: int, arrays: dict, row: int) -> dict:
        """One sample (see the class docstring) of object ``index`` from its arrays.

        Args:
            index: object index in the dataset (seeds the sample's randomness with the epoch).
            arrays: name -> array of the arrays read per shard (see ``__iter__``), object first.
            row: the object's row in ``arrays``.
        """
        rng = np.random.default_rng([self.seed, self.epoch, index])
        points = arrays["points"][row]
        if self.sampling == "fixed":
            chosen = np.arange(self.points)
        elif self.sampling == "fps":
            chosen = farthest_point_sample(torch.from_numpy(points), self.points,
                                           int(rng.integers(len(points)))).numpy()
        else:
            chosen = rng.choice(len(points), self.points, replace=False)
        views = np.sort(rng.choice(self.num_views, self.views_per_sample, replace=False))
        scale = rng.uniform(*self.scale_range) if self.scale_range else 1.0
        xyz = points[chosen].astype(np.float64)
        centre = np.zeros(3)
        if self.anisotropic:
            xyz, world_to_camera, K = self._authors_geometry(arrays, row, rng, xyz, views)
        else:
            if self.normalize == "unit_sphere":
                xyz, centre, scale = to_unit_sphere(xyz, scale)
                centre, scale = centre[0], float(scale[0, 0])
            else:
                xyz = xyz * scale
            world_to_camera = _following(arrays["cameras/world_to_camera"][row, views], centre,
                                         scale)
            K = arrays["cameras/K"][row, views]
            if self.projection == "orthographic":  # camera x, y scale by `scale`: px per unit
                K = K.copy()
                K[:, :2, :2] /= np.float32(scale)
        xyz = xyz.astype(np.float32)
        return {
            "points": torch.from_numpy(xyz),
            "features": torch.from_numpy(with_height(xyz, self.up_axis)),
            "images": torch.from_numpy(arrays["rgb"][row, views]).permute(0, 3, 1, 2),
            "masks": torch.from_numpy(arrays["mask"][row, views]),
            "K": torch.from_numpy(K),
            "world_to_camera": torch.from_numpy(world_to_camera.astype(np.float32)),
            "index": torch.tensor(index),
            "label": torch.tensor(self.labels[index]),
        }

    def _authors_geometry(self, arrays, row, rng, xyz, views):
        """The points ``(N, 3)`` float64, ``world_to_camera`` ``(V, 4, 4)`` float64 and ``K``
        ``(V, 3, 3)`` float32 of a sample with the authors' anisotropic scaling and per-view
        refit (``anisotropic`` of :class:`StreamSettings`)."""
        factors = rng.uniform(*self.scale_range, size=3) if self.scale_range else np.ones(3)
        xyz, centre, factor = to_unit_sphere(xyz * factors)
        centre, factor = centre[0], float(factor[0, 0])
        world_to_camera = _following(arrays["cameras/world_to_camera"][row, views], centre,
                                     factor)
        # projected as the model receives them: float32 points and extrinsics
        xyz = xyz.astype(np.float32).astype(np.float64)
        world_to_camera = world_to_camera.astype(np.float32).astype(np.float64)
        camera = xyz @ world_to_camera[:, :3, :3].transpose(0, 2, 1) + \
            world_to_camera[:, None, :3, 3]  # (V, N, 3)
        focal, axis = fit_parallel(torch.from_numpy(camera[..., :2]), arrays["rgb"].shape[2],
                                   float(self.fit))
        return xyz, world_to_camera, orthographic_intrinsics(focal.numpy(), axis.numpy())

    def read_object(self, index: int) -> dict:
        """The sample of one object, read on its own (one request per array; for evaluation).

        Raises:
            ValueError: the object is not done.
        """
        if self.status[index] != STATUS_DONE:
            raise ValueError(f"{self.store}: object {index} is not done")
        group = open_views(self.store)
        arrays = {name: group[name][index:index + 1] for name in _ARRAYS[1:]}
        return self.sample_object(index, arrays, 0)

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        worker, num_workers = (info.id, info.num_workers) if info else (0, 1)
        group = open_views(self.store)
        handles = {name: group[name] for name in _ARRAYS}
        rng = np.random.default_rng([self.seed, self.epoch, self.rank, worker, 1])
        buffer: list[dict] = []
        # The arrays of a shard are read concurrently: each zarr read costs a round trip (a few
        # ms locally, more on object stores) that would otherwise add up per array.
        pool = ThreadPoolExecutor(len(_ARRAYS) - 1)
        for start, stop in self.my_shards(worker, num_workers):
            if not self.usable[start:stop].any():
                continue
            futures = {name: pool.submit(handles[name].__getitem__, slice(start, stop))
                       for name in _ARRAYS[1:]}  # one read per array
            arrays = {name: future.result() for name, future in futures.items()}
            for row in np.flatnonzero(self.usable[start:stop]):
                buffer.append(self.sample_object(start + int(row), arrays, int(row)))
                if len(buffer) >= (self.buffer_size if self.shuffle else 1):
                    yield buffer.pop(int(rng.integers(len(buffer))) if self.shuffle else 0)
        pool.shutdown()
        while buffer:
            yield buffer.pop(int(rng.integers(len(buffer))) if self.shuffle else 0)
