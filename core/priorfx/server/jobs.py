"""Jobs: long work on a pool of inference threads, with progress and cancel.

A job runs a generator of results in a worker thread. Each result is encoded
into a bundle there (the event loop only moves bytes) and becomes a numbered
*part*: one for a still or a corrected clip, one per frame for a matte. A
client fetching part i releases the parts before it, and the worker waits
when too many parts are unfetched, so a long clip never piles up in memory.

Status changes wake long-polling HTTP requests through an asyncio.Event that
the worker thread replaces via `loop.call_soon_threadsafe`.
"""
from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import sys
import threading
import time
import traceback
import uuid
from typing import Any, Callable, Iterable

from priorfx.engines import protocol
from priorfx.errors import CancelledError, LimitError, NotFoundError, PriorfxError
from priorfx.progress import Progress

ACTIVE = ("queued", "running")


class FrameFeed:
    """Frames of a job that arrive in several uploads (a long shot, frame by frame).

    The job's work iterates over it like a list of frames and blocks until the
    next upload arrives; `len()` is the shot length the client announced.
    Per-frame guides arrive with their frames and are read through `guide()`.
    """

    def __init__(self, total: int | None, per_frame_guides: tuple[str, ...] = (),
                 hold_all: bool = False):
        self.total = total
        self.hold_all = hold_all  # the work needs every frame before it starts
        self.per_frame_guides = per_frame_guides
        self.received = 0
        self.uploads = 0
        self.closed = False
        self.cancelled = threading.Event()
        self._frames: collections.deque = collections.deque()
        self._guides: dict[str, dict[int, Any]] = {name: {} for name in per_frame_guides}
        self._cond = threading.Condition()

    def __len__(self) -> int:
        if self.total is None:
            raise TypeError("length unknown")  # the manipulation then shows progress without a total
        return self.total

    def pending_bytes(self) -> int:
        with self._cond:
            return sum(f.nbytes for f in self._frames)

    def add(self, frames: list, guides: dict[str, list], more: bool) -> None:
        with self._cond:
            for i, frame in enumerate(frames):
                for name in self.per_frame_guides:
                    self._guides[name][self.received] = guides[name][i]
                self._frames.append(frame)
                self.received += 1
            self.uploads += 1
            self.closed = not more
            self._cond.notify_all()

    def cancel(self) -> None:
        self.cancelled.set()
        with self._cond:
            self._cond.notify_all()

    def __iter__(self) -> "FrameFeed":
        return self

    def __next__(self):
        with self._cond:
            while not self._frames:
                if self.cancelled.is_set():
                    raise CancelledError("cancelled while waiting for frames")
                if self.closed:
                    raise StopIteration
                self._cond.wait(0.5)
            return self._frames.popleft()

    def guide(self, name: str) -> Callable[[int], Any]:
        """guide(name)(index) -> that frame's guide; earlier frames' guides are freed."""
        def at(index: int):
            with self._cond:
                table = self._guides[name]
                for old in [i for i in table if i < index - 1]:
                    del table[old]
                return table.get(index)
        return at


class Job:
    def __init__(self, op: str, loop: asyncio.AbstractEventLoop):
        self.id = uuid.uuid4().hex
        self.op = op
        self.state = "queued"
        self.done = 0
        self.total = 0
        self.message = ""
        self.error: dict | None = None
        self.parts: dict[int, bytes] = {}
        self.parts_ready = 0
        self.version = 0
        self.created = time.monotonic()
        self.last_access = self.created
        self.finished: float | None = None
        self.progress = Progress(self._on_progress)
        self.future: concurrent.futures.Future | None = None
        self.feed: FrameFeed | None = None
        self._cond = threading.Condition()
        self._loop = loop
        self._event = asyncio.Event()

    # -- called from the worker thread
    def _on_progress(self, done: int, total: int, message: str) -> None:
        with self._cond:
            self.done, self.total, self.message = done, total, message
        self._changed()

    def _changed(self) -> None:
        with self._cond:
            self.version += 1
            self._cond.notify_all()
        try:
            self._loop.call_soon_threadsafe(self._wake)
        except RuntimeError:  # loop closed during shutdown
            pass

    def _wake(self) -> None:
        old, self._event = self._event, asyncio.Event()
        old.set()

    # -- called from the event loop
    def status(self) -> dict[str, Any]:
        with self._cond:
            out = {"id": self.id, "op": self.op, "state": self.state, "done": self.done,
                   "total": self.total, "message": self.message, "parts_ready": self.parts_ready,
                   "version": self.version, "error": self.error}
        if self.feed is not None:
            out["frames_received"] = self.feed.received
            out["uploads"] = self.feed.uploads
            out["frames_closed"] = self.feed.closed
        return out

    async def wait_change(self, since: int, timeout: float) -> None:
        """Return when the job's version differs from `since`, or after `timeout` s."""
        event = self._event
        if self.version != since or timeout <= 0:
            return
        try:
            await asyncio.wait_for(event.wait(), timeout)
        except asyncio.TimeoutError:
            pass

    def take_new_parts(self, start: int) -> list[bytes]:
        """Remove and return parts start, start+1, ... that are ready (in order)."""
        out = []
        with self._cond:
            self.last_access = time.monotonic()
            while start + len(out) in self.parts:
                out.append(self.parts.pop(start + len(out)))
            self._cond.notify_all()  # the worker may be waiting for room
        return out

    def take_part(self, index: int) -> bytes | None:
        """Part `index` if ready (releasing earlier parts), else None."""
        with self._cond:
            self.last_access = time.monotonic()
            for old in [i for i in self.parts if i < index]:
                del self.parts[old]
            self._cond.notify_all()
            return self.parts.get(index)


class JobManager:
    """Runs jobs on `workers` threads; at most `max_active` held (queued, running,
    or finished with results nobody has fetched yet: those hold memory too)."""

    def __init__(self, workers: int = 1, max_active: int = 32, ttl_s: float = 600.0,
                 max_unfetched: int = 4, result_ttl_s: float = 120.0):
        self.workers = workers
        self.max_active = max_active
        self.ttl_s = ttl_s
        self.result_ttl_s = min(result_ttl_s, ttl_s)
        self.max_unfetched = max_unfetched
        self.jobs: dict[str, Job] = {}
        self._pool = concurrent.futures.ThreadPoolExecutor(workers, thread_name_prefix="priorfx-job")
        self._closed = False

    def submit(self, op: str, work: Callable[[Progress], Iterable[Any]],
               feed: FrameFeed | None = None) -> Job:
        self.reap()
        active = sum(j.state in ACTIVE or bool(j.parts) for j in self.jobs.values())
        if active >= self.max_active:
            raise LimitError(f"the server already has {active} job(s) queued or running, or "
                             "finished with results not yet fetched",
                             "wait for some to finish (and fetch or DELETE their results), then submit again")
        job = Job(op, asyncio.get_running_loop())
        job.feed = feed
        self.jobs[job.id] = job
        job.future = self._pool.submit(self._run, job, work)
        return job

    def get(self, job_id: str) -> Job:
        job = self.jobs.get(job_id)
        if job is None:
            raise NotFoundError(f"no job {job_id!r} on this server",
                                "it finished and was released, or the server restarted; submit it again")
        job.last_access = time.monotonic()
        return job

    def cancel(self, job: Job) -> None:
        job.progress.cancel()
        if job.feed is not None:
            job.feed.cancel()  # a worker waiting for the next upload wakes up
        if job.future is not None and job.future.cancel():
            self._finish(job, "cancelled", CancelledError("job was cancelled before it started").to_json())
        with job._cond:
            job._cond.notify_all()  # a worker waiting for the client to fetch parts wakes up

    def release(self, job_id: str) -> dict:
        """DELETE: cancel a queued or running job, or forget a finished one.

        A cancelled job stays listed (state 'cancelled', no results) until
        its own client asks again or the TTL passes, so that a client waiting
        on a job someone else cancelled learns why it ended.
        """
        job = self.get(job_id)
        if job.state in ACTIVE:
            self.cancel(job)
        else:
            self.jobs.pop(job_id, None)
        with job._cond:
            job.parts.clear()
        return job.status()

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for j in list(self.jobs.values()):
            out[j.state] = out.get(j.state, 0) + 1
        return out

    def reap(self) -> None:
        """Forget jobs nobody asked about for `ttl_s` (cancelling any still running),
        and finished ones nobody asked about for `result_ttl_s`."""
        now = time.monotonic()
        for job in list(self.jobs.values()):
            ttl = self.ttl_s if job.state in ACTIVE else self.result_ttl_s
            if now - job.last_access > ttl:
                if job.state in ACTIVE:
                    self.cancel(job)
                self.jobs.pop(job.id, None)

    def shutdown(self) -> None:
        self._closed = True
        for job in list(self.jobs.values()):
            if job.state in ACTIVE:
                self.cancel(job)
        self._pool.shutdown(wait=False, cancel_futures=True)

    # -- worker thread
    def _run(self, job: Job, work: Callable[[Progress], Iterable[Any]]) -> None:
        if job.progress.cancelled:
            self._finish(job, "cancelled", CancelledError("job was cancelled before it started").to_json())
            return
        with job._cond:
            job.state = "running"
        job._changed()
        try:
            for result in work(job.progress):
                data = protocol.pack(result)
                with job._cond:
                    # Back-pressure: wait for the client to fetch earlier parts.
                    while (len(job.parts) >= self.max_unfetched and not job.progress.cancelled):
                        job._cond.wait(0.5)
                    job.progress.check()
                    job.parts[job.parts_ready] = data
                    job.parts_ready += 1
                job._changed()
            job.progress.check()
            self._finish(job, "done", None)
        except CancelledError as err:
            self._finish(job, "cancelled", err.to_json())
        except PriorfxError as err:
            self._finish(job, "failed", err.to_json())
        except MemoryError:
            self._finish(job, "failed", PriorfxError(
                f"the server ran out of memory running {job.op}",
                "send smaller images or fewer frames per job").to_json())
        except Exception as exc:  # a bug: keep the server up, tell the client, log the trace
            traceback.print_exc(file=sys.stderr)
            self._finish(job, "failed", PriorfxError(
                f"internal error in {job.op}: {type(exc).__name__}: {exc}",
                "this is a bug in priorfx; report it with the server log").to_json())

    def _finish(self, job: Job, state: str, error: dict | None) -> None:
        with job._cond:
            if job.state not in ACTIVE:
                return
            job.state = state
            job.error = error
            job.finished = time.monotonic()
            job.last_access = job.finished
            if state != "done":
                job.parts.clear()
        job._changed()
