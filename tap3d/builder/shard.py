"""One object and one shard: what a Dask task does.

:func:`render_object` loads, renders and samples one object into its per-object arrays;
:func:`render_shard` renders the objects of one shard and writes the shard of every array,
``status`` last. An object that fails is recorded (``status`` 2, ``error`` naming the file and
the reason) and the shard goes on. Randomness (surface samples, the ``random`` layout) is seeded
per object from the build seed and the ``object_id``, so a build is the same whatever the number
of workers.
"""

from __future__ import annotations

import os
import time
import traceback
from dataclasses import dataclass, field

import numpy as np

from tap3d.builder.containment import Watchdog
from tap3d.builder.plan import object_seed
from tap3d.buildconfig import BuildConfig, optional_arrays
from tap3d.render.cameras import make_layout
from tap3d.render.meshes import MeshError
from tap3d.sources import ObjectSpec
from tap3d.views import schema
from tap3d.views.storage import StorageError

__all__ = ["ShardReport", "render_object", "make_renderer", "render_shard"]


@dataclass
class ShardReport:
    """What one shard task did: objects done, failures ``(object_id, error)``, seconds, and the
    seconds of each stage (``load``, ``rasterize``, ``shade``, ``sample``, ``write``) summed over
    its objects."""

    shard: int
    done: int
    failed: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)


def make_renderer(config: BuildConfig, threads: int = 1):
    """The :class:`~tap3d.render.shade.ViewRenderer` of a resolved config (see
    :func:`tap3d.builder.plan.make_plan`)."""
    import importlib

    from tap3d.render.rasterize import make_rasterizer

    # Import what rendering an object needs now, before the first object's clock starts: a
    # fresh Dask worker otherwise pays seconds of imports inside its first object's time limit.
    for module in ("tap3d.render.meshes", "tap3d.render.objfile", "tap3d.render.textures",
                   "tap3d.render.embree", "pytorch3d.renderer", "pytorch3d.io", "open3d",
                   "tinyobjloader", "trimesh", "PIL.Image"):
        importlib.import_module(module)
    from tap3d.render.shade import SHADERS, ViewRenderer

    return ViewRenderer(make_rasterizer(config.backend, config.image_size, config.device, threads),
                        SHADERS[config.shader](config.shading, config.background),
                        normal_maps=config.normal_maps, albedo_maps=config.albedo_maps)


def render_object(spec: ObjectSpec, config: BuildConfig, renderer,
                  timings: dict | None = None) -> dict:
    """Load, render and sample one object.

    Args:
        spec: the object.
        config: a resolved config (``device``, ``backend``, ``layout`` not ``auto``).
        renderer: from :func:`make_renderer`.
        timings: when given, the seconds of each stage are added to it (``load``,
            ``rasterize``, ``shade``, ``sample``).

    Returns:
        Its per-object arrays by format name (``rgb`` ``(V, S, S, 3)`` uint8, ``mask``,
        ``depth`` float16, ``cameras/*``, ``points``/``normals`` ``(P, 3)`` float32, ...),
        ``status`` done, ``error`` empty and ``warnings``.

    Raises:
        MeshError: the mesh cannot be loaded or is invalid (the message names the file).
    """
    from tap3d.render.cameras import make_cameras, make_orthographic_cameras, opencv_cameras
    from tap3d.render.limits import MeshLimits
    from tap3d.render.meshes import load_mesh
    from tap3d.render.surface import sample_surface, surface_colors
    from tap3d.views.projection import orthographic_intrinsics

    timings = {} if timings is None else timings
    began = time.perf_counter()
    seeds = np.random.SeedSequence(object_seed(config.seed, spec.object_id)).spawn(2)
    # plain shading reads no material or image: the geometry alone
    limits = MeshLimits(config.max_file_mb, config.max_faces, config.max_texture_pixels,
                        config.max_texture_size)
    mesh = load_mesh(spec.path, textures="none" if config.shading == "plain" else config.textures,
                     texture_atlas_size=config.texture_atlas_size, obj_loader=config.obj_loader,
                     limits=limits)
    timings["load"] = timings.get("load", 0.0) + time.perf_counter() - began
    layout = make_layout(config.layout, config.views, config.distance,
                         rng=np.random.default_rng(seeds[0]),
                         distance_jitter=config.distance_jitter)
    fov = config.fov
    if config.projection == "orthographic":
        # fitted to the vertices the faces use: their projection is the silhouette's extent
        cameras, focal, centre = make_orthographic_cameras(
            layout, config.image_size, mesh.verts[mesh.faces.unique()], config.fit,
            device=config.device)
        fov = 0.0
    else:
        cameras = make_cameras(layout, config.fov, device=config.device)
    views = renderer(mesh, cameras, timings)
    began = time.perf_counter()
    points, normals, faces = sample_surface(mesh, config.points,
                                            seed=int(seeds[1].generate_state(1)[0]), faces=True)
    timings["sample"] = timings.get("sample", 0.0) + time.perf_counter() - began
    R = cameras.R.cpu().numpy()
    T = cameras.T.cpu().numpy()
    K, world_to_camera = opencv_cameras(R, T, config.fov, config.image_size)
    if config.projection == "orthographic":
        K = orthographic_intrinsics(focal, centre)
    optional = {}
    if config.normal_maps:  # world -> OpenCV camera frame: the rotation of world_to_camera
        normal = np.einsum("vij,vyxj->vyxi", world_to_camera[:, :3, :3], views.normal)
        optional["normal"] = np.where(views.mask[..., None], normal, 0).astype(np.float16)
    if config.albedo_maps:
        optional["albedo"] = views.albedo
    if config.point_colors:
        optional["point_colors"] = surface_colors(mesh, points, faces)
    return {
        **optional,
        "rgb": views.rgb,
        "mask": views.mask,
        "depth": views.depth.astype(np.float16),
        "cameras/R": R,
        "cameras/T": T,
        "cameras/fov": np.full(config.views, fov, np.float32),
        "cameras/K": K,
        "cameras/world_to_camera": world_to_camera,
        "cameras/azimuth": layout.azimuth,
        "cameras/elevation": layout.elevation,
        "cameras/distance": layout.distance,
        "points": points,
        "normals": normals,
        "normalization/center": mesh.center,
        "normalization/scale": np.float32(mesh.scale),
        "status": schema.STATUS_DONE,
        "error": "",
        "warnings": "\n".join(mesh.warnings),
    }


def render_shard(store, shard: int, start: int, objects: list[ObjectSpec], config: BuildConfig,
                 threads: int = 1, failed: dict[int, str] | None = None,
                 timeout: float | None = None, memory_limit: int | None = None) -> ShardReport:
    """Render the objects of one shard and write the shard of every array.

    Runs in a Dask worker (or in-process). Objects that fail are recorded with ``status`` 2 and
    their error; their other arrays keep the fill value 0. In a Dask worker, a watchdog ends the
    worker process when one object exceeds ``timeout`` seconds or the process exceeds
    ``memory_limit`` bytes (see :class:`~tap3d.builder.containment.Watchdog`); in-process builds have no such limits.

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

    previous_threads = torch.get_num_threads()
    torch.set_num_threads(max(1, threads))
    try:
        return _render_shard(store, shard, start, objects, config, threads, failed or {},
                             timeout, memory_limit)
    finally:
        torch.set_num_threads(previous_threads)  # an in-process build leaves the caller's


def _contained(spec: ObjectSpec, config: BuildConfig, renderer, timings: dict) -> dict:
    """:func:`render_object`, or the failed values naming the file and the reason."""
    try:
        return render_object(spec, config, renderer, timings)
    except MeshError as error:
        return {"status": schema.STATUS_FAILED, "error": str(error)}
    except Exception as error:  # noqa: BLE001 - one bad object must not stop the shard
        last = traceback.extract_tb(error.__traceback__)[-1]
        return {"status": schema.STATUS_FAILED,
                "error": f"{spec.path}: {type(error).__name__}: {error} "
                         f"(at {os.path.basename(last.filename)}:{last.lineno})"}


def _render_shard(store, shard, start, objects, config, threads, failed, timeout,
                  memory_limit) -> ShardReport:
    from tap3d.views.writer import write_shard

    began = time.perf_counter()
    renderer = make_renderer(config, threads)
    arrays = schema.empty_shard(len(objects), config.views, config.image_size, config.points,
                                optional=optional_arrays(config))
    report = ShardReport(shard, 0)
    watchdog = Watchdog.start_in_worker(store, shard, timeout, memory_limit)
    for i, spec in enumerate(objects):
        if watchdog:
            watchdog.begin(i, spec.object_id)
        if i in failed:
            values = {"status": schema.STATUS_FAILED, "error": f"{spec.path}: {failed[i]}"}
        else:
            values = _contained(spec, config, renderer, report.timings)
        if watchdog:
            watchdog.end()
        for name, value in values.items():
            arrays[name][i] = value
        if values["status"] == schema.STATUS_DONE:
            report.done += 1
        else:
            report.failed.append((spec.object_id, values["error"]))
    for name in ("error", "warnings"):
        arrays[name] = arrays[name].astype(str)
    if watchdog:
        watchdog.finished.set()
    writing = time.perf_counter()
    try:
        group = schema.open_views(store, mode="r+")
        write_shard(group, start, arrays)
    except StorageError as error:
        raise StorageError(f"{error}; shard {shard} (objects {start}-{start + len(objects) - 1}) "
                           "was not written (finished shards are kept): run the same command "
                           "again once the storage works") from None
    report.timings["write"] = time.perf_counter() - writing
    report.seconds = time.perf_counter() - began
    return report


