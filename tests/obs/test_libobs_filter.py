"""The filter inside real libobs (Debian's OBS 29 under Xvfb, OBS's own Python 3.11).

The real script registers the real filter; frames go in through an async
source with obs_source_output_video and come out through a probe filter placed
after ours.
"""
from __future__ import annotations

import os

import numpy as np
import pytest

pytestmark = pytest.mark.host

FORMATS = ["NV12", "I420", "I422", "YUY2", "BGRA", "RGBA"]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie still answers; check its state
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


@pytest.fixture(scope="module")
def transport(obs_tools, tmp_path_factory):
    """One OBS session through every format, a resolution change, the eye icon, a
    worker crash and its restart. The worker inverts bytes (the benchmark's peer worker),
    so every output byte is predictable."""
    H = obs_tools
    tmp = tmp_path_factory.mktemp("transport")
    base = H.texture(320, 192)
    frames = [np.roll(base, 9 * k, axis=1) for k in range(3)]
    inputs, steps = {}, [{"op": "wait_live"}]
    for fmt in FORMATS:
        inputs[fmt] = H.write_frames(tmp / fmt, fmt, frames)
        steps.append({"op": "feed", "tag": fmt, "dir": str(tmp / fmt), "wait_result": True})
    big = [np.roll(H.texture(1920, 1088), 11 * k, axis=1) for k in range(2)]
    inputs["big"] = H.write_frames(tmp / "big", "BGRA", big)   # 8 MB frames: bigger slots needed
    steps += [{"op": "feed", "tag": "big_first", "dir": str(tmp / "big")},
              {"op": "wait_live"},
              {"op": "feed", "tag": "big", "dir": str(tmp / "big"), "wait_result": True},
              {"op": "enable", "enabled": False},
              {"op": "feed", "tag": "disabled", "dir": str(tmp / "NV12")},
              {"op": "enable", "enabled": True},
              {"op": "kill"},
              {"op": "feed", "tag": "dead", "dir": str(tmp / "NV12")},
              {"op": "wait_live"},
              {"op": "feed", "tag": "restarted", "dir": str(tmp / "NV12"), "wait_result": True},
              {"op": "feed", "tag": "I444", "dir": str(tmp / "I444")},
              {"op": "reload", "feed_while_unloaded": "unloaded", "dir": str(tmp / "NV12")},
              {"op": "wait_live"},
              {"op": "feed", "tag": "reloaded", "dir": str(tmp / "NV12"), "wait_result": True}]
    # a format the correction does not take (4:4:4): arbitrary bytes, must pass untouched
    (tmp / "I444").mkdir()
    inputs["I444"] = [bytes(np.random.default_rng(k).integers(0, 256, 320 * 192 * 3, dtype=np.uint8))
                      for k in range(2)]
    for k, raw in enumerate(inputs["I444"]):
        (tmp / "I444" / f"{k:04d}.raw").write_bytes(raw)
    (tmp / "I444" / "meta.json").write_text('{"format": "I444", "width": 320, "height": 192, "count": 2}')
    result = H.run_harness({"fps": 30, "canvas": [320, 192], "steps": steps}, tmp / "out", invert=True)
    return result, inputs, tmp / "out", H


@pytest.mark.parametrize("fmt", FORMATS)
def test_frames_come_back_processed_one_frame_later(transport, fmt):
    result, inputs, out, H = transport
    got = H.outputs(out, fmt)
    src = H.shown(result, fmt)
    # Each output shows the newest finished result: the previous frame's (one frame
    # of latency) or, when the worker beat the callback, this frame's own.
    assert src[0] in (None, 0) and all(src[k] in (k - 1, k) for k in (1, 2)), src
    for k, s in enumerate(src):
        expect = inputs[fmt][0] if s is None else bytes(255 - np.frombuffer(inputs[fmt][s], np.uint8))
        assert got[k] == expect, f"{fmt} frame {k}: not the worker's result for frame {s}"


def test_bigger_frames_restart_the_worker_with_bigger_slots(transport):
    result, inputs, out, H = transport
    first = H.outputs(out, "big_first")
    assert H.shown(result, "big_first") == [None, None] and first == inputs["big"]
    assert "restarting the worker (bigger frames)" in result["log_text"]
    got, src = H.outputs(out, "big"), H.shown(result, "big")
    assert src[1] in (0, 1)
    assert got[1] == bytes(255 - np.frombuffer(inputs["big"][src[1]], np.uint8))


def test_disabled_filter_passes_frames_untouched(transport):
    result, inputs, out, H = transport
    assert H.outputs(out, "disabled") == inputs["NV12"]
    assert H.shown(result, "disabled") == [None, None, None]


def test_crashed_worker_means_pass_through_then_restart(transport):
    result, inputs, out, H = transport
    assert H.outputs(out, "dead") == inputs["NV12"], "frames must pass through unchanged while the worker is down"
    assert "worker exited with code -9" in result["log_text"]
    got, src = H.outputs(out, "restarted"), H.shown(result, "restarted")
    assert src[2] in (1, 2)
    assert got[2] == bytes(255 - np.frombuffer(inputs["NV12"][src[2]], np.uint8))
    # start, bigger slots, after the crash, after the reload
    assert result["log_text"].count("started worker pid") >= 4


def test_obs_shuts_down_cleanly_without_leftovers(transport):
    result, _, _, H = transport
    assert result["shutdown_s"] < 10
    assert result["instances_left"] == 0
    assert result["worker_pids"] and not any(_alive(p) for p in result["worker_pids"])
    assert H.slot_files_left(result["log_text"]) == [], "slot files left in /dev/shm"
    assert result["stats"]["torn"] == 0


def test_correction_in_obs_matches_the_core(obs_tools, tmp_path):
    """Synthetic rolling-shutter pan in NV12, I420 and YUY2 through OBS; each output
    is near the core's ShutterSession.push_buffer on the same frames (`near_core`), and
    is closer to the global-shutter truth than the input."""
    from priorfx.io import camera
    from priorfx.shutter import ShutterParams, ShutterSession

    H = obs_tools
    w, h, n, readout = 320, 192, 6, 0.8
    rs, gs = H.rs_pan(n, w, h, readout=readout, speed=12.0)
    settings = {"auto_readout": False, "readout": readout, "mode": "rs", "strength": 1.0, "lookahead": False}
    fmts = ["NV12", "I420", "YUY2"]
    inputs, steps = {}, [{"op": "wait_live", "timeout": 180}]
    for fmt in fmts:
        inputs[fmt] = H.write_frames(tmp_path / fmt, fmt, rs)
        steps.append({"op": "feed", "tag": fmt, "dir": str(tmp_path / fmt), "wait_result": True})
    result = H.run_harness({"fps": 30, "canvas": [w, h], "settings": settings, "steps": steps}, tmp_path / "out")
    params = ShutterParams(readout=readout, mode="rs", strength=1.0, lookahead=False)
    for fmt in fmts:
        session = ShutterSession(params)
        ref = [b"".join(p.tobytes() for p in session.push_buffer(raw, fmt, w, h)) for raw in inputs[fmt]]
        got = H.outputs(tmp_path / "out", fmt)
        src = H.shown(result, fmt)
        assert all(s is None or s in (k - 1, k) for k, s in enumerate(src)), f"{fmt}: {src}"
        assert sum(s is not None for s in src) >= n - 1, f"{fmt}: too few corrected frames: {src}"
        err_in, err_out = [], []
        for k, s in enumerate(src):
            if s is None:
                assert got[k] == inputs[fmt][k]
                continue
            if s < 2 and got[k] == inputs[fmt][s]:
                continue   # the worker's motion thread is starting: that frame left as it came
            assert H.near_core(got[k], ref[s], inputs[fmt][s], w, h), \
                f"{fmt} frame {k}: OBS output far from the core's result for frame {s}"
            inner = (slice(16, h - 16), slice(24, w - 24))
            as_rgb = lambda raw: camera.to_rgb_u8(raw, fmt, w, h)[inner].astype(np.float32)  # noqa: E731
            truth = gs[s][inner].astype(np.float32)
            err_in.append(np.abs(as_rgb(inputs[fmt][s]) - truth).mean())
            err_out.append(np.abs(as_rgb(got[k]) - truth).mean())
        assert np.mean(err_out) < 0.7 * np.mean(err_in), \
            f"{fmt}: correction should move rows toward the global-shutter frame ({err_in} -> {err_out})"
    assert result["lagged_total"] <= 2


def test_unsupported_formats_pass_through(transport):
    result, inputs, out, H = transport
    assert H.outputs(out, "I444") == inputs["I444"]
    assert H.shown(result, "I444") == [None, None]


def test_script_reload_stops_the_old_worker_and_resumes(transport):
    result, inputs, out, H = transport
    reload = next(s for s in result["steps"] if s["op"] == "reload")
    assert reload["instances_while_unloaded"] == 0
    assert not _alive(reload["old_pid"]), "the old worker outlived the script"
    assert not os.path.exists(reload["old_shm"])
    # unloaded: the filter still exists in OBS and passes frames through
    assert H.outputs(out, "unloaded") == inputs["NV12"]
    assert "already registered; using the reloaded script" in result["log_text"]
    got, src = H.outputs(out, "reloaded"), H.shown(result, "reloaded")
    assert src[2] in (1, 2) and got[2] == bytes(255 - np.frombuffer(inputs["NV12"][src[2]], np.uint8))
