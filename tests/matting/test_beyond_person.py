"""Matting beyond the person prior: transparent subjects from a trimap, no
prior pull on objects that are not people, the prior's misses, the subject guide."""
import cv2
import numpy as np
import pytest

from priorfx.bench.matting import pymatting_alpha
from priorfx.scenes.matting import make_smoke, user_trimap
from priorfx.errors import InputError, UsageError
from priorfx.matting import MattingParams, matte_image, metrics, subject
from priorfx.priors.person import PersonMatter, person_alpha


def read_rgb(path) -> np.ndarray:
    return cv2.imread(str(path), cv2.IMREAD_COLOR)[..., ::-1].astype(np.float32) / 255.0


@pytest.fixture(scope="module")
def photos(sample_media):
    return {name: read_rgb(sample_media / name) for name in ("astronaut.png", "grace_hopper.jpg", "coffee.png")}


def test_wide_semi_transparent_smoke_beats_closed_form(photos):
    """Smoke over a real photo, soft over most of its area: a trimap whose
    unknown region is wide. Our SAD against the known alpha is below
    closed-form matting's from the same trimap, and faint smoke survives
    (no snapping to 0)."""
    size = (320, 180)
    bg = cv2.resize(photos["coffee.png"], size, interpolation=cv2.INTER_AREA)
    fg, alpha = make_smoke(size, np.random.default_rng(5))
    img = (alpha[..., None] * fg + (1 - alpha[..., None]) * bg).astype(np.float32)
    tri = user_trimap(alpha, 6)
    unknown = (tri > 0.1) & (tri < 0.9)
    assert unknown.mean() > 0.15  # a wide unknown region
    r = matte_image(img, MattingParams(), guides={"trimap": tri})
    ours, cf = metrics.sad(r.alpha, alpha), metrics.sad(pymatting_alpha(img, tri, "cf"), alpha)
    assert ours < cf, (ours, cf)
    faint = unknown & (alpha > 0.005) & (alpha < 0.02)
    assert r.alpha[faint].mean() > 0.002
    # the smoke's own colour, not the coffee behind it, where it is visible
    seen = alpha > 0.05
    fg_err = np.abs(r.fg - fg)[seen].mean()
    assert fg_err < 0.5 * np.abs(img - fg)[seen].mean() and fg_err < 0.05
    # confidence is lower on the fractional smoke than on the known regions
    assert r.confidence[unknown & (alpha > 0.2) & (alpha < 0.8)].mean() < r.confidence[~unknown].mean()


def test_the_prior_has_no_effect_with_a_trimap_on_a_non_person(photos, monkeypatch):
    img = photos["coffee.png"]
    h, w = img.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w]
    # the cup: an ellipse-shaped trimap around it, no person anywhere
    r = np.hypot((xx - 265) / 180.0, (yy - 200) / 120.0)
    tri = np.where(r < 0.8, 1.0, 0.0).astype(np.float32)
    tri[(r >= 0.8) & (r < 1.15)] = 0.5
    with_prior = matte_image(img, MattingParams(), guides={"trimap": tri})

    def run_with(prior):
        def fake(self, rgb, foreground=False):
            return prior, None
        monkeypatch.setattr(PersonMatter, "__call__", fake)
        return matte_image(img, MattingParams(), guides={"trimap": tri})

    off = run_with(np.zeros((h, w), np.float32))
    # a prior that (wrongly) sees a person over the left half of the cup
    wrong = np.zeros((h, w), np.float32)
    wrong[:, :265] = 1.0
    misled = run_with(wrong)
    for other in (off, misled):
        np.testing.assert_array_equal(with_prior.alpha, other.alpha)
        np.testing.assert_array_equal(with_prior.fg, other.fg)
        np.testing.assert_array_equal(with_prior.confidence, other.confidence)


def two_people(photos):
    """Two portraits side by side with a strip of wall between them (people
    who touch are one part of the matte: the subject guide keeps or drops
    them together)."""
    a = cv2.resize(photos["grace_hopper.jpg"], (270, 350), interpolation=cv2.INTER_AREA)
    b = cv2.resize(photos["astronaut.png"], (270, 350), interpolation=cv2.INTER_AREA)
    wall = np.zeros((350, 60, 3), np.float32) + np.float32([0.55, 0.6, 0.7])
    return np.ascontiguousarray(np.hstack([a, wall, b]))


def test_subject_point_keeps_one_of_two_people(photos):
    img = two_people(photos)
    both = matte_image(img, MattingParams())
    assert both.alpha[:, :300].mean() > 0.2 and both.alpha[:, 300:].mean() > 0.2
    left = matte_image(img, MattingParams(subject=[150, 250]))
    assert left.alpha[:, 300:].max() < 0.05  # the other person is gone
    assert np.abs(left.alpha[:, :295] - both.alpha[:, :295]).mean() < 0.01
    right = matte_image(img, MattingParams(subject=[310, 100, 600, 350]))  # a box
    assert right.alpha[:, :290].max() < 0.05 and right.alpha[:, 300:].mean() > 0.2
    assert right.provenance["frame"]["cleanup"]["kept_by_subject"] == 1


def test_subject_guide_errors(photos):
    with pytest.raises(UsageError, match="subject"):
        MattingParams(subject=[1, 2, 3]).validate()
    with pytest.raises(InputError, match="outside"):
        matte_image(photos["astronaut.png"], MattingParams(subject=[900, 10]))


def test_hole_in_a_person_is_filled_and_a_stray_fragment_dropped(photos):
    """The prior's misses, made on a real photo: a hole punched in the torso
    and a blob in the empty sky; segmentation and the face detector decide."""
    img = photos["grace_hopper.jpg"]
    prior = person_alpha(img)
    missed = prior.copy()
    missed[450:500, 250:320] = 0.0        # a hole inside the jacket
    missed[20:60, 450:500] = 1.0          # a fragment in the blue background
    assert subject.needs_check(missed)
    cleaned, info = subject.clean_prior(missed, subject.person_evidence(img))
    assert info.filled >= 1 and info.dropped >= 1
    assert cleaned[450:500, 250:320].min() == 1.0
    assert cleaned[20:60, 450:500].max() == 0.0
    # the person itself (the prior's largest part) is untouched
    n, labels, stats = cv2.connectedComponentsWithStats((prior > 0.5).astype(np.uint8), connectivity=8)[:3]
    body = labels == 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    body[450:500, 250:320] = False
    assert np.all(cleaned[body] >= prior[body] - 1e-6)


def test_an_object_held_against_the_person_comes_with_the_person(photos):
    """astronaut.png: the black helmet held in front of the suit is a few grey
    blotches in the prior and a round person region in segmentation; the
    cleanup completes all of it (it was half matted, 0.48 mean alpha), and
    the dark background beside it and the model rocket stay out."""
    r = matte_image(photos["astronaut.png"], MattingParams(quality="fast"))
    helmet = r.alpha[370:500, 310:470]
    assert helmet.mean() > 0.97 and (helmet > 0.9).mean() > 0.97
    assert r.provenance["frame"]["cleanup"]["completed"] >= 1
    assert r.alpha[200:300, 420:512].max() < 0.05  # the dark backdrop right of her
    assert r.alpha[0:100, 380:512].max() < 0.05    # the model rocket


def test_a_badge_in_the_background_colours_is_filled(photos):
    """astronaut.png: the navy name badge on her chest is a hole in the prior
    whose colours are the flag's behind her (the colour test alone kept the
    hole: mean alpha 0.63 over the badge). It lies deep inside the person
    and segmentation calls it person, so it is filled, and its soft rim
    with it (no outline left by the band solve)."""
    r = matte_image(photos["astronaut.png"], MattingParams(quality="fast"))
    badge = r.alpha[345:372, 290:325]
    assert badge.mean() > 0.98 and (badge > 0.9).mean() > 0.95, (badge.mean(), (badge > 0.9).mean())
    assert r.provenance["frame"]["cleanup"]["filled"] >= 1
    assert r.alpha[200:300, 420:512].max() < 0.05  # the backdrop beside her stays out


def test_cli_subject_point_and_bad_value(photos, cli, tmp_path):
    src = tmp_path / "two.png"
    cv2.imwrite(str(src), (two_people(photos)[..., ::-1] * 255).astype(np.uint8))
    out = tmp_path / "one.png"
    res = cli("matte", str(src), "-o", str(out), "--subject", "450,250", "--quiet")
    assert res.returncode == 0, res.stderr
    a = cv2.imread(str(out), cv2.IMREAD_UNCHANGED)[..., 3]
    assert a[:, :270].max() == 0 and a[:, 330:].mean() > 50  # only the right person
    res = cli("matte", str(src), "-o", str(out), "--subject", "1,2,3")
    assert res.returncode != 0 and "X0,Y0,X1,Y1" in res.stderr
