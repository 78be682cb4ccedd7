"""undistort() on real photos and rendered heads: faces, pixels, limits, parameters."""
from __future__ import annotations

import tracemalloc

import cv2
import numpy as np
import pytest

import priorfx.portrait as portrait
from priorfx.errors import InputError, LimitError, NoFaceError, UsageError
from priorfx.portrait import PortraitParams, PortraitResult, undistort


def _rgb(path) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB).astype(np.float32) / 255.0


@pytest.fixture(scope="module")
def selfie(sample_media):
    return _rgb(sample_media / "single_face.jpg")


# The selfie has no EXIF and its perspective alone does not say "near" clearly
# (see test_distance.py); the warp is tested with the focal length given.
PHONE = 26.0


@pytest.fixture(scope="module")
def selfie_result(selfie) -> PortraitResult:
    return undistort(selfie, PortraitParams(distance_m=1.5, focal_mm=PHONE, debug_overlay=True))


def test_selfie_is_found_estimated_close_and_only_the_head_changes(selfie, selfie_result):
    res = selfie_result
    assert res.image.shape == selfie.shape and res.image.dtype == np.float32
    assert len(res.faces) == 1
    f = res.faces[0]
    x0, y0, x1, y1 = f["box"]
    assert 150 < x0 < 230 and 150 < y0 < 220 and 340 < x1 < 420 and 360 < y1 < 440
    # An arm's-length selfie with a phone-front-camera focal length.
    assert 0.2 < f["distance_m"] < 0.6 and f["target_m"] == 1.5 and f["focal_mm"] == pytest.approx(PHONE)
    assert f["corrected"] and f["focal_source"] == "user"
    assert f["distance_low_m"] < f["distance_m"] < f["distance_high_m"]
    diff = np.abs(res.image - selfie).max(-1)
    face = diff[int(y0):int(y1), int(x0):int(x1)]
    assert face.max() > 0.2 and (face > 0.05).mean() > 0.05          # the face really changed
    # The background far from the head is untouched (lines stay straight).
    assert diff[:, :100].max() == 0 and diff[:, -100:].max() == 0 and diff[:20, :].max() == 0
    assert (diff > 0).mean() < 0.5
    assert res.debug is not None and res.debug.shape[2] == 3
    assert res.provenance["operation"] == "undistort"
    assert res.provenance["parameters"]["distance_m"] == 1.5
    assert "face-landmark" in res.provenance["models"]


def test_correction_widens_the_face_like_a_farther_camera(selfie, selfie_result):
    """Moving the camera back makes the cheeks wider relative to the nose."""
    from priorfx.priors import face

    before = face.find_faces(selfie)[0].points
    after = face.find_faces(selfie_result.image)[0].points
    width = lambda p: np.linalg.norm(p[234, :2] - p[454, :2])   # noqa: E731
    nose = lambda p: np.linalg.norm(p[129, :2] - p[358, :2])    # noqa: E731  nose wings
    assert width(after) > 1.02 * width(before)
    assert width(after) / nose(after) > 1.015 * width(before) / nose(before)


def test_rendered_head_correction_moves_landmarks_toward_the_far_render(sample_media):
    """Known answer: a textured, nearly frontal head rendered at 30 cm and at 150 cm (dolly zoom).

    (Turned heads are scored by `priorfx bench portrait`.)
    """
    from priorfx.bench import portrait as bench
    from priorfx.scenes import portrait as scenes

    rng = np.random.default_rng(3)
    head = scenes.build_head(_rgb(sample_media / "astronaut.png"), rng)
    pair = scenes.render_pair(head, _rgb(sample_media / "china.jpg"), 0.30, rng, 400, max_yaw=4, max_pitch=4)
    near, far = pair["near"], pair["far"]
    res = undistort(near["image"], PortraitParams(distance_m=1.5, focal_mm=pair["f35"]))
    assert abs(res.faces[0]["distance_m"] - 0.30) / 0.30 < 0.15
    moved = res.field.forward(near["landmarks"])
    nme_in = bench.nme(near["landmarks"], far["landmarks"])
    nme_out = bench.nme(moved, far["landmarks"])
    assert nme_out < 0.7 * nme_in, (nme_in, nme_out)
    mask = bench.face_mask(far["landmarks"], 400)
    assert bench.psnr(res.image, far["image"], mask) > bench.psnr(near["image"], far["image"], mask) + 2


def test_strength_zero_and_current_distance_leave_the_image_unchanged(selfie, selfie_result):
    out = undistort(selfie, PortraitParams(strength=0.0, focal_mm=PHONE)).image
    np.testing.assert_allclose(out, selfie, atol=1e-5)
    d = selfie_result.faces[0]["distance_m"]
    out = undistort(selfie, PortraitParams(distance_m=d, focal_mm=PHONE)).image
    assert np.abs(out - selfie).max() < 0.02


def test_change_grows_continuously_with_distance(selfie):
    mags = [np.abs(undistort(selfie, PortraitParams(distance_m=m, focal_mm=PHONE)).image - selfie).mean()
            for m in (0.5, 1.0, 3.0)]
    assert mags[0] < mags[1] < mags[2]


def test_alpha_is_warped_with_the_colour(selfie):
    rgba = np.concatenate([selfie, selfie[..., :1]], axis=2)        # alpha = red channel
    out = undistort(rgba, PortraitParams(focal_mm=PHONE)).image
    assert out.shape == rgba.shape
    np.testing.assert_allclose(out[..., 3], out[..., 0], atol=1e-6)
    assert np.abs(out[..., 3] - rgba[..., 3]).max() > 0.1


def test_several_faces_and_choosing_one(sample_media):
    group = _rgb(sample_media / "multi_face.jpg")
    res = undistort(group, PortraitParams())
    assert len(res.faces) == 5
    assert all(0.3 < f["distance_m"] < 3.0 for f in res.faces)
    # A group photo from a metre or more: its faces' perspective says far, nothing is touched.
    assert not any(f["corrected"] for f in res.faces) and np.array_equal(res.image, group)
    boxes = [f["box"] for f in res.faces]
    # Largest face first.
    sizes = [b[2] - b[0] for b in boxes]
    assert sizes[0] == max(sizes)
    one = undistort(group, PortraitParams(face=1, focal_mm=16.0))   # as if shot with a short lens: near
    assert len(one.faces) == 1 and one.faces[0]["box"] == pytest.approx(boxes[1], abs=2)
    diff = np.abs(one.image - group).max(-1)
    x0, y0, x1, y1 = boxes[0]
    mx, my = 0.2 * (x1 - x0), 0.2 * (y1 - y0)
    inner = diff[int(y0 + my):int(y1 - my), int(x0 + mx):int(x1 - mx)]
    assert inner.max() < 1e-6                       # the neighbour's face was left alone
    assert diff.max() > 0.05                        # while face 1 changed
    with pytest.raises(UsageError, match="face index 7"):
        undistort(group, PortraitParams(face=7))


def test_no_face_raises_no_face_error(sample_media):
    with pytest.raises(NoFaceError) as err:
        undistort(_rgb(sample_media / "coffee.png"), PortraitParams())
    assert err.value.exit_code == 6 and err.value.hint


def test_over_the_pixel_limit_fails_before_touching_pixels():
    huge = np.broadcast_to(np.float32(0.5), (12000, 9000, 3))   # 108 MP, no memory behind it
    with pytest.raises(LimitError, match="over the 100 MP limit"):
        undistort(huge, PortraitParams())


def test_large_image_memory_is_bounded(selfie):
    """A 12 MP image: the priors run on a small copy, the warp on the head's box in strips."""
    h, w = 3000, 4000
    img = np.zeros((h, w, 3), np.float32)
    fw = round(selfie.shape[1] * h / selfie.shape[0])
    img[:, (w - fw) // 2:(w - fw) // 2 + fw] = cv2.resize(selfie, (fw, h), interpolation=cv2.INTER_LINEAR)
    tracemalloc.start()
    try:
        res = undistort(img, PortraitParams(focal_mm=PHONE))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert res.faces and res.faces[0]["corrected"] and res.image.shape == img.shape
    # The output copy is one image; everything else together stays under one more.
    assert peak < 2.0 * img.nbytes, peak / img.nbytes


@pytest.mark.parametrize("kwargs, match", [
    ({"distance_m": -1}, "distance_m -1 is outside"),
    ({"distance_m": float("nan")}, "distance_m nan is not a finite number"),
    ({"focal_mm": 0}, "focal_mm 0 is outside"),
    ({"exif_focal_mm": 2000.0}, "exif_focal_mm 2000.0 is outside"),
    ({"strength": 1.5}, "strength 1.5 is outside"),
    ({"strength": "full"}, "strength 'full' is not a finite number"),
    ({"face": -1}, "face -1 is not an integer"),
    ({"max_faces": 0}, "max_faces 0 is not an integer"),
    ({"debug_overlay": "yes"}, "debug_overlay 'yes' is not true or false"),
])
def test_bad_parameters_are_usage_errors_naming_the_value_and_the_fix(kwargs, match):
    """One style (portrait/params.py): the project's UsageError, the message names
    the field and its bad value, the hint the fix."""
    with pytest.raises(UsageError, match=match) as err:
        PortraitParams(**kwargs)
    assert err.value.hint


def test_params_round_trip_through_json():
    import json
    from dataclasses import asdict

    p = PortraitParams(distance_m=2.0, focal_mm=28.0, strength=0.5, face=0)
    assert PortraitParams(**json.loads(json.dumps(asdict(p)))) == p


def test_wrong_array_shapes_are_input_errors():
    with pytest.raises(InputError, match="H x W x 3"):
        undistort(np.zeros((64, 64), np.float32), PortraitParams())
    with pytest.raises(InputError, match="too small"):
        undistort(np.zeros((16, 16, 3), np.float32), PortraitParams())


def test_engine_calls_the_same_function(selfie, selfie_result):
    from priorfx.engines import LocalEngine

    res = LocalEngine().undistort(selfie, PortraitParams(distance_m=1.5, focal_mm=PHONE, debug_overlay=True))
    np.testing.assert_array_equal(res.image, selfie_result.image)
    assert portrait.MAX_PIXELS == 100_000_000


def test_progress_is_reported_and_cancel_stops_the_work(selfie):
    from priorfx.errors import CancelledError
    from priorfx.progress import Progress

    seen = []
    undistort(selfie, PortraitParams(focal_mm=PHONE), progress=Progress(lambda d, t, m: seen.append((d, t, m))))
    assert seen[-1][0] == seen[-1][1] == 5 and len(seen) >= 5
    prog = Progress(lambda d, t, m: prog.cancel() if d == 2 else None)
    with pytest.raises(CancelledError):
        undistort(selfie, PortraitParams(focal_mm=PHONE), progress=prog)
