"""Timers shared by the benchmark scripts (``python benchmarks/<name>.py`` puts this folder first on
``sys.path``)."""

from __future__ import annotations

import time


def best_seconds(fn, repeats: int = 3) -> float:
    """The fastest of ``repeats`` calls of ``fn``, seconds (the least disturbed by other load)."""
    best = float("inf")
    for _ in range(repeats):
        began = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - began)
    return best
