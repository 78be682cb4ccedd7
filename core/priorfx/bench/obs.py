"""`priorfx bench obs`: the OBS filter in real libobs on this machine.

A synthetic rolling-shutter pan (NV12, as webcams deliver) is pushed in real
time at 30 fps through an async source carrying the filter, with the worker
running the core's live session. Measured: time spent inside `filter_video`
(the only work on OBS's video thread; wall time, and the thread's CPU time,
which leaves out time the OS gave to other processes), frames OBS lagged, frames passed through
uncorrected (worker not done in time), and the latency of the corrected frames
shown (frames between a frame's arrival and its correction being shown).

`corrected_fraction_*` is the share of frames that left the filter corrected;
the `_loaded` run repeats 720p with every core kept busy by competing
processes (as OBS's own encoder would on a streaming machine).

`calibration_s`: a hand-held camera shaking (changing motion, a rolling
shutter of a readout the filter is not told) streams at 720p30; the
Calibrate button is clicked through libobs's property API and the clock runs
until the filter has stored a readout. `calibration_abs_err` is that
readout's distance from the truth (target: stored within 0.1 in 10 s).

Peers in the same run: the same filter with a worker that only inverts bytes
(`python -m priorfx.bench.obs`, the real worker loop with a session that
inverts: the cost of the frame path alone), and the core's own
time per frame (ShutterSession.push_buffer in this process), which says
whether the worker can keep up at all.

Needs Debian's obs-studio, xvfb-run and /usr/bin/python3.11 (see tests/obs).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from priorfx.bench.common import median_ms
from priorfx.errors import InputError

OBS_PYTHON = "/usr/bin/python3.11"
RESOLUTIONS = {"720p": (1280, 720), "1080p": (1920, 1080)}
CALIBRATION_TRUTH = 0.7   # the synthetic camera's readout (the filter is set to 0.5, auto off)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--seconds", type=float, default=20.0, help="measured seconds per run (default 20; quick: 6)")
    p.add_argument("--fps", type=float, default=30.0)
    p.add_argument("--no-peers", action="store_true", help="skip the transport-only and lookahead runs")


def pan_frames(width: int, height: int, n: int = 30, speed: float = 14.0, readout: float = 0.7) -> list[bytes]:
    """NV12 frames of a textured scene panning sideways, seen by a rolling shutter."""
    import cv2

    from priorfx.io import camera
    rng = np.random.default_rng(5)
    pad = int(speed * (n + 2)) + 8
    small = rng.random((height // 12, (width + pad) // 12, 3)).astype(np.float32)
    tex = cv2.resize(small, (width + pad, height), interpolation=cv2.INTER_CUBIC)
    xs = np.arange(width, dtype=np.float32)[None, :]
    rows = np.arange(height, dtype=np.float32)[:, None]
    map_y = np.repeat(rows, width, 1)
    frames = []
    for k in range(n):
        map_x = (xs + speed * (k + readout * rows / height)).astype(np.float32)
        rgb = cv2.remap(tex, map_x, map_y, cv2.INTER_LINEAR)
        frames.append(camera.from_rgb_u8(np.clip(rgb, 0, 1), "NV12", as_bytes=True))
    return frames


def shake_frames(width: int, height: int, n: int = 60, readout: float = 0.7,
                 amplitude: float = 24.0) -> list[bytes]:
    """NV12 frames of a hand-held camera shaking (changing motion, so the readout can
    be measured), seen by a rolling shutter of `readout`; the shake's periods divide
    `n`, so the clip loops without a jump."""
    import cv2

    from priorfx.io import camera
    rng = np.random.default_rng(11)
    pad = int(4 * amplitude) + 16
    small = rng.random(((height + 2 * pad) // 10, (width + 2 * pad) // 10, 3)).astype(np.float32)
    tex = cv2.resize(small, (width + 2 * pad, height + 2 * pad), interpolation=cv2.INTER_CUBIC)
    xs = np.arange(width, dtype=np.float32)[None, :]
    rows = np.arange(height, dtype=np.float32)[:, None]

    def position(t):   # camera position (px) at time t (frames)
        w = 2 * np.pi * t / n
        return (pad + amplitude * (np.sin(2 * w) + 0.5 * np.sin(3 * w + 1.0)),
                pad + 0.6 * amplitude * (np.sin(w + 0.3) + 0.4 * np.sin(4 * w)))

    frames = []
    for k in range(n):
        px, py = position(k + readout * rows / height)   # row y is read at k + g y / H
        map_x = (xs + px).astype(np.float32)
        map_y = np.broadcast_to(rows + py, (height, width)).astype(np.float32)
        rgb = cv2.remap(tex, map_x, map_y, cv2.INTER_LINEAR)
        frames.append(camera.from_rgb_u8(np.clip(rgb, 0, 1), "NV12", as_bytes=True))
    return frames


def _check_tools() -> None:
    missing = [t for t in ("xvfb-run",) if not shutil.which(t)]
    if not os.path.exists(OBS_PYTHON):
        missing.append(OBS_PYTHON)
    if missing:
        raise InputError(f"cannot run OBS here: {', '.join(missing)} missing",
                         "apt-get install -y --no-install-recommends obs-studio xvfb")


def _harness() -> Path:
    """The libobs test harness of the source checkout: a test tool, not shipped in the wheel."""
    import priorfx

    harness = Path(priorfx.__file__).resolve().parents[2] / "tests" / "obs" / "libobs_harness.py"
    if not harness.is_file():
        raise InputError("priorfx bench obs drives OBS through the test harness tests/obs/libobs_harness.py, "
                         "which only a source checkout has",
                         "run the benchmark from a clone of the repository (pip install -e . there)")
    return harness


def run_libobs(frames_dir: Path, size: tuple[int, int], seconds: float, fps: float,
               settings: dict, invert: bool, out: Path, calibrate: bool = False) -> dict:
    """One libobs session: warm up, then stream `seconds` in real time (or, with
    `calibrate`, click Calibrate and stream until a readout is stored)."""
    from priorfx.install.common import this_priorfx
    from priorfx.install.obs import script_source

    harness = _harness()
    steps = [{"op": "wait_live", "timeout": 300},
             {"op": "stream", "tag": "warmup", "dir": str(frames_dir), "seconds": 2.0, "fps": fps}]
    if calibrate:
        steps.append({"op": "calibrate", "tag": "measure", "dir": str(frames_dir), "fps": fps, "timeout": 180})
    else:
        steps.append({"op": "stream", "tag": "measure", "dir": str(frames_dir), "seconds": seconds, "fps": fps})
    plan = {"script": str(script_source()), "fps": fps, "canvas": list(size), "probe": False,
            "settings": settings, "feed_settings": {"device_id": "bench-camera"}, "steps": steps}
    out.mkdir(parents=True, exist_ok=True)
    (out / "plan.json").write_text(json.dumps(plan))
    env = {**os.environ, "PRIORFX_EXE": json.dumps(invert_worker_command() if invert else this_priorfx()),
           "XDG_CONFIG_HOME": str(out / "config")}   # the run's calibrations stay in the run
    env.pop("PRIORFX_WORKER_ARGS", None)
    proc = subprocess.run(["xvfb-run", "-a", OBS_PYTHON, str(harness), str(out / "plan.json"), str(out)],
                          capture_output=True, text=True, env=env, timeout=seconds + 400)
    result_file = out / "result.json"
    result = json.loads(result_file.read_text()) if result_file.exists() else {}
    if proc.returncode != 0 or "error" in result:
        raise RuntimeError(f"libobs run failed: {result.get('error')}\n{(proc.stdout + proc.stderr)[-2000:]}")
    step = next(s for s in result["steps"] if s.get("tag") == "measure")
    if calibrate:
        return {"seconds": step["seconds"], "frames_pushed": step["frames_pushed"], **step["calibration"]}
    cb = sorted(step["callback_ms"])
    cpu = sorted(step["callback_cpu_ms"])
    lat = step["latency_frames"]
    return {"frames": step["frames"], "pushed": step["pushed"], "corrected": step["corrected"],
            "passthrough": step["passthrough"], "repeated": step["repeated"], "lagged": step["lagged"],
            # why frames passed through (see Stats in the OBS script)
            **{k: step.get(k) for k in ("pass_no_worker", "pass_lock_busy", "pass_no_result", "pass_stale")},
            "rendered": step["rendered"],
            "callback_p50_ms": _pct(cb, 50), "callback_p99_ms": _pct(cb, 99), "callback_max_ms": cb[-1] if cb else None,
            "callback_cpu_p50_ms": _pct(cpu, 50), "callback_cpu_p99_ms": _pct(cpu, 99),
            "latency_frames_p50": statistics.median(lat) if lat else None,
            "latency_frames_max": max(lat) if lat else None,
            "shutdown_s": result.get("shutdown_s")}


def _pct(sorted_values: list, q: float):
    if not sorted_values:
        return None
    i = min(len(sorted_values) - 1, int(round(q / 100.0 * (len(sorted_values) - 1))))
    return sorted_values[i]


def core_ms(frames: list[bytes], size: tuple[int, int], lookahead: bool = False) -> float:
    """The core's own time per frame for the same stream (no OBS, no transport)."""
    from priorfx.shutter import ShutterParams, ShutterSession
    session = ShutterSession(ShutterParams(readout=0.7, lookahead=lookahead))
    it = iter(range(10 ** 9))

    def one():
        k = next(it)
        session.push_buffer(frames[k % len(frames)], "NV12", size[0], size[1])
    return median_ms(one, repeat=15, warmup=3)


class cpu_hog:
    """Every core kept busy by a spinning process (at normal priority) while inside."""

    def __enter__(self):
        import sys
        self.procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"])
                      for _ in range(os.cpu_count() or 2)]
        return self

    def __exit__(self, *exc):
        for p in self.procs:
            p.kill()
            p.wait()


def run(args: argparse.Namespace) -> dict:
    _check_tools()
    seconds = 6.0 if args.quick and args.seconds == 20.0 else args.seconds
    settings = {"auto_readout": False, "readout": 0.7, "mode": "rs", "strength": 1.0, "lookahead": False}
    runs, core = {}, {}
    with tempfile.TemporaryDirectory(prefix="priorfx-bench-obs-") as tmp:
        for name, size in RESOLUTIONS.items():
            frames = pan_frames(*size)
            d = Path(tmp) / name
            d.mkdir()
            for k, raw in enumerate(frames):
                (d / f"{k:04d}.raw").write_bytes(raw)
            (d / "meta.json").write_text(json.dumps({"format": "NV12", "width": size[0], "height": size[1],
                                                     "count": len(frames)}))
            core[f"core_ms_{name}"] = core_ms(frames, size)
            tag = f"{name}{int(args.fps)}"
            t0 = time.perf_counter()
            runs[tag] = run_libobs(d, size, seconds, args.fps, settings, False, Path(tmp) / f"out-{tag}")
            runs[tag]["wall_s"] = time.perf_counter() - t0
            if not args.no_peers:
                runs[f"{tag}_transport_only"] = run_libobs(d, size, seconds, args.fps, settings, True,
                                                           Path(tmp) / f"out-{tag}-t")
            if name == "720p":
                with cpu_hog():
                    runs[f"{tag}_loaded"] = run_libobs(d, size, seconds, args.fps, settings, False,
                                                       Path(tmp) / f"out-{tag}-loaded")
            if name == "720p":
                shake = Path(tmp) / "shake"
                shake.mkdir()
                for k, raw in enumerate(shake_frames(*size, readout=CALIBRATION_TRUTH)):
                    (shake / f"{k:04d}.raw").write_bytes(raw)
                (shake / "meta.json").write_text(json.dumps({"format": "NV12", "width": size[0],
                                                             "height": size[1], "count": 60}))
                untold = {**settings, "readout": 0.5}   # the filter does not know the truth
                runs[f"{tag}_calibrate"] = run_libobs(shake, size, seconds, args.fps, untold, False,
                                                      Path(tmp) / f"out-{tag}-cal", calibrate=True)
            if not args.no_peers and name == "720p":
                runs[f"{tag}_lookahead"] = run_libobs(d, size, seconds, args.fps,
                                                      {**settings, "lookahead": True}, False,
                                                      Path(tmp) / f"out-{tag}-la")
    fps = int(args.fps)
    r720, r1080 = runs[f"720p{fps}"], runs[f"1080p{fps}"]
    summary = {
        "latency_frames": r720["latency_frames_p50"],
        "callback_p99_ms": max(r720["callback_p99_ms"], r1080["callback_p99_ms"]),
        "callback_p50_ms": max(r720["callback_p50_ms"], r1080["callback_p50_ms"]),
        # the same, counting only CPU time of OBS's video thread (load on the machine excluded)
        "callback_cpu_p99_ms": max(r720["callback_cpu_p99_ms"], r1080["callback_cpu_p99_ms"]),
        f"lagged_720p{fps}": r720["lagged"], f"lagged_1080p{fps}": r1080["lagged"],
        f"passthrough_720p{fps}": r720["passthrough"], f"passthrough_1080p{fps}": r1080["passthrough"],
        f"corrected_fraction_720p{fps}": r720["corrected"] / max(1, r720["frames"]),
        f"corrected_fraction_1080p{fps}": r1080["corrected"] / max(1, r1080["frames"]),
        f"corrected_fraction_720p{fps}_loaded": (runs[f"720p{fps}_loaded"]["corrected"]
                                                 / max(1, runs[f"720p{fps}_loaded"]["frames"])),
        f"lagged_720p{fps}_loaded": runs[f"720p{fps}_loaded"]["lagged"],
        "frames_per_run": r720["frames"],
        # seconds from clicking Calibrate to a stored readout, and its error against the truth
        "calibration_s": runs[f"720p{fps}_calibrate"]["seconds"],
        "calibration_abs_err": (abs(runs[f"720p{fps}_calibrate"]["readout"] - CALIBRATION_TRUTH)
                                if runs[f"720p{fps}_calibrate"]["state"] == "done" else None),
        **core,
    }
    if not args.no_peers:
        t, t2 = runs[f"720p{fps}_transport_only"], runs[f"1080p{fps}_transport_only"]
        la = runs[f"720p{fps}_lookahead"]
        summary.update({"peer_transport_only_callback_p99_ms": max(t["callback_p99_ms"], t2["callback_p99_ms"]),
                        "peer_transport_only_lagged_720p": t["lagged"],
                        "peer_transport_only_lagged_1080p": t2["lagged"],
                        "peer_transport_only_passthrough_720p": t["passthrough"],
                        "lookahead_latency_frames": la["latency_frames_p50"],
                        "lookahead_passthrough_720p": la["passthrough"]})
    targets = {"lagged_720p_zero": summary[f"lagged_720p{fps}"] == 0,
               "corrected_fraction_720p_eq_1": summary[f"corrected_fraction_720p{fps}"] >= 1.0,
               "corrected_fraction_1080p_ge_0_99": summary[f"corrected_fraction_1080p{fps}"] >= 0.99,
               "corrected_fraction_720p_loaded_ge_0_99": summary[f"corrected_fraction_720p{fps}_loaded"] >= 0.99,
               "callback_p99_le_2ms": summary["callback_p99_ms"] <= 2.0,
               "calibration_le_10s_within_0_1": (summary["calibration_s"] <= 10.0
                                                 and summary["calibration_abs_err"] is not None
                                                 and summary["calibration_abs_err"] <= 0.1),
               "latency_le_1_frame": summary["latency_frames"] is not None and summary["latency_frames"] <= 1}
    if not args.no_peers:
        targets["lookahead_latency_le_2"] = (summary["lookahead_latency_frames"] is not None
                                             and summary["lookahead_latency_frames"] <= 2)
    return {"summary": summary, "targets_met": targets, "runs": runs,
            "setup": {"seconds": seconds, "fps": args.fps, "format": "NV12", "settings": settings}}


# ------------------------------------------------- the frame-path peer's worker
class InvertSession:
    """255 - every byte: a session with no correction and no models, so a run
    measures the frame path alone (and every output byte is predictable)."""

    def push_buffer(self, buf, fmt, width, height, strides, out=None, timestamp_ns=None):
        if out is None:
            return 255 - buf
        np.subtract(255, buf, out=out)
        return out


def invert_worker_command() -> list[str]:
    """The command the OBS script starts (as $PRIORFX_EXE) for the peer run: it
    takes the same arguments as `priorfx worker shutter` and runs the same loop."""
    return [sys.executable, "-m", "priorfx.bench.obs"]


def _invert_worker(argv: list[str]) -> int:
    from priorfx.streaming import shm
    from priorfx.streaming.worker import StdinWaker, serve, yield_to_host

    p = argparse.ArgumentParser(prog="python -m priorfx.bench.obs")
    p.add_argument("command", nargs=2, help="worker shutter (as the OBS script calls priorfx)")
    p.add_argument("--shm", required=True)
    p.add_argument("--parent", type=int, default=None)
    args, _engine_options = p.parse_known_args(argv)
    channel = shm.Channel.attach(args.shm)
    yield_to_host()
    try:
        return serve(channel, lambda _params: InvertSession(), StdinWaker(), parent_pid=args.parent)
    finally:
        channel.close(unlink=False)


if __name__ == "__main__":
    sys.exit(_invert_worker(sys.argv[1:]))
