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

    def __init__(self, worker, shard: int, timeout: float | None, memory_limit: int | None):
        super().__init__(daemon=True, name=f"tap3d-watchdog-{shard}")
        self.worker, self.shard = worker, shard
        self.timeout, self.memory_limit = timeout, memory_limit
        self.current: tuple[int, str, float] | None = None
        self.finished = threading.Event()

    @classmethod
    def start_in_worker(cls, shard: int, timeout: float | None,
                        memory_limit: int | None) -> "Watchdog | None":
        """A started watchdog in a Dask worker with a limit, else None (in-process builds)."""
        if not (timeout or memory_limit):
            return None
        try:
            from distributed import get_worker

            worker = get_worker()
        except ValueError:  # not in a Dask worker
            return None
        watchdog = cls(worker, shard, timeout, memory_limit)
        watchdog.start()
        return watchdog

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
                reason = f"exceeded the time limit of {self.timeout:g} s per object"
            elif self.memory_limit and process.memory_info().rss > self.memory_limit:
                reason = (f"exceeded the worker memory limit of {self.memory_limit / 2**30:.2f} "
                          f"GiB")
            if reason:
                self.worker.log_event(EVENT_TOPIC, {"shard": self.shard, "index": index,
                                                    "object_id": object_id, "event": "killed",
                                                    "reason": reason})
                time.sleep(1.0)  # let the event reach the scheduler
                os.kill(os.getpid(), signal.SIGKILL)




def culprit(client, shard: int, failed: dict[int, str]) -> tuple[int | None, str | None]:
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


