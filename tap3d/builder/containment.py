"""Containment of objects that hang or eat memory: both ends of the watchdog's Dask events.

In a worker, :class:`Watchdog` marks each object's start and end as Dask events and ends the
worker process when one object runs too long or memory grows too large, logging the reason
first. On the driver, :func:`culprit` reads those events back to name the object a dead shard
task was rendering.
"""

from __future__ import annotations

import os
import signal
import threading
import time

__all__ = ["EVENT_TOPIC", "Watchdog", "culprit"]

#: Dask event topic of the shard tasks: ``start``/``end`` of each object and watchdog kills.
EVENT_TOPIC = "tap3d-build"


class Watchdog(threading.Thread):
    """Ends this Dask worker process when one object runs too long or memory grows too large.

    Python cannot interrupt native code (a rasterizer, a mesh loader) from another thread, so
    the only way to stop a hung or runaway object is to end the process. Before it does, it logs
    the reason as a Dask event (``EVENT_TOPIC``) so that the driver can record it; the nanny then
    starts a fresh worker and the scheduler reschedules the shard.
    """

    def __init__(self, worker, store: str, shard: int, timeout: float | None,
                 memory_limit: int | None):
        super().__init__(daemon=True, name=f"tap3d-watchdog-{shard}")
        self.worker, self.store, self.shard = worker, str(store), shard
        self.timeout, self.memory_limit = timeout, memory_limit
        self.current: tuple[int, str, float] | None = None
        self.finished = threading.Event()

    @classmethod
    def start_in_worker(cls, store: str, shard: int, timeout: float | None,
                        memory_limit: int | None) -> "Watchdog | None":
        """A started watchdog in a Dask worker with a limit, else None (in-process builds)."""
        if not (timeout or memory_limit):
            return None
        try:
            from distributed import get_worker

            worker = get_worker()
        except ValueError:  # not in a Dask worker
            return None
        watchdog = cls(worker, store, shard, timeout, memory_limit)
        watchdog.start()
        return watchdog

    def _log(self, msg: dict) -> None:
        """Log ``msg`` on the scheduler and wait until it has it (a few ms).

        ``Worker.log_event`` only queues the event on the worker's batched stream; a worker
        killed soon after (or whose event loop is starved by native code holding the GIL, as a
        large mesh being parsed does) can lose it, and the driver then cannot name the object.
        """
        from distributed.utils import sync

        msg = {"store": self.store, "shard": self.shard, **msg}
        try:
            sync(self.worker.loop, self.worker.scheduler.log_event, topic=EVENT_TOPIC, msg=msg,
                 callback_timeout=30)
        except Exception:  # noqa: BLE001 - scheduler unreachable: fall back to the stream
            self.worker.log_event(EVENT_TOPIC, msg)

    def begin(self, index: int, object_id: str) -> None:
        """Mark object ``index`` of the shard as started (its time limit starts now)."""
        self._log({"index": index, "object_id": object_id, "event": "start"})
        self.current = (index, object_id, time.monotonic())

    def end(self) -> None:
        """Mark the current object as done."""
        if self.current is not None:
            self._log({"index": self.current[0], "event": "end"})
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
                reason = f"exceeded the time limit of {self.timeout:g} s per object"
            elif self.memory_limit and process.memory_info().rss > self.memory_limit:
                reason = (f"exceeded the worker memory limit of {self.memory_limit / 2**30:.2f} "
                          f"GiB")
            if reason:
                self._log({"index": index, "object_id": object_id, "event": "killed",
                           "reason": reason})
                os.kill(os.getpid(), signal.SIGKILL)


def culprit(client, store: str, shard: int,
            failed: dict[int, str]) -> tuple[int | None, str | None]:
    """The object a dead shard task was rendering, from the task's Dask events, and the
    watchdog's reason when it ended the worker.

    Args:
        client: a Dask client of the scheduler the task ran on.
        store: the dataset the task was writing (events of other builds are ignored).
        shard: the shard index.
        failed: objects of the shard (index within the shard) already recorded as failed.

    Returns:
        ``(index, reason)``: the object the watchdog killed (its reason), else the last object
        started and not ended (reason None, as for a native crash), else ``(None, None)``.
    """
    events = [msg for _, msg in client.get_events(EVENT_TOPIC)
              if msg.get("store") == str(store) and msg.get("shard") == shard]
    for msg in reversed(events):
        if msg["event"] == "killed" and msg["index"] not in failed:
            return msg["index"], msg["reason"]
    last_start = None
    for msg in events:
        if msg["event"] == "start":
            last_start = msg["index"]
        elif msg["event"] == "end" and msg["index"] == last_start:
            last_start = None
    if last_start is None or last_start in failed:
        return None, None
    return last_start, None


