"""Known-answer correction cases on a real photo panned with an exact rolling-shutter model."""
from __future__ import annotations

import numpy as np
import pytest

from priorfx.errors import InputError
from priorfx.progress import Progress
from priorfx.errors import CancelledError
from priorfx.shutter import ShutterParams, ShutterSession, correct_clip


@pytest.mark.parametrize("g", [0.5, 1.0])
def test_horizontal_pan_skew_removed_within_half_a_pixel(pan_clip, helpers, g):
    rs, gt = pan_clip(g, speed=8.0, n=6)
    out = correct_clip(rs, ShutterParams(readout=g)).frames
    for k in (2, 3):
        before = helpers.band_shifts(gt[k], rs[k])
        after = helpers.band_shifts(gt[k], out[k])
        # the input really is skewed: top and bottom bands are several pixels off
        assert np.ptp(before[:, 0]) > 2.5 * g
        assert np.abs(after).max() < 0.5, after


def test_pan_scanned_bottom_up_needs_scan_up(pan_clip, helpers):
    rs, gt = pan_clip(0.8, speed=8.0, n=5, scan="up")
    right = correct_clip(rs, ShutterParams(readout=0.8, scan="up")).frames
    wrong = correct_clip(rs, ShutterParams(readout=0.8, scan="down")).frames
    assert np.abs(helpers.band_shifts(gt[2], right[2])).max() < 0.5
    assert np.abs(helpers.band_shifts(gt[2], wrong[2])).max() > 2.0


def test_target_top_moves_rows_to_the_top_rows_instant(pan_clip, helpers):
    rs, gt = pan_clip(0.8, speed=8.0, n=5, target="top")
    out = correct_clip(rs, ShutterParams(readout=0.8, target="top")).frames
    assert np.abs(helpers.band_shifts(gt[2], out[2])).max() < 0.5


def test_static_scene_is_returned_unchanged(photo, helpers):
    still = helpers.window(photo, np.zeros(192))
    frames = [still.copy() for _ in range(4)]
    res = correct_clip(frames, ShutterParams(readout=1.0))
    for f in res.frames:
        np.testing.assert_array_equal(f, still)
    session = ShutterSession(ShutterParams(readout=1.0, lookahead=True))
    outs = [session.push(f) for f in frames] + session.flush()
    assert outs[0] is None
    assert len([o for o in outs if o is not None]) == 4
    for o in outs[1:]:
        np.testing.assert_array_equal(o, still)


def test_strength_zero_leaves_frames_alone(pan_clip):
    rs, _ = pan_clip(1.0, n=4)
    out = correct_clip(rs, ShutterParams(readout=1.0, strength=0.0)).frames
    for a, b in zip(out, rs):
        np.testing.assert_array_equal(a, b)


def test_kept_range_matches_the_whole_clip_run_after_a_warmup(pan_clip):
    """A chunk of a longer shot (warm-up frames first, one neighbour after):
    its frames are those of the whole-clip run, to the bit."""
    from priorfx.cluster.plan import shutter_warmup

    rs, _ = pan_clip(0.8, speed=6.0, n=34, shake=4.0)
    params = ShutterParams(readout=0.8)
    whole = correct_clip(rs, params).frames
    warm = shutter_warmup(params.smoothing)
    first, stop = 28, 33
    part = correct_clip(rs[first - warm:stop + 1], params, keep=range(warm, warm + stop - first))
    assert len(part.frames) == stop - first
    for a, b in zip(part.frames, whole[first:stop]):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(InputError, match="not inside the clip"):
        correct_clip(rs[:4], params, keep=range(2, 9))


def test_readout_is_estimated_within_0_1(pan_clip):
    """Changing motion (a shaky pan) reveals g; the estimate is reported."""
    for g in (0.4, 0.9):
        rs, _ = pan_clip(g, speed=6.0, n=14, shake=5.0)
        res = correct_clip(rs, ShutterParams(readout=None))
        assert res.readout_estimated
        assert abs(res.readout - g) <= 0.1, (g, res.readout, res.readout_confidence)
        assert res.readout_confidence > 0.3


def test_steady_pan_cannot_reveal_readout_and_says_so(pan_clip):
    rs, _ = pan_clip(0.8, speed=6.0, n=8)   # constant velocity: every g explains it
    res = correct_clip(rs, ShutterParams(readout=None))
    assert res.readout_confidence < 0.15
    assert res.readout == pytest.approx(0.6)  # the documented default


def test_live_session_improves_on_the_input(pan_clip, helpers):
    rs, gt = pan_clip(0.8, speed=8.0, n=6)
    for lookahead in (False, True):
        s = ShutterSession(ShutterParams(readout=0.8, lookahead=lookahead))
        outs = [o for o in (s.push(f) for f in rs) if o is not None] + s.flush()
        assert len(outs) == len(rs)
        for k in (2, 3, 4):
            assert helpers.psnr(outs[k], gt[k]) > helpers.psnr(rs[k], gt[k]) + 6


def test_moving_object_is_straightened_without_trails(photo, helpers):
    """A bright disc crosses a still background: the disc is corrected, the background is untouched."""
    h, w, g, speed = 192, 320, 1.0, 12.0
    background = helpers.window(photo, np.zeros(h))
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)

    def scene(t_rows):
        cx = 110 + speed * t_rows.reshape(-1, 1)
        disc = np.clip(36 - np.hypot(xx - cx, yy - 96), 0, 1)[..., None]
        pattern = 0.5 + 0.4 * np.sin((xx - cx)[..., None] / 3.0 + (yy / 7.0)[..., None] + np.array([0, 1, 2]))
        return (background * (1 - disc) + pattern * disc).astype(np.float32)

    tau = helpers.row_times(h, g)
    rs = [scene(k + tau) for k in range(5)]
    gt = [scene(np.full(h, float(k))) for k in range(5)]
    out = correct_clip(rs, ShutterParams(readout=g)).frames
    k = 2
    assert helpers.psnr(out[k], gt[k]) > helpers.psnr(rs[k], gt[k]) + 5
    # far from the disc, the still background comes out as it went in
    far = (slice(16, -16), slice(230, 300))
    d = np.abs(out[k][far] - gt[k][far])
    assert d.mean() < 1e-3 and np.percentile(d, 99) < 5e-3
    # around the disc (its band of rows) no smear: error small next to the disc
    ring = (slice(60, 132), slice(50, 215))
    assert np.abs(out[k][ring] - gt[k][ring]).mean() < 0.5 * np.abs(rs[k][ring] - gt[k][ring]).mean()


def test_rsgr_exposure_ramp_and_blur_are_removed(photo, helpers):
    """Global reset: row y integrates [k, k + e + g y/H]; we get the sharp frame at k back."""
    h, g, e, speed = 192, 0.8, 0.25, 10.0
    ys = np.arange(h)
    expo = e + g * ys / h
    frames, truth = [], []
    for k in range(5):
        acc = np.zeros((h, 320, 3), np.float32)
        for m in range(16):
            acc += helpers.window(photo, speed * (k + expo * (m + 0.5) / 16))
        frames.append(acc / 16 * (expo / expo.max()).astype(np.float32)[:, None, None])
        truth.append(helpers.window(photo, np.full(h, speed * k)))
    res = correct_clip(frames, ShutterParams(readout=g, mode="rsgr", exposure=e))
    out, k = res.frames, 2
    assert helpers.psnr(out[k], truth[k]) > helpers.psnr(frames[k], truth[k]) + 10
    # brightness: the top rows were 4x darker; now they match the truth
    top = slice(16, 40)
    ratio = out[k][top].mean() / truth[k][top].mean()
    assert 0.95 < ratio < 1.05


def test_clip_errors(pan_clip):
    with pytest.raises(InputError, match="no frames"):
        correct_clip([], ShutterParams())
    rs, _ = pan_clip(0.5, n=3)
    with pytest.raises(InputError, match="frame 2 is 160x96, frame 0 is 320x192"):
        correct_clip([rs[0], rs[1], rs[2][::2, ::2]], ShutterParams())
    with pytest.raises(InputError, match="shape"):
        correct_clip([rs[0][..., 0], rs[1]], ShutterParams())


def test_clip_is_cancellable(pan_clip):
    rs, _ = pan_clip(0.5, n=4)
    prog = Progress()
    prog.cancel()
    with pytest.raises(CancelledError):
        correct_clip(rs, ShutterParams(readout=0.5), progress=prog)
