"""Helpers for the OBS tests: real libobs under Xvfb, synthetic rolling-shutter frames."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import types
from pathlib import Path

import cv2
import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "obs" / "priorfx_rolling_shutter.py"
HARNESS = REPO / "tests" / "obs" / "libobs_harness.py"
OBS_PYTHON = "/usr/bin/python3.11"
PRIORFX = str(Path(sys.executable).with_name("priorfx"))


def _require_obs() -> None:
    missing = [what for what, ok in [
        ("xvfb-run", shutil.which("xvfb-run")), ("obs", shutil.which("obs")),
        (OBS_PYTHON, os.path.exists(OBS_PYTHON)),
        ("libobs.so.0", any(Path(d, "libobs.so.0").exists()
                            for d in ("/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib")))]
        if not ok]
    if missing:
        pytest.fail(f"OBS test tools missing: {', '.join(missing)}; install them with "
                    "`apt-get install -y --no-install-recommends obs-studio xvfb`", pytrace=False)


@pytest.fixture(scope="session")
def obs_tools():
    """Fails (never skips) when OBS, Xvfb or OBS's Python are missing; gives the helpers."""
    _require_obs()
    return helpers()


@pytest.fixture(scope="session")
def obs_helpers():
    """The helpers below, for tests that do not need OBS itself."""
    return helpers()


def helpers() -> types.SimpleNamespace:
    return types.SimpleNamespace(
        run_harness=run_harness, write_frames=write_frames, texture=texture, rs_pan=rs_pan,
        outputs=outputs, step=step, shown=shown, slot_files_left=slot_files_left, near_core=near_core,
        core_distance=core_distance, SCRIPT=SCRIPT, REPO=REPO,
        PRIORFX=PRIORFX, OBS_PYTHON=OBS_PYTHON)


def slot_files_left(log_text: str) -> list[str]:
    """The slot files this OBS session's workers were started with that still exist.

    Read from the filter's log ("started worker pid N: ... --shm PATH"), not from
    a listing of /dev/shm, which other OBS sessions on the machine share."""
    paths = re.findall(r"started worker pid \d+: .* --shm (\S+)", log_text)
    assert paths, "the log names no worker's slot file"
    return [p for p in paths if os.path.exists(p)]


def run_harness(plan: dict, out: Path, invert: bool = False, timeout: float = 600,
                worker_env: bool = True) -> dict:
    """Run the plan in libobs (with the real script); returns result.json.

    invert: the worker is the benchmark's frame-path peer (the real worker loop,
    a session that inverts every byte), so every output byte is predictable.
    worker_env=False: the script finds `priorfx` itself (the installer's record)."""
    out.mkdir(parents=True, exist_ok=True)
    plan = {"script": str(SCRIPT), **plan}
    (out / "plan.json").write_text(json.dumps(plan))
    env = dict(os.environ)
    env.pop("PRIORFX_EXE", None)
    env.pop("PRIORFX_WORKER_ARGS", None)
    if invert:
        from priorfx.bench.obs import invert_worker_command
        env["PRIORFX_EXE"] = json.dumps(invert_worker_command())
    elif worker_env:
        env["PRIORFX_EXE"] = PRIORFX
    proc = subprocess.run(["xvfb-run", "-a", OBS_PYTHON, str(HARNESS), str(out / "plan.json"), str(out)],
                          capture_output=True, text=True, timeout=timeout, env=env)
    (out / "harness.log").write_text(proc.stdout + proc.stderr)
    result_file = out / "result.json"
    assert result_file.exists(), f"harness wrote no result (rc {proc.returncode}):\n{proc.stderr[-3000:]}"
    result = json.loads(result_file.read_text())
    assert proc.returncode == 0 and "error" not in result, \
        f"harness failed: {result.get('error')}\n{(proc.stdout + proc.stderr)[-4000:]}"
    result["log_text"] = proc.stdout + proc.stderr
    return result


def write_frames(d: Path, fmt: str, frames_rgb: list[np.ndarray]) -> list[bytes]:
    """Frames as a camera would hand them to OBS (tightly packed planes)."""
    from priorfx.io import camera
    d.mkdir(parents=True, exist_ok=True)
    h, w = frames_rgb[0].shape[:2]
    raws = []
    for k, rgb in enumerate(frames_rgb):
        raw = camera.from_rgb_u8(rgb, fmt, as_bytes=True)
        (d / f"{k:04d}.raw").write_bytes(raw)
        raws.append(raw)
    (d / "meta.json").write_text(json.dumps({"format": fmt, "width": w, "height": h, "count": len(raws)}))
    return raws


def texture(width: int, height: int, seed: int = 7) -> np.ndarray:
    """A wide textured scene (blobs and edges) to pan across, uint8 RGB."""
    rng = np.random.default_rng(seed)
    small = rng.random((height // 8, width // 8, 3)).astype(np.float32)
    img = cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC)
    for _ in range(40):
        x, y = int(rng.integers(0, width)), int(rng.integers(0, height))
        cv2.rectangle(img, (x, y), (x + int(rng.integers(8, 40)), y + int(rng.integers(8, 60))),
                      tuple(float(c) for c in rng.random(3)), -1)
    return (np.clip(img, 0, 1) * 255).astype(np.uint8)


def rs_pan(n: int, width: int, height: int, readout: float, speed: float, pad: int = 200):
    """(rolling-shutter frames, global-shutter frames at the middle row's instant).

    Row y of frame k is exposed at time k + readout * y / H while the camera pans
    `speed` pixels per frame, so each row is shifted by speed * that time.
    """
    tex = texture(width + n * int(abs(speed)) + 2 * pad, height).astype(np.float32)
    xs = np.arange(width, dtype=np.float32)
    rs, gs = [], []
    for k in range(n):
        t_rows = k + readout * np.arange(height, dtype=np.float32)[:, None] / height
        map_x = (pad + xs[None, :] + speed * t_rows).astype(np.float32)
        map_y = np.repeat(np.arange(height, dtype=np.float32)[:, None], width, 1)
        rs.append(cv2.remap(tex, map_x, map_y, cv2.INTER_LINEAR).astype(np.uint8))
        map_gs = np.broadcast_to(pad + xs[None, :] + speed * (k + readout * 0.5), (height, width))
        gs.append(cv2.remap(tex, np.ascontiguousarray(map_gs, np.float32), map_y, cv2.INTER_LINEAR)
                  .astype(np.uint8))
    return rs, gs


def near_core(got: bytes, ref: bytes, inp: bytes, width: int, height: int) -> bool:
    """The worker's result for a frame against the core's synchronous one (`ref`).

    The worker estimates motion on its own thread and warps each frame with the
    freshest motion, updated by the camera's velocity now, so its bytes are not
    the synchronous session's; they must be much nearer to them than the input
    is (luma, inner part), or equal."""
    return got == ref or core_distance(got, ref, inp, width, height) < 0.5


def core_distance(got: bytes, ref: bytes, inp: bytes, width: int, height: int) -> float:
    """Mean luma difference of `got` from `ref`, over that of the input (inner part)."""
    def luma(b):
        return np.frombuffer(b, np.uint8)[:width * height].reshape(height, width)[8:-8, 8:-8].astype(np.float32)
    return float(np.abs(luma(got) - luma(ref)).mean()) / max(1e-6, float(np.abs(luma(inp) - luma(ref)).mean()))


def outputs(out: Path, tag: str) -> list[bytes]:
    return [p.read_bytes() for p in sorted((out / tag).glob("*.raw"))]


def step(result: dict, tag: str) -> dict:
    return next(s for s in result["steps"] if s.get("tag") == tag)


def shown(result: dict, tag: str) -> list:
    """Per output frame: index of the input frame whose result it shows, None = passed through."""
    return [r["shown"] for r in step(result, tag)["frames"]]
