"""Building a dataset: source -> mesh -> views -> shard, one Dask task per shard.

:func:`build` is what ``tap-cli build-dataset`` calls; a notebook or a test calls it with the
same arguments. The driver resolves the plan once (:mod:`tap3d.builder.plan`), creates the Zarr
group with the index arrays (or finds the shards a resumed build must redo,
:mod:`tap3d.builder.resume`), and runs :func:`tap3d.builder.shard.render_shard` for every shard in
process, on a local Dask cluster or on an existing scheduler.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

import numpy as np

from tap3d.builder.containment import culprit
from tap3d.builder.plan import make_plan
from tap3d.buildconfig import BuildConfig
from tap3d.builder.resume import needs_creation, pending_shards
from tap3d.builder.shard import ShardReport, render_shard
from tap3d.views import schema
from tap3d.views.storage import StorageError
from tap3d.views.writer import create_dataset

__all__ = ["BuildSummary", "build"]


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


def build(source: str | os.PathLike, output: str | os.PathLike, config: BuildConfig = BuildConfig(),
          *, synsets: list[str] | None = None, limit: int | None = None,
          objects: str | os.PathLike | list[str] | None = None,
          workers: int | None = None, scheduler: str | None = None, overwrite: bool = False,
          progress: bool = True, timeout: float | None = 600.0,
          memory_limit: int | str | None = None) -> BuildSummary:
    """Build a ``tap3d.views`` dataset from a mesh source.

    Args:
        source: ShapeNetCore v2/v1 root, mesh folder, or ``"pybullet"`` (see
            :func:`tap3d.sources.discover`).
        output: path or fsspec URL of the Zarr group to write.
        config: rendering and format settings.
        synsets: categories to keep (synset ids or taxonomy names).
        limit: at most this many objects per category.
        objects: only these objects: an object list file (one id per line) or the ids; an id
            the source lacks is a ``SourceError``. Applied before ``limit``.
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
        StorageError: the storage failed (a network error past the filesystem's retries, a
            full disk): one line naming the store, the key or shard and the cause. Finished
            shards are kept; the same command resumes once the storage works.
    """
    plan = make_plan(source, config, synsets, limit, objects)
    store = os.fspath(output)
    began = time.perf_counter()
    if overwrite or needs_creation(store):
        # nothing there, an empty folder, or a store whose creation never finished (it holds
        # no rendered object): (re)create it
        create_dataset(store, plan.specs(), config.shard_size, plan.attributes, plan.index,
                       overwrite=True)
        pending = list(range(len(plan.ranges)))
    else:
        pending = pending_shards(store, plan.attributes, plan.index, plan.ranges)
    tasks = [(shard, plan.ranges[shard][0], plan.objects[slice(*plan.ranges[shard])])
             for shard in pending]
    reports = _run(tasks, store, plan.config, workers, scheduler, progress, timeout, memory_limit)
    group = schema.open_views(store)
    status, errors = group["status"][:], group["error"][:]
    failed = [(plan.index["object_id"][i], str(errors[i]))
              for i in np.flatnonzero(status == schema.STATUS_FAILED)]
    return BuildSummary(
        output=store, objects=len(plan.objects),
        done=int((status == schema.STATUS_DONE).sum()), failed=failed, views=config.views,
        seconds=time.perf_counter() - began, bytes_on_disk=schema.bytes_on_disk(store),
        shards=len(plan.ranges), shards_rendered=len(reports))




def _run(tasks, store: str, config: BuildConfig, workers: int | None, scheduler: str | None,
         progress: bool, timeout: float | None, memory_limit) -> list[ShardReport]:
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
    bar = tqdm(total=sum(len(objs) for _, _, objs in tasks), unit="obj", desc="render", disable=not progress)
    reports = []
    if workers == 0 and scheduler is None:
        threads = os.cpu_count() or 1
        for shard, start, objs in tasks:
            reports.append(render_shard(store, shard, start, objs, config, threads))
            bar.update(len(objs))
        bar.close()
        return reports

    from dask.distributed import as_completed

    from tap3d.views.cluster import DaskCluster

    cluster = DaskCluster(workers, scheduler, memory_limit=memory_limit,
                          gpu=config.device.startswith("cuda"))
    client, limit = cluster.client, cluster.memory_limit
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
            except StorageError:
                raise  # the storage, not an object: retrying here would not help
            except Exception as error:  # noqa: BLE001 - KilledWorker or an error in the task
                index, reason = culprit(client, store, shard, failed)
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
        cluster.close()
    return reports
