"""The live session's motion runs in its own process (priorfx.shutter.motion_process):
the frame path never waits for a low-priority thread holding the GIL."""
from __future__ import annotations

import os

import numpy as np

from priorfx.io import camera
from priorfx.shutter import ShutterParams, ShutterSession, motion_process


def _corrected_after_motion(sess, bufs, w, h, helpers, gt, start):
    """Push frames one by one, each after the previous frame's motion is out (an event,
    no sleep); return the PSNR gains over the input from frame `start + 2` on."""
    gains = []
    for k, b in enumerate(bufs):
        out = sess.push_buffer(b, "NV12", w, h)
        assert sess._bg.wait_for(sess._clock.number + 1, timeout=60)
        if k >= 2:
            fixed = camera.to_rgb([np.array(p) for p in out], "nv12", w, h)
            inp = camera.to_rgb(camera.planes(b, "nv12", w, h), "nv12", w, h)
            gains.append(helpers.psnr(fixed, gt[start + k]) - helpers.psnr(inp, gt[start + k]))
    return gains


def test_motion_runs_in_a_reused_child_process_and_corrects(pan_clip, helpers):
    rs, gt = pan_clip(0.8, speed=8.0, n=12)
    h, w = rs[0].shape[:2]
    bufs = [camera.from_rgb(f, "nv12", as_bytes=True) for f in rs]
    sess = ShutterSession(ShutterParams(readout=0.8), background_motion=True)
    gains = _corrected_after_motion(sess, bufs[:6], w, h, helpers, gt, 0)
    child = sess._bg._child
    assert child is not None and sess._bg.start_error is None
    pid = child.process.pid
    assert pid != os.getpid() and child.alive
    assert min(gains) > 2, gains
    sess.close()
    # a new session (the worker restarts one on every settings change) takes the same child
    again = ShutterSession(ShutterParams(readout=0.6), background_motion=True)
    _corrected_after_motion(again, bufs[6:9], w, h, helpers, gt, 6)
    assert again._bg._child.process.pid == pid
    again.close()
    motion_process.close_idle()
    assert child.process.wait(timeout=60) == 0      # asked to end: a clean exit


def test_a_dead_motion_process_leaves_the_motion_to_a_thread(pan_clip, helpers):
    """The child killed (out of memory, a crash): the motion goes on in this process and
    frames stay corrected."""
    rs, gt = pan_clip(0.8, speed=8.0, n=10)
    h, w = rs[0].shape[:2]
    bufs = [camera.from_rgb(f, "nv12", as_bytes=True) for f in rs]
    sess = ShutterSession(ShutterParams(readout=0.8), background_motion=True)
    _corrected_after_motion(sess, bufs[:3], w, h, helpers, gt, 0)
    child = sess._bg._child
    child.process.kill()
    child.process.wait(timeout=60)
    gains = _corrected_after_motion(sess, bufs[3:], w, h, helpers, gt, 3)
    assert sess._bg._child is None
    assert min(gains) > 2, gains
    sess.close()


def test_auto_readout_is_estimated_in_the_motion_process(pan_clip):
    """'auto' readout: the tracker runs beside the motion, in the child; the session
    reports its state (the readout in use and the pairs behind it)."""
    rs, _ = pan_clip(0.8, speed=8.0, n=20, shake=6.0)
    h, w = rs[0].shape[:2]
    bufs = [camera.from_rgb(f, "nv12", as_bytes=True) for f in rs]
    sess = ShutterSession(ShutterParams(readout=None), background_motion=True)
    for b in bufs:
        sess.push_buffer(b, "NV12", w, h)
        assert sess._bg.wait_for(sess._clock.number + 1, timeout=60)
    st = sess.readout_status()
    assert sess._bg._child is not None
    assert st["pairs"] == len(bufs) - 1, st
    sess.close()
