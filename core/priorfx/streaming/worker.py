"""The long-lived worker behind the OBS filter (`priorfx worker shutter`).

It maps the slot file the OBS script made (priorfx.streaming.shm), runs the
core's streaming session on the newest input frame each time the host wakes it
(one byte on stdin), and writes the result to an output slot. It never makes
the host wait: when it is slower than the camera it skips to the newest frame.

It exits when stdin closes (OBS quit, crashed, or removed the filter) or when
its parent process is gone, so it cannot outlive OBS.
"""
from __future__ import annotations

import os
import select
import sys
import threading
import time
from collections import deque
from typing import Callable, Protocol

import numpy as np

from priorfx.errors import InputError
from priorfx.shutter import motion_process
from priorfx.shutter.session import FrameClock, lower_thread_priority, prestart_background_motion
from priorfx.streaming import shm


class Session(Protocol):
    """priorfx.shutter.ShutterSession's buffer call: result written into `out`."""

    def push_buffer(self, buf: np.ndarray, fmt: str, width: int, height: int,
                    strides, out=None, timestamp_ns: int | None = None): ...


class StdinWaker:
    """Wakes the loop on each byte the host writes; notices when stdin closes.

    On Unix the loop's own thread waits in select() and drains the pipe: each
    wake-up is one hop, and on a busy CPU every hop (a thread to schedule, the
    GIL to take back from the motion thread) delays the frame. select() does not
    take pipes on Windows, so there a thread does the blocking read and sets an event.
    """

    def __init__(self, fd: int | None = None):
        # The raw fd, not sys.stdin.buffer: a daemon thread blocked inside a
        # buffered reader aborts the interpreter at exit.
        self._fd = sys.stdin.fileno() if fd is None else fd
        self.closed = False
        self._event = None
        if os.name == "nt":
            self._event = threading.Event()
            threading.Thread(target=self._read, name="priorfx-waker", daemon=True).start()

    def _read(self) -> None:
        try:
            while os.read(self._fd, 4096):
                self._event.set()
        except OSError:
            pass
        self.closed = True
        self._event.set()

    def wait(self, timeout: float) -> None:
        if self._event is not None:
            self._event.wait(timeout)
            self._event.clear()
            return
        try:
            ready, _, _ = select.select([self._fd], [], [], timeout)
            if ready and not os.read(self._fd, 4096):
                self.closed = True   # end of file: the host closed our stdin
        except OSError:
            self.closed = True


class CalibrationRunner:
    """The worker's side of the filter's Calibrate button.

    The host asks through the control block (`Channel.request_calibration`);
    the next frame starts a `priorfx.shutter.calibrate.Calibration` of its
    size, every frame after it is handed over (its luma), and the state,
    progress and result go back through the control block. All of it runs on
    a thread of its own, apart from the correction's loop: on a busy CPU that
    loop skips frames, and the estimate needs consecutive ones. The
    estimate itself runs on the calibration's thread.
    """

    POLL_S = (0.01, 0.1)   # how often input slots are looked at: calibrating, idle

    def __init__(self, channel: shm.Channel, log, closed=lambda: False):
        self.channel, self.log = channel, log
        self._closed = closed
        self._thread = threading.Thread(target=self._loop, name="priorfx-calibration-intake", daemon=True)
        self.seq = 0                  # the request being (or last) handled
        self.seconds = 0.0
        self.run = None               # the Calibration, once a frame came
        self.waiting = False          # asked, no frame yet
        self.reported = None
        self.last_input = 0
        self.clock, self.last_ts = FrameClock(), None
        self.requested_at = 0.0
        self._stopped = False
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """End the intake thread and any calibration, and wait for both (they run
        OpenCV, which must not be running when the interpreter exits)."""
        self._stopped = True
        self._thread.join(timeout)
        run = self.run
        if run is not None:
            run.cancel()
            run.wait(timeout)

    def _loop(self) -> None:
        lower_thread_priority(background_nice)   # the Calibration's thread, started here, inherits it
        while not (self._closed() or self._stopped):
            try:
                self.poll(self.channel.params()[1])
                self.take_inputs()
            except Exception as exc:   # the correction goes on; the host hears of it
                self.log(f"calibration: {type(exc).__name__}: {exc}")
                if self.run is not None:
                    self.run.cancel()
                self.waiting = False
                if self.seq:
                    self.channel.set_calibration(self.seq, shm.CALIB_FAILED)
            time.sleep(self.POLL_S[0] if self.busy else self.POLL_S[1])

    @property
    def busy(self) -> bool:
        """Asked and waiting for a first frame, or measuring."""
        return self.waiting or (self.run is not None and self.run.state == shm.CALIB_RUNNING)

    def poll(self, params: shm.Params) -> None:
        """Take a new request or a cancel, and report the state."""
        req, seconds, cancelled = self.channel.calibration_request()
        if req and req != self.seq:
            if self.run is not None:
                self.run.cancel()
            self.seq, self.seconds, self.run, self.waiting = req, seconds, None, True
            self.clock, self.last_ts = FrameClock(), None
            # Only frames after the click: one left in a slot from before (another
            # calibration, a pause) would pair with the first new one as neighbours.
            self.last_input = self.channel.in_latest
            self.mode = params.mode
            self.requested_at = time.monotonic()
            self.log(f"calibration {req}: measuring the readout over up to {seconds:.0f} s of video")
        if cancelled and self.busy:
            if self.run is not None:
                self.run.cancel()
            self.waiting = False
            self.log(f"calibration {req}: cancelled")
        self._report()

    def take_inputs(self) -> None:
        """Hand every input frame that came since the last call to the calibration.

        The correction skips to the newest frame when it is behind; the estimate
        needs consecutive frames, so it reads every input slot not seen yet (the
        host keeps the last few), each checked against being rewritten meanwhile.
        """
        ch = self.channel
        if not self.waiting and (self.run is None or not self.run.wants_frames):
            return
        fresh = []
        for i in range(ch.n_in):
            h = ch.read_header("in", i)
            if h is not None and h.seq > self.last_input:
                fresh.append((h.seq, i, h))
        for seq, i, h in sorted(fresh):
            if self.waiting:
                from priorfx.shutter.calibrate import Calibration
                self.waiting = False
                self.run = Calibration(h.width, h.height, mode=self.mode, seconds=max(1.0, self.seconds),
                                       max_pairs=max(30, int(self.seconds * 30)))
            if (h.width, h.height) != self.run.full:
                continue
            view = np.frombuffer(ch.mm, np.uint8, h.size, ch.data_offset("in", i))
            small = self.run.shrink(luma(view, h))
            if ch.still_valid("in", i, seq):
                index = self.frame_number(h.timestamp)
                if index is not None:
                    self.run.add_small(index, small)

            self.last_input = seq

    def frame_number(self, timestamp_ns: int) -> int | None:
        """The camera's frame number from its timestamp (`FrameClock`, as the live
        session numbers them): the host may drop frames before the filter sees them
        (OBS shows the newest at each tick), and a pair two frames apart taken for
        neighbours would mislead the estimate. A repeated or reordered frame is None
        (it is no new instant)."""
        if self.last_ts is not None and timestamp_ns <= self.last_ts:
            return None
        self.last_ts = timestamp_ns
        return self.clock.advance(timestamp_ns)

    def _report(self) -> None:
        if not self.seq:
            return
        run = self.run
        if run is None:
            state = shm.CALIB_RUNNING if self.waiting else shm.CALIB_CANCELLED
            status = (state, 0.0, 0.0, 0.0, 0.0, False, 0)
        else:
            est = run.result if run.state == shm.CALIB_DONE else None
            status = (run.state, run.progress) + ((est.g, est.low, est.high, est.informative, est.pairs)
                                                  if est else (0.0, 0.0, 0.0, False, run.pairs))
        if status != self.reported:
            self.channel.set_calibration(self.seq, *status)
            if status[0] != shm.CALIB_RUNNING and (self.reported is None or self.reported[0] == shm.CALIB_RUNNING):
                self.log(f"calibration {self.seq}: {shm.CALIB_STATE_NAMES[status[0]]} after "
                         f"{time.monotonic() - self.requested_at:.1f} s"
                         + (f", readout {status[2]:.3f} ({status[3]:.3f}-{status[4]:.3f}), {status[6]} pairs"
                            if status[0] == shm.CALIB_DONE else f" {run.error}" if run is not None else ""))
            self.reported = status


def luma(buf: np.ndarray, h: shm.SlotHeader) -> np.ndarray:
    """The frame's brightness at full size, as a view where the format allows
    (planar YUV: the Y plane; YUY2: every other byte; BGRA/RGBA: the pixels)."""
    from priorfx.io import camera

    key = camera.normalise_format(h.fmt)
    planes = camera.planes(buf, key, h.width, h.height, list(h.linesizes))
    if key == "yuy2":
        return planes[0].reshape(h.height, h.width, 2)[..., 0]
    if key in ("bgra", "rgba"):
        return planes[0].reshape(h.height, h.width, 4)
    return planes[0]


def shutter_session_factory(remote: str | None = None, token: str | None = None,
                            threads: int | None = None) -> Callable[[shm.Params], Session]:
    """Sessions from the engine (local, or RemoteEngine when `remote` is set)."""
    from priorfx.config import load_settings
    from priorfx.engines import get_engine

    engine = get_engine(load_settings(remote=remote, token=token, threads=threads))

    def make(p: shm.Params) -> Session:
        session = engine.shutter_stream(shutter_params(p))
        # Local sessions estimate motion on their own thread: every frame is warped
        # (one remap) with the freshest motion instead of waiting for it.
        if hasattr(session, "background_motion"):
            session.background_motion = not session.params.lookahead
            session.motion_nice = max(MOTION_NICE, background_nice)
            if session.background_motion:
                prestart_background_motion(session.motion_nice)   # started before the first frame
        if hasattr(session, "readout_prior") and p.auto_readout and 0 < p.prior_low <= p.readout <= p.prior_high:
            session.readout_prior = (float(p.readout), float(p.prior_low), float(p.prior_high))
        return session
    return make


def shutter_params(p: shm.Params):
    """The core's ShutterParams for the filter's settings."""
    from priorfx.shutter import ShutterParams
    return ShutterParams(readout=None if p.auto_readout else min(1.0, max(0.01, float(p.readout))),
                         mode=p.mode, strength=min(1.0, max(0.0, float(p.strength))),
                         lookahead=bool(p.lookahead))


WORKER_NICE = 2
"""How far below the host the worker's work runs (Unix nice increment). Measured with
`priorfx bench obs --quick` on 2 loaded cores (OBS rendering in software), the whole
worker niced: at +10 it starved whenever anything else ran (corrected 0.27 / 0.40 / 0.02
of 720p / 1080p / 720p-under-load frames); at +1 1.0 / 0.81 / 0.84 with 33 frames OBS
lagged at 720p; at +4 0.94 / 0.18 / 0.34 with none. `--nice` changes it. On Linux
(nice is per thread) it applies to the calibration's threads only: the frame path
keeps the host's priority and the motion process runs MOTION_NICE below it."""

MOTION_NICE = 10
"""How far below the frame path the motion process runs (Unix; at least `--nice`; a
process since 2026-12-06, see `priorfx.shutter.motion_process`: as a thread it held the
GIL when descheduled, and the frame path waited. Real libobs, 720p30, two spinning
processes, 3 rounds each in the same minutes: corrected 0.927 / 0.941 / 0.988 as a thread,
1.000 / 1.000 / 1.000 as a process). The first measurement, as a thread:
Measured on 2 cores kept busy (two spinning processes at normal priority, load 7-12),
720p NV12 at 30 fps, the session alone: frame path and motion thread at +2, frames over
33 ms: 115 / 142 of 180; motion at +10: 104 / 148; frame path at 0 and motion at +10:
10 / 95 (the motion then ran on 27-31 of the 180 frames; every frame is still warped,
with the freshest motion updated by the camera's velocity now)."""

GIL_SWITCH_S = 0.0005
"""Python's thread switch interval in the worker (see yield_to_host)."""

background_nice = 0
"""Set by yield_to_host: how far the worker's background threads lower themselves (Linux)."""


def yield_to_host(threads: int | None = None, nice: int = WORKER_NICE) -> None:
    """Run below the host, and leave a core free for its video thread.

    OBS's video thread must never wait for us; on a small machine the worker
    would otherwise compete with it (and with OBS's renderer) for every core.
    On Linux, where priority is per thread, the frame path (a few remaps, due
    every frame) keeps the host's priority, so an encoder or any other busy
    process at normal priority cannot starve it, and the heavy work (motion,
    calibration) runs below it, at whatever rate the CPU leaves. Elsewhere the
    whole process runs `nice` below the host.
    """
    global background_nice
    try:
        if os.name == "nt":
            import ctypes
            k32 = ctypes.windll.kernel32
            if nice > 0:
                k32.SetPriorityClass(k32.GetCurrentProcess(), 0x4000)   # BELOW_NORMAL_PRIORITY_CLASS
        elif sys.platform.startswith("linux"):
            background_nice = nice
        else:
            os.nice(nice)
    except (OSError, AttributeError):
        pass
    import cv2
    cv2.setNumThreads(threads if threads else max(1, (os.cpu_count() or 2) - 1))
    # The frame path takes the GIL back after each OpenCV call; while the motion
    # thread runs Python code it waits up to the switch interval for it (5 ms by
    # default, several times per frame). Measured on 2 loaded cores, 720p NV12 at
    # 30 fps: frames over 33 ms 33 / 6 of 180 at 5 ms, 0 / 0 at 0.5 ms.
    sys.setswitchinterval(GIL_SWITCH_S)


def serve(channel: shm.Channel, make_session: Callable[[shm.Params], Session],
          waker: StdinWaker, parent_pid: int | None = None, log=None) -> int:
    """Process frames until the host goes away. Returns the exit code."""
    log = log or (lambda msg: print(f"priorfx worker: {msg}", file=sys.stderr, flush=True))
    channel.set_state(shm.STARTING, pid=os.getpid())
    params_seq, params = channel.params()
    session = make_session(params)
    motion_process.await_idle()   # a prestarted motion process: running before the first frame
    channel.set_state(shm.READY)
    log(f"ready on {channel.path} (pid {os.getpid()})")
    key = None
    last_seq = 0
    out_index = 0
    bad_key = None
    pending: deque = deque()   # (seq, timestamp) of frames pushed whose result is not out yet
    calibration = CalibrationRunner(channel, log, closed=lambda: waker.closed)
    reported = None
    while not waker.closed:
        waker.wait(0.25)
        channel.beat()
        if parent_pid and not _alive(parent_pid):
            log(f"host process {parent_pid} is gone; exiting")
            break
        newest = channel.newest("in")
        if newest is None or newest[1].seq <= last_seq:
            continue
        index, h = newest
        offset = channel.data_offset("in", index)
        # Copy out first: the host may reuse the slot while we compute.
        buf = np.frombuffer(channel.mm, np.uint8, h.size, offset).copy()
        if not channel.still_valid("in", index, h.seq):
            continue
        last_seq = h.seq
        seq_now, p = channel.params()
        frame_key = (h.fmt, h.width, h.height, h.linesizes)
        if seq_now != params_seq or frame_key != key:
            if key is not None:
                log(f"new {'settings' if frame_key == key else 'frame format'}: "
                    f"{h.fmt} {h.width}x{h.height}; restarting the session")
            if seq_now != params_seq or key is not None:
                if hasattr(session, "close"):
                    session.close()     # stops its motion thread
                session = make_session(p)
            params_seq, key = seq_now, frame_key
            pending.clear()
        pending.append((h.seq, h.timestamp))
        source_seq, ts = pending[0]
        # The session writes straight into the output slot (same strides as the input).
        dst_off = channel.begin_write("out", out_index, shm.SlotHeader(
            seq=source_seq, source_seq=source_seq, timestamp=ts, fmt=h.fmt, width=h.width,
            height=h.height, linesizes=h.linesizes, size=h.size))
        dst = np.frombuffer(channel.mm, np.uint8, h.size, dst_off)
        try:
            # the camera's timestamp: frames skipped here (behind the camera) are gaps in
            # the session's motion and readout estimates, not neighbours
            result = session.push_buffer(buf, h.fmt, h.width, h.height, list(h.linesizes), out=dst,
                                         timestamp_ns=h.timestamp)
        except InputError as err:
            # e.g. an odd frame size: this stream cannot be corrected; the host passes it through
            if bad_key != frame_key:
                log(f"cannot correct {h.fmt} {h.width}x{h.height} frames: {err}")
                bad_key = frame_key
            pending.clear()
            continue
        if result is None:
            continue   # a lookahead session holds one frame back
        pending.popleft()
        channel.end_write("out", out_index, source_seq)
        channel.publish_output(source_seq)
        out_index = (out_index + 1) % channel.n_out
        reported = _report_readout(channel, session, reported)
    # Every thread that runs OpenCV ends before the interpreter does (see
    # BackgroundMotion.close): the calibration's, and the session's motion thread.
    calibration.stop()
    if hasattr(session, "close"):
        session.close(wait=False)   # the host gives a worker asked to exit 2 s
    motion_process.close_idle(wait=False)   # the motion process kept for a next session: told to end
    channel.set_state(shm.EXITED)
    return 0


def _report_readout(channel: shm.Channel, session: Session, reported):
    """Tell the host the readout in use when it changed (a few times a minute at most)."""
    status_of = getattr(session, "readout_status", None)
    if status_of is None:
        return reported
    st = status_of()
    key = (round(st["readout"], 3), round(st["low"], 3), round(st["high"], 3), st["source"], st["pairs"] // 15)
    if key != reported:
        channel.set_readout_in_use(st["readout"], st["low"], st["high"], st["source"], st["pairs"])
    return key


def _alive(pid: int) -> bool:
    if os.name == "nt":
        return True   # stdin closing is the signal there
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
