"""A child process that runs one stepper object: the live session's motion estimation.

Why a process and not a thread: the motion runs below the frame path's CPU priority, so
that on a busy CPU the warps come first and the motion takes what is left. A
lower-priority *thread* shares the frame path's GIL, and the OS deschedules it at any
point, also while it holds the GIL (its Python between OpenCV calls): the frame path
then waits until the low thread runs again. Measured on 2 cores with two spinning
processes (30 fps, 4 remaps per frame in the nice-0 thread): a nice-10 thread running
Python put 15-20 % of the frames over 66 ms (the longest 150-300 ms); the same thread in
OpenCV calls (no GIL held), or at nice 0, put none. A process has its own interpreter,
so the frame path never waits for it.

The child is a `python` running `main` with pickled messages on its stdin and
answers on its stdout (not multiprocessing's spawn, which re-runs the parent's
main script in the child: a host's or a ``python -`` main breaks it). `acquire` hands
out an idle child (the worker restarts its session on every settings change: a child
is reused, so a slider drag costs no interpreter start) or starts one; `release`
returns it. A child exits when its stdin closes: when the parent asks, exits or dies.
"""
from __future__ import annotations

import os
import pickle
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any, Callable

CHILD_COMMAND = "from priorfx.shutter import motion_process; motion_process.main()"
"""What the child runs (`python -c`): not `-m`, which would load this module a second time
as __main__ beside the copy the package's own imports load."""

_idle: list["ChildStepper"] = []
_lock = threading.Lock()


class ChildStepper:
    """`step(msg)` runs `factory(*args).step(msg)` in a child process: send, then wait
    for the answer (the GIL is free meanwhile). Raises OSError or EOFError if the child
    died (or an exception of the step itself, re-raised here). `args` None: the stepper
    is made by the first `reset`."""

    def __init__(self, factory: Callable[..., Any], args: tuple, nice: int = 0) -> None:
        import cv2

        import priorfx
        env = dict(os.environ)
        root = str(Path(priorfx.__file__).resolve().parents[1])   # where priorfx imports from
        env["PYTHONPATH"] = os.pathsep.join([root] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
        # Windows: no console window of its own (its parent, OBS's worker, has none either)
        flags = getattr(subprocess, "CREATE_NO_WINDOW", 0) if os.name == "nt" else 0
        self.process = subprocess.Popen([sys.executable, "-c", CHILD_COMMAND],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env,
                                        creationflags=flags)
        self.factory, self.nice = factory, nice
        self._ready = False   # its ("ready", None) after the imports not read yet
        self._send((factory, args, nice, cv2.getNumThreads()))

    def wait_ready(self) -> None:
        """Block until the child has imported and built its stepper (about a second;
        raises EOFError if it died meanwhile)."""
        if not self._ready:
            kind, _ = pickle.load(self.process.stdout)
            self._ready = kind == "ready"

    def _send(self, msg) -> None:
        pickle.dump(msg, self.process.stdin, protocol=pickle.HIGHEST_PROTOCOL)
        self.process.stdin.flush()

    def step(self, msg):
        self.wait_ready()
        self._send(msg)
        kind, value = pickle.load(self.process.stdout)
        if kind == "error":
            raise value
        return value

    def reset(self, args: tuple) -> None:
        self._send(("reset", args))

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def serves(self, factory: Callable[..., Any], nice: int) -> bool:
        """Alive, and runs `factory`'s steppers at this priority."""
        return self.alive and self.factory is factory and self.nice == nice

    def close(self, timeout: float | None = 5.0) -> None:
        """Close its stdin (it exits); wait up to `timeout` (None: not at all), then kill."""
        try:
            self.process.stdin.close()
        except OSError:
            pass
        if timeout is None:
            return
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout)
        self.process.stdout.close()


def acquire(factory: Callable[..., Any], args: tuple, nice: int = 0) -> ChildStepper:
    """An idle child of the same factory and priority, reset to `args`, or a new one."""
    with _lock:
        while _idle:
            child = _idle.pop()
            if child.serves(factory, nice):
                try:
                    child.reset(args)
                    return child
                except OSError:
                    pass
            child.close(1.0)
    return ChildStepper(factory, args, nice)


def prestart(factory: Callable[..., Any], nice: int = 0) -> None:
    """Start an idle child now, unless one is idle: its interpreter start (about a
    second) is then over before a session needs it."""
    with _lock:
        if any(c.serves(factory, nice) for c in _idle):
            return
    release(ChildStepper(factory, None, nice))


def await_idle() -> None:
    """Wait until the idle children have started (a worker does, before it says it is
    ready: its first frames then find the motion process running). One that died is
    dropped."""
    with _lock:
        children = list(_idle)
    for child in children:
        try:
            child.wait_ready()
        except (EOFError, OSError, pickle.UnpicklingError):
            with _lock:
                if child in _idle:
                    _idle.remove(child)
            child.close(1.0)


def release(child: ChildStepper) -> None:
    """Keep a healthy child for the next session (one; more are closed)."""
    with _lock:
        if child.alive and not _idle:
            _idle.append(child)
            return
    child.close()


def close_idle(wait: bool = True) -> None:
    """End the idle children now (a process about to exit, tests); without `wait`
    they are only told to (a starved child may take a while to get the CPU to exit)."""
    with _lock:
        children, _idle[:] = list(_idle), []
    for child in children:
        child.close(5.0 if wait else None)


def _serve(stdin, stdout) -> None:
    """The child: build the stepper from the first message, answer each message with
    ("ok", its step) or ("error", the exception); ("reset", args) builds a new one."""
    factory, args, nice, cv_threads = pickle.load(stdin)
    if nice > 0 and hasattr(os, "nice"):
        os.nice(nice)
    import cv2
    cv2.setNumThreads(cv_threads)
    obj = factory(*args) if args is not None else None   # None: started ahead, reset later
    pickle.dump(("ready", None), stdout)
    stdout.flush()
    while True:
        try:
            msg = pickle.load(stdin)
        except (EOFError, OSError):
            return   # the parent closed our stdin, or is gone
        if isinstance(msg, tuple) and len(msg) == 2 and msg[0] == "reset":
            obj = factory(*msg[1])
            continue
        try:
            answer = ("ok", obj.step(msg))
        except Exception as exc:   # the parent re-raises it where the step was asked for
            answer = ("error", exc)
        try:
            pickle.dump(answer, stdout, protocol=pickle.HIGHEST_PROTOCOL)
            stdout.flush()
        except OSError:
            return   # the parent is gone


def main() -> None:
    """The child's entry (`CHILD_COMMAND`)."""
    # The answers get their own copy of stdout; whatever a library prints to stdout
    # (Python or C) goes to stderr instead of into the stream.
    answers = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    _serve(sys.stdin.buffer, answers)
