"""Live calibration: measure a camera's readout from a few seconds of its own feed.

The OBS filter's Calibrate button asks the streamer to shake or jerk the
camera for a few seconds; the worker hands every frame's luma to a
`Calibration`, which runs `priorfx readout`'s estimator (fine flow of each
consecutive pair -> `pair_evidence` -> `estimate_readout`) on its own thread,
so the live correction keeps running meanwhile. Frames are taken as the
caller sees them: a frame the caller skipped (a busy CPU) breaks the pair
chain, and the fit knows the gap (`frame_index`).

It stops when the interval is narrow enough (after `min_pairs`), or when
`max_pairs` pairs are in, or after `seconds` of frames; the result is a
`ReadoutEstimate` (not `informative` when the motion could not tell g: the
caller keeps its old value and says "move the camera more").
"""
from __future__ import annotations

import threading
import time

import numpy as np

from priorfx.priors.motion import DisFlow, gray_small, small_size
from priorfx.shutter.corrector import ESTIMATION_PRESET, ESTIMATION_WIDTH
from priorfx.shutter.readout import ReadoutEstimate, estimate_readout, pair_evidence
TARGET_HALF_WIDTH = 0.075
"""Stop early once the 95 % interval is at most this wide on each side of g."""
REFIT_EVERY = 15
"""Pairs between interim fits (each fit takes a fraction of a second)."""
MIN_RUN = 3
"""Consecutive pairs a run needs to count (see `Calibration._fit`)."""

IDLE, RUNNING, DONE, FAILED, CANCELLED = 0, 1, 2, 3, 4
STATE_NAMES = {IDLE: "idle", RUNNING: "running", DONE: "done", FAILED: "failed", CANCELLED: "cancelled"}


class Calibration:
    """One calibration run over a live feed (thread-safe `add`, `cancel`, `progress`).

    Parameters
    ----------
    width, height : int
        Full-resolution frame size.
    scan : {'down', 'up'}
    mode : {'rs', 'rsgr'}
    seconds : float
        Frames are collected for at most this long (wall clock from the first),
        and at most `max_pairs` + 1 of them; then the estimate is made from them.
    min_pairs, max_pairs : int
        Consecutive frame pairs before an early stop may happen (the interval
        within TARGET_HALF_WIDTH), and at most.
    """

    def __init__(self, width: int, height: int, scan: str = "down", mode: str = "rs",
                 seconds: float = 10.0, min_pairs: int = 30, max_pairs: int = 300):
        if width < 8 or height < 8 or min_pairs < 3 or max_pairs < min_pairs or not seconds > 0:
            raise ValueError(f"calibration of {width}x{height}, pairs {min_pairs}..{max_pairs} in "
                             f"{seconds} s is not possible")
        self.full = (int(width), int(height))
        self.scan, self.rate = scan, 0.5 if mode == "rsgr" else 1.0
        self.seconds, self.min_pairs, self.max_pairs = float(seconds), int(min_pairs), int(max_pairs)
        self._flow = DisFlow(self.full, small_size(*self.full, ESTIMATION_WIDTH), ESTIMATION_PRESET)
        self._cv = threading.Condition()
        self._queue: list[tuple[int, np.ndarray]] = []
        self._evidence: list = []
        self._index: list[int] = []
        self._collected = 0
        self._open = True            # still collecting frames
        self.state = RUNNING
        self.result: ReadoutEstimate | None = None
        self.error = ""
        self.started: float | None = None
        self._thread = threading.Thread(target=self._run, name="priorfx-calibration", daemon=True)
        self._thread.start()

    # -- the caller's side ----------------------------------------------------
    @property
    def wants_frames(self) -> bool:
        return self.state == RUNNING and self._open

    def shrink(self, image: np.ndarray) -> np.ndarray:
        """The grey image the estimate uses (one area resize, on the caller's thread).
        Always a copy: at the estimation size `gray_small` returns its input, and the
        caller's buffer (a shared-memory slot) is rewritten by the next frame."""
        return np.array(gray_small(image, self._flow.small), copy=True)

    def add(self, index: int, image: np.ndarray) -> None:
        """Frame number `index` (the caller's count; gaps allowed): luma plane, RGB or BGRA."""
        if self.wants_frames:
            self.add_small(index, self.shrink(image))

    def add_small(self, index: int, small: np.ndarray) -> None:
        """As `add`, with the image already `shrink`-ed."""
        if not self.wants_frames:
            return
        now = time.monotonic()
        if self.started is not None and (now - self.started > self.seconds or self._collected > self.max_pairs):
            with self._cv:
                self._open = False
                self._cv.notify()
            return
        with self._cv:
            if self.started is None:
                self.started = now
            self._collected += 1
            self._queue.append((int(index), small))
            self._cv.notify()

    def cancel(self) -> None:
        with self._cv:
            if self.state == RUNNING:
                self.state = CANCELLED
            self._cv.notify()

    @property
    def progress(self) -> float:
        """0..1: pairs measured of those to come (all collected ones, once collection ended)."""
        if self.state == DONE:
            return 1.0
        # the larger of: pairs measured of those to come, and the collecting time used
        # (capped at a half while collecting: the measuring may lag behind)
        todo = max(1, self._collected - 1) if not self._open else self.max_pairs
        elapsed = (time.monotonic() - self.started) / self.seconds if self.started else 0.0
        value = min(0.99, max(len(self._evidence) / todo, min(elapsed, 0.5)))
        self._progress = max(getattr(self, "_progress", 0.0), value)   # never goes back
        return float(self._progress)

    @property
    def pairs(self) -> int:
        return len(self._evidence)

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the run ended (tests, the CLI); True if it did."""
        self._thread.join(timeout)
        return not self._thread.is_alive()

    # -- the estimation thread ------------------------------------------------
    def _run(self) -> None:
        prev: tuple[int, np.ndarray] | None = None
        try:
            while True:
                with self._cv:
                    while not self._queue and self.state == RUNNING and self._open and not self._late():
                        self._cv.wait(0.1)
                    if self.state != RUNNING:
                        return
                    if self._late():
                        self._open = False
                    todo, self._queue = self._queue, []
                    finished = not self._open and not todo
                for index, small in todo:
                    if prev is not None and index == prev[0] + 1:
                        self._evidence.append(pair_evidence(self._flow(prev[1], small)))
                        self._index.append(prev[0])
                        if self._enough():
                            return
                    prev = (index, small)
                    if self.state != RUNNING:
                        return
                if finished:
                    self._finish(self._fit())
                    return
        except Exception as exc:   # reported to the host, never raised into the worker loop
            with self._cv:
                self.error = f"{type(exc).__name__}: {exc}"
                self.state = FAILED

    def _enough(self) -> bool:
        """After each pair: finish when all pairs are in, or (every REFIT_EVERY pairs
        past `min_pairs`) when the interval is already narrow."""
        n = len(self._evidence)
        if n >= self.max_pairs or (n >= self.min_pairs and n % REFIT_EVERY == 0 and self._narrow(self._fit())):
            with self._cv:
                self._open = False
            self._finish(self.result if self.result is not None and self.result.pairs == n else self._fit())
            return True
        return False

    def _late(self) -> bool:
        return self.started is not None and time.monotonic() - self.started > self.seconds

    def _fit(self) -> ReadoutEstimate:
        """The estimate from the runs of at least MIN_RUN consecutive pairs. Within one
        pair, g trades off against the camera's acceleration (measured: isolated pairs
        read g = 1.0 with a narrow interval for a truth of 0.7); neighbouring pairs
        must share one motion timeline, and that tells g."""
        index = np.asarray(self._index)
        run_id = np.cumsum(np.diff(index, prepend=-2) != 1)
        keep = np.bincount(run_id)[run_id] >= MIN_RUN if len(index) else np.zeros(0, bool)
        self.result = estimate_readout([e for e, k in zip(self._evidence, keep) if k], self.full[1],
                                       self.scan, self.rate, frame_index=list(index[keep]))
        return self.result

    @staticmethod
    def _narrow(est: ReadoutEstimate) -> bool:
        return est.informative and est.high - est.g <= TARGET_HALF_WIDTH and est.g - est.low <= TARGET_HALF_WIDTH

    def _finish(self, est: ReadoutEstimate) -> None:
        with self._cv:
            self.result = est
            if self.state == RUNNING:
                self.state = DONE
