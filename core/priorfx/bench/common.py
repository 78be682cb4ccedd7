"""Helpers shared by the benchmarks: timing, memory, environment record."""
from __future__ import annotations

import os
import platform
import statistics
import time
from typing import Callable

import priorfx


def median_ms(fn: Callable[[], object], repeat: int = 7, warmup: int = 1,
              clock: Callable[[], float] = time.perf_counter) -> float:
    """Median time of fn() in milliseconds, after warm-up calls. `clock`: wall time by
    default; `time.thread_time` counts only this thread's CPU time, which other
    processes on a loaded machine do not inflate (time waiting for a core is left out)."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        t0 = clock()
        fn()
        times.append((clock() - t0) * 1000.0)
    return statistics.median(times)


def environment() -> dict:
    """Where a benchmark ran, recorded beside its figures."""
    try:
        load = os.getloadavg()[0]
    except OSError:
        load = None
    return {"priorfx_version": priorfx.__version__, "python": platform.python_version(),
            "machine": platform.machine(), "cpus": os.cpu_count(), "loadavg_1min": load}
