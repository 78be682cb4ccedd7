"""The shared-memory slot protocol and `priorfx worker shutter`, without OBS."""
from __future__ import annotations

import os
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from priorfx.io import camera
from priorfx.streaming import shm
from waits import EVENT_DEADLINE_S, wait_for

PRIORFX = str(Path(sys.executable).with_name("priorfx"))


def _header(seq, fmt="NV12", w=64, h=32, linesizes=None):
    linesizes = linesizes or tuple(rb for rb in _tight(fmt, w))
    return shm.SlotHeader(seq=seq, source_seq=seq, timestamp=seq * 1000, fmt=fmt, width=w, height=h,
                          linesizes=linesizes, size=shm.frame_size(fmt, h, linesizes))


def _tight(fmt, w):
    return {"NV12": (w, w), "I420": (w, w // 2, w // 2), "I422": (w, w // 2, w // 2), "YUY2": (2 * w,),
            "BGRA": (4 * w,), "RGBA": (4 * w,)}[fmt]


@pytest.mark.parametrize("fmt", shm.SUPPORTED)
def test_plane_layout_matches_the_camera_module(fmt):
    w, h = 96, 48
    assert shm.frame_size(fmt, h, _tight(fmt, w)) == camera.frame_size(fmt, w, h)
    assert shm.plane_rows(fmt, h) == [rows for rows, _ in camera.plane_shapes(fmt, w, h)]


def test_slot_round_trip_between_two_mappings():
    host = shm.Channel.create(64 * 32 * 2)
    try:
        worker = shm.Channel.attach(host.path)
        data = bytes(np.arange(64 * 48, dtype=np.uint32).astype(np.uint8))
        host.write("in", 1, _header(7), data)
        host.publish_input(7)
        got = worker.read("in", 1)
        assert got is not None and got[0].seq == 7 and got[0].fmt == "NV12" and got[1] == data
        assert worker.in_latest == 7
        assert worker.newest("in")[0] == 1 and worker.newest("out") is None
        host.set_params(shm.Params(readout=0.45, auto_readout=False, mode="rsgr", strength=0.5, lookahead=True))
        seq, p = worker.params()
        assert seq == 1 and p == shm.Params(readout=0.45, auto_readout=False, mode="rsgr", strength=0.5,
                                            lookahead=True)
        worker.set_state(shm.FAILED, pid=1234, error="model missing (run priorfx models fetch)")
        assert (host.state, host.worker_pid, host.error) == (shm.FAILED, 1234,
                                                             "model missing (run priorfx models fetch)")
        worker.close()
    finally:
        host.close()
    assert not os.path.exists(host.path)


def test_a_slot_being_rewritten_is_never_read():
    ch = shm.Channel.create(4096)
    try:
        ch.write("out", 0, _header(3), bytes(64 * 48))
        ch.begin_write("out", 0, _header(4))           # writer started, not finished
        assert ch.read_header("out", 0) is None and ch.read("out", 0) is None
        ch.end_write("out", 0, 4)
        assert ch.read("out", 0)[0].seq == 4
        h = ch.read_header("out", 0)
        ch.begin_write("out", 0, _header(5))           # rewritten while a reader copied it
        assert not ch.still_valid("out", 0, h.seq)
    finally:
        ch.close()


def test_frames_bigger_than_the_slots_are_refused():
    ch = shm.Channel.create(1000)
    try:
        with pytest.raises(ValueError, match="does not fit"):
            ch.begin_write("in", 0, _header(1, w=640, h=480))
    finally:
        ch.close()


def test_attach_refuses_a_file_that_is_not_a_slot_file(tmp_path):
    bad = tmp_path / "x.shm"
    bad.write_bytes(b"\0" * 4096)
    with pytest.raises(ValueError, match="not a priorfx slot file"):
        shm.Channel.attach(str(bad))


def test_attach_names_the_fix_when_the_obs_copy_is_older_than_the_worker(tmp_path):
    # an upgrade of priorfx without `priorfx install obs`: the copy beside OBS makes
    # slot files of the old version, which the new worker must refuse, naming the fix
    ch = shm.Channel.create(1000)
    try:
        old = tmp_path / "old.shm"
        data = bytearray(open(ch.path, "rb").read())
        data[8:12] = struct.pack("<I", shm.VERSION - 1)   # the field after the 8-byte magic
        old.write_bytes(bytes(data))
        with pytest.raises(ValueError, match=r"version %d, .*`priorfx install obs` again"
                           % (shm.VERSION - 1)):
            shm.Channel.attach(str(old))
    finally:
        ch.close()


def _start_worker(ch, *extra, invert=False):
    """`priorfx worker shutter` as the OBS script starts it; invert: the benchmark's
    frame-path peer instead (the same worker loop, a session that inverts bytes)."""
    from priorfx.bench.obs import invert_worker_command
    exe = invert_worker_command() if invert else [PRIORFX]
    return subprocess.Popen([*exe, "worker", "shutter", "--shm", ch.path, *extra],
                            stdin=subprocess.PIPE, stderr=subprocess.PIPE)


def _wait(pred, what="the worker"):
    wait_for(pred, what, interval=0.005)


def _push(ch, proc, seq, fmt, w, h, raw):
    ch.write("in", seq % ch.n_in, _header(seq, fmt, w, h), raw)
    ch.publish_input(seq)
    proc.stdin.write(b"\x01")
    proc.stdin.flush()
    _wait(lambda: ch.out_latest >= seq, f"the result for frame {seq}")
    i, hd = ch.newest("out")
    return hd, ch.read("out", i)[1]


def test_worker_corrects_like_the_core_and_exits_when_stdin_closes():
    from priorfx.shutter import ShutterParams, ShutterSession

    w, h = 160, 96
    rng = np.random.default_rng(3)
    base = (rng.random((h, w * 2, 3)) * 255).astype(np.uint8)
    frames = [camera.from_rgb_u8(np.ascontiguousarray(base[:, 6 * k:6 * k + w]), "I420", as_bytes=True)
              for k in range(7)]
    ch = shm.Channel.create(len(frames[0]))
    ch.set_params(shm.Params(readout=0.7, auto_readout=False, mode="rs", strength=1.0))
    proc = _start_worker(ch)
    try:
        _wait(lambda: ch.state == shm.READY)
        ref = ShutterSession(ShutterParams(readout=0.7, mode="rs", strength=1.0))
        for k, raw in enumerate(frames, 1):
            hd, got = _push(ch, proc, k, "I420", w, h, raw)
            expect = np.frombuffer(b"".join(p.tobytes() for p in ref.push_buffer(raw, "I420", w, h)), np.uint8)
            assert hd.source_seq == k
            if k >= 4:
                # The worker estimates motion on its own thread and warps with the freshest
                # (a frame old, carried forward): on a steady pan that is near the core's
                # own answer (a fraction of a pixel off, on a noise texture), far from the
                # frame passed through.
                def luma_diff(a):
                    d = np.abs(np.frombuffer(got, np.uint8).astype(int) - np.asarray(a, int))
                    return d[:w * h].reshape(h, w)[8:-8, 8:-8].mean()
                assert luma_diff(expect) < 0.5 * luma_diff(np.frombuffer(raw, np.uint8)), k
    finally:
        proc.stdin.close()
        rc = proc.wait(EVENT_DEADLINE_S)
        state = ch.state
        ch.close()
    assert rc == 0 and state == shm.EXITED


def test_worker_rebuilds_its_session_on_a_format_change():
    ch = shm.Channel.create(64 * 32 * 4)
    proc = _start_worker(ch, invert=True)
    try:
        _wait(lambda: ch.state == shm.READY)
        for seq, fmt in enumerate(["NV12", "YUY2", "BGRA"], 1):
            raw = bytes(np.arange(shm.frame_size(fmt, 32, _tight(fmt, 64))).astype(np.uint8))
            hd, got = _push(ch, proc, seq, fmt, 64, 32, raw)
            assert hd.fmt == fmt and got == bytes(255 - np.frombuffer(raw, np.uint8))
    finally:
        proc.stdin.close()
        proc.wait(EVENT_DEADLINE_S)
        ch.close()
    assert b"new frame format: YUY2 64x32" in proc.stderr.read()


def test_worker_exits_when_its_parent_is_gone():
    ch = shm.Channel.create(4096)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    proc = _start_worker(ch, "--parent", str(dead.pid), invert=True)
    try:
        assert proc.wait(EVENT_DEADLINE_S) == 0
    finally:
        ch.close()
    assert b"is gone; exiting" in proc.stderr.read()


def test_worker_on_a_missing_slot_file_says_what_to_do(cli, tmp_path):
    r = cli("worker", "shutter", "--shm", str(tmp_path / "nope.shm"))
    assert r.returncode == 3
    assert "cannot attach to slot file" in r.stderr and "restart the filter" in r.stderr


def test_worker_reports_an_unreachable_remote_engine_to_the_host():
    ch = shm.Channel.create(4096)
    proc = _start_worker(ch, "--remote", "http://127.0.0.1:9")
    try:
        rc = proc.wait(EVENT_DEADLINE_S)
        state, error = ch.state, ch.error
    finally:
        ch.close(unlink=True)
    assert rc == 7, proc.stderr.read()
    assert state == shm.FAILED and "127.0.0.1:9" in error


# ---------------------------------------------------------------- slot headers from another process

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_u32 = st.integers(0, 2 ** 32 - 1)


@settings(max_examples=300, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seq=st.integers(1, 2 ** 64 - 1), fmt=st.sampled_from(list(shm.OBS_FORMATS)) | _u32,
       width=st.sampled_from([0, 1, 64, 2 ** 15, 2 ** 32 - 1]) | _u32,
       height=st.sampled_from([0, 1, 32, 2 ** 32 - 1]) | _u32, n_planes=st.integers(0, 8) | _u32,
       linesizes=st.lists(st.sampled_from([0, 64, 128, 2 ** 31]) | _u32, min_size=4, max_size=4),
       size=st.sampled_from([0, 4096, 64 * 32 * 2, 2 ** 32 - 1]) | _u32)
def test_fuzzed_slot_headers_never_point_outside_the_slot(seq, fmt, width, height, n_planes, linesizes, size):
    ch = shm.Channel.create(64 * 32 * 4)
    try:
        shm._SLOT.pack_into(ch.mm, ch.slot_offset("in", 0), seq, seq, seq, 0, fmt, width, height,
                            n_planes, *linesizes, size)
        h = ch.read_header("in", 0)
        if h is not None:  # accepted only when it describes a frame that fits the slot
            assert h.size <= ch.capacity and h.fmt in shm.SUPPORTED + tuple(shm.OBS_FORMATS.values())
            assert shm.frame_size(h.fmt, h.height, h.linesizes) == h.size
            got = ch.read("in", 0)
            assert got is not None and len(got[1]) == h.size
    finally:
        ch.close()


def test_worker_skips_a_slot_whose_size_is_over_capacity_and_goes_on():
    ch = shm.Channel.create(64 * 32 * 4)
    proc = _start_worker(ch, invert=True)
    try:
        _wait(lambda: ch.state == shm.READY)
        # A host bug (or another process) claims a frame larger than the slot.
        shm._SLOT.pack_into(ch.mm, ch.slot_offset("in", 0), 1, 1, 1, 0, shm.FORMAT_IDS["BGRA"],
                            64, 2 ** 20, 1, 256, 0, 0, 0, 2 ** 32 - 1)
        ch.publish_input(1)
        proc.stdin.write(b"\x01")
        proc.stdin.flush()
        raw = bytes(np.arange(64 * 32 * 4).astype(np.uint8))
        hd, got = _push(ch, proc, 2, "BGRA", 64, 32, raw)  # the next good frame is served
        assert got == bytes(255 - np.frombuffer(raw, np.uint8))
        assert proc.poll() is None
    finally:
        proc.stdin.close()
        proc.wait(20)
        ch.close()
    assert b"Traceback" not in proc.stderr.read()


def test_attach_refuses_a_control_block_whose_slots_do_not_fit(tmp_path):
    ch = shm.Channel.create(4096)
    try:
        values = [shm.MAGIC, shm.VERSION, 3, 3, 2 ** 40, 0, 0, 0, 0, 0.6, 1, 0, 1.0, 0, 0, 0]
        values += [0] * (len(shm._CONTROL_FIELDS) - len(values))   # the calibration fields
        shm._CONTROL.pack_into(ch.mm, 0, *values)
        with pytest.raises(ValueError, match="do not fit"):
            shm.Channel.attach(ch.path)
    finally:
        ch.close()


def test_worker_calibrates_from_a_shaking_camera_and_can_be_cancelled():
    """The Calibrate button's protocol without OBS: the host asks through the control
    block, the worker measures g from the frames (numbered by their timestamps, so the
    frames the host dropped are gaps) and reports state, progress and the value."""
    import time

    from priorfx.bench.obs import shake_frames

    w, h, period = 320, 180, 33_333_333
    frames = shake_frames(w, h, 60, 0.7)
    ch = shm.Channel.create(len(frames[0]))
    ch.set_params(shm.Params(readout=0.5, auto_readout=False))
    proc = _start_worker(ch)
    try:
        _wait(lambda: ch.state == shm.READY)
        seq = 0

        def feed(k):   # frame k of the camera, at its own time; the host passes it on
            nonlocal seq
            seq += 1
            hd = shm.SlotHeader(seq=seq, source_seq=seq, timestamp=10 ** 12 + k * period, fmt="NV12",
                                width=w, height=h, linesizes=(w, w), size=len(frames[0]))
            ch.write("in", seq % ch.n_in, hd, frames[k % 60])
            ch.publish_input(seq)
            proc.stdin.write(b"\x01")
            proc.stdin.flush()

        first = ch.request_calibration(30)
        _wait(lambda: ch.calibration()["seq"] == first, "the worker to take the request")
        for k in range(5):
            feed(k)
        ch.cancel_calibration()
        _wait(lambda: ch.calibration()["state"] == "cancelled", "the cancel")
        second = ch.request_calibration(30)
        t0, k = time.monotonic(), 0
        while ch.calibration()["seq"] != second or ch.calibration()["state"] == "running":
            if k % 9 != 8:          # every ninth frame dropped before the filter
                feed(k)
            k += 1
            time.sleep(max(0.0, t0 + k / 30 - time.monotonic()))   # a camera's pace
            assert k < 30 * 60, ch.calibration()
        cal = ch.calibration()
        assert cal["state"] == "done" and cal["informative"], cal
        assert abs(cal["readout"] - 0.7) <= 0.1 and cal["low"] <= 0.7 <= cal["high"], cal
    finally:
        proc.stdin.close()
        proc.wait(EVENT_DEADLINE_S)
        ch.close()


def test_calibration_numbers_jittered_frames_without_drift():
    """The calibration numbers frames as the live session does (`FrameClock`): a
    camera whose stamps jitter by a few ms, with frames dropped, keeps its numbers
    over a long calibration (the shortest step taken for the period drifted a frame
    every ~10), and a repeated stamp is no new frame."""
    import numpy as np

    from priorfx.streaming.worker import CalibrationRunner

    ch = shm.Channel.create(64)
    runner = CalibrationRunner(ch, log=lambda msg: None, closed=lambda: True)
    try:
        runner.stop()
        rng = np.random.default_rng(3)
        period = 33_366_700
        kept = [k for k in range(300) if k % 7 != 5]
        numbers = []
        for k in kept:
            ts = 10 ** 12 + k * period + int(rng.uniform(-3e6, 3e6))
            numbers.append(runner.frame_number(ts))
            if k == 100:
                assert runner.frame_number(ts) is None
        # trusted after the clock's first steps: every number from then on is the camera's
        settled = [(n - numbers[20], k - kept[20]) for n, k in zip(numbers[20:], kept[20:])]
        assert all(a == b for a, b in settled), [s for s in settled if s[0] != s[1]][:5]
    finally:
        ch.close()
