"""Building a dataset: source -> mesh -> views -> shard, one Dask task per shard.

:func:`build` is what ``tap-cli build-dataset`` calls; a notebook or a test calls it with the
same arguments. The driver discovers the objects, creates the Zarr group with the index arrays,
and submits :func:`render_shard` for every shard; each task loads, renders and samples its
objects and writes its shard of every array itself, ``status`` last. An object that fails is
recorded (``status`` 2, ``error`` naming the file and the reason) and the shard goes on.

Randomness (surface samples, the ``random`` layout) is seeded per object from ``seed`` and the
``object_id`` (:func:`object_seed`), so a build is the same whatever the number of workers.
"""

from __future__ import annotations

import hashlib
import os
import signal
import threading
import time
import traceback
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone

import numpy as np

from tap3d.datasets import format as fmt
from tap3d.datasets.sources import ObjectSpec, Source, discover
from tap3d.render.cameras import DEFAULT_DISTANCE, DEFAULT_FOV, make_layout, resolve_layout_name
from tap3d.render.meshes import MeshError

__all__ = ["BuildConfig", "BuildSummary", "ShardReport", "build", "render_shard", "object_seed"]


@dataclass(frozen=True)
class BuildConfig:
    """Settings of a build; every field is recorded in the dataset's attributes.

    Attributes:
        views: views per object ``V``.
        layout: view layout name (``auto`` resolves by ``views``, see DESIGN.md).
        image_size: side ``S`` of the square images, pixels.
        fov: vertical field of view, degrees.
        distance: camera distance, normalized object units (CLIP2Point: 2 x unit distance).
        points: surface points per object ``P``.
        shard_size: objects per shard.
        seed: base seed; each object's seed derives from it and the ``object_id``.
        device: ``auto`` (CUDA when the worker has it), ``cpu`` or ``cuda``.
        backend: rasterizer backend name; ``auto`` is PyTorch3D's rasterizer on CUDA and Embree
            ray casting on CPU (see :mod:`tap3d.render.rasterize`).
        background: background colour, RGB in [0, 1].
        texture_atlas_size: per-face texture resolution for OBJ texture atlases.
    """

    views: int = 10
    layout: str = "auto"
    image_size: int = 224
    fov: float = DEFAULT_FOV
    distance: float = DEFAULT_DISTANCE
    points: int = 8192
    shard_size: int = 64
    seed: int = 0
    device: str = "auto"
    backend: str = "auto"
    background: tuple[float, float, float] = (1.0, 1.0, 1.0)
    texture_atlas_size: int = 4

    def validate(self) -> "BuildConfig":
        """Raise ``ValueError`` on settings that cannot be built; return self."""
        resolve_layout_name(self.layout, self.views)
        if self.image_size < 8:
            raise ValueError(f"--image-size must be at least 8, got {self.image_size}")
        if self.points < 1:
            raise ValueError(f"--points must be at least 1, got {self.points}")
        if self.shard_size < 1:
            raise ValueError(f"--shard-size must be at least 1, got {self.shard_size}")
        if not 0 < self.fov < 180:
            raise ValueError(f"--fov must be in (0, 180) degrees, got {self.fov}")
        if self.device not in ("auto", "cpu", "cuda") and not self.device.startswith("cuda:"):
            raise ValueError(f"--device must be auto, cpu or cuda, got {self.device!r}")
        from tap3d.render.rasterize import BACKENDS

        if self.backend not in BACKENDS:
            raise ValueError(f"--backend must be one of {', '.join(BACKENDS)}, got {self.backend!r}")
        return self


@dataclass
class ShardReport:
    """What one shard task did: objects done, failures ``(object_id, error)``, seconds."""

    shard: int
    done: int
    failed: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0


@dataclass
class BuildSummary:
    """The result of :func:`build`."""

    output: str
    objects: int
    done: int
    failed: list[tuple[str, str]]
    views: int
    seconds: float
    bytes_on_disk: int
    shards: int = 0
    shards_rendered: int = 0

    @property
    def views_per_second(self) -> float:
        return self.done * self.views / self.seconds if self.seconds > 0 else 0.0

    def format(self) -> str:
        """A short human-readable report."""
        lines = [
            f"{self.output}: {self.done} of {self.objects} objects done, {len(self.failed)} failed",
            f"{self.done * self.views} views in {self.seconds:.1f} s "
            f"({self.views_per_second:.1f} views/s)",
            f"{self.bytes_on_disk / 2**20:.1f} MiB on disk"
            + (f" ({self.bytes_on_disk / (self.done * self.views) / 1024:.1f} KiB per view)"
               if self.done else ""),
        ]
        if self.shards_rendered < self.shards:
            lines.append(f"resumed: {self.shards_rendered} of {self.shards} shards rendered, "
                         f"{self.shards - self.shards_rendered} already complete")
        for object_id, error in self.failed:
            lines.append(f"  failed {object_id}: {error}")
        return "\n".join(lines)


def object_seed(seed: int, object_id: str) -> int:
    """A 63-bit seed for one object, from the build seed and the object id (SHA-256)."""
    digest = hashlib.sha256(f"{seed}:{object_id}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def _resolve_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def _render_object(spec: ObjectSpec, config: BuildConfig, renderer, device) -> dict:
    """Load, render and sample one object; returns its per-object arrays and warnings."""
    from tap3d.render.cameras import make_cameras, opencv_cameras
    from tap3d.render.meshes import load_mesh, sample_surface

    seeds = np.random.SeedSequence(object_seed(config.seed, spec.object_id)).spawn(2)
    mesh = load_mesh(spec.path, texture_atlas_size=config.texture_atlas_size)
    layout = make_layout(config.layout, config.views, config.distance,
                         rng=np.random.default_rng(seeds[0]))
    cameras = make_cameras(layout, config.fov, device=device)
    views = renderer(mesh, cameras)
    points, normals = sample_surface(mesh, config.points, seed=int(seeds[1].generate_state(1)[0]))
    R = cameras.R.cpu().numpy()
    T = cameras.T.cpu().numpy()
    K, world_to_camera = opencv_cameras(R, T, config.fov, config.image_size)
    return {
        "rgb": views.rgb,
        "mask": views.mask,
        "depth": views.depth.astype(np.float16),
        "cameras/R": R,
        "cameras/T": T,
        "cameras/fov": np.full(config.views, config.fov, np.float32),
        "cameras/K": K,
        "cameras/world_to_camera": world_to_camera,
        "cameras/azimuth": layout.azimuth,
        "cameras/elevation": layout.elevation,
        "cameras/distance": layout.distance,
        "points": points,
        "normals": normals,
        "normalization/center": mesh.center,
        "normalization/scale": np.float32(mesh.scale),
        "status": fmt.STATUS_DONE,
        "error": "",
        "warnings": "\n".join(mesh.warnings),
    }


#: Dask event topic of the shard tasks: ``start``/``end`` of each object and watchdog kills.
EVENT_TOPIC = "tap3d-build"


class _Watchdog(threading.Thread):
    """Ends this Dask worker process when one object runs too long or memory grows too large.

    Python cannot interrupt native code (a rasterizer, a mesh loader) from another thread, so
    the only way to stop a hung or runaway object is to end the process. Before it does, it logs
    the reason as a Dask event (``EVENT_TOPIC``) so that the driver can record it; the nanny then
    starts a fresh worker and the scheduler reschedules the shard.
    """

    def __init__(self, worker, shard: int, timeout: float | None, memory_limit: int | None):
        super().__init__(daemon=True, name=f"tap3d-watchdog-{shard}")
        self.worker, self.shard = worker, shard
        self.timeout, self.memory_limit = timeout, memory_limit
        self.current: tuple[int, str, float] | None = None
        self.finished = threading.Event()

    def begin(self, index: int, object_id: str) -> None:
        self.current = (index, object_id, time.monotonic())
        self.worker.log_event(EVENT_TOPIC, {"shard": self.shard, "index": index,
                                            "object_id": object_id, "event": "start"})

    def end(self) -> None:
        if self.current is not None:
            self.worker.log_event(EVENT_TOPIC, {"shard": self.shard, "index": self.current[0],
                                                "event": "end"})
        self.current = None

    def run(self) -> None:
        import psutil

        process = psutil.Process()
        while not self.finished.wait(0.1):
            current = self.current
            if current is None:
                continue
            index, object_id, began = current
            reason = None
            if self.timeout and time.monotonic() - began > self.timeout:
                reason = f"exceeded the time limit of {self.timeout:g} s per object (--timeout)"
            elif self.memory_limit and process.memory_info().rss > self.memory_limit:
                reason = (f"exceeded the worker memory limit of {self.memory_limit / 2**30:.2f} "
                          f"GiB (--memory-limit)")
            if reason:
                self.worker.log_event(EVENT_TOPIC, {"shard": self.shard, "index": index,
                                                    "object_id": object_id, "event": "killed",
                                                    "reason": reason})
                time.sleep(1.0)  # let the event reach the scheduler
                os.kill(os.getpid(), signal.SIGKILL)


def render_shard(store, shard: int, start: int, objects: list[ObjectSpec], config: BuildConfig,
                 threads: int = 1, failed: dict[int, str] | None = None,
                 timeout: float | None = None, memory_limit: int | None = None) -> ShardReport:
    """Render the objects of one shard and write the shard of every array.

    Runs in a Dask worker (or in-process). Objects that fail are recorded with ``status`` 2 and
    their error; their other arrays keep the fill value 0. In a Dask worker, a watchdog ends the
    worker process when one object exceeds ``timeout`` seconds or the process exceeds
    ``memory_limit`` bytes (see :class:`_Watchdog`); in-process builds have no such limits.

    Args:
        store: the dataset's path or fsspec URL (the group must exist).
        shard: shard index.
        start: index of the shard's first object.
        objects: the shard's objects, in dataset order.
        config: the build settings.
        threads: torch intra-op threads for this task.
        failed: objects (index within the shard) already known to kill their worker, with the
            reason: recorded as failed without being rendered again.
        timeout: seconds per object (Dask workers only).
        memory_limit: bytes of resident memory per worker process (Dask workers only).

    Returns:
        A :class:`ShardReport`.
    """
    import torch
    import zarr

    from tap3d.render.rasterize import make_rasterizer
    from tap3d.render.shade import ViewRenderer

    torch.set_num_threads(max(1, threads))
    began = time.perf_counter()
    device = _resolve_device(config.device)
    renderer = ViewRenderer(make_rasterizer(config.backend, config.image_size, device, threads),
                            device=device, background=config.background)
    specs = fmt.array_specs(len(objects), config.views, config.image_size, config.points)
    arrays = {name: np.zeros(specs[name].shape, dtype=object if specs[name].dtype is str
                             else specs[name].dtype) for name in fmt.SHARD_ARRAYS}
    for name in ("error", "warnings"):
        arrays[name][:] = ""
    report = ShardReport(shard, 0)
    failed = failed or {}
    watchdog = None
    if timeout or memory_limit:
        try:
            from distributed import get_worker

            watchdog = _Watchdog(get_worker(), shard, timeout, memory_limit)
            watchdog.start()
        except ValueError:  # not in a Dask worker
            watchdog = None
    for i, spec in enumerate(objects):
        if watchdog:
            watchdog.begin(i, spec.object_id)
        try:
            if i in failed:
                values = {"status": fmt.STATUS_FAILED, "error": f"{spec.path}: {failed[i]}"}
            else:
                values = _render_object(spec, config, renderer, device)
        except MeshError as error:
            values = {"status": fmt.STATUS_FAILED, "error": str(error)}
        except Exception as error:  # noqa: BLE001 - one bad object must not stop the shard
            last = traceback.extract_tb(error.__traceback__)[-1]
            values = {"status": fmt.STATUS_FAILED,
                      "error": f"{spec.path}: {type(error).__name__}: {error} "
                               f"(at {os.path.basename(last.filename)}:{last.lineno})"}
        if watchdog:
            watchdog.end()
        for name, value in values.items():
            arrays[name][i] = value
        if values["status"] == fmt.STATUS_DONE:
            report.done += 1
        else:
            report.failed.append((spec.object_id, values["error"]))
    for name in ("error", "warnings"):
        arrays[name] = arrays[name].astype(str)
    if watchdog:
        watchdog.finished.set()
    group = zarr.open_group(store, mode="r+", zarr_format=3)
    fmt.write_shard(group, start, arrays)
    report.seconds = time.perf_counter() - began
    return report


def _attributes(source: Source, config: BuildConfig, layout_name: str) -> dict:
    import tap3d
    from tap3d.render.shade import LIGHTS

    layout = make_layout(layout_name, config.views, config.distance,
                         rng=np.random.default_rng(0))
    layout_attr = {"name": layout_name, "azimuth": layout.azimuth.tolist(),
                   "elevation": layout.elevation.tolist(), "distance": layout.distance.tolist()}
    if layout_name == "random":
        layout_attr.update(azimuth=None, elevation=None, distance=None,
                           note="drawn per object; see cameras/* arrays")
    return {
        "categories": source.categories,
        "category_names": [source.category_names.get(c, c) for c in source.categories],
        "layout": layout_attr,
        "views": config.views,
        "image_size": config.image_size,
        "fov": config.fov,
        "lights": LIGHTS,
        "background": list(config.background),
        "backend": config.backend,
        "points_per_object": config.points,
        "shard_size": config.shard_size,
        "texture_atlas_size": config.texture_atlas_size,
        "source": {"root": source.root, "kind": source.kind},
        "seed": config.seed,
        "tap3d_version": tap3d.__version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def _exists(store) -> bool:
    import fsspec

    fs, path = fsspec.core.url_to_fs(os.fspath(store))
    return fs.exists(path)


def build(source: str | os.PathLike, output: str | os.PathLike, config: BuildConfig = BuildConfig(),
          *, synsets: list[str] | None = None, limit: int | None = None,
          workers: int | None = None, scheduler: str | None = None, overwrite: bool = False,
          progress: bool = True, timeout: float | None = 600.0,
          memory_limit: int | str | None = None) -> BuildSummary:
    """Build a ``tap3d.views`` dataset from a mesh source.

    Args:
        source: ShapeNetCore v2/v1 root, mesh folder, or ``"pybullet"`` (see
            :func:`tap3d.datasets.sources.discover`).
        output: path or fsspec URL of the Zarr group to write.
        config: rendering and format settings.
        synsets: categories to keep (synset ids or taxonomy names).
        limit: at most this many objects per category.
        workers: Dask worker processes of a local cluster (one thread each; default: one per
            CPU core, or 1 with CUDA); ``0`` renders in this process without Dask.
        scheduler: address of an existing Dask scheduler to use instead of a local cluster.
        timeout: seconds one object may take before its Dask worker is ended and the object
            retried, then recorded as failed (not enforced with ``workers=0``).
        memory_limit: bytes (or ``"4GiB"``) of memory per Dask worker process; an object that
            drives its worker past 90% of it is retried, then recorded as failed. Default for
            a local cluster: system memory / workers; for ``scheduler``: the workers' own limits.
        overwrite: replace an existing dataset at ``output``; without it an existing dataset
            built with the same settings is resumed: complete shards are kept, the others
            (never started, or torn by a kill) are rendered again.
        progress: show a progress bar.

    Returns:
        A :class:`BuildSummary`.

    Raises:
        SourceError: the source does not exist or holds no meshes (nothing is written).
        ValueError: invalid settings, or ``output`` exists with other settings or objects
            (nothing is written).
    """
    config.validate()
    if config.backend == "auto":  # record the backend that renders (local device)
        from tap3d.render.rasterize import resolve_backend

        config = replace(config, backend=resolve_backend("auto", _resolve_device(config.device)))
    found = discover(source, synsets=synsets, limit=limit)
    layout_name = resolve_layout_name(config.layout, config.views)
    objects = found.objects
    specs = fmt.array_specs(len(objects), config.views, config.image_size, config.points)
    index = {
        "object_id": np.array([o.object_id for o in objects], dtype=str),
        "category": np.array([o.category for o in objects], dtype=str),
        "label": np.array([found.label(o.category) for o in objects], dtype=np.int32),
    }
    attributes = _attributes(found, config, layout_name)
    ranges = fmt.shard_ranges(len(objects), config.shard_size)
    began = time.perf_counter()
    if _exists(output) and not overwrite:
        pending = _pending_shards(os.fspath(output), attributes, index, ranges)
    else:
        fmt.create_dataset(os.fspath(output), specs, config.shard_size, attributes, index,
                           overwrite=overwrite)
        pending = list(range(len(ranges)))
    tasks = [(shard, ranges[shard][0], objects[slice(*ranges[shard])]) for shard in pending]
    reports = _run(tasks, os.fspath(output), config, workers, scheduler, progress,
                   sum(len(t[2]) for t in tasks), timeout, memory_limit)
    import zarr

    group = zarr.open_group(os.fspath(output), mode="r")
    status, errors = group["status"][:], group["error"][:]
    failed = [(index["object_id"][i], str(errors[i]))
              for i in np.flatnonzero(status == fmt.STATUS_FAILED)]
    return BuildSummary(
        output=os.fspath(output), objects=len(objects),
        done=int((status == fmt.STATUS_DONE).sum()), failed=failed, views=config.views,
        seconds=time.perf_counter() - began, bytes_on_disk=fmt.bytes_on_disk(output),
        shards=len(ranges), shards_rendered=len(reports))


#: Attributes that must match for a build to continue an existing dataset.
RESUME_SETTINGS = ("views", "layout", "image_size", "fov", "points_per_object", "shard_size",
                   "seed", "backend", "background", "texture_atlas_size", "source", "categories")


def _pending_shards(store: str, attributes: dict, index: dict, ranges) -> list[int]:
    """Shards of an existing dataset that a resumed build must (re)render.

    A shard is complete when every object's ``status`` is set (``write_shard`` writes it last);
    a shard whose ``status`` chunk is missing, unreadable or still pending is rendered again.

    Raises:
        ValueError: the existing dataset was made with other settings or objects (the
            message names each difference; nothing is written).
    """
    import zarr

    try:
        group = zarr.open_group(store, mode="r")
        existing = dict(group.attrs)
    except Exception as error:  # noqa: BLE001
        raise ValueError(f"{store}: exists but is not a readable tap3d dataset ({error}); "
                         "pass --overwrite to replace it") from None
    if existing.get("format") != fmt.FORMAT:
        raise ValueError(f"{store}: exists and is not a {fmt.FORMAT} dataset; pass --overwrite "
                         "to replace it")
    differences = [f"{key}: existing {existing.get(key)!r}, this build {attributes[key]!r}"
                   for key in RESUME_SETTINGS if existing.get(key) != attributes[key]]
    ids = group["object_id"][:]
    if len(ids) != len(index["object_id"]) or (ids != index["object_id"]).any():
        differences.append(f"objects: existing {len(ids)}, this build {len(index['object_id'])}"
                           " (the source or --synsets/--limit changed)")
    if differences:
        raise ValueError(f"{store}: exists with different settings; pass --overwrite to start "
                         "over, or the original settings to resume:\n  " +
                         "\n  ".join(differences))
    try:
        status = group["status"][:]  # one read; shard by shard only when a chunk is torn
    except Exception:  # noqa: BLE001
        status = None
    pending = []
    for shard, (start, stop) in enumerate(ranges):
        try:
            part = status[start:stop] if status is not None else group["status"][start:stop]
            complete = bool((part != fmt.STATUS_PENDING).all())
        except Exception:  # noqa: BLE001 - a torn status chunk means the shard is redone
            complete = False
        if not complete:
            pending.append(shard)
    return pending


def _culprit(client, shard: int, failed: dict[int, str]) -> tuple[int | None, str | None]:
    """The object a dead shard task was rendering, from the task's Dask events, and the
    watchdog's reason when it ended the worker."""
    last_start, reason = None, None
    for _, msg in client.get_events(EVENT_TOPIC):
        if msg.get("shard") != shard:
            continue
        if msg["event"] == "start":
            last_start = msg["index"]
        elif msg["event"] == "end" and msg["index"] == last_start:
            last_start = None
    if last_start is None or last_start in failed:
        return None, None
    for _, msg in client.get_events(EVENT_TOPIC):
        if msg.get("shard") == shard and msg["event"] == "killed" and msg["index"] == last_start:
            reason = msg["reason"]
    return last_start, reason


def _run(tasks, store, config, workers, scheduler, progress, total, timeout=None,
         memory_limit=None) -> list[ShardReport]:
    """Run the shard tasks in process, on a local cluster or on an existing scheduler.

    On Dask, a shard task whose worker dies (the watchdog's time or memory limit, the nanny's
    memory limit, a native crash) is rescheduled by Dask; when it dies again (``KilledWorker``;
    the local cluster allows one retry, an existing scheduler its
    ``distributed.scheduler.allowed-failures``), the object it was rendering is found from the
    task's events and the shard is submitted again with that object recorded as failed.
    """
    from tqdm.auto import tqdm

    if not tasks:
        return []
    bar = tqdm(total=total, unit="obj", desc="render", disable=not progress)
    reports = []
    if workers == 0 and scheduler is None:
        threads = os.cpu_count() or 1
        for shard, start, objs in tasks:
            reports.append(render_shard(store, shard, start, objs, config, threads))
            bar.update(len(objs))
        bar.close()
        return reports

    import dask
    import psutil
    from dask.distributed import Client, LocalCluster, as_completed
    from dask.utils import parse_bytes

    limit = parse_bytes(memory_limit) if isinstance(memory_limit, str) else memory_limit
    cluster = None
    if scheduler is None:
        gpu = config.device.startswith("cuda") or (
            config.device == "auto" and _resolve_device("auto") == "cuda")
        n = workers or (1 if gpu else (os.cpu_count() or 1))
        limit = limit or psutil.virtual_memory().total // n
        with dask.config.set({"distributed.scheduler.allowed-failures": 1}):
            cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                                   dashboard_address=None, silence_logs=50, memory_limit=limit)
        client = Client(cluster)
    else:
        client = Client(scheduler)
    # The watchdog acts below the nanny's own limit (it terminates at 95%) so that the reason
    # is recorded.
    watch = int(0.9 * limit) if limit else None
    submitted = {}

    def submit(shard, start, objs, failed):
        future = client.submit(render_shard, store, shard, start, objs, config, 1, failed,
                               timeout, watch, pure=False)
        submitted[future] = (shard, start, objs, failed)
        return future

    try:
        pending = as_completed([submit(shard, start, objs, {}) for shard, start, objs in tasks])
        for future in pending:
            shard, start, objs, failed = submitted.pop(future)
            try:
                reports.append(future.result())
            except Exception as error:  # noqa: BLE001 - KilledWorker or an error in the task
                index, reason = _culprit(client, shard, failed)
                if index is None:
                    raise RuntimeError(f"shard {shard} (objects {start}-{start + len(objs) - 1}) "
                                       f"failed outside any object: {error!r}") from error
                reason = reason or (f"its worker process died twice while rendering it "
                                    f"({type(error).__name__}: a native crash or out of memory)")
                pending.add(submit(shard, start, objs, {**failed, index: reason}))
                continue
            bar.update(len(objs))
    finally:
        bar.close()
        client.close()
        if cluster is not None:
            cluster.close()
    return reports
