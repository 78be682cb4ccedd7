"""Noisy plates: the noise estimate, the edge-preserving smoothing the band
solve reads, and what it does to a matte."""
import numpy as np
import pytest

from priorfx.matting import MattingParams, matte_image, metrics, noise


def smooth_scene(h=128, w=192):
    """Gradients and a hard step: structure without noise."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.dstack([xx / w, yy / h, 0.5 + 0.3 * np.sin(xx / 17.0)]).astype(np.float32)
    img[:, w // 2:, 0] += 0.4
    return np.clip(img, 0, 1)


@pytest.mark.parametrize("sigma", [0.006, 0.015, 0.03])
def test_noise_estimate_reads_the_noise_not_the_structure(sigma):
    clean = smooth_scene()
    noisy = clean + np.random.default_rng(1).normal(0, sigma, clean.shape).astype(np.float32)
    assert noise.estimate_noise(clean) < 0.2 * noise.NOISE_FLOOR
    # channel noise sigma -> luma (mean of three channels) sigma / sqrt(3)
    assert noise.estimate_noise(noisy) == pytest.approx(sigma / np.sqrt(3), rel=0.15)


def test_clean_frames_are_solved_as_they_are():
    clean = smooth_scene()
    assert noise.denoise_for_solve(clean, noise.estimate_noise(clean)) is clean


def test_smoothing_removes_grain_and_keeps_the_edge():
    clean = smooth_scene()
    noisy = clean + np.random.default_rng(2).normal(0, 0.02, clean.shape).astype(np.float32)
    out = noise.denoise_for_solve(noisy, noise.estimate_noise(noisy))
    flat = (slice(40, 90), slice(20, 80))
    assert np.std(out[flat] - clean[flat]) < 0.6 * np.std(noisy[flat] - clean[flat])
    # the red step at the middle column keeps its height
    w = clean.shape[1]
    step = out[:, w // 2 + 2, 0].mean() - out[:, w // 2 - 3, 0].mean()
    assert step == pytest.approx(0.4 + 5 / w, abs=0.03)


def low_contrast_composite(h=160, w=200):
    """A soft disk of warm grey over cool grey (0.2 apart in red and blue):
    exact alpha, and a contrast that grain of a few percent can confuse."""
    yy, xx = np.mgrid[0:h, 0:w]
    r = np.hypot(yy - h / 2, xx - w / 2)
    alpha = np.clip((30.0 - r) / 8.0, 0.0, 1.0).astype(np.float32)
    fg, bg = np.float32([0.55, 0.45, 0.35]), np.float32([0.35, 0.45, 0.55])
    img = alpha[..., None] * fg + (1 - alpha[..., None]) * bg
    trimap = np.full((h, w), 0.5, np.float32)
    trimap[r < 18] = 1.0
    trimap[r > 34] = 0.0
    return img.astype(np.float32), alpha, trimap


def test_a_noisy_known_composite_mattes_closer_to_the_truth(monkeypatch):
    img, alpha, trimap = low_contrast_composite()
    noisy = np.clip(img + np.random.default_rng(3).normal(0, 0.03, img.shape).astype(np.float32), 0, 1)
    with_smoothing = matte_image(noisy, MattingParams(), guides={"trimap": trimap})
    assert with_smoothing.provenance["frame"]["noise"] == pytest.approx(0.03 / np.sqrt(3), rel=0.2)
    monkeypatch.setattr(noise, "NOISE_FLOOR", np.inf)
    without = matte_image(noisy, MattingParams(), guides={"trimap": trimap})
    assert metrics.sad(with_smoothing.alpha, alpha) < 0.7 * metrics.sad(without.alpha, alpha)
