"""Progress reporting and cancellation shared by CLI, server jobs and hosts.

Long functions take `progress: Progress | None`. They call `progress.update(done,
total, message)` and `progress.check()`; `check()` raises CancelledError once
`cancel()` was called (from another thread, a signal handler, an HTTP DELETE).
"""
from __future__ import annotations

import threading
from typing import Callable

from priorfx.errors import CancelledError


class Progress:
    def __init__(self, callback: Callable[[int, int, str], None] | None = None):
        self._callback = callback
        self._cancelled = threading.Event()
        self.done = 0
        self.total = 0
        self.message = ""

    def update(self, done: int, total: int, message: str = "") -> None:
        self.done, self.total, self.message = done, total, message
        if self._callback is not None:
            self._callback(done, total, message)
        self.check()

    def cancel(self) -> None:
        self._cancelled.set()

    @property
    def cancelled(self) -> bool:
        return self._cancelled.is_set()

    def check(self) -> None:
        if self._cancelled.is_set():
            raise CancelledError("cancelled by the user")


def tick(progress: Progress | None, done: int, total: int, message: str = "") -> None:
    """`progress.update(...)` when a Progress was given (the usual call site)."""
    if progress is not None:
        progress.update(done, total, message)
