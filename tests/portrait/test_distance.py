"""Distance from the face's own perspective: known renders, no EXIF unless said."""
from __future__ import annotations

import numpy as np
import pytest

from priorfx.scenes import portrait as scenes
from priorfx.portrait import PortraitParams, geometry, undistort
from priorfx.priors import face


@pytest.fixture(scope="module")
def head():
    return scenes.build_head(scenes.load_photo("obama.jpg"), np.random.default_rng(3))


@pytest.fixture(scope="module")
def background():
    return scenes.load_photo(scenes.BACKGROUND)


def _shot(head, background, d, f35, seed=0, size=480):
    """The head, frontal-ish, at d metres with a 35 mm-equivalent focal length f35."""
    rng = np.random.default_rng(seed)
    f = geometry.focal_px(f35, size, size)
    rot = scenes.random_rotation(rng, 8.0, 6.0)
    bg_scale = min(background.shape[:2]) / (2 * (d + 2.5) * size / f * 1.05)
    return scenes.render_view(head, background, rot, np.zeros(2), d, f, (size, size), bg_scale)


def _estimate(image, **kw):
    mesh = face.find_faces(image, max_faces=1)[0]
    return geometry.estimate_distance(mesh.points, image.shape[1::-1], **kw)


def test_near_short_lens_and_far_long_lens_give_clearly_different_distances(head, background):
    # The same face size in the frame: only the perspective tells them apart.
    near = _estimate(_shot(head, background, 0.25, 18.0)["image"])
    far = _estimate(_shot(head, background, 3.0, 120.0)["image"])
    assert far.distance_m > 2.0 * near.distance_m, (near, far)
    assert near.focal_px < far.focal_px
    # The landmarks' own reading of the perspective, before calibration, already differs.
    assert near.perspective_raw > far.perspective_raw + 0.5


def test_far_face_is_returned_unchanged(head, background):
    img = _shot(head, background, 3.0, 120.0)["image"]
    res = undistort(img, PortraitParams(distance_m=1.5))
    f = res.faces[0]
    assert not f["corrected"] and f["target_m"] is None and f["warp_scale"] == 0.0
    assert np.array_equal(res.image, img)


def test_exif_that_disagrees_with_the_perspective_is_weighed_not_obeyed(head, background):
    shot = _shot(head, background, 3.0, 120.0)["image"]
    size = shot.shape[1::-1]
    alone = _estimate(shot)
    wrong = geometry.focal_px(12.0, *size)                   # EXIF says 12 mm (e.g. a broken tag)
    obeyed = _estimate(shot, user_focal_px=wrong)             # what taking it as a fact gives
    weighed = _estimate(shot, exif_focal_px=wrong)
    assert weighed.source == "perspective+exif" and obeyed.source == "user"
    # Between the two, and clearly not the EXIF-only answer.
    lo, hi = sorted([alone.distance_m, obeyed.distance_m])
    assert lo <= weighed.distance_m <= hi
    assert abs(np.log(weighed.distance_m / obeyed.distance_m)) > 0.1
    # And the right EXIF value helps: the estimate lands near the truth.
    right = _estimate(shot, exif_focal_px=geometry.focal_px(120.0, *size))
    assert abs(right.distance_m - 3.0) / 3.0 < 0.2


@pytest.mark.parametrize("d,f35", [(0.25, 20.0), (0.4, 28.0), (0.6, 45.0), (1.0, 70.0), (2.0, 120.0)])
def test_interval_contains_the_truth_on_known_renders(head, background, d, f35):
    est = _estimate(_shot(head, background, d, f35, seed=int(d * 10))["image"])
    assert est.low_m <= d <= est.high_m, est
    assert est.low_m <= est.distance_m <= est.high_m


def test_a_given_focal_length_is_a_fact_and_the_interval_is_narrow(head, background):
    shot = _shot(head, background, 0.35, 26.0)["image"]
    est = _estimate(shot, user_focal_px=geometry.focal_px(26.0, *shot.shape[1::-1]))
    assert est.source == "user"
    assert abs(est.distance_m - 0.35) / 0.35 < 0.15
    assert est.high_m / est.low_m < 1.3
