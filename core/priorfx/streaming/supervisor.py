"""Keeps one `priorfx worker` process alive for a live host filter (OBS).

Standard library only, because `priorfx install obs` copies this file beside
the OBS script as `priorfx_supervisor.py` (as it does `shm.py`): OBS's Python
has no numpy and cannot import priorfx. Nothing here knows OBS; the script
keeps only host work (registration, properties, moving pixels on OBS's video
thread) and hands the supervisor:

- the `shm` protocol module (this package's shm.py, or its copy);
- the command that starts the core and its environment (the host kit's
  find_core / child_env);
- callables for the current worker parameters and extra worker arguments.

A manager thread starts the worker with a fresh slot file, waits for it to
become ready, watches its heartbeat, kills it when it does not become ready or
hangs, and restarts it with a growing back-off after crashes. While there is
no live worker, `live` is False and the host passes frames through unchanged.
The host's video thread takes `lock` (with a short timeout, never blocking) to
use `channel` and `live`; the manager takes it only to swap them.

The worker's output goes to a log in a per-user 0700 folder (shm.private_dir),
created anew without following links (shm.open_private) and removed when the
worker is stopped for good.
"""
from __future__ import annotations

import os
import threading
import time
from typing import Callable, List, Optional

READY_TIMEOUT_S = 120.0    # a worker that has not become ready by then is killed
HANG_TIMEOUT_S = 10.0      # a ready worker whose heartbeat stops this long is killed
BACKOFF_S = (0.5, 30.0)    # restart delay after a crash: first, largest (doubles between)
FORGIVE_AFTER_S = 30.0     # a worker that ran fine this long resets the back-off
MIN_CAPACITY = 1280 * 720 * 4
CREATE_NO_WINDOW = 0x08000000


class WorkerSupervisor:
    """One worker process and its shared-memory channel, kept alive by a manager thread."""

    def __init__(self, shm, command: List[str], env: dict, name: str,
                 params: Callable[[], object], worker_args: Callable[[], List[str]],
                 log: Callable[[str], None] = print, on_start: Optional[Callable[[], None]] = None,
                 on_calibration: Optional[Callable[[dict], None]] = None,
                 on_readout: Optional[Callable[[dict], None]] = None):
        self.shm = shm
        self.command = list(command)
        self.env = dict(env)
        self.name = name
        self._params = params
        self._worker_args = worker_args
        self._log = log
        self._on_start = on_start
        self._on_calibration = on_calibration
        self._on_readout = on_readout      # the worker's readout in use changed (see _poll_readout)
        self._readout_seq = 0
        self.calibration = {"state": "idle"}   # the last calibration status (see calibrate())
        self._calib_wanted = None              # seconds asked for, until a worker took the request
        self._calib_seq = 0
        self.lock = threading.Lock()      # guards channel/live against the host's video thread
        self.channel = None
        self.proc = None
        self.live = False
        self.want_capacity = 0
        self.params_dirty = True
        self.published = None
        self.restart_requested = False
        self.started_at = 0.0
        self.restart_at = 0.0
        self.backoff = BACKOFF_S[0]
        self.last_beat = (0, 0.0)
        self.log_path = ""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._manage, name="priorfx-" + name, daemon=True)
        self._thread.start()

    # -- called by the host -------------------------------------------------
    def publish_params(self) -> None:
        """Send the current parameters now (the host's settings changed)."""
        self.params_dirty = True
        with self.lock:
            ch, params = self.channel, self._params()
            if ch is not None and params != self.published:
                ch.set_params(params)
                self.published = params

    def calibrate(self, seconds: float) -> None:
        """Measure the camera's readout from the next `seconds` of video (never blocks).

        The manager thread passes the request to the worker (or to the next one,
        if none is running) and calls `on_calibration(status)` as it progresses:
        status["state"] is 'running' (with 'progress' 0..1), then 'done' (with
        'readout', 'low', 'high', 'informative'), 'failed' or 'cancelled'.
        """
        if not self.command:   # no core to run it (the host has said why)
            self._calibration_changed({"state": "failed", "error": "priorfx was not found; see the log"})
            return
        self._calib_wanted = float(seconds)
        self._calibration_changed({"state": "running", "progress": 0.0})

    def cancel_calibration(self) -> None:
        self._calib_wanted = None
        with self.lock:
            ch = self.channel
            if ch is not None and self._calib_seq:
                ch.cancel_calibration()
        if self.calibration.get("state") == "running":
            self._calibration_changed({"state": "cancelled"})

    def _calibration_changed(self, status: dict) -> None:
        if status == self.calibration:
            return
        self.calibration = status
        if self._on_calibration is not None:
            self._on_calibration(dict(status))

    def _poll_calibration(self, ch) -> None:
        if self._calib_wanted is not None:
            self._calib_seq = ch.request_calibration(self._calib_wanted)
            self._calib_wanted = None
        if not self._calib_seq or self.calibration.get("state") != "running":
            return
        status = ch.calibration()
        if status.pop("seq") == self._calib_seq:
            if status["state"] != "done":
                status = {k: status[k] for k in ("state", "progress")}
            self._calibration_changed(status)

    def _poll_readout(self, ch) -> None:
        """Pass on the readout the worker uses now (value, interval, source), when it changed."""
        status = ch.readout_in_use()
        seq = status.pop("seq")
        if seq == self._readout_seq or status["source"] == "none":
            return
        self._readout_seq = seq
        if self._on_readout is not None:
            self._on_readout(status)

    def request_restart(self) -> None:
        """Start a new worker (the engine or its arguments changed)."""
        self.restart_requested = True

    def wake(self) -> None:
        """One byte on the worker's stdin: a new frame is waiting. Never blocks."""
        try:
            os.write(self.proc.stdin.fileno(), b"\x01")
        except (BlockingIOError, BrokenPipeError, OSError, AttributeError, ValueError):
            pass   # a full pipe means the worker is already awake; a broken one, that it is gone

    def is_alive(self) -> bool:
        return self._thread.is_alive()

    def shutdown(self, wait: bool = True, timeout: float = 5.0) -> None:
        """Stop the worker and free the slot file.

        Without `wait` it returns at once (a host may destroy a filter on its
        video thread, which must not block); the manager thread then cleans up
        by itself.
        """
        self._stop.set()
        if wait:
            self._thread.join(timeout)
            self._stop_worker()

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)

    # -- the manager thread -------------------------------------------------
    def _manage(self) -> None:
        while not self._stop.wait(0.05):
            try:
                self._manage_once()
            except Exception as exc:   # never let the manager die silently
                self._log("{}: manager error: {}: {}".format(self.name, type(exc).__name__, exc))
                self._stop_worker()
                self.restart_at = time.monotonic() + self.backoff
        self._stop_worker()
        self._remove_log()

    def _manage_once(self) -> None:
        shm = self.shm
        now = time.monotonic()
        proc, ch = self.proc, self.channel
        if proc is not None and proc.poll() is not None:
            error = ch.error if ch is not None else ""
            self._log("{}: worker exited with code {}{}; passing frames through, restart in {:.1f} s{}".format(
                self.name, proc.returncode, ": " + error if error else "", self.backoff, self._log_tail()))
            failed = ch is not None and ch.state == shm.FAILED
            self._stop_worker()
            self.restart_at = now + (BACKOFF_S[1] if failed and error else self.backoff)
            self.backoff = min(self.backoff * 2, BACKOFF_S[1])
            return
        if proc is None:
            if now >= self.restart_at:
                self._start_worker()
            return
        if self.restart_requested or self.want_capacity > ch.capacity:
            self._log("{}: restarting the worker ({})".format(
                self.name, "new engine" if self.restart_requested else "bigger frames"))
            self.restart_requested = False
            self._stop_worker()
            self._start_worker()
            return
        if self.params_dirty:
            self.params_dirty = False
            params = self._params()
            if params != self.published:   # a new seq restarts the worker's session
                ch.set_params(params)
                self.published = params
        state = ch.state
        if state == shm.READY:
            self._poll_calibration(ch)
            self._poll_readout(ch)
        if state == shm.READY and not self.live:
            if os.name != "nt":
                ch.unlink()   # both sides have it mapped: nothing can leak from now on
            self.live = True
            self.last_beat = (ch.heartbeat, now)
            self._log("{}: worker ready (pid {})".format(self.name, proc.pid))
        elif state == shm.STARTING and now - self.started_at > READY_TIMEOUT_S:
            self._log("{}: worker not ready after {:.0f} s; killing it".format(self.name, READY_TIMEOUT_S))
            proc.kill()
        elif self.live:
            beat = ch.heartbeat
            if beat != self.last_beat[0]:
                self.last_beat = (beat, now)
                if now - self.started_at > FORGIVE_AFTER_S:
                    self.backoff = BACKOFF_S[0]   # ran fine for a while: forgive old crashes
            elif now - self.last_beat[1] > HANG_TIMEOUT_S:
                self._log("{}: worker hung (no heartbeat for {:.0f} s); killing it".format(
                    self.name, HANG_TIMEOUT_S))
                proc.kill()

    def _start_worker(self) -> None:
        import subprocess

        if not self.command:   # no core to start (the host has said why): never retry
            self.restart_at = float("inf")
            return
        shm = self.shm
        ch = shm.Channel.create(max(self.want_capacity, MIN_CAPACITY))
        self.published = self._params()
        ch.set_params(self.published)
        self.params_dirty = False
        cmd = self.command + ["worker", "shutter", "--shm", ch.path, "--parent", str(os.getpid())]
        cmd += self._worker_args()
        log = self._open_log()
        kw = {"creationflags": CREATE_NO_WINDOW} if os.name == "nt" else {}
        try:
            proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=log, stderr=log, env=self.env, **kw)
        except OSError as exc:
            ch.close()
            self._log("{}: cannot start the worker ({}): {}".format(self.name, " ".join(cmd), exc))
            self.restart_at = time.monotonic() + BACKOFF_S[1]
            return
        finally:
            if log is not subprocess.DEVNULL:
                os.close(log)
        if os.name != "nt":
            os.set_blocking(proc.stdin.fileno(), False)
        with self.lock:
            self.channel, self.proc, self.live = ch, proc, False
        self._readout_seq = 0
        self.started_at = time.monotonic()
        if self._on_start is not None:
            self._on_start()
        self._log("{}: started worker pid {}: {}".format(self.name, proc.pid, " ".join(cmd)))

    def _stop_worker(self) -> None:
        import subprocess

        with self.lock:   # after this, the video thread no longer touches the mapping
            proc, ch = self.proc, self.channel
            self.proc, self.channel, self.live = None, None, False
        if self._calib_seq and self.calibration.get("state") == "running":   # it went with the worker
            self._calib_seq = 0
            self._calibration_changed({"state": "failed", "error": "the worker stopped; calibrate again"})
        if proc is not None:
            running = proc.poll() is None   # (an exit seen before has been logged)
            try:
                proc.stdin.close()   # the worker exits when its stdin closes
            except OSError:
                pass
            try:
                code = proc.wait(2.0)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(2.0)
                code = "none (it did not exit within 2 s and was killed)"
            if running and code:   # asked to stop, it crashed or hung: say so with its log
                self._log("{}: worker stopped with exit code {}{}".format(self.name, code, self._log_tail()))
        if ch is not None:
            ch.close(unlink=True)

    # -- the worker's log ---------------------------------------------------
    def _open_log(self):
        import subprocess

        try:
            if not self.log_path:
                self.log_path = os.path.join(self.shm.private_dir(), "obs-worker-{}-{}.log".format(
                    os.getpid(), self.name.replace(" ", "-").replace(os.sep, "_")))
            return self.shm.open_private(self.log_path)
        except OSError as exc:
            self._log("{}: no worker log ({})".format(self.name, exc))
            self.log_path = ""
            return subprocess.DEVNULL

    def _log_tail(self, n: int = 6) -> str:
        if not self.log_path:
            return ""
        try:
            with open(self.log_path, "rb") as fh:
                lines = fh.read()[-4000:].decode("utf-8", "replace").strip().splitlines()[-n:]
        except OSError:
            return ""
        return ("\n  worker log: " + "\n  worker log: ".join(lines)) if lines else ""

    def _remove_log(self) -> None:
        if self.log_path:
            try:
                os.unlink(self.log_path)
            except OSError:
                pass
