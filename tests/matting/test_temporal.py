"""Temporal handling on a still shot: exact answers of the motion-compensated blend."""
import numpy as np
import pytest

from priorfx.matting import temporal


def test_still_shot_blend_is_exact_and_gated_by_colour_change():
    """Nothing moves (flow 0, fully reliable) and the prior is unchanged: each
    band pixel takes strength x exp(-(colour change / sigma)^2) of the
    previous alpha, so frame-to-frame change shrinks by that factor."""
    h, w = 30, 40
    band = np.zeros((h, w), bool)
    band[:, 10:30] = True
    prior = np.full((h, w), 0.5, np.float32)
    image = np.full((h, w, 3), 0.4, np.float32)
    prev_image = image.copy()
    prev_image[:, 20:] += 0.04  # the right half of the band changed colour a little
    flow = np.zeros((h, w, 3), np.float32)
    flow[..., 2] = 1.0
    prev_alpha = np.full((h, w), 0.2, np.float32)
    alpha = np.full((h, w), 0.6, np.float32)
    out = temporal.temporal_blend(alpha.copy(), band, image, prior, (prev_alpha, prev_image, flow, prior), 0.85)
    assert out[5, 12] == pytest.approx(0.6 - 0.85 * 0.4, abs=1e-6)
    gate = np.exp(-(0.04 / temporal.BLEND_SIGMA) ** 2)
    assert out[5, 25] == pytest.approx(0.6 - 0.85 * gate * 0.4, abs=1e-6)
    assert (out[:, :10] == 0.6).all() and (out[:, 30:] == 0.6).all()  # outside the band
    # the frame-to-frame change in the band is what the gates leave of it
    change = np.abs(out - prev_alpha)[band].mean()
    assert change < 0.5 * np.abs(alpha - prev_alpha)[band].mean()


def test_blended_alpha_snaps_to_zero_and_one_like_the_solve():
    h, w = 10, 10
    band = np.ones((h, w), bool)
    prior = np.full((h, w), 0.5, np.float32)
    image = np.full((h, w, 3), 0.4, np.float32)
    flow = np.zeros((h, w, 3), np.float32)
    flow[..., 2] = 1.0
    prev_alpha = np.zeros((h, w), np.float32)
    prev_alpha[:, 5:] = 1.0
    alpha = np.full((h, w), 0.05, np.float32)
    alpha[:, 5:] = 0.95
    out = temporal.temporal_blend(alpha.copy(), band, image, prior, (prev_alpha, image, flow, prior), 0.85)
    # 0.05 - 0.85 * 0.05 = 0.0075 < SNAP -> 0; 0.95 + 0.85 * 0.05 = 0.9925 -> 1
    assert (out[:, :5] == 0.0).all() and (out[:, 5:] == 1.0).all()
    # a weaker blend leaves values that are still fractional as they are
    out2 = temporal.temporal_blend(alpha.copy(), band, image, prior, (prev_alpha, image, flow, prior), 0.5)
    np.testing.assert_allclose(out2[:, :5], 0.025, atol=1e-6)
