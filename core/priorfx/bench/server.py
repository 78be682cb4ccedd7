"""`priorfx bench server`: load test of `priorfx serve` on loopback.

A real server is started as a subprocess on 127.0.0.1 (a free port, a token).
N client threads, each with its own RemoteEngine, loop over real requests
(selfie undistortion, a short rolling-shutter clip, a matted frame: whichever
manipulations this priorfx has) for a bounded time, then stop by themselves.
Measured: requests, errors (by class), latency p50/p99 per request (submit,
progress polling, result download, release: everything a client waits for),
throughput, and the server's resident memory after a warm-up and after the
run. Then one live shutter session at 720p: ms per NV12 frame through the
server minus ms per frame of the same session run locally, in the same run.
"""
from __future__ import annotations

import argparse
import itertools
import os
import re
import signal
import statistics
import subprocess
import sys
import threading
import time
from typing import Callable

import numpy as np

from priorfx.errors import PriorfxError


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--clients", type=int, default=8, help="concurrent clients (default: 8)")
    p.add_argument("--seconds", type=float, default=None,
                   help="length of the load run (default: 30, --quick: 6)")
    p.add_argument("--workers", type=int, default=2, help="server --workers (default: 2)")
    p.add_argument("--stream-frames", type=int, default=None,
                   help="720p frames pushed through the live session (default: 60, --quick: 20)")


# ---------------------------------------------------------------- the server

class _Server:
    def __init__(self, workers: int, token: str):
        cmd = [sys.executable, "-c", "import sys; from priorfx.cli import main; sys.exit(main())",
               "serve", "--port", "0", "--workers", str(workers)]
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "PRIORFX_TOKEN": token}  # not in `ps`
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                     text=True, env=env)
        line = self.proc.stdout.readline()
        m = re.search(r"listening on (http://\S+)", line)
        if not m:
            self.proc.kill()
            raise PriorfxError(f"the benchmark server did not start: {line.strip()!r}")
        self.url = m.group(1)

    def rss_mb(self) -> float:
        with open(f"/proc/{self.proc.pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024.0
        raise OSError("no VmRSS")

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()


# ---------------------------------------------------------------- requests

def _requests(engine_factory) -> list[tuple[str, Callable]]:
    """(name, call(engine)) for each manipulation this priorfx has, on real media."""
    import cv2

    import priorfx.io as pio
    from priorfx import samples

    samples.fetch()
    out = []
    selfie = pio.read_image(samples.sample_path("single_face.jpg"))[..., :3]
    selfie = cv2.resize(selfie, (384, 378), interpolation=cv2.INTER_AREA)
    clip = [cv2.resize(f, (320, 136), interpolation=cv2.INTER_AREA)
            for f in itertools.islice(iter(pio.read_frames(samples.sample_path("bikes.mp4"))), 3)]
    try:
        from priorfx.portrait import PortraitParams
        out.append(("undistort", lambda e: e.undistort(selfie, PortraitParams())))
    except ImportError:
        pass
    try:
        from priorfx.shutter import ShutterParams
        out.append(("deshutter", lambda e: e.deshutter(clip, ShutterParams(readout=0.7))))
    except ImportError:
        pass
    try:
        from priorfx.matting import MattingParams
        out.append(("matte", lambda e: list(e.matte(clip[:1], MattingParams(quality="fast")))))
    except ImportError:
        pass
    if not out:
        out.append(("models", lambda e: e.models()))
    return out


def _load(url: str, token: str, clients: int, seconds: float, calls) -> dict:
    from priorfx.engines.remote import RemoteEngine

    deadline = time.monotonic() + seconds
    lat: dict[str, list[float]] = {name: [] for name, _ in calls}
    errors: dict[str, int] = {}
    first_errors: list[str] = []
    lock = threading.Lock()

    def client(k: int) -> None:
        engine = RemoteEngine(url, token=token)
        for i in itertools.count(k):
            if time.monotonic() >= deadline:
                break
            name, call = calls[i % len(calls)]
            t0 = time.perf_counter()
            try:
                call(engine)
            except Exception as exc:  # count every failure, whatever its kind
                with lock:
                    errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
                    if len(first_errors) < 5:
                        first_errors.append(f"{name}: {type(exc).__name__}: {exc}")
                continue
            with lock:
                lat[name].append((time.perf_counter() - t0) * 1000.0)
        engine.close()

    t0 = time.perf_counter()
    threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    every = sorted(itertools.chain.from_iterable(lat.values()))
    return {"wall_s": wall, "latencies": every, "per_op": lat, "errors": errors,
            "first_errors": first_errors}


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    return float(np.percentile(np.asarray(values), q))


# ---------------------------------------------------------------- stream

def _stream_overhead(url: str, token: str, n: int) -> dict:
    """ms per 720p NV12 frame: remote session minus the same session locally."""
    import cv2

    import priorfx.io as pio
    from priorfx import samples
    from priorfx.io import camera
    from priorfx.engines.remote import RemoteEngine
    from priorfx.shutter import ShutterParams, ShutterSession

    w, h = 1280, 720
    src = itertools.cycle(itertools.islice(iter(pio.read_frames(samples.sample_path("bikes.mp4"))), 30))
    buffers, rgb8 = [], []
    for _ in range(n):
        f = cv2.resize(next(src), (w, h), interpolation=cv2.INTER_LINEAR)
        y, uv = camera.from_rgb(f, "NV12")
        buffers.append(np.concatenate([y.ravel(), uv.ravel()]).tobytes())
        rgb8.append((f * 255 + 0.5).astype(np.uint8))
    params = ShutterParams(readout=0.7)

    def timed(session, call, items, added=None) -> list[float]:
        call(session, items[0])  # warm-up: the first frame sets the session up
        times = []
        for item in items[1:]:
            t0 = time.perf_counter()
            call(session, item)
            ms = (time.perf_counter() - t0) * 1000.0
            times.append(ms)
            if added is not None:
                added.append(ms - session.last_compute_ms)
        return times

    result = {}
    engine = RemoteEngine(url, token=token)
    for name, items, call in (
            ("nv12", buffers, lambda s, b: s.push_buffer(b, "NV12", w, h)),
            ("rgb_uint8", rgb8, lambda s, f: s.push(f))):
        # Interleave local and remote runs so drifting machine load hits both.
        local_t, remote_t, added = [], [], []
        for _rep in range(2):
            local_t += timed(ShutterSession(params), call, items)
            with engine.shutter_stream(params) as remote:
                remote_t += timed(remote, call, items, added)
        lp50, rp50 = statistics.median(local_t), statistics.median(remote_t)
        result[name] = {"added_ms_p50": statistics.median(added), "added_ms_p99": _pct(added, 99),
                        "local_ms_p50": lp50, "remote_ms_p50": rp50,
                        "remote_minus_local_ms_p50": rp50 - lp50,
                        "remote_ms_p99": _pct(remote_t, 99), "frames": len(remote_t)}
    engine.close()
    return result


# ---------------------------------------------------------------- run

def run(args: argparse.Namespace) -> dict:
    import secrets

    seconds = args.seconds or (6.0 if args.quick else 30.0)
    stream_frames = args.stream_frames or (20 if args.quick else 60)
    warmup_s = 2.0 if args.quick else 10.0  # allocator pools reach their plateau (~10 s)
    token = secrets.token_hex(16)
    from priorfx.engines.remote import RemoteEngine

    server = _Server(args.workers, token)
    try:
        calls = _requests(lambda: RemoteEngine(server.url, token=token))
        # Warm-up with the same load: models load, allocator pools settle.
        _load(server.url, token, args.clients, warmup_s, calls)
        rss_before = server.rss_mb()
        load = _load(server.url, token, args.clients, seconds, calls)
        rss_after = server.rss_mb()
        try:
            loadavg = os.getloadavg()[0]
        except OSError:
            loadavg = None
        try:
            stream = _stream_overhead(server.url, token, stream_frames)
        except ImportError:
            stream = {}
        stop_code = server.stop()
    finally:
        if server.proc.poll() is None:
            server.proc.kill()
    n_ok = len(load["latencies"])
    n_err = sum(load["errors"].values())
    overhead = stream.get("nv12", {}).get("added_ms_p50")
    summary = {
        "clients": args.clients,
        "requests": n_ok + n_err,
        "errors": n_err,
        "p50_ms": _pct(load["latencies"], 50),
        "p99_ms": _pct(load["latencies"], 99),
        "stream_overhead_ms_720p": overhead,
        "rss_growth_mb": rss_after - rss_before,
    }
    return {
        "summary": summary,
        "targets": {
            "zero_errors": n_err == 0,
            "rss_growth_le_50mb": summary["rss_growth_mb"] <= 50,
            "stream_overhead_le_5ms": overhead is not None and overhead <= 5.0,
        },
        "load": {
            "seconds": seconds, "wall_s": load["wall_s"], "server_workers": args.workers,
            "throughput_rps": n_ok / load["wall_s"] if load["wall_s"] else None,
            "per_op": {name: {"requests": len(v), "p50_ms": _pct(v, 50), "p99_ms": _pct(v, 99)}
                       for name, v in load["per_op"].items()},
            "errors_by_class": load["errors"], "first_errors": load["first_errors"],
            "loadavg_1min_after": loadavg,
        },
        "memory": {"server_rss_mb_before": rss_before, "server_rss_mb_after": rss_after,
                   "warmup_s": warmup_s},
        "stream_720p": stream,
        "server_exit_code_on_sigterm": stop_code,
        "method": "load: each request is a full RemoteEngine call (submit, long-poll status, fetch "
                  "results, release) over HTTP/1.1 keep-alive on 127.0.0.1. stream overhead "
                  "(summary): per 720p NV12 frame, the client's round trip through the server's "
                  "WebSocket session minus the session's own compute time on the server (paired per "
                  "frame, so machine load cancels), median; remote_minus_local_ms_p50 is the "
                  "unpaired median difference against the same ShutterSession run locally, "
                  "interleaved, first frame excluded (noisy on a shared machine)",
    }
