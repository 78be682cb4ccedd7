"""A real `priorfx serve` on 127.0.0.1 (a free port chosen by the server itself)."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import requests

TOKEN = "test-token-3f9a"


class Server:
    """A `priorfx serve` subprocess; `url` once it listens."""

    def __init__(self, *args: str, token: str | None = TOKEN, env: dict | None = None):
        exe = Path(sys.executable).with_name("priorfx")
        cmd = [str(exe), "serve", "--port", "0", *args]
        if token:
            cmd += ["--token", token]
        full_env = {k: v for k, v in os.environ.items() if k != "PRIORFX_TOKEN"}
        full_env.update({"PYTHONUNBUFFERED": "1", **(env or {})})
        self.token = token
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, env=full_env)
        self.lines: list[str] = []
        line = self.proc.stdout.readline()
        self.lines.append(line)
        m = re.search(r"listening on (https?://\S+)", line)
        if not m:
            self.proc.kill()
            raise RuntimeError(f"server did not start: {line!r} {self.proc.stderr.read()}")
        self.url = m.group(1)
        # Keep draining stderr so a chatty server never blocks on a full pipe.
        self.stderr: list[str] = []
        self._drain = threading.Thread(target=lambda: self.stderr.extend(self.proc.stderr), daemon=True)
        self._drain.start()

    @property
    def headers(self) -> dict:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    def get(self, path: str, **kw) -> requests.Response:
        return requests.get(self.url + path, headers=self.headers, timeout=60, **kw)

    def post(self, path: str, data: bytes, **kw) -> requests.Response:
        headers = {"Content-Type": "application/x-priorfx-bundle", **self.headers, **kw.pop("headers", {})}
        return requests.post(self.url + path, data=data, headers=headers, timeout=60, **kw)

    def engine(self, **kw):
        from priorfx.engines.remote import RemoteEngine
        return RemoteEngine(self.url, token=self.token, **kw)

    def stop(self, sig=signal.SIGTERM, timeout: float = 60) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._drain.join(10)  # all of stderr is in self.stderr once the process is gone
        rest = self.proc.stdout.read()
        self.lines.extend(rest.splitlines())
        return self.proc.returncode

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait()


@pytest.fixture
def start_server(models_home):
    """start_server('--max-side', '512') -> a running Server, stopped after the test."""
    started: list[Server] = []

    def _start(*args: str, **kw) -> Server:
        s = Server(*args, **kw)
        started.append(s)
        return s

    yield _start
    for s in started:
        s.stop()


@pytest.fixture(scope="module")
def module_server(models_home):
    """module_server(*args) -> a Server kept for the whole module (stopped after it)."""
    started: list[Server] = []

    def _start(*args: str, **kw) -> Server:
        started.append(Server(*args, **kw))
        return started[-1]

    yield _start
    for s in started:
        s.stop()


@pytest.fixture(scope="module")
def server(models_home):
    """One shared server (token TOKEN, 2 workers) for tests that do not stop it."""
    s = Server("--workers", "2")
    yield s
    s.stop()


