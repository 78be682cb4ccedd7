"""The Calibrate button in real libobs: clicked through libobs's own property API
while a shaking rolling-shutter camera streams in real time, with the real worker."""
from __future__ import annotations

import json
import re

import pytest

from priorfx.bench.obs import shake_frames

pytestmark = pytest.mark.host

W, H, TRUTH = 640, 360, 0.7
DEVICE = "/dev/video-calibration-test"


@pytest.fixture(scope="module")
def calibrated(obs_tools, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("calibrate")
    cams = tmp / "config"
    d = tmp / "shake"
    d.mkdir()
    for k, raw in enumerate(shake_frames(W, H, 60, TRUTH)):
        (d / f"{k:04d}.raw").write_bytes(raw)
    (d / "meta.json").write_text(json.dumps({"format": "NV12", "width": W, "height": H, "count": 60}))
    steps = [{"op": "wait_live", "timeout": 300},
             {"op": "calibrate", "tag": "cancelled", "dir": str(d), "cancel_after_s": 1.0, "timeout": 120},
             {"op": "calibrate", "tag": "calibrated", "dir": str(d), "timeout": 300},
             # normal use after the calibration: the background estimate takes over once as certain
             {"op": "watch_readout", "tag": "refining", "dir": str(d), "until": "estimated", "seconds": 60},
             {"op": "second_filter", "tag": "reloaded", "settings": "saved", "expect_calibrated": True},
             {"op": "second_filter", "tag": "same_camera", "settings": "default", "expect_calibrated": True}]
    plan = {"fps": 30, "canvas": [W, H], "probe": False, "feed_settings": {"device_id": DEVICE},
            # up to 30 s: a loaded test machine makes OBS drop frames, which breaks up the runs
            # of neighbouring frames the estimate needs (a real camera on a quiet machine: a few s)
            "settings": {"auto_readout": False, "readout": 0.5, "calibrate_seconds": 30}, "steps": steps}
    mp = pytest.MonkeyPatch()
    mp.setenv("XDG_CONFIG_HOME", str(cams))   # where the filter keeps calibrations per camera
    try:
        result = obs_tools.run_harness(plan, tmp / "out")
    finally:
        mp.undo()
    return result, cams / "priorfx" / "obs-cameras.json", obs_tools


def test_calibrate_measures_the_readout_and_uses_it(calibrated):
    result, _, H_ = calibrated
    st = H_.step(result, "calibrated")
    cal = st["calibration"]
    assert cal["state"] == "done" and cal["informative"], st
    assert abs(cal["readout"] - TRUTH) <= 0.1, cal
    assert cal["low"] <= TRUTH <= cal["high"], cal
    # progress was shown while measuring, then the value
    assert any(s.startswith("measuring:") for s in st["statuses"]), st["statuses"]
    saved = st["settings"]   # what OBS saves in the scene collection
    assert saved["readout"] == pytest.approx(cal["readout"], abs=1e-4)
    assert saved["calibrated_camera"] == f"priorfx_test_feed:{DEVICE}"
    assert f"{saved['readout']:.3f}" in saved["calibration_status"]
    # and the worker corrects with it from then on, automatic readout on, starting from it
    _starts_from_calibration(st["params"], saved)


def _starts_from_calibration(params: dict, saved: dict) -> None:
    assert saved["auto_readout"] is True and params["auto_readout"] is True
    assert params["readout"] == pytest.approx(saved["calibrated_readout"])
    assert (params["prior_low"], params["prior_high"]) == pytest.approx(
        (saved["calibrated_low"], saved["calibrated_high"]))


def test_background_estimate_refines_the_calibration_and_the_properties_show_it(calibrated):
    """Normal use after a calibration: the properties show the readout in use with its
    interval ("calibrated; refining", with the evidence gathered so far), and the stream's
    own estimate replaces it once it is as certain (on a quiet machine within seconds; on
    a loaded one the worker may gather too few neighbouring frames in the minute watched)."""
    result, _, H_ = calibrated
    cal = H_.step(result, "calibrated")["settings"]
    st = H_.step(result, "refining")
    shown = [s for s in st["shown"] if s]
    assert shown and shown[0].startswith(f"{cal['calibrated_readout']:.3f} of the frame time (95 % interval "
                                         f"{cal['calibrated_low']:.2f}-{cal['calibrated_high']:.2f}), calibrated"), shown
    final = st["settings"]["readout_status"]
    m = re.match(r"(\d\.\d+) of the frame time \(95 % interval (\d\.\d+)-(\d\.\d+)\), (?:estimated from (\d+) "
                 r"frame pairs|calibrated; refining from the video \((\d+) frame pairs so far)", final)
    assert m, shown
    g, low, high = float(m[1]), float(m[2]), float(m[3])
    pairs = int(m[4] or m[5])
    assert pairs >= 15, final   # the background estimate gathers evidence all along
    if m[4]:   # it took over: near the truth, and only as certain as the calibration
        # One draw of a calibrated 95 % interval misses the truth 1 time in 20 by design
        # (coverage is the benchmark's to check, over many cases); a single run can only
        # catch an interval that is badly too narrow: the truth must lie inside it widened
        # to 99.9 % (z 3.29 instead of 1.96), which a calibrated interval misses 1 in 1000.
        # (Seen under two CPU hogs: 0.634 (0.58-0.68) for 0.7, inside 0.55-0.72.)
        widen = 3.29 / 1.96
        assert abs(g - TRUTH) <= 0.1, final
        assert g - (g - low) * widen <= TRUTH <= g + (high - g) * widen, final
        assert high - low <= cal["calibrated_high"] - cal["calibrated_low"] + 0.01, (final, cal)
    else:
        assert g == pytest.approx(cal["calibrated_readout"], abs=1e-3), final


def test_calibration_is_stored_per_camera(calibrated):
    result, cameras, H_ = calibrated
    g = H_.step(result, "calibrated")["settings"]["calibrated_readout"]
    stored = json.loads(cameras.read_text())
    entry = stored[f"priorfx_test_feed:{DEVICE}"]
    assert entry["readout"] == pytest.approx(g, abs=1e-4) and entry["low"] <= entry["readout"] <= entry["high"]
    # a new filter on another source of the same camera takes it when its properties open
    same = H_.step(result, "same_camera")
    assert same["params"]["readout"] == pytest.approx(g) and same["params"]["auto_readout"] is True
    assert same["params"]["prior_high"] == pytest.approx(entry["high"], abs=1e-4)
    assert same["settings"]["calibrated_camera"] == f"priorfx_test_feed:{DEVICE}"


def test_calibration_comes_back_with_the_scene_collection(calibrated):
    result, _, H_ = calibrated
    g = H_.step(result, "calibrated")["settings"]["calibrated_readout"]
    again = H_.step(result, "reloaded")
    assert again["params"]["readout"] == pytest.approx(g) and again["params"]["auto_readout"] is True
    assert again["params"]["prior_high"] > again["params"]["prior_low"] > 0
    assert again["settings"]["calibrated_readout"] == pytest.approx(g)


def test_cancel_leaves_the_readout_as_it_was(calibrated):
    result, _, H_ = calibrated
    st = H_.step(result, "cancelled")
    assert st["calibration"]["state"] == "cancelled", st
    assert st["settings"]["readout"] == pytest.approx(0.5) and "calibrated_readout" not in st["settings"]
    assert "cancelled" in st["settings"]["calibration_status"]
    assert st["params"]["readout"] == pytest.approx(0.5)
    assert "calibration 1: cancelled" in result["log_text"] or "cancelled" in result["log_text"]
