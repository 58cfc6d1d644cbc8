"""The one timer of the benchmark scripts (``python benchmarks/<name>.py`` puts this folder first
on ``sys.path``; a script's child process, ``python benchmarks/<name>.py --child NAME ...``,
too). No other file in ``benchmarks/`` reads a clock (tests/architecture/test_benchmarks.py).

``timed(fn, repeats=R, number=N, warmup=W, sync=S)`` calls ``fn`` ``W`` times untimed, then takes
``R`` samples, each the seconds of ``N`` calls in a row divided by ``N`` (``sync``, e.g. a CUDA
synchronize, is called before each sample's clock starts and before it stops). The scripts read:

- ``.min``: best of ``R`` (one call per sample): the least disturbed by other load;
- ``.min`` with ``repeats=1, number=N``: the mean of ``N`` calls timed as one run (no sync
  between them, as a training loop runs);
- ``.min`` with the defaults: one call, and ``.result`` its return value.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from typing import Any, Callable


@dataclass(frozen=True)
class Timing:
    """Seconds per call of ``repeats`` samples: the fastest, the median and the slowest; and
    what the last call returned."""

    min: float
    median: float
    max: float
    repeats: int
    number: int
    result: Any = None


def timed(fn: Callable[[], Any], *, repeats: int = 1, number: int = 1, warmup: int = 0,
          sync: Callable[[], None] | None = None) -> Timing:
    """``fn`` called ``warmup`` times, then ``repeats`` samples of ``number`` calls each, timed
    with :func:`time.perf_counter`; seconds per call (a sample's seconds over ``number``)."""
    if repeats < 1 or number < 1 or warmup < 0:
        raise ValueError(f"repeats {repeats} and number {number} must be >= 1, warmup "
                         f"{warmup} >= 0")
    result = None
    for _ in range(warmup):
        result = fn()
    samples = []
    for _ in range(repeats):
        if sync is not None:
            sync()
        began = time.perf_counter()
        for _ in range(number):
            result = fn()
        if sync is not None:
            sync()
        samples.append((time.perf_counter() - began) / number)
    return Timing(min(samples), statistics.median(samples), max(samples), repeats, number,
                  result)
