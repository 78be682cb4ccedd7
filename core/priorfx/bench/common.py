"""Helpers shared by the benchmarks: timing, memory, environment record."""
from __future__ import annotations

import os
import platform
import statistics
import time
from typing import Callable

import priorfx


def median_ms(fn: Callable[[], object], repeat: int = 7, warmup: int = 1) -> float:
    """Median wall time of fn() in milliseconds, after warm-up calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000.0)
    return statistics.median(times)


def environment() -> dict:
    """Where a benchmark ran, recorded beside its figures."""
    try:
        load = os.getloadavg()[0]
    except OSError:
        load = None
    return {"priorfx_version": priorfx.__version__, "python": platform.python_version(),
            "machine": platform.machine(), "cpus": os.cpu_count(), "loadavg_1min": load}
