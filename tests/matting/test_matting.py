"""Matting core: exact composites, guidance, cuts, bad input, outputs."""

import cv2
import numpy as np
import pytest

from priorfx.errors import CancelledError, InputError, UsageError
from priorfx.matting import MattingParams, matte_clip, matte_image
from priorfx.matting.outputs import write_matte
from priorfx.priors.person import person_alpha
from priorfx.progress import Progress

RED = np.array([0.9, 0.25, 0.1], np.float32)
BLUE = np.array([0.1, 0.35, 0.85], np.float32)


def two_colour_composite(h=96, w=128):
    """A soft disk of one colour over another: the colour-line model of
    closed-form matting holds exactly, so alpha is recoverable exactly."""
    yy, xx = np.mgrid[0:h, 0:w]
    r = np.hypot(yy - h / 2, xx - w / 2)
    alpha = np.clip((30.0 - r) / 8.0, 0.0, 1.0).astype(np.float32)  # 8 px soft edge
    img = alpha[..., None] * RED + (1 - alpha[..., None]) * BLUE
    trimap = np.full((h, w), 0.5, np.float32)
    trimap[r < 18] = 1.0
    trimap[r > 34] = 0.0
    return img.astype(np.float32), alpha, trimap


def read_rgb(path) -> np.ndarray:
    return cv2.imread(str(path), cv2.IMREAD_COLOR)[..., ::-1].astype(np.float32) / 255.0


@pytest.fixture(scope="module")
def astronaut(sample_media):
    return read_rgb(sample_media / "astronaut.png")


def test_known_composite_alpha_is_exact_with_a_trimap(models_home):
    img, alpha, trimap = two_colour_composite()
    r = matte_image(img, MattingParams(), guides={"trimap": trimap})
    band = (trimap > 0.1) & (trimap < 0.9)
    assert np.abs(r.alpha - alpha)[band].max() < 0.02
    assert np.all(r.alpha[trimap >= 0.9] == 1.0) and np.all(r.alpha[trimap <= 0.1] == 0.0)
    # decontamination: in the soft edge the foreground is red, not the purple input
    soft = (alpha > 0.1) & (alpha < 0.9)
    fg_err = np.abs(r.fg[soft] - RED).max(axis=1).mean()
    input_err = np.abs(img[soft] - RED).max(axis=1).mean()
    assert fg_err < 0.05 < input_err
    np.testing.assert_allclose(r.fg_premult, r.fg * r.alpha[..., None], atol=1e-6)


def test_holdout_and_garbage_are_honoured_exactly(astronaut):
    h, w = astronaut.shape[:2]
    holdout = np.zeros((h, w), np.float32)
    holdout[20:120, 20:160] = 1.0  # the flag: background for the person prior
    garbage = np.zeros((h, w), np.float32)
    garbage[90:170, 200:280] = 1.0  # the face: foreground for the prior
    free = person_alpha(astronaut)
    assert free[20:120, 20:160].mean() < 0.2 and free[90:170, 200:280].mean() > 0.85
    r = matte_image(astronaut, MattingParams(), guides={"holdout": holdout, "garbage": garbage})
    assert np.all(r.alpha[holdout > 0.5] == 1.0)
    assert np.all(r.alpha[garbage > 0.5] == 0.0)
    assert np.all(r.confidence[(holdout > 0.5) | (garbage > 0.5)] == 1.0)


def test_person_matte_of_a_real_photo(astronaut):
    r = matte_image(astronaut, MattingParams(quality="fast"))
    assert r.alpha.shape == astronaut.shape[:2] and r.alpha.dtype == np.float32
    assert r.alpha[150, 256] == 1.0 and r.alpha[30, 30] == 0.0  # face, flag
    # the refinement edits only the band and stays near the prior elsewhere;
    # the cleanup completes the helmet in her arms (lower right), which the
    # prior only half saw (test_beyond_person)
    diff = np.abs(r.alpha - r.prior_alpha)
    assert diff[:340].mean() < 0.05 and diff[:, :300].mean() < 0.05
    assert diff[340:, 300:].mean() > 0.3
    assert 0.0 <= r.confidence.min() and r.confidence.max() == 1.0
    assert r.confidence[(r.alpha > 0.2) & (r.alpha < 0.8)].mean() < 1.0
    assert r.provenance["models"] == ["rvm-mobilenetv3"]
    assert r.provenance["parameters"]["quality"] == "fast"


def test_cut_resets_the_recurrent_state(astronaut, sample_media):
    other = cv2.resize(read_rgb(sample_media / "grace_hopper.jpg"), astronaut.shape[1::-1])
    clip = [astronaut, astronaut, astronaut, other, other]
    results = list(matte_clip(clip, MattingParams(quality="fast")))
    assert [r.cut for r in results] == [False, False, False, True, False]
    # after the cut the prior starts from no history: same as a fresh run
    np.testing.assert_allclose(results[3].prior_alpha, person_alpha(other), atol=1e-5)
    # without the cut frame 4 carries history, so it differs from a fresh run
    assert np.abs(results[4].prior_alpha - person_alpha(other)).max() > 1e-3


def test_a_still_is_a_clip_of_one_frame(astronaut):
    a = matte_image(astronaut, MattingParams(quality="fast")).alpha
    (b,) = [r.alpha for r in matte_clip([astronaut], MattingParams(quality="fast"))]
    np.testing.assert_array_equal(a, b)


def test_per_frame_guides_as_list_and_callable(astronaut):
    h, w = astronaut.shape[:2]
    g0 = np.zeros((h, w), np.float32)
    g1 = g0.copy()
    g1[:50, :50] = 1.0
    res = list(matte_clip([astronaut, astronaut], MattingParams(quality="fast"),
                          guides={"holdout": [g0, g1], "garbage": lambda i: None}))
    assert res[0].alpha[:50, :50].max() < 1.0 and np.all(res[1].alpha[:50, :50] == 1.0)


@pytest.mark.parametrize("guide, message", [
    (np.zeros((10, 10), np.float32), "is 10x10 but the frame is"),
    ("not an image", "is not an image"),
    (np.zeros((512, 512, 2), np.float32), "has 2 channels"),
])
def test_bad_guides(astronaut, guide, message):
    with pytest.raises(InputError, match=message):
        matte_image(astronaut, MattingParams(), guides={"trimap": guide})


def test_bad_frames_and_params(astronaut):
    with pytest.raises(InputError, match="no frames"):
        list(matte_clip([], MattingParams()))
    with pytest.raises(InputError, match="RGB or RGBA"):
        list(matte_clip([np.zeros((64, 64, 2), np.float32)]))
    with pytest.raises(InputError, match="RGB or RGBA"):
        list(matte_clip([np.zeros((64, 64), np.float32)]))
    with pytest.raises(UsageError, match="quality"):
        MattingParams(quality="ultra")
    with pytest.raises(UsageError, match="unknown guide"):
        matte_clip([astronaut], MattingParams(), guides={"roto": np.zeros((4, 4))})
    # JSON round trip as the server does it
    p = MattingParams(quality="fast", band_px=6)
    assert MattingParams(**p.to_json()) == p


@pytest.mark.parametrize("kw, names", [
    ({"temporal": 2.0}, ("temporal 2.0", "0 mattes every frame")),
    ({"temporal": float("nan")}, ("temporal nan", "default 0.5")),
    ({"band_px": 0}, ("band_px 0", "leave it unset")),
    ({"prior_weight": -1}, ("prior_weight -1", "default is 0.05")),
    ({"subject": [1, 2, 3]}, ("subject [1, 2, 3]", "--subject 640,360")),
    ({"cleanup": "yes"}, ("cleanup must be true or false, got 'yes'", "JSON true/false")),
    ({"chunk_warmup": 0}, ("chunk_warmup 0", "e.g. 32")),
])
def test_bad_params_fail_when_made_naming_value_and_fix(kw, names):
    """Checked on construction (as the server rebuilds them from JSON), the
    message names the bad value and the hint what to give instead."""
    with pytest.raises(UsageError) as err:
        MattingParams(**kw)
    for text in names:
        assert text in str(err.value)
    # a field changed in place is checked again by validate()
    p = MattingParams()
    setattr(p, *next(iter(kw.items())))
    with pytest.raises(UsageError):
        p.validate()


def test_cancel_stops_the_clip(astronaut):
    prog = Progress()
    it = matte_clip([astronaut] * 3, MattingParams(quality="fast"), progress=prog)
    next(it)
    prog.cancel()
    with pytest.raises(CancelledError):
        next(it)


def test_exr_and_png_outputs(tmp_path, astronaut):
    from priorfx.io import read_image, read_image_info

    r = matte_image(astronaut, MattingParams(quality="fast"))
    exr = write_matte(tmp_path / "m.exr", r)
    info = read_image_info(exr)
    assert set(info.channel_names) >= {
        "R", "G", "B", "A", "matte.alpha", "matte.confidence", "fg.R", "fg.G", "fg.B"}
    a = read_image(exr, channels=["matte.alpha"])[..., 0]
    np.testing.assert_allclose(a, r.alpha, atol=1e-3)  # half float
    rgba = read_image(exr, channels=["R", "G", "B", "A"])
    np.testing.assert_allclose(rgba[..., :3], r.fg_premult, atol=2e-3)
    np.testing.assert_allclose(read_image(exr, channels=["matte.confidence"])[..., 0], r.confidence, atol=1e-3)
    assert info.provenance["operation"] == "matte"
    png = write_matte(tmp_path / "m.png", r)
    back = cv2.imread(str(png), cv2.IMREAD_UNCHANGED)
    assert back.shape[2] == 4
    np.testing.assert_array_equal(back[..., 3], np.round(r.alpha * 255).astype(np.uint8))
    with pytest.raises(UsageError, match="JPEG"):
        write_matte(tmp_path / "m.jpg", r)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.exr", "m.png"]


def test_scene_linear_values_above_one_are_kept_in_opaque_foreground(astronaut):
    hdr = astronaut * 1.6  # an over-range EXR plate
    r = matte_image(hdr, MattingParams(quality="fast"))
    opaque = r.alpha >= 1.0
    assert opaque.sum() > 10000 and hdr[opaque].max() > 1.0
    np.testing.assert_array_equal(r.fg[opaque], hdr[opaque])


def test_demo_section_writes_its_pictures(tmp_path, sample_media):
    from priorfx.demo.matting import section
    from priorfx.engines import LocalEngine

    sec = section(tmp_path, LocalEngine())
    assert sec["pairs"]
    for pair in sec["pairs"]:
        for key in ("before", "after"):
            img = cv2.imread(str(tmp_path / pair[key]))
            assert img is not None and img.shape[0] > 100
    alpha = cv2.imread(str(tmp_path / "matting" / "grace_hopper_alpha.png"), cv2.IMREAD_GRAYSCALE)
    assert alpha[300, 256] == 255 and alpha[20, 20] == 0  # the person, the flag corner


def test_temporal_term_steadies_a_noisy_locked_off_shot(astronaut):
    rng = np.random.default_rng(0)
    clip = [np.clip(astronaut + rng.normal(0, 0.03, astronaut.shape).astype(np.float32), 0, 1)
            for _ in range(4)]

    def flicker(temporal):
        alphas = [r.alpha for r in matte_clip(clip, MattingParams(quality="fast", temporal=temporal))]
        return np.mean([np.abs(b - a).mean() for a, b in zip(alphas[1:], alphas[2:])])

    assert flicker(1.0) < flicker(0.0)


def test_temporal_blend_follows_motion_and_stops_where_the_prior_moved():
    from priorfx.matting import temporal_blend

    h, w = 40, 60
    image = np.full((h, w, 3), 0.5, np.float32)
    band = np.zeros((h, w), bool)
    band[:, 20:40] = True
    prior = np.full((h, w), 0.5, np.float32)
    prev_alpha = np.zeros((h, w), np.float32)
    prev_alpha[:, 33:] = 1.0  # the previous alpha, 3 px to the right of this frame's
    flow = np.zeros((h, w, 3), np.float32)
    flow[..., 0] = 3.0  # every pixel came from 3 px to its right...
    flow[..., 2] = 1.0  # ...and the flow is fully reliable
    alpha = np.full((h, w), 0.5, np.float32)
    out = temporal_blend(alpha.copy(), band, image, prior, (prev_alpha, image, flow, prior.copy()), 0.8)
    # motion-compensated: column 29 reads column 32 (0), column 31 reads 34 (1)
    assert out[5, 29] == pytest.approx(0.1, abs=1e-4) and out[5, 31] == pytest.approx(0.9, abs=1e-4)
    assert (out[:, ~band.any(axis=0)] == 0.5).all()  # outside the band: untouched
    # where the prior moved differently from the flow (a lagging edge), nothing is taken
    out2 = temporal_blend(alpha.copy(), band, image, prior + 0.3, (prev_alpha, image, flow, prior), 0.8)
    assert np.abs(out2[band] - 0.5).max() < 1e-3


def test_downsample_ratio_follows_rvm_full_body_advice():
    from priorfx.priors.person import auto_downsample_ratio

    assert auto_downsample_ratio(2160, 3840) == pytest.approx(0.2)
    assert auto_downsample_ratio(1080, 1920) == pytest.approx(0.4)
    assert auto_downsample_ratio(720, 1280) == pytest.approx(0.6)
    assert auto_downsample_ratio(512, 512) == 1.0


def test_colour_posterior_classifies_by_the_known_sides():
    from priorfx.matting import colour_posterior

    h, w = 20, 30
    image = np.zeros((h, w, 3), np.float32)
    image[:, :10] = RED  # known foreground
    image[:, 10:20] = BLUE  # known background
    image[:, 20:] = (0.5, 0.9, 0.5)  # a colour seen on neither side
    fg = np.zeros((h, w), bool)
    fg[:, :8] = True
    bg = np.zeros((h, w), bool)
    bg[:, 12:20] = True
    at = np.zeros((h, w), bool)
    at[5, [9, 10, 25]] = True  # red, blue, unseen
    q = colour_posterior(image, fg, bg, np.ones((h, w), bool), at)
    assert q[0] > 0.99 and q[1] < 0.01 and q[2] == pytest.approx(0.5)
    # only the known pixels `near` the band count: without any, nothing is known
    q = colour_posterior(image, fg, bg, np.zeros((h, w), bool), at)
    np.testing.assert_allclose(q, 0.5)


def test_colour_term_fixes_a_region_the_prior_missed(monkeypatch):
    """A red object whose tip the prior calls background: the tip's colour
    is the object's, so the refined alpha brings much of it back (the prior
    term still pulls the other way), far more than without the colour term."""
    from priorfx.matting import band as band_solve
    from priorfx.matting import refine_alpha

    h, w = 80, 120
    image = np.empty((h, w, 3), np.float32)
    image[:] = BLUE
    image[20:60, 30:90] = RED
    truth = np.zeros((h, w), np.float32)
    truth[20:60, 30:90] = 1.0
    prior = truth.copy()
    prior[20:60, 84:90] = 0.0  # the prior misses a 6 px wide strip
    common = dict(band_px=8, prior_weight=0.05, iterations=150)
    alpha, band, _ = refine_alpha(image, prior, **common)
    assert band[20:60, 84:90].all()
    err = np.abs(alpha - truth).sum()
    assert err < 0.4 * np.abs(prior - truth).sum()
    assert np.abs(alpha[truth == 0]).max() == 0.0  # the blue background stays clean
    monkeypatch.setattr(band_solve, "COLOUR_WEIGHT", 0.0)
    without, _, _ = refine_alpha(image, prior, **common)
    assert err < 0.6 * np.abs(without - truth).sum()


def test_cascadic_solve_matches_the_single_level_solve():
    """The coarse level of the cascadic solver averages targets by weight,
    so pixels without weight do not drag its start away (same answer)."""
    from priorfx.matting.solver import solve_band, solve_band_cascadic

    rng = np.random.default_rng(1)
    h, w = 96, 128
    img, alpha, _ = two_colour_composite(h, w)
    img = np.clip(img + rng.normal(0, 0.01, img.shape).astype(np.float32), 0, 1)
    unknown = (alpha > 0.0) & (alpha < 1.0)
    unknown = cv2.dilate(unknown.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
    known = (alpha >= 0.5).astype(np.float32)
    weight = np.where(rng.random((h, w)) < 0.5, 0.0, 0.05).astype(np.float32)
    target = np.where(weight > 0, alpha, 0.0).astype(np.float32)  # weightless targets are 0
    direct, _ = solve_band(img, known, unknown, target, weight, eps=1e-6, iterations=2000, tol=1e-8)
    casc, info = solve_band_cascadic(img, known, unknown, target, weight, eps=1e-6, iterations=60,
                                     tol=1e-8, min_unknown=100)
    assert "coarse" in info
    assert np.abs(casc - direct)[unknown].max() < 0.02


def test_prior_is_trusted_more_away_from_its_own_edge(monkeypatch):
    """The band's data term grows with the distance from where the prior
    hesitates (its edge), so a wide band does not let the solver wander
    where the prior is sure."""
    from priorfx.matting import band as band_solve

    seen = {}

    def capture(image, start, unknown, target, weight, **kw):
        seen.update(unknown=unknown, weight=weight)
        return start.copy(), {}

    monkeypatch.setattr(band_solve, "solve_band_cascadic", capture)
    monkeypatch.setattr(band_solve, "COLOUR_WEIGHT", 0.0)
    h, w = 40, 80
    prior = np.zeros((h, w), np.float32)
    prior[:, 40:] = 1.0
    image = np.full((h, w, 3), 0.5, np.float32)
    band_solve.refine_alpha(image, prior, band_px=8, prior_weight=0.05, iterations=10)
    # the solve sees a box around the band: find column 31, the band's first
    band_row = seen["unknown"][20]
    x0 = int(np.argmax(band_row)) - 31
    row = seen["weight"][20, x0:]
    assert band_row[x0 + 32:x0 + 48].all() and not band_row[x0 + 30]
    # the edge pixels are 39 and 40: column 33 is 6 px from it, column 38 1 px
    gain = band_solve.PRIOR_DISTANCE_GAIN
    assert row[33] == pytest.approx(0.05 * (1 + gain * (6 / 8) ** 2), rel=0.02)
    assert row[38] == pytest.approx(0.05 * (1 + gain * (1 / 8) ** 2), rel=0.02)
    assert row[33] > 5 * row[38]
