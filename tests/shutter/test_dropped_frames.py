"""Frames dropped before the live session (a busy worker skips to the newest camera
frame): with the camera's timestamps they are gaps, not neighbours, so the motion
and the readout stay per frame period. Known answer from the exact forward model."""
from __future__ import annotations

import numpy as np
import pytest

from priorfx.io import camera
from priorfx.scenes.shutter import PhotoScene, render_rs
from priorfx.shutter import ShutterParams, ShutterSession
from priorfx.shutter.session import FrameClock

PERIOD_NS = 33_366_667          # 29.97 fps
JITTER_NS = 2_000_000           # +-2 ms, as a USB camera's stamps wobble


def stamps(ks, seed=0) -> list[int]:
    rng = np.random.default_rng(seed)
    return [int(10**12 + k * PERIOD_NS + rng.uniform(-JITTER_NS, JITTER_NS)) for k in ks]


@pytest.fixture(scope="module")
def scene(photo):
    # a pan with a light handheld shake (1-2 px) and roll, 320x192. (With the scene's
    # full 3-6 px shake at 0.13-0.16 cycles/frame, a velocity measured over two frames
    # is too stale to keep up: measured 8.1 dB gain without drops, 3.0 dB with drops and
    # stamps, -1.8 dB without stamps, in an earlier version of this test.)
    scene = PhotoScene(photo, (320, 192), seed=3, speed=5.0)
    scene.shake_amp *= 0.3
    return scene


def test_frame_clock_numbers_frames_through_jitter_and_drops():
    ks = [0, 1, 2, 3, 4, 5, 6, 7, 8, 10, 11, 13, 15, 16, 19, 20, 21, 22, 24, 26, 27, 29, 31, 32, 33, 36]
    clock = FrameClock()
    numbers = [clock.advance(t) for t in stamps(ks, seed=5)]
    assert numbers == ks
    assert clock.period == pytest.approx(PERIOD_NS, rel=0.03)
    # behind for longer than the window of recent steps: every other frame, period kept
    later = list(range(38, 138, 2))
    assert [clock.advance(t) for t in stamps(later, seed=6)] == later
    assert clock.period == pytest.approx(PERIOD_NS, rel=0.03)
    # no usable timestamp: each frame follows the last (the behaviour without stamps)
    assert [clock.advance(t) for t in (None, 0, stamps([29])[0])] == [137, 138, 139]


def _gain(scene, helpers, ks, with_stamps: bool, background: bool, scored) -> float:
    """Mean PSNR gain (corrected minus input, against the global-shutter truth) of
    the camera frames `scored`, NV12 through push_buffer as the OBS worker does."""
    frames, truth = render_rs(scene, ks, 0.8)
    h, w = frames[0].shape[:2]
    sess = ShutterSession(ShutterParams(readout=0.8), background_motion=background)
    gains = []
    for k, f, gt, ts in zip(ks, frames, truth, stamps(ks)):
        buf = camera.from_rgb(f, "nv12", as_bytes=True)
        out = sess.push_buffer(buf, "NV12", w, h, timestamp_ns=ts if with_stamps else None)
        if background:
            # event: this frame's motion is out, so the next is warped with motion one
            # pushed frame old, carried forward (the frame path never waits): deterministic
            assert sess._bg.wait_for(sess._clock.number + 1, timeout=60)
        if k in scored:
            fixed = camera.to_rgb([np.array(p) for p in out], "nv12", w, h)
            inp = camera.to_rgb(camera.planes(buf, "nv12", w, h), "nv12", w, h)
            gains.append(helpers.psnr(fixed, gt) - helpers.psnr(inp, gt))
    sess.close()
    return float(np.mean(gains))


@pytest.mark.parametrize("background", [False, True], ids=["zero-latency", "background-motion"])
def test_every_other_frame_dropped_is_corrected_as_without_drops(scene, helpers, background):
    """The worker keeps up for the first frames, then falls behind and gets every other
    camera frame: with timestamps the correction's gain over the input stays near the
    no-drop case and well above the old behaviour (each frame taken for the next:
    twice the motion per frame, corrected twice too far)."""
    # a third of a second kept up (the clock learns the period), then every other frame
    dropped = list(range(10)) + list(range(11, 34, 2))
    scored = set(dropped[12:])     # after the drops began: the frames both runs correct
    no_drop = _gain(scene, helpers, list(range(34)), True, background, scored)
    with_stamps = _gain(scene, helpers, dropped, True, background, scored)
    old = _gain(scene, helpers, dropped, False, background, scored)
    print(f"gain dB: no drop {no_drop:.2f}, dropped + stamps {with_stamps:.2f}, dropped, no stamps {old:.2f}")
    assert no_drop > 3, no_drop
    assert with_stamps >= 0.7 * no_drop, (no_drop, with_stamps)
    assert with_stamps >= old + 4, (with_stamps, old)


def test_auto_readout_with_dropped_frames_stays_within_its_interval(scene):
    """A third of the frames dropped at random (a busy worker): the pairs either side
    of a gap are not taken for neighbours, and the truth lies in the reported interval.
    (Before: each pushed frame was taken for the next camera frame, measured 0.23
    [0.07, 0.36] for the true 0.85.)"""
    rng = np.random.default_rng(1)
    ks = [k for k in range(70) if k < 10 or rng.random() > 1 / 3]
    frames, _ = render_rs(scene, ks, 0.85)
    h, w = frames[0].shape[:2]
    sess = ShutterSession(ShutterParams(readout=None))
    for f, ts in zip(frames, stamps(ks)):
        sess.push_buffer(camera.from_rgb(f, "nv12", as_bytes=True), "NV12", w, h, timestamp_ns=ts)
    st = sess.readout_status()
    print(st)
    assert st["source"] == "estimated", st
    assert st["low"] <= 0.85 <= st["high"], st
    assert abs(st["readout"] - 0.85) <= 0.1, st


def test_frame_clock_takes_irregular_stamps_for_consecutive_frames():
    """Stamps of when frames arrived (not a camera's clock: steps anywhere between 20
    and 80 ms) tell no gaps: every frame follows the last, as without stamps."""
    rng = np.random.default_rng(2)
    ts = 10**12 + np.cumsum(rng.uniform(20e6, 80e6, 40)).astype(np.int64)
    clock = FrameClock()
    assert [clock.advance(int(t)) for t in ts] == list(range(40))
