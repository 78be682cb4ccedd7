"""Waiting for events in tests, never for a fixed time.

On a busy machine (other jobs on every core) each step can take many times
longer than on an idle one, so tests wait for what they need to see (a staged
frame, a progress line, a job state) and the deadline only fails a test whose
event never comes. `pythonpath = ["tests"]` in pyproject.toml makes this
importable from every test (`from waits import wait_for`).
"""
from __future__ import annotations

import time

EVENT_DEADLINE_S = 300.0


def wait_for(predicate, what: str, timeout: float = EVENT_DEADLINE_S, interval: float = 0.02):
    """The first truthy value of predicate(), polled; AssertionError naming `what` at the deadline."""
    end = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)
