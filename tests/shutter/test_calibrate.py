"""Live calibration (`priorfx.shutter.calibrate`): the OBS Calibrate button's estimator."""
from __future__ import annotations

import numpy as np
import pytest

from priorfx.bench.obs import shake_frames
from priorfx.shutter.calibrate import CANCELLED, DONE, Calibration

W, H = 640, 360


@pytest.fixture(scope="module")
def shaking():
    """A hand-held camera shaking (changing motion) seen by a rolling shutter of g = 0.7."""
    return [np.frombuffer(raw, np.uint8, W * H).reshape(H, W) for raw in shake_frames(W, H, 60, 0.7)]


def test_shaken_camera_gives_its_readout(shaking):
    cal = Calibration(W, H, seconds=120)
    for k in range(120):
        cal.add(k, shaking[k % 60])
        if not cal.wants_frames:
            break
    assert cal.wait(120)
    assert cal.state == DONE and cal.progress == 1.0
    est = cal.result
    assert est.informative and abs(est.g - 0.7) <= 0.05, est
    assert est.low <= 0.7 <= est.high
    assert cal.pairs < 100   # it stopped early once the interval was narrow


def test_dropped_frames_are_not_taken_for_neighbours(shaking):
    """Every sixth frame missing (a host dropping frames): the pairs that remain are
    true neighbours, so the value still holds."""
    cal = Calibration(W, H, seconds=120)
    for k in range(180):
        if k % 6 != 5:
            cal.add(k, shaking[k % 60])
    assert cal.wait(120)
    assert cal.state == DONE and abs(cal.result.g - 0.7) <= 0.05, cal.result


def test_isolated_pairs_are_not_evidence(shaking):
    """Every third frame missing: each pair stands alone, where g trades off against
    the acceleration; the calibration must not claim a value from them."""
    cal = Calibration(W, H, seconds=120, max_pairs=40)
    for k in range(125):
        if k % 3 != 2:
            cal.add(k, shaking[k % 60])
    assert cal.wait(120)
    assert cal.state == DONE and not cal.result.informative, cal.result


def test_a_still_camera_cannot_tell_and_says_so(shaking):
    cal = Calibration(W, H, seconds=120, max_pairs=40)
    for k in range(45):
        cal.add(k, shaking[0])
    assert cal.wait(120)
    assert cal.state == DONE and not cal.result.informative


def test_cancel_stops_at_once_without_a_result(shaking):
    cal = Calibration(W, H, seconds=120)
    for k in range(5):
        cal.add(k, shaking[k])
    cal.cancel()
    assert cal.wait(30)
    assert cal.state == CANCELLED and not cal.wants_frames
    cal.add(6, shaking[6])   # ignored


def test_impossible_settings_are_refused():
    with pytest.raises(ValueError, match="not possible"):
        Calibration(W, H, seconds=0)


def test_a_reused_buffer_is_copied(shaking):
    """The worker hands views of shared-memory slots that the next frame overwrites."""
    cal = Calibration(W, H, seconds=120)
    slot = np.empty((H, W), np.uint8)
    for k in range(120):
        slot[:] = shaking[k % 60]
        cal.add(k, slot)
    assert cal.wait(120)
    assert cal.state == DONE and abs(cal.result.g - 0.7) <= 0.05, cal.result
