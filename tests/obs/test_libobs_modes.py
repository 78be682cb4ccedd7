"""Filter settings in real libobs: lookahead, a settings change, the remote engine."""
from __future__ import annotations

import socket
import subprocess

import numpy as np
import pytest

from waits import wait_for

pytestmark = pytest.mark.host

W, H, READOUT = 256, 128, 0.8
BASE = {"auto_readout": False, "readout": READOUT, "mode": "rs", "strength": 1.0, "lookahead": False}


def _reference(raws, **params):
    from priorfx.shutter import ShutterParams, ShutterSession
    session = ShutterSession(ShutterParams(**params))
    out = [session.push_buffer(raw, "NV12", W, H) for raw in raws]
    return [None if o is None else b"".join(p.tobytes() for p in o) for o in out]


def _check_against(H_, result, out, tag, inputs, ref_by_input):
    """Every output is either the input unchanged or (near) the core's result for the input it names."""
    got, src = H_.outputs(out, tag), H_.shown(result, tag)
    for k, s in enumerate(src):
        if s is None:
            assert got[k] == inputs[k], f"{tag} frame {k}: passed through but changed"
        elif s < 0:   # the newest result is still one from the step before (at most 2 frames old)
            assert k < 2, f"{tag} frame {k} shows an old result"
        elif s < 2 and got[k] == inputs[s]:
            continue   # the worker's motion thread is starting: that frame left as it came
        else:
            assert H_.near_core(got[k], ref_by_input[s], inputs[s], W, H), \
                (f"{tag} frame {k}: far from the core's result for frame {s} "
                 f"({H_.core_distance(got[k], ref_by_input[s], inputs[s], W, H):.2f} of the input's distance)")
    return src


def test_lookahead_then_a_settings_change(obs_tools, tmp_path):
    H_ = obs_tools
    rs, _ = H_.rs_pan(6, W, H, readout=READOUT, speed=10.0)
    raws = H_.write_frames(tmp_path / "f", "NV12", rs)
    steps = [{"op": "wait_live", "timeout": 180},
             {"op": "feed", "tag": "look", "dir": str(tmp_path / "f"), "wait_result": True},
             {"op": "settings", "settings": {**BASE, "lookahead": False, "strength": 0.5}},
             {"op": "feed", "tag": "half", "dir": str(tmp_path / "f"), "wait_result": True}]
    result = H_.run_harness({"canvas": [W, H], "settings": {**BASE, "lookahead": True}, "steps": steps},
                            tmp_path / "out")
    # lookahead: push k returns the result for frame k-1
    look_ref = _reference(raws, readout=READOUT, lookahead=True)
    src = _check_against(H_, result, tmp_path / "out", "look", raws, look_ref[1:] + [None])
    assert src[:2] == [None, None] and all(s in (k - 2, k - 1) for k, s in enumerate(src) if k >= 2), src
    # new settings restart the session: the results are a fresh session's at strength 0.5
    half_ref = _reference(raws, readout=READOUT, strength=0.5)
    src = _check_against(H_, result, tmp_path / "out", "half", raws, half_ref)
    assert sum(s is not None and s >= 0 for s in src) >= 4, src
    assert half_ref[3] != _reference(raws, readout=READOUT)[3]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def server(obs_tools):
    port = _free_port()
    proc = subprocess.Popen([obs_tools.PRIORFX, "serve", "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def listening():
        assert proc.poll() is None, proc.stderr.read()
        try:
            socket.create_connection(("127.0.0.1", port), 1.0).close()
            return True
        except OSError:
            return False
    wait_for(listening, f"priorfx serve to listen on port {port}")
    yield f"http://127.0.0.1:{port}"
    proc.terminate()
    proc.wait(120)


@pytest.mark.network
def test_remote_engine_gives_the_same_frames_as_the_local_core(obs_tools, tmp_path, server):
    H_ = obs_tools
    rs, _ = H_.rs_pan(5, W, H, readout=READOUT, speed=10.0)
    raws = H_.write_frames(tmp_path / "f", "NV12", rs)
    settings = {**BASE, "engine": "remote", "remote_url": server}
    result = H_.run_harness({"canvas": [W, H], "settings": settings, "steps": [
        {"op": "wait_live", "timeout": 120},
        {"op": "feed", "tag": "remote", "dir": str(tmp_path / "f"), "wait_result": True}]}, tmp_path / "out")
    assert f"--remote {server}" in result["log_text"]
    src = _check_against(H_, result, tmp_path / "out", "remote", raws, _reference(raws, readout=READOUT))
    assert sum(s is not None for s in src) >= 4, src


def test_unreachable_remote_engine_passes_frames_through_and_says_why(obs_tools, tmp_path):
    H_ = obs_tools
    frames = [np.roll(H_.texture(W, H), 4 * k, axis=1) for k in range(3)]
    raws = H_.write_frames(tmp_path / "f", "NV12", frames)
    url = f"http://127.0.0.1:{_free_port()}"
    settings = {**BASE, "engine": "remote", "remote_url": url}
    # feed once the worker has tried the server, failed and the filter noticed
    result = H_.run_harness({"canvas": [W, H], "settings": settings, "steps": [
        {"op": "wait_down"}, {"op": "feed", "tag": "down", "dir": str(tmp_path / "f")}]}, tmp_path / "out")
    assert H_.outputs(tmp_path / "out", "down") == raws
    assert "worker exited with code 7" in result["log_text"]
    assert f"priorfx server at {url} cannot be reached" in result["log_text"]
    assert "restart in" in result["log_text"]
