"""The live streaming session: push a frame, get the corrected frame back.

`ShutterSession` corrects one stream (zero latency, or one frame late with
lookahead), straight from camera buffers (NV12, I420, I422, YUY2, BGRA,
RGBA) without converting to RGB. `BackgroundMotion` estimates the motion on
its own thread so every frame is warped with the freshest; `_ReadoutTracker`
keeps a running readout estimate ('auto' readout). The per-frame work is
`priorfx.shutter.corrector.FrameCorrector`'s.

A session is bound to the first frame's size (and, for buffers, format). A
frame of another size raises InputError: the caller starts a new session
(`ShutterSession(params)`), as it must for a new camera mode anyway; the old
motion history would be wrong for the new picture.
"""
from __future__ import annotations

import os
import sys
import threading
import time
from collections import deque
from typing import Sequence

import cv2
import numpy as np

from priorfx.errors import InputError
from priorfx.priors.motion import grid_positions
from priorfx.shutter import motion_process, rs
from priorfx.shutter.corrector import FrameCorrector, check_frame
from priorfx.shutter.params import DEFAULT_READOUT, ShutterParams
from priorfx.shutter.readout import estimate_readout, pair_evidence

STARTUP_WAIT_S = 0.5
"""Background motion: how long, in all, the first frames of a stream wait for the first motion."""
MOTION_WAIT_S = 0.0
"""Background motion: how long a frame waits for its own motion before it is warped
with the freshest, updated by the camera's velocity now (`BackgroundMotion.latest`).
0: never (the frame path stays near its remaps; measured on handheld shake, 1 dB
below waiting, 5 dB above the input); raise it where latency allows."""


class FrameClock:
    """Camera frame numbers from frame timestamps, so frames dropped before the
    session (a busy worker skips to the newest camera frame) count as gaps.

    The period is estimated from the recent steps robustly against both jitter
    and drops: a first guess from the shortest steps, then the median of each
    step divided by its whole number of periods. It is learnt from consecutive
    frames: a stream whose every other frame is dropped from its very first
    frame on looks like one at half the rate (nothing in the stamps tells them
    apart). A missing (None or 0), repeated or backward timestamp counts as the
    next frame (gap 1, as without timestamps), and so do all while the recent
    steps are not near whole periods: stamps taken when a frame arrived rather
    than when it was exposed (some network and media sources) tell no gaps.
    """

    KEEP = 31          # recent steps the period is estimated from
    MIN_STEP_NS = 2_000_000   # 2 ms: no camera runs faster; shorter steps are glitches
    MIN_STEPS = 8      # steps seen before they are trusted to be a camera's clock

    def __init__(self) -> None:
        self.number = -1            # the last frame's camera frame number (from 0)
        self.period: float | None = None
        self._last_ts: int | None = None
        self._steps: deque = deque(maxlen=self.KEEP)
        self._regular = False
        self._since = 0

    def advance(self, timestamp_ns: int | None) -> int:
        """Frame number of the frame stamped `timestamp_ns` (ns); the gap is the
        difference to the previous call's (1 without a usable timestamp)."""
        gap = 1
        if timestamp_ns:
            ts = int(timestamp_ns)
            step = ts - self._last_ts if self._last_ts is not None else 0
            self._last_ts = ts
            if step > self.MIN_STEP_NS:
                self._steps.append(step)
                self._since += 1
                # the period moves slowly: once the window is full, refitted every 8th step
                # (the fit is ~0.1 ms, the frame path's remaps a few)
                if self.period is None or len(self._steps) < self.KEEP or self._since >= 8:
                    self.period, self._regular = self._estimate_period()
                    self._since = 0
                if self._regular:
                    gap = max(1, int(round(step / self.period)))
        self.number += gap
        return self.number

    def _estimate_period(self) -> tuple[float, bool]:
        """(period, whether the recent steps are whole periods give or take jitter)."""
        steps = np.fromiter(self._steps, np.float64, len(self._steps))
        guess = float(np.percentile(steps, 10))   # the shortest steps: consecutive frames
        if self.period is not None:
            # Steps all whole multiples of the period known (a worker that has fallen
            # behind for a while takes every other frame): the period stays, else the
            # window of recent steps would forget it and take two frames for one.
            n = guess / self.period
            if round(n) >= 2 and abs(n - round(n)) < 0.2:
                guess = self.period
        for _ in range(2):   # refine: every step over its whole number of periods
            guess = float(np.median(steps / np.maximum(1.0, np.round(steps / guess))))
        periods = steps / guess
        off = np.abs(periods - np.round(periods))
        return guess, len(steps) >= self.MIN_STEPS and float(np.mean(off < 0.15)) >= 0.8


class _ReadoutTracker:
    """Running readout estimate for a live stream ('auto' readout).

    Samples runs of `window` consecutive frames (at the start, then every
    `every` frames): fine flow between neighbours -> `pair_evidence`. The
    evidence of every run is kept (up to `keep` pairs, the newest) and the
    estimate is refitted on all of it, so a long stream keeps refining the
    value; gaps between runs are known to the fit (`frame_index`). Between
    runs it costs nothing.

    Frames are numbered by the camera (`FrameClock`): a pair with a dropped
    frame between is not evidence, since the fit's model has each pair's
    samples one frame period apart (`readout._design`); it is skipped and the
    run goes on from the frame after the gap.
    """

    def __init__(self, corr: FrameCorrector, window: int = 60, every: int = 300, keep: int = 1800,
                 prior: tuple[float, float, float] | None = None):
        self.corr = corr
        self.window, self.every, self.keep = window, every, keep
        self.evidence: list = []
        self.index: list[int] = []
        # the value in use, its 95 % interval and where it came from: a calibration
        # (`prior`: g, low, high) until this stream's own estimate is as certain
        self.value = DEFAULT_READOUT
        self.low = self.high = DEFAULT_READOUT
        self.source = "default"
        if prior is not None:
            self.value, self.low, self.high = (float(v) for v in prior)
            self.source = "calibrated"
        self.confidence = 0.0
        self.estimate = None
        self.pairs = 0            # frame pairs behind the estimate
        self._count = 0
        self._prev: tuple[np.ndarray, int] | None = None

    def samples(self, n: int) -> bool:
        """Whether frame number `n` (from 0) is sampled (only then is its estimation grey made)."""
        return n % self.every < self.window

    def add(self, frame: np.ndarray, index: int | None = None) -> None:
        """Feed a full-size image (RGB, BGRA or luma plane), camera frame `index`
        (default: the one after the last)."""
        k = self._count if index is None else index
        gray = self.corr.estimation_gray(frame) if self.samples(k) else None
        self.add_gray(gray, k)

    def add_gray(self, cur: np.ndarray | None, index: int | None = None) -> None:
        """Feed frame `index`'s `estimation_gray` (None when `samples` said no)."""
        k = self._count if index is None else index
        self._count = k + 1
        if cur is None:
            self._prev = None
            return
        if self._prev is not None and self._prev[1] == k - 1:
            self.evidence.append(pair_evidence(self.corr.estimation_flow(self._prev[0], cur)))
            self.index.append(k - 1)
            del self.evidence[:-self.keep], self.index[:-self.keep]
            self.pairs = len(self.evidence)
        self._prev = (cur, k)
        if len(self.evidence) >= 15 and (len(self.evidence) % 15 == 0 or k % self.every == self.window - 1):
            p = self.corr.params
            est = estimate_readout(self.evidence, self.corr.full[1], p.scan, 0.5 if p.mode == "rsgr" else 1.0,
                                   frame_index=self.index)
            self.estimate = est
            # Over a calibration, only evidence from more than one sampled run (moments
            # of the video apart) may take over: one run's 15-59 pairs gave narrow wrong
            # intervals now and then (real libobs, truth 0.7: 0.598 (0.53-0.66) from 15
            # pairs, 1 of 8 runs; 1.000 (0.94-1.00) from 28).
            over_calibration = self.source == "calibrated"
            if est.informative and (not over_calibration or (est.high - est.low <= self.high - self.low
                                                             and len(self.evidence) > self.window)):
                self.value, self.confidence = est.g, est.confidence
                self.low, self.high, self.source = est.low, est.high, "estimated"

    STATE = ("value", "low", "high", "source", "confidence", "estimate", "pairs")

    def state(self) -> dict:
        """What the session reports (small: a motion process sends it back each frame)."""
        return {k: getattr(self, k) for k in self.STATE}

    def adopt(self, state: dict) -> None:
        """Take over the state of the tracker that runs elsewhere (the motion process)."""
        for k in self.STATE:
            setattr(self, k, state[k])


class _MotionState:
    """The motion estimation of one live stream, fed frame by frame (`step`): in the
    motion process (`motion_process`), or in-process where a process cannot start.
    It keeps its own `FrameCorrector` (flow, smoothed velocity) and, for 'auto'
    readout, the readout tracker; the frame path keeps the session's."""

    def __init__(self, params: ShutterParams, full: tuple[int, int], track: bool,
                 prior: tuple[float, float, float] | None) -> None:
        self.corr = FrameCorrector(params, *full)
        self.tracker = _ReadoutTracker(self.corr, prior=prior) if track else None
        self.prev: tuple[np.ndarray, int] | None = None

    def step(self, job: tuple) -> tuple:
        """job (small, index, readout, tracked) -> (index, disp, dom, tracker state);
        `tracked`: (estimation grey or None, frame number) of every frame since the last
        job, skipped ones included (the readout evidence wants consecutive frames)."""
        small, index, readout, tracked = job
        if self.tracker is not None:
            for g_img, k in tracked:
                self.tracker.add_gray(g_img, k)
        disp = dom = None
        if self.prev is not None:
            disp = self.corr.displacement(small, self.prev[0], None, readout, gap=index - self.prev[1])
            v = self.corr.last_velocity
            dom = rs.dominant_velocity(v) if disp is not None and v is not None else None
        self.prev = (small, index)
        return index, disp, dom, self.tracker.state() if self.tracker is not None else None


class BackgroundMotion:
    """Motion estimation off the frame path, decoupled from the warp.

    The warp of every frame needs only full-size maps; estimating the motion
    (flow, velocity, splat, maps) costs several remaps. Here it runs at
    whatever rate the CPU allows: `submit` hands over the newest small frame
    (an older one still waiting is dropped: skipped frames), a thread passes
    it to the motion process (`_MotionState` in `motion_process`, `nice`
    below the frame path), which returns that frame's displacement, and the
    session waits for it up to a budget (`ShutterSession.motion_wait_s`).
    Past the budget the frame is warped with the freshest motion, carried
    forward linearly by a frame or two (extrapolated motion): on a busy CPU
    frames stay corrected, if less exactly (one frame stale loses most of the
    gain on fast handheld shake, measured, so the current frame's motion is
    waited for when it can be). The motion is a process, not a thread at low
    priority, because such a thread, descheduled while it holds the GIL,
    stalls the frame path (see `motion_process`). Where no process can start,
    it runs on the thread itself, `nice` lower.
    """

    MAX_EXTRAPOLATE = 2

    def __init__(self, corr: FrameCorrector, readout, fmt: str | None = None, nice: int = 0,
                 tracker: _ReadoutTracker | None = None,
                 prior: tuple[float, float, float] | None = None) -> None:
        self.corr = corr
        self.nice = nice
        self._specs = FrameCorrector.plane_maps(fmt, corr.full) if fmt else None
        self._readout = readout
        self._cv = threading.Condition()
        self._job: tuple | None = None
        self._done: list[tuple[int, np.ndarray | None]] = []   # last two (index, disp)
        self._closed = False
        self._gray_queue: list = []
        self._maps_out: tuple | None = None
        self.wait_s = MOTION_WAIT_S
        self.current = 0          # frames warped with their own motion
        self.stale = 0            # frames warped with carried-forward motion (or passed through)
        self.tracker = tracker    # the session's: shows the motion process's tracker's state
        self.tracked = 0
        self.processed = 0
        self.skipped = 0
        self._state_args = (corr.params, corr.full, tracker is not None, prior)
        self._child = None
        self._in_step = False     # a step asked of the child, its answer not back yet
        self._startup_left = STARTUP_WAIT_S
        self.start_error: str | None = None   # why no motion process started (then: a thread)
        self._thread = threading.Thread(target=self._run, name="priorfx-motion", daemon=True)
        self._thread.start()

    def submit(self, small: np.ndarray, index: int, est_gray: np.ndarray | None = None) -> None:
        """Hand over frame `index` (small grey; `est_gray` for the readout tracker, if sampled).

        `index` is the camera's frame number counted from 1 (`FrameClock`): frames
        dropped before the session are gaps, like those skipped here, so the motion
        is per frame period and is carried forward by the real time since."""
        with self._cv:
            if self._job is not None:
                self.skipped += 1
                self._gray_queue.append(self._job[2:])
            self._job = (small, index, est_gray, index - 1)
            self.tracked += 1
            self._cv.notify()

    def _start(self):
        """The stepper: a motion process, or (none can start) the state in this thread."""
        try:
            self._child = motion_process.acquire(_MotionState, self._state_args, self.nice)
            return self._child.step
        except (OSError, RuntimeError, ValueError) as exc:   # e.g. no process may be started here
            self.start_error = f"{type(exc).__name__}: {exc}"
            return self._in_this_thread()

    def _in_this_thread(self):
        """The stepper run by this thread itself, at the motion's lower priority."""
        self._child = None
        lower_thread_priority(self.nice)
        return _MotionState(*self._state_args).step

    def _run(self) -> None:
        step = self._start()
        try:
            self._loop(step)
        finally:
            # between steps (no answer pending): the child can serve the next session
            child, self._child = self._child, None
            if child is not None:
                motion_process.release(child)

    def _loop(self, step) -> None:
        while True:
            with self._cv:
                while self._job is None and not self._closed:
                    self._cv.wait()
                if self._closed:
                    return
                small, index, est_gray, track_i = self._job
                self._job = None
                queued, self._gray_queue = self._gray_queue, []
                self._in_step = True
            tracked = queued + [(est_gray, track_i)] if self.tracker is not None else []
            job = (small, index, self._readout(), tracked)
            try:
                index, disp, dom, tracker_state = step(job)
            except (EOFError, OSError):   # the motion process died: go on in this thread
                step = self._in_this_thread()
                index, disp, dom, tracker_state = step(job)
            with self._cv:
                self._in_step = False   # from here on this thread may run OpenCV (maps): close waits
            if tracker_state is not None and self.tracker is not None:
                self.tracker.adopt(tracker_state)
            maps = self._maps(index, disp)
            with self._cv:
                self._done = (self._done + [(index, disp, dom)])[-2:]
                self._maps_out = maps
                self.processed += 1
                self._cv.notify_all()

    def _maps(self, index: int, disp: np.ndarray | None) -> tuple | None:
        """Full-size maps of frame `index`: the frame's own path is then just its remaps
        (only when the frame path waits for them: `wait_s` > 0)."""
        if self._specs is None or disp is None or self.wait_s <= 0:
            return None
        warper = rs.WarpMaps()   # fresh buffers: the frame path may still read the last ones
        return index, {(tuple(size), sub): warper.map_for(disp, size, sub) for size, sub in self._specs}

    def maps_for(self, index: int) -> dict | None:
        """Maps built for frame `index` itself, if out."""
        with self._cv:
            maps = self._maps_out
        return maps[1] if maps is not None and maps[0] == index else None

    def motion_for(self, index: int, wait_s: float, global_velocity=None):
        """What frame `index` is warped with: its own maps if they come within `wait_s`,
        else the freshest displacement carried forward (None: no motion yet).
        `global_velocity()`, if given, measures the camera's velocity now (cheaply)."""
        self.wait_s = wait_s
        if self.processed < 2 and index >= 2 and self._startup_left > 0:
            # Starting: no motion to carry forward yet, so frames wait for their own, at
            # most STARTUP_WAIT_S in all per stream (not per frame: while the motion
            # process starts, a wait per frame would hold the frame path back for seconds).
            t0 = time.monotonic()
            self.wait_for(index, self._startup_left)
            self._startup_left -= time.monotonic() - t0
        elif wait_s > 0:
            self.wait_for(index, wait_s)
        maps = self.maps_for(index)
        if maps is not None:
            self.current += 1
            return maps
        self.stale += 1
        return self.latest(index, global_velocity)

    def wait_for(self, index: int, timeout: float) -> bool:
        """Block until frame `index`'s motion is out (tests and benchmarks), or the timeout."""
        with self._cv:
            return self._cv.wait_for(lambda: bool(self._done) and self._done[-1][0] >= index, timeout)

    def latest(self, index: int, global_velocity=None) -> np.ndarray | None:
        """Displacement for frame `index`: the freshest, carried forward to it.

        With `global_velocity` (a callable measuring the camera's velocity at
        this frame, e.g. by phase correlation of the small frames), the stale
        field is updated by the change of the camera's velocity since it was
        measured: displacement is velocity times the row's time offset, so the
        change adds ``dv * tau(y)`` row by row. Camera shake reverses within a
        couple of frames, which a linear extrapolation of the field misses.
        Without it, the field is extrapolated linearly from the last two.
        """
        with self._cv:
            done = list(self._done)
        if not done or done[-1][1] is None:
            return None
        j, d, dom = done[-1]
        if index <= j:
            return d
        if global_velocity is not None and dom is not None:
            v_now = global_velocity()
            if v_now is not None:
                tau = self._row_times(d.shape[:2])
                dv = (np.asarray(v_now, np.float32) - dom[:2].astype(np.float32)) * self.corr.params.strength
                return d + tau * dv
        if len(done) == 2 and done[0][1] is not None:
            i, d0, _ = done[0]
            if d0.shape == d.shape:
                step = min(index - j, self.MAX_EXTRAPOLATE) / max(1, j - i)
                return d + (d - d0) * np.float32(step)
        return d

    def _row_times(self, shape: tuple[int, int]) -> np.ndarray:
        """tau(y) of the small field's rows (rows x 1 x 1), kept while the readout stays."""
        key = (shape, self._readout())
        cached = getattr(self, "_tau", None)
        if cached is None or cached[0] != key:
            a, b, _ = self.corr.coefficients(key[1])
            _, py = grid_positions((shape[1], shape[0]), self.corr.full)
            cached = self._tau = (key, (a + b * py[:, :1]).astype(np.float32)[..., None])
        return cached[1]

    def close(self, timeout: float = 5.0, wait_child: bool = True) -> None:
        """Stop the motion thread and wait for it: a thread still inside OpenCV when the
        interpreter exits is ended by pthread_exit, whose unwinding through OpenCV's C++
        frames aborts the process (the worker dumped core on exit); and a session
        restarted (new settings) then finds the child handed back, started and warm.
        With `wait_child` False, a thread only waiting for the child's answer is not
        waited for (seconds on a starved CPU, and a worker asked to exit has 2): it hands
        the child back when the answer comes, and ends."""
        with self._cv:
            self._closed = True
            self._cv.notify_all()
            waiting_for_child = self._child is not None and self._in_step
        if self._thread is not threading.current_thread() and (wait_child or not waiting_for_child):
            self._thread.join(timeout)


def prestart_background_motion(nice: int = 0) -> None:
    """Start a motion process for the next live session now (an interpreter start, about
    a second), so that its first frames need not wait for it (`BackgroundMotion`)."""
    motion_process.prestart(_MotionState, nice)


def lower_thread_priority(increment: int) -> None:
    """Lower the calling thread's CPU priority by `increment` (Linux, where nice is per
    thread; threads it starts inherit it); elsewhere the thread keeps its process's."""
    if increment <= 0 or not sys.platform.startswith("linux"):
        return
    try:
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + increment))
    except OSError:
        pass


class ShutterSession:
    """Live rolling-shutter correction of one stream.

    Parameters
    ----------
    params : ShutterParams
        With ``readout=None`` the readout is estimated on the fly (the default
        0.6 is used until the stream has shown enough changing motion;
        `readout` tells the current value).

    Examples
    --------
    >>> session = ShutterSession(ShutterParams(readout=0.8))
    >>> for frame in frames:                      # doctest: +SKIP
    ...     out = session.push(frame)             # None only with lookahead, first frame
    ...     if out is not None:
    ...         show(out)
    >>> for out in session.flush(): show(out)     # doctest: +SKIP
    """

    def __init__(self, params: ShutterParams | None = None, background_motion: bool = False):
        self.params = params or ShutterParams()
        # Live filters: motion on its own thread, every frame warped with the freshest
        # (`BackgroundMotion`); not with lookahead, which waits for the next frame anyway.
        self.background_motion = bool(background_motion) and not self.params.lookahead
        self.motion_wait_s = MOTION_WAIT_S
        # Background motion: how much lower the motion thread's CPU priority is than the
        # frame path's (Linux), so on a busy CPU the warps come first and motion is
        # estimated at whatever rate is left.
        self.motion_nice = 0
        # Auto readout: a calibrated (g, low, high) to start from; the stream's own
        # estimate replaces it once its interval is as narrow (see readout_status).
        self.readout_prior: tuple[float, float, float] | None = None
        self._bg: BackgroundMotion | None = None
        self._corr: FrameCorrector | None = None
        self._fmt: str | None = None
        self._prev_small: np.ndarray | None = None
        self._pending: tuple | None = None   # lookahead: (frame or planes, small, prev_small)
        self._tracker: _ReadoutTracker | None = None
        self._clock = FrameClock()
        self._gap = 1             # camera frames between the last two frames pushed
        self.frames_in = 0

    # ------------------------------------------------------------------ state
    @property
    def readout(self) -> float:
        """Readout in use: the given one, or the running estimate."""
        if self.params.readout is not None:
            return self.params.readout
        return self._tracker.value if self._tracker else DEFAULT_READOUT

    @property
    def readout_estimated(self) -> bool:
        return self.params.readout is None

    def readout_status(self) -> dict:
        """The readout in use, its 95 % interval, where it came from ('given',
        'default', 'calibrated', 'estimated') and the frame pairs behind the estimate."""
        if self.params.readout is not None:
            g = self.params.readout
            return {"readout": g, "low": g, "high": g, "source": "given", "pairs": 0}
        t = self._tracker
        if t is None:
            g, low, high = self.readout_prior or (DEFAULT_READOUT,) * 3
            return {"readout": g, "low": low, "high": high,
                    "source": "calibrated" if self.readout_prior else "default", "pairs": 0}
        return {"readout": t.value, "low": t.low, "high": t.high, "source": t.source, "pairs": t.pairs}

    def close(self, wait: bool = True) -> None:
        """Drop the stream's state (held frame, motion history). Safe to call twice.
        `wait` False: do not wait for a motion step in flight (a process about to exit)."""
        if self._bg is not None:
            self._bg.close(wait_child=wait)
            self._bg = None
        self._corr = None
        self._pending = None
        self._prev_small = None
        self._float_small = None
        self._tracker = None
        self._clock, self._gap = FrameClock(), 1

    def __enter__(self) -> "ShutterSession":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _bind(self, width: int, height: int, fmt: str) -> FrameCorrector:
        if self._corr is None:
            self._corr = FrameCorrector(self.params, width, height)
            self._fmt = fmt
            if self.params.readout is None:
                self._tracker = _ReadoutTracker(self._corr, prior=self.readout_prior)
            if self.background_motion and fmt != "rgb" and self.params.mode == "rs":
                self._bg = BackgroundMotion(self._corr, lambda: self.readout, fmt, nice=self.motion_nice,
                                            tracker=self._tracker, prior=self.readout_prior)
        elif self._corr.full != (width, height):
            ow, oh = self._corr.full
            raise InputError(f"frame size changed from {ow}x{oh} to {width}x{height} mid-stream",
                             "start a new session for the new size (the motion history is per size)")
        elif self._fmt != fmt:
            raise InputError(f"pixel format changed from {self._fmt.upper()} to {fmt.upper()} mid-stream",
                             "start a new session for the new format")
        return self._corr

    def _motion(self, corr: FrameCorrector, small: np.ndarray, prev: np.ndarray | None,
                nxt: np.ndarray | None, gap: int = 1, gap_next: int = 1) -> np.ndarray | None:
        return corr.displacement(small, prev, nxt, self.readout, gap, gap_next)

    def _count_frame(self, timestamp_ns: int | None) -> int:
        """Number the frame by the camera (`FrameClock`); remembers the gap to the last."""
        before = self._clock.number
        number = self._clock.advance(timestamp_ns)
        self._gap = number - before if before >= 0 else 1
        self.frames_in += 1
        return number

    def _global_velocity(self, prev: np.ndarray | None, cur: np.ndarray, gap: int = 1) -> np.ndarray | None:
        """The camera's velocity at `cur` (full-resolution px per frame) from a phase
        correlation of the small grey frames (about a millisecond): the flow since `prev`
        (`gap` frames before) per frame, carried half the gap forward by its change since
        the last call."""
        if prev is None or prev.shape != cur.shape:
            return None
        if getattr(self, "_hann", None) is None or self._hann.shape != cur.shape:
            self._hann = cv2.createHanningWindow(cur.shape[::-1], cv2.CV_32F)
        # Each small frame is converted once: this frame's float copy is the next one's `prev`.
        cached = getattr(self, "_float_small", None)
        prev_f = cached[1] if cached is not None and cached[0] is prev else prev.astype(np.float32)
        cur_f = cur.astype(np.float32)
        self._float_small = (cur, cur_f)
        (dx, dy), response = cv2.phaseCorrelate(prev_f, cur_f, self._hann)
        if response < 0.05:
            return None   # no clear global motion (a cut, a busy foreground): keep the stale field
        flow = np.array([dx, dy], np.float32) * (self._corr.flow.scale / gap)
        before, self._global_before = getattr(self, "_global_before", None), (flow, gap)
        if before is None:
            return flow
        # the two measures are mid-interval: (gap + gap before) / 2 frames apart
        return flow + (flow - before[0]) * np.float32(gap / (gap + before[1]))

    # ------------------------------------------------------------------ RGB frames
    def push(self, frame: np.ndarray, timestamp_ns: int | None = None) -> np.ndarray | None:
        """Correct one RGB frame (float32 [0, 1] or uint8, H x W x 3/4); same type back.

        `timestamp_ns`: the camera's timestamp of the frame (ns, any origin): frames
        dropped before this call then count as gaps, so motion and readout stay per
        frame period. None or 0: each frame follows the last.

        Returns the corrected frame, or None for the first frame with lookahead
        (each later call returns the previous frame).
        """
        frame = check_frame(frame)
        # A live frame with NaN/Inf would poison the motion estimate of every later
        # frame (min/max: two passes, no temporary array; uint8 frames skip it).
        if frame.dtype == np.float32 and not (np.isfinite(frame.min()) and np.isfinite(frame.max())):
            raise InputError("frame contains NaN or infinite values",
                             "replace them (e.g. numpy.nan_to_num) before pushing the frame")
        h, w = frame.shape[:2]
        corr = self._bind(w, h, "rgb")
        small = corr.gray(frame)
        number = self._count_frame(timestamp_ns)
        if self._tracker is not None:
            self._tracker.add(frame, number)
        apply = lambda f, d: corr.correct_rgb(f, d, self.readout)  # noqa: E731
        return self._step(frame, small, apply, apply, copy=True)

    def _step(self, item, small, apply, flush_apply, copy: bool):
        """Zero latency: correct `item` now. Lookahead: correct the held frame with
        `apply` (this call's output target) and hold `item` until the next one."""
        corr = self._corr
        prev, gap = self._prev_small, self._gap
        self._prev_small = small
        if self._bg is not None:   # submitted by the caller (with the readout sample)
            return apply(item, self._bg.motion_for(self._clock.number + 1, self.motion_wait_s,
                                                   lambda: self._global_velocity(prev, small, gap)))
        if not self.params.lookahead:
            return apply(item, self._motion(corr, small, prev, None, gap))
        pending = self._pending
        self._pending = (item.copy() if copy else item, small, prev, flush_apply, gap)
        if pending is None:
            return None
        p_item, p_small, p_prev, _, p_gap = pending
        return apply(p_item, self._motion(corr, p_small, p_prev, small, p_gap, gap))

    def flush(self) -> list:
        """Frames still held back (lookahead: the last one, corrected from its past only)."""
        if self._pending is None:
            return []
        p_item, p_small, p_prev, p_apply, p_gap = self._pending
        self._pending = None
        return [p_apply(p_item, self._corr.displacement(p_small, p_prev, None, self.readout, p_gap))]

    # ------------------------------------------------------------------ camera buffers
    def push_buffer(self, buf, fmt: str, width: int, height: int,
                    strides: Sequence[int] | int | None = None, out=None,
                    timestamp_ns: int | None = None):
        """Correct one camera frame in its own pixel format.

        Parameters
        ----------
        buf : bytes-like, or sequence of per-plane buffers / uint8 arrays
            As `priorfx.io.camera.to_rgb` reads it; read without copying.
        fmt : {'NV12', 'I420', 'I422', 'YUY2', 'BGRA', 'RGBA'}
        width, height : int
        strides : int or sequence of int, optional
            Bytes per row of each plane (linesize); default tight.
        out : writable buffer, optional
            Laid out like `buf` (same strides): the result is written into it and
            its plane views are returned. Default: new tightly packed planes.
        timestamp_ns : int, optional
            The camera's timestamp (as `push`): dropped frames count as gaps.

        Returns
        -------
        tuple of np.ndarray or None
            The planes (NV12: Y, UV; I420/I422: Y, U, V; packed formats: one),
            2-D uint8 (rows, bytes per row). None for the first frame with lookahead.

        Notes
        -----
        RS mode warps the planes directly (luma at full size, chroma at its own
        size), never converting to RGB. RSGR mode changes brightness per row and
        deblurs, so it goes through RGB (`to_rgb` / `from_rgb`).
        """
        from priorfx.io import camera

        key = camera.normalise_format(fmt)
        planes = camera.planes(buf, key, int(width), int(height), strides)
        corr = self._bind(int(width), int(height), key)
        number = self._count_frame(timestamp_ns)
        if self.params.mode == "rsgr":
            rgb = camera.to_rgb(planes, key, width, height)
            if self._tracker is not None:
                self._tracker.add(rgb, number)
            to_fmt = lambda f, d: camera.from_rgb(corr.correct_rgb(f, d, self.readout), key)  # noqa: E731
            res = self._step(rgb, corr.gray(rgb), to_fmt, to_fmt, copy=False)
            if res is None or out is None:
                return res
            dst = camera.planes(out, key, int(width), int(height), strides)
            for s, d in zip(res, dst):
                np.copyto(d, s)
            return tuple(dst)
        if key in ("bgra", "rgba"):
            small = corr.gray(planes[0].reshape(height, width, 4))
        elif key == "yuy2":
            luma = np.ascontiguousarray(planes[0].reshape(height, width, 2)[..., 0])
            small = cv2.resize(luma, corr.small, interpolation=cv2.INTER_AREA)
        else:
            small = cv2.resize(planes[0], corr.small, interpolation=cv2.INTER_AREA)

        est_gray = None
        if self._tracker is not None:
            luma_full = (planes[0].reshape(height, width, 4) if key in ("bgra", "rgba")
                         else luma if key == "yuy2" else planes[0])
            if self._bg is None:
                self._tracker.add(luma_full, number)
            elif self._tracker.samples(number):
                est_gray = self._corr.estimation_gray(luma_full)
        if self._bg is not None:
            self._bg.submit(small, number + 1, est_gray)

        def apply(pl, disp):
            dst = None if out is None else camera.planes(out, key, int(width), int(height), strides)
            return tuple(corr.correct_planes(pl, key, disp, dst))

        def flush_apply(pl, disp):
            return tuple(corr.correct_planes(pl, key, disp, None))

        # Lookahead keeps the frame until the next arrives; the caller may reuse
        # its buffer (a shared-memory slot), so that one frame is copied.
        item = [np.array(p) for p in planes] if self.params.lookahead else planes
        return self._step(item, small, apply, flush_apply, copy=False)
