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
import sys
import threading
from collections import deque
from typing import Callable, Protocol

import numpy as np

from priorfx.errors import InputError
from priorfx.streaming import shm


class Session(Protocol):
    """priorfx.shutter.ShutterSession's buffer call: result written into `out`."""

    def push_buffer(self, buf: np.ndarray, fmt: str, width: int, height: int,
                    strides, out=None): ...


class StdinWaker:
    """Wakes the loop on each byte the host writes; notices when stdin closes.

    A thread does the blocking read, so this works with pipes on every
    platform (select() does not on Windows).
    """

    def __init__(self, fd: int | None = None):
        # The raw fd, not sys.stdin.buffer: a daemon thread blocked inside a
        # buffered reader aborts the interpreter at exit.
        self._fd = sys.stdin.fileno() if fd is None else fd
        self._event = threading.Event()
        self.closed = False
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
        self._event.wait(timeout)
        self._event.clear()


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
        return session
    return make


def shutter_params(p: shm.Params):
    """The core's ShutterParams for the filter's settings."""
    from priorfx.shutter import ShutterParams
    return ShutterParams(readout=None if p.auto_readout else min(1.0, max(0.01, float(p.readout))),
                         mode=p.mode, strength=min(1.0, max(0.0, float(p.strength))),
                         lookahead=bool(p.lookahead))


def yield_to_host(threads: int | None = None) -> None:
    """Run below the host: lower priority, and leave a core free for its video thread.

    OBS's video thread must never wait for us; on a small machine the worker
    would otherwise compete with it (and with OBS's renderer) for every core.
    """
    try:
        if os.name == "nt":
            import ctypes
            k32 = ctypes.windll.kernel32
            k32.SetPriorityClass(k32.GetCurrentProcess(), 0x4000)   # BELOW_NORMAL_PRIORITY_CLASS
        else:
            os.nice(10)
    except (OSError, AttributeError):
        pass
    import cv2
    cv2.setNumThreads(threads if threads else max(1, (os.cpu_count() or 2) - 1))


def serve(channel: shm.Channel, make_session: Callable[[shm.Params], Session],
          waker: StdinWaker, parent_pid: int | None = None, log=None) -> int:
    """Process frames until the host goes away. Returns the exit code."""
    log = log or (lambda msg: print(f"priorfx worker: {msg}", file=sys.stderr, flush=True))
    channel.set_state(shm.STARTING, pid=os.getpid())
    params_seq, params = channel.params()
    session = make_session(params)
    channel.set_state(shm.READY)
    log(f"ready on {channel.path} (pid {os.getpid()})")
    key = None
    last_seq = 0
    out_index = 0
    bad_key = None
    pending: deque = deque()   # (seq, timestamp) of frames pushed whose result is not out yet
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
            result = session.push_buffer(buf, h.fmt, h.width, h.height, list(h.linesizes), out=dst)
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
    channel.set_state(shm.EXITED)
    return 0


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
