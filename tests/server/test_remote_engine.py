"""RemoteEngine against a real `priorfx serve`: same outputs as LocalEngine, and
the failure modes a user meets (cancel, server killed mid-job, refused, token).

Tolerance: none. float32 pixels travel bit for bit, so every array of every
result must be identical; only wall-clock records in provenance (the time
stamp and per-stage timings) may differ.
"""
from __future__ import annotations

import itertools
import re
import threading

import cv2
import numpy as np
import pytest
import requests

from priorfx.engines import LocalEngine, get_engine
from priorfx.errors import (AuthError, CancelledError, EngineUnreachableError, InputError,
                            NoFaceError)
from priorfx.progress import Progress
from waits import EVENT_DEADLINE_S

pytestmark = pytest.mark.network


CLOCK_KEYS = {"created_utc", "seconds"}


def _same(a, b, path="result"):
    """Assert two results are equal: arrays bit-exact, dataclasses field by field."""
    import dataclasses
    if dataclasses.is_dataclass(a):
        assert type(a) is type(b), path
        for f in dataclasses.fields(a):
            _same(getattr(a, f.name), getattr(b, f.name), f"{path}.{f.name}")
    elif isinstance(a, np.ndarray):
        assert isinstance(b, np.ndarray) and a.dtype == b.dtype and a.shape == b.shape, path
        assert np.array_equal(a, b, equal_nan=True), f"{path} differs"
    elif isinstance(a, dict):
        keys = set(a) - CLOCK_KEYS
        assert keys == set(b) - CLOCK_KEYS, path
        for k in keys:
            _same(a[k], b[k], f"{path}[{k!r}]")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            _same(x, y, f"{path}[{i}]")
    else:
        assert a == b or (a != a and b != b), f"{path}: {a!r} != {b!r}"


@pytest.fixture(scope="module")
def selfie(models_home):
    import priorfx.io as pio
    from priorfx import samples
    samples.fetch()
    return pio.read_image(samples.sample_path("single_face.jpg"))[..., :3]


@pytest.fixture(scope="module")
def clip(models_home):
    """Six frames of real panning street footage at 320 x 136."""
    import priorfx.io as pio
    from priorfx import samples
    samples.fetch()
    frames = pio.read_frames(samples.sample_path("bikes.mp4"))
    return [cv2.resize(f, (320, 136), interpolation=cv2.INTER_AREA)
            for f in itertools.islice(iter(frames), 6)]


def test_get_engine_returns_a_working_remote_engine(server):
    from priorfx.config import Settings
    from priorfx.engines.remote import RemoteEngine
    engine = get_engine(Settings(remote=server.url, token=server.token))
    assert isinstance(engine, RemoteEngine)
    assert engine.info()["server"]["priorfx_version"] == LocalEngine().info()["priorfx_version"]


def test_undistort_remote_equals_local(server, selfie):
    from priorfx.portrait import PortraitParams
    params = PortraitParams(distance_m=1.2, strength=0.9)
    ticks = []
    remote = server.engine().undistort(selfie, params, progress=Progress(lambda *t: ticks.append(t)))
    local = LocalEngine().undistort(selfie, params)
    _same(remote, local)
    assert remote.image.flags.writeable
    assert ticks and ticks[-1][0] == ticks[-1][1]  # the server's progress reached the client


def test_server_side_errors_arrive_as_the_same_class(server):
    from priorfx.portrait import PortraitParams
    blank = np.full((240, 320, 3), 0.5, np.float32)
    with pytest.raises(NoFaceError) as remote:
        server.engine().undistort(blank, PortraitParams())
    with pytest.raises(NoFaceError) as local:
        LocalEngine().undistort(blank, PortraitParams())
    assert remote.value.message == local.value.message and remote.value.hint == local.value.hint


@pytest.mark.parametrize("readout", [0.8, None])
def test_deshutter_remote_equals_local(server, clip, readout):
    from priorfx.shutter import ShutterParams
    params = ShutterParams(readout=readout)
    _same(server.engine().deshutter(clip, params), LocalEngine().deshutter(clip, params))


def test_matte_remote_equals_local_frame_by_frame(server, clip):
    from priorfx.matting import MattingParams
    params = MattingParams(quality="fast")
    frames = clip[:3]
    remote = server.engine().matte(frames, params)
    local = LocalEngine().matte(frames, params)
    n = 0
    for r, l in itertools.zip_longest(remote, local):
        _same(r, l, f"frame {n}")
        n += 1
    assert n == 3


def test_matte_guides_travel_as_pixels(server, clip):
    from priorfx.matting import MattingParams
    frames = clip[:2]
    h, w = frames[0].shape[:2]
    trimap = np.full((h, w), 0.5, np.float32)
    trimap[:, : w // 4] = 0.0
    trimap[:, -w // 4:] = 1.0
    guides = {"trimap": trimap}
    params = MattingParams(quality="fast")
    remote = list(server.engine().matte(frames, params, guides=guides))
    local = list(LocalEngine().matte(frames, params, guides=guides))
    _same(remote, local)
    assert np.all(remote[0].alpha[:, : w // 4] == 0) and np.all(remote[0].alpha[:, -w // 4:] == 1)


def test_a_path_instead_of_pixels_is_refused(server, clip):
    from priorfx.matting import MattingParams
    with pytest.raises(InputError, match="never opens paths"):
        list(server.engine().matte(clip[:1], MattingParams(), guides={"trimap": "/etc/passwd"}))


def _stream_frames(clip):
    # A moving crop of the clip at an even size (NV12 needs even dimensions).
    return [np.ascontiguousarray(f[:128, :320]) for f in clip]


def test_stream_timestamps_reach_the_server(server, clip):
    """Camera timestamps with dropped frames travel with each push: the remote session
    numbers frames as the local one does (and differently from without stamps)."""
    from priorfx.shutter import ShutterParams, ShutterSession
    params = ShutterParams(readout=0.8)
    frames = _stream_frames(clip) * 3
    ks = list(range(10)) + list(range(11, 11 + 2 * (len(frames) - 10), 2))
    stamps = [10**12 + k * 33_366_667 for k in ks]
    local, plain = ShutterSession(params), ShutterSession(params)
    differs = False
    with server.engine().shutter_stream(params) as remote:
        for f, ts in zip(frames, stamps):
            want = local.push(f, timestamp_ns=ts)
            _same(remote.push(f, timestamp_ns=ts), want)
            differs |= not np.array_equal(want, plain.push(f))
    assert differs, "the stamps' gaps changed nothing: the test would not see them lost"


@pytest.mark.parametrize("lookahead", [False, True])
def test_stream_push_remote_equals_local(server, clip, lookahead):
    from priorfx.shutter import ShutterParams, ShutterSession
    params = ShutterParams(readout=None, lookahead=lookahead)
    frames = _stream_frames(clip)
    local = ShutterSession(params)
    with server.engine().shutter_stream(params) as remote:
        for f in frames:
            _same(remote.push(f), local.push(f))
        _same(remote.flush(), local.flush())
        assert remote.readout == local.readout and remote.frames_in == local.frames_in == len(frames)
        for f in frames[:3]:  # uint8 frames come back as uint8, as locally
            u8 = (f * 255 + 0.5).astype(np.uint8)
            out = remote.push(u8)
            _same(out, local.push(u8))
        assert out.dtype == np.uint8


def test_stream_push_buffer_nv12_with_out(server, clip):
    from priorfx.io import camera
    from priorfx.shutter import ShutterParams, ShutterSession
    params = ShutterParams(readout=0.7)
    local = ShutterSession(params)
    with server.engine().shutter_stream(params) as remote:
        for f in _stream_frames(clip):
            y, uv = camera.from_rgb(f, "NV12")
            buf = np.concatenate([y.ravel(), uv.ravel()]).tobytes()
            out = bytearray(len(buf))
            planes = remote.push_buffer(buf, "NV12", 320, 128, out=out)
            expected = local.push_buffer(buf, "NV12", 320, 128)
            _same(tuple(np.array(p) for p in planes), tuple(np.array(p) for p in expected))
            assert bytes(out) == np.concatenate([p.ravel() for p in expected]).tobytes()


def test_stream_errors_keep_the_session_usable(server, clip):
    from priorfx.shutter import ShutterParams
    frames = _stream_frames(clip)
    with server.engine().shutter_stream(ShutterParams(readout=0.7)) as remote:
        remote.push(frames[0])
        with pytest.raises(InputError, match="frame size changed"):
            remote.push(frames[1][:64])
        assert remote.push(frames[1]).shape == frames[1].shape
        with pytest.raises(InputError, match="width and height"):
            remote.push_buffer(b"\x00" * 10, "NV12", -4, 2)


def test_stream_refuses_a_bad_token_and_bad_params(server):
    import websockets.sync.client as wsc

    from priorfx.engines import protocol
    from priorfx.shutter import ShutterParams
    url = server.url.replace("http", "ws") + "/v1/shutter/stream"
    with wsc.connect(url, additional_headers={"Authorization": "Bearer nope"}) as ws:
        reply = protocol.unpack(ws.recv(timeout=60))
    assert reply["error"]["error"] == "auth"
    with wsc.connect(url, additional_headers=server.headers) as ws:
        ws.send(protocol.pack({"op": "open", "params": {"readout": 3.0}}))
        reply = protocol.unpack(ws.recv(timeout=60))
    assert reply["error"]["error"] == "usage" and "readout" in reply["error"]["message"]
    from priorfx.engines.remote import RemoteEngine
    with pytest.raises(AuthError):
        RemoteEngine(server.url, token="nope").shutter_stream(ShutterParams())


def _big_selfie(selfie, side=2400):
    return cv2.resize(selfie, (side, side), interpolation=cv2.INTER_LINEAR)


def test_cancel_from_the_client_stops_the_job_on_the_server(server, selfie, wait_until):
    from priorfx.portrait import PortraitParams
    progress = Progress(lambda done, total, msg: progress.cancel())  # cancel at the first tick
    with pytest.raises(CancelledError):
        server.engine().undistort(_big_selfie(selfie), PortraitParams(), progress=progress)
    # The job ended on the server too (cancelled, or already gone).
    wait_until(lambda: all(j["state"] == "cancelled" for j in server.get("/v1/jobs").json()),
               "the server to report the job cancelled")


def test_cancel_on_the_server_reaches_the_waiting_client(server, clip, wait_until):
    from priorfx.matting import MattingParams
    frames = [cv2.resize(f, (640, 272)) for f in clip] * 3
    errors: list[BaseException] = []

    def run():
        try:
            list(server.engine().matte(frames, MattingParams(quality="best")))
        except Exception as exc:  # any kind: the assertion below names it
            errors.append(exc)

    t = threading.Thread(target=run)
    t.start()
    job = wait_until(lambda: next((j for j in server.get("/v1/jobs").json()
                                   if j["op"] == "matte" and j["state"] == "running"), None),
                     "the matte job to run")
    r = requests.delete(f"{server.url}/v1/jobs/{job['id']}", headers=server.headers, timeout=60)
    assert r.status_code == 200
    t.join(EVENT_DEADLINE_S)
    assert not t.is_alive(), "the client never learned of the cancel"
    assert len(errors) == 1 and isinstance(errors[0], CancelledError)
    assert "cancelled on the server" in str(errors[0])


def test_connection_refused_is_engine_unreachable():
    import socket

    from priorfx.engines.remote import RemoteEngine
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again below: nothing listens there
    with pytest.raises(EngineUnreachableError, match="connection refused") as info:
        RemoteEngine(f"http://127.0.0.1:{port}", retries=1, backoff=0.01).models()
    assert "priorfx serve" in info.value.hint


def _long_shot(clip) -> list:
    """240 frames (the 6-frame clip 40 times): a matte job far longer than the time
    between seeing its first frame done and killing the server, however busy the machine."""
    return list(clip) * 40


def _job_mid_shot(s):
    """The running job once it has matted a frame; fails at once if a job already ended."""
    jobs = s.get("/v1/jobs").json()
    assert not [j for j in jobs if j["state"] not in ("queued", "running")], f"a job ended first: {jobs}"
    return next((j for j in jobs if j["state"] == "running" and 1 <= j["done"] < j["total"]), None)


# where the kill lands: waiting on the job, fetching a result, or sending more frames
WENT_AWAY = (r"server at http://127\.0\.0\.1:\d+ (went away while (job|sending results of job) [0-9a-f]{8}"
             r"|dropped the connection (during POST|while sending) /v1/jobs/[0-9a-f]+/frames)")


def test_server_killed_mid_job_raises_unreachable(start_server, clip, wait_until):
    from priorfx.matting import MattingParams
    s = start_server()
    errors: list[BaseException] = []

    def run():
        try:
            list(s.engine(retries=2, backoff=0.05).matte(_long_shot(clip), MattingParams(quality="fast")))
        except Exception as exc:  # any kind: the assertion below names it
            errors.append(exc)

    t = threading.Thread(target=run)
    t.start()
    wait_until(lambda: _job_mid_shot(s), "the job's first frame")
    s.kill()
    t.join(EVENT_DEADLINE_S)
    assert not t.is_alive(), "the client never noticed the server was gone"
    assert len(errors) == 1 and isinstance(errors[0], EngineUnreachableError), errors
    assert re.search(WENT_AWAY, str(errors[0])), errors[0]


def test_cli_with_server_killed_mid_job_leaves_no_output(start_server, clip, tmp_path, cli,
                                                          wait_until):
    import priorfx.io as pio
    s = start_server()
    src = tmp_path / "shot.mp4"
    with pio.FrameWriter(src, fps=25) as w:
        for f in _long_shot(clip):
            w.write(f)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    result: list = []
    t = threading.Thread(target=lambda: result.append(cli(
        "matte", str(src), "-o", str(out_dir / "m_%04d.png"), "--quality", "fast", "--remote", s.url,
        "--token", s.token, timeout=EVENT_DEADLINE_S)))
    t.start()
    wait_until(lambda: _job_mid_shot(s), "the job's first frame")
    s.kill()
    t.join(EVENT_DEADLINE_S)
    assert not t.is_alive(), "the CLI never noticed the server was gone"
    proc = result[0]
    assert proc.returncode == EngineUnreachableError.exit_code, proc.stderr
    assert re.search(WENT_AWAY, proc.stderr), proc.stderr
    assert list(out_dir.iterdir()) == []  # no output, no partial file or staging folder


def test_stream_to_a_killed_server_raises_unreachable(start_server, clip):
    from priorfx.shutter import ShutterParams
    s = start_server()
    frames = _stream_frames(clip)
    session = s.engine(retries=0).shutter_stream(ShutterParams(readout=0.7))
    session.push(frames[0])
    s.kill()
    with pytest.raises(EngineUnreachableError, match="closed the stream"):
        session.push(frames[1])


def test_idempotent_calls_are_retried_until_the_server_is_back(start_server):
    """The server restarts on the same port while a GET is being retried with backoff."""
    first = start_server()
    port = first.url.rsplit(":", 1)[1]
    engine = first.engine(retries=6, backoff=0.2)  # waits up to 0.2 * (2**6 - 1) = 12.6 s
    assert engine.models()
    first.stop()
    restarted: list = []
    timer = threading.Timer(0.5, lambda: restarted.append(start_server("--port", port)))
    timer.start()
    try:
        models = engine.models()  # refused at first, then answered by the new server
    finally:
        timer.join()
    assert restarted and [m["id"] for m in models] == [m["id"] for m in LocalEngine().models()]


def test_stream_limits(start_server, clip):
    from priorfx.errors import LimitError
    from priorfx.shutter import ShutterParams
    s = start_server("--max-side", "200", "--max-body-mb", "2")
    with s.engine().shutter_stream(ShutterParams(readout=0.7)) as remote:
        with pytest.raises(LimitError, match="argument 0 is 320x128"):
            remote.push(_stream_frames(clip)[0])  # 320 px wide > --max-side 200: the server says no
        with pytest.raises(LimitError, match="per message"):
            remote.push(np.zeros((720, 1280, 3), np.float32))  # 11 MB > 2 MB: refused before sending
        assert remote.push(np.ascontiguousarray(clip[0][:128, :192])).shape == (128, 192, 3)


def test_a_long_shot_goes_up_in_several_uploads_as_one_job(server, clip):
    """Tiny upload chunks force one upload per frame; the result must still equal
    one local run over the whole shot (the prior's state carries across uploads)."""
    from priorfx.matting import MattingParams
    frames = [f[:, :160] for f in clip[:4]]
    h, w = frames[0].shape[:2]
    holdouts = [np.zeros((h, w), np.float32) for _ in frames]
    for i, m in enumerate(holdouts):
        m[: 10 + 10 * i, :20] = 1.0  # a different holdout per frame
    guides = {"holdout": holdouts, "garbage": np.zeros((h, w), np.float32)}
    params = MattingParams(quality="fast")
    engine = server.engine(upload_chunk_mb=0.01)
    uploads_seen = []
    remote = []
    for r in engine.matte(iter(frames), params, guides=guides):  # an iterator: no len()
        remote.append(r)
        uploads_seen.append(max((j.get("uploads", 0) for j in server.get("/v1/jobs").json()),
                                default=0))
    local = list(LocalEngine().matte(frames, params, guides=guides))
    _same(remote, local)
    assert all(np.all(r.alpha[: 10 + 10 * i, :20] == 1.0) for i, r in enumerate(remote))
    assert len(remote) == 4
    # The shot reached the server's one job in several uploads: the second result
    # needs the second frame, so by then at least two uploads had arrived. (When the
    # first result comes back depends on load, so that is not asserted.)
    assert uploads_seen[0] >= 1 and uploads_seen[1] >= 2


def test_cli_remote_writes_the_same_pixels_as_local(server, sample, tmp_path, cli):
    import priorfx.io as pio
    local_out, remote_out = tmp_path / "local.png", tmp_path / "remote.png"
    src = str(sample("single_face.jpg"))
    a = cli("undistort", src, "-o", str(local_out), "--distance", "1.5")
    b = cli("undistort", src, "-o", str(remote_out), "--distance", "1.5",
            "--remote", server.url, "--token", server.token)
    assert a.returncode == 0 and b.returncode == 0, (a.stderr, b.stderr)
    assert np.array_equal(pio.read_image(local_out), pio.read_image(remote_out))
    wrong = cli("undistort", src, "-o", str(tmp_path / "x.png"), "--remote", server.url, "--token", "bad")
    assert wrong.returncode == AuthError.exit_code and "token was refused" in wrong.stderr
    assert not (tmp_path / "x.png").exists()


def test_a_long_clip_goes_up_in_several_uploads_for_deshutter(server, clip):
    from priorfx.shutter import ShutterParams
    params = ShutterParams(readout=None)
    engine = server.engine(upload_chunk_mb=0.3)  # 3 frames of 522 KB -> 3 uploads
    ticks = []
    remote = engine.deshutter(clip, params, progress=Progress(lambda *t: ticks.append(t)))
    _same(remote, LocalEngine().deshutter(clip, params))
    assert ticks and ticks[-1][0] == ticks[-1][1] > 0  # the server's progress reached the client


def test_uploads_beyond_the_frame_limit_are_refused(start_server, clip):
    from priorfx.errors import LimitError
    from priorfx.shutter import ShutterParams
    s = start_server("--max-frames", "4")
    with pytest.raises(LimitError, match="at most 4"):
        s.engine().deshutter(clip, ShutterParams(readout=0.7))  # 6 frames, one upload
    with pytest.raises(LimitError, match="at most 4"):
        s.engine(upload_chunk_mb=0.3).deshutter(iter(clip), ShutterParams(readout=0.7))  # unknown length


def _acescg(frames):
    """The frames as an ACEScg plate (scene-linear, values above 1 kept), converted by OCIO."""
    from priorfx import colour
    out = []
    for f in frames:
        px = np.ascontiguousarray(f[..., :3], np.float32) * np.float32(1.3)  # highlights above 1
        out.append(colour.convert(px, colour.DEFAULT_CONFIG, "sRGB - Texture", "ACEScg"))
    return out


def test_matte_with_colour_space_remote_equals_local(server, clip, selfie):
    """The colour space travels with the request; the server converts as a local run does."""
    from priorfx.colour import ColourSpec
    from priorfx.matting import MattingParams
    spec = ColourSpec("ocio://default", "ACEScg", "user")
    params = MattingParams(quality="fast")
    for frames in (_acescg(clip[:2]), _acescg([cv2.resize(selfie, (320, 240), interpolation=cv2.INTER_AREA)])):
        remote = list(server.engine().matte(frames, params, colour=spec))
        local = list(LocalEngine().matte(frames, params, colour=spec))
        _same(remote, local)
    assert remote[0].provenance["colour"]["input_space"] == "ACEScg"
    # the foreground is in the plate's encoding: opaque pixels are the plate's own values
    opaque = remote[0].alpha >= 1.0
    assert opaque.mean() > 0.1 and np.array_equal(remote[0].fg[opaque], frames[0][opaque])
    assert remote[0].fg.max() > 1.0


def test_undistort_and_deshutter_with_colour_space_remote_equals_local(server, selfie, clip):
    from priorfx.colour import ColourSpec
    from priorfx.portrait import PortraitParams
    from priorfx.shutter import ShutterParams
    spec = ColourSpec("ocio://default", "ACEScg", "user")
    plate = _acescg([selfie])[0]
    _same(server.engine().undistort(plate, PortraitParams(), colour=spec),
          LocalEngine().undistort(plate, PortraitParams(), colour=spec))
    frames = _acescg(clip)
    _same(server.engine().deshutter(frames, ShutterParams(readout=0.8), colour=spec),
          LocalEngine().deshutter(frames, ShutterParams(readout=0.8), colour=spec))


def test_colour_config_file_is_converted_on_the_client(server, clip, tmp_path):
    """A config file never travels (the server opens no paths from a request):
    the client converts, and the result is the same as a local run."""
    import PyOpenColorIO as ocio

    from priorfx.colour import ColourSpec
    from priorfx.matting import MattingParams
    cfg_path = tmp_path / "config.ocio"
    cfg_path.write_text(ocio.Config.CreateFromFile("ocio://default").serialize())
    spec = ColourSpec(str(cfg_path), "ACEScg", "user")
    frames = _acescg(clip[:1])
    params = MattingParams(quality="fast")
    _same(list(server.engine().matte(frames, params, colour=spec)),
          list(LocalEngine().matte(frames, params, colour=spec)))
