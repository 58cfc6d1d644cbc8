"""Dask for the commands that fan out one task per shard: ``build-dataset`` and ``verify``.

:class:`DaskCluster` starts a local cluster of one-thread worker processes, or connects to an
existing scheduler, and gives the client; closing it ends what it started. It lives at this
low layer so that the builder (:mod:`tap3d.builder.driver`) and :mod:`tap3d.views.verify` share
it (the views layer may not import the builder).
"""

from __future__ import annotations

import os

__all__ = ["DaskCluster"]


class DaskCluster:
    """A Dask client on a local cluster, or on an existing scheduler's cluster.

    Args:
        workers: worker processes of a local cluster, one thread each (default: one per CPU
            core, or 1 with ``gpu``); ignored with ``scheduler``.
        scheduler: address of an existing Dask scheduler to use instead of a local cluster.
        memory_limit: bytes (or ``"4GiB"``) per worker process of a local cluster (default:
            system memory / workers); with ``scheduler`` the workers keep their own limits and
            this is only reported back.
        gpu: the tasks use the GPU (a local cluster then defaults to one worker).

    Attributes:
        client: the ``dask.distributed.Client``.
        memory_limit: bytes per worker (``None`` with a scheduler and no ``memory_limit``).

    A local cluster allows one retry of a task whose worker died
    (``distributed.scheduler.allowed-failures`` 1); an existing scheduler keeps its setting.
    Use as a context manager, or call :meth:`close`.
    """

    def __init__(self, workers: int | None = None, scheduler: str | None = None, *,
                 memory_limit: int | str | None = None, gpu: bool = False) -> None:
        import dask
        import psutil
        from dask.distributed import Client, LocalCluster
        from dask.utils import parse_bytes

        limit = parse_bytes(memory_limit) if isinstance(memory_limit, str) else memory_limit
        self.cluster = None
        if scheduler is None:
            n = workers or (1 if gpu else (os.cpu_count() or 1))
            limit = limit or psutil.virtual_memory().total // n
            with dask.config.set({"distributed.scheduler.allowed-failures": 1}):
                self.cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                                            dashboard_address=None, silence_logs=50,
                                            memory_limit=limit)
            try:
                self.client = Client(self.cluster)
            except BaseException:
                self.cluster.close()
                raise
        else:
            self.client = Client(scheduler)
        self.memory_limit = limit

    def close(self) -> None:
        """Close the client, and the local cluster when this started one."""
        try:
            self.client.close()
        finally:
            if self.cluster is not None:
                self.cluster.close()

    def __enter__(self) -> "DaskCluster":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
