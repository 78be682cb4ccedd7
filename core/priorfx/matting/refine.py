"""Pure functions of the refinement: band, guides, band solve, confidence,
foreground colours, cut detection. All arrays float32 in [0, 1]."""
from __future__ import annotations

import cv2
import numpy as np

from priorfx.matting.solver import solve_band

# Prior alpha strictly between these counts as uncertain (inside the band).
LOW, HIGH = 0.03, 0.97
# Trimap coding: <= 0.1 background, >= 0.9 foreground, anything else unknown.
TRIMAP_BG, TRIMAP_FG = 0.1, 0.9
# Below / above these the refined alpha snaps to exactly 0 / 1 (solver noise).
SNAP = 0.01
# The prior's data-term weight is |2a - 1|^PRIOR_POWER: a high power trusts the
# prior only where it is nearly sure (a ~ 0 or ~ 1), not on its soft edges.
PRIOR_POWER = 32.0
# Covariance regularisation of the matting Laplacian (Levin et al.'s value).
EPS = 1e-7


def auto_band_px(height: int, width: int) -> int:
    """Half-width of the band: ~1/200 of the long side (10 px at 1080p, 19 at 4K)."""
    return max(2, int(round(max(height, width) / 200)))


def _disk(radius: int) -> np.ndarray:
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))


def uncertainty_band(prior: np.ndarray, band_px: int) -> np.ndarray:
    """Pixels to re-solve: the prior's edge and its fractional region, widened.

    The band is wider where the prior is unsure over a wider area (a soft,
    blurry transition), so its width follows both the resolution (band_px) and
    the prior's uncertainty.
    """
    hard = (prior >= 0.5).astype(np.uint8)
    edge = cv2.morphologyEx(hard, cv2.MORPH_GRADIENT, _disk(1)) > 0
    soft = (prior > LOW) & (prior < HIGH)
    return cv2.dilate((edge | soft).astype(np.uint8), _disk(band_px)) > 0


def trimap_masks(trimap: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(known foreground, known background) boolean masks of a trimap."""
    return trimap >= TRIMAP_FG, trimap <= TRIMAP_BG


def prior_agreement(prior: np.ndarray, fg: np.ndarray, bg: np.ndarray) -> float:
    """How well the prior agrees with a user trimap's known regions, in [0, 1].

    1 - mean |prior - trimap| over the known pixels, rescaled so that a 10 %
    disagreement already gives 0: a trimap around an object that is not a
    person (where the person prior is wrong) switches the prior off.
    """
    n = int(fg.sum() + bg.sum())
    if n == 0:
        return 0.0
    err = (float((1.0 - prior[fg]).sum()) + float(prior[bg].sum())) / n
    return float(np.clip(1.0 - err / 0.1, 0.0, 1.0))


def refine_alpha(image: np.ndarray, prior: np.ndarray, *, band_px: int, prior_weight: float,
                 iterations: int, trimap: np.ndarray | None = None,
                 holdout: np.ndarray | None = None, garbage: np.ndarray | None = None,
                 previous: np.ndarray | None = None, temporal_weight: np.ndarray | None = None,
                 ) -> tuple[np.ndarray, np.ndarray, dict]:
    """Refine the prior's alpha at full resolution.

    Parameters
    ----------
    image : H x W x 3 frame.
    prior : H x W prior alpha (RVM).
    band_px : half-width of the uncertainty band.
    prior_weight : data-term weight of the prior inside the band.
    iterations : conjugate-gradient iterations.
    trimap : H x W user trimap or None. With a trimap the band is its unknown
        region, and the prior's weight is scaled by `prior_agreement`.
    holdout, garbage : H x W masks (> 0.5 = set) forcing alpha to 1 / 0 exactly.
    previous, temporal_weight : the previous frame's refined alpha and a
        per-pixel weight pulling towards it (temporal stability), or None.

    Returns
    -------
    alpha, band (bool, the solved pixels), info dict.
    """
    h, w = prior.shape
    info: dict = {}
    if trimap is not None:
        fg, bg = trimap_masks(trimap)
        unknown = ~(fg | bg)
        agree = prior_agreement(prior, fg, bg)
        known = np.where(fg, 1.0, 0.0).astype(np.float32)
        info["prior_agreement"] = round(agree, 4)
    else:
        unknown = uncertainty_band(prior, band_px)
        known = (prior >= 0.5).astype(np.float32)
        agree = 1.0
    forced = np.zeros((h, w), bool)
    if holdout is not None:
        hm = holdout > 0.5
        known[hm] = 1.0
        forced |= hm
    if garbage is not None:
        gm = garbage > 0.5
        known[gm] = 0.0
        forced |= gm
    unknown &= ~forced

    # Data term: the prior where it is sure of itself ((2a-1)^2 is 1 at 0 and
    # 1, 0 at 0.5), plus the previous frame's alpha where the picture held still.
    wp = (prior_weight * agree) * np.abs(2.0 * prior - 1.0) ** PRIOR_POWER
    target = prior
    if previous is not None and temporal_weight is not None:
        wt = temporal_weight.astype(np.float32)
        tot = wp + wt
        target = np.where(tot > 0, (wp * prior + wt * previous) / np.maximum(tot, 1e-12), prior)
        wp = tot
    start = np.where(unknown, prior if trimap is None or agree > 0 else 0.5, known).astype(np.float32)
    alpha, sinfo = solve_band(image, start, unknown, target.astype(np.float32), wp.astype(np.float32),
                              iterations=iterations, eps=EPS)
    info.update(sinfo)
    band = unknown
    vals = alpha[band]
    vals[vals < SNAP] = 0.0
    vals[vals > 1.0 - SNAP] = 1.0
    alpha[band] = vals
    # Guides are exact, whatever the solver did.
    if holdout is not None:
        alpha[holdout > 0.5] = 1.0
    if garbage is not None:
        alpha[garbage > 0.5] = 0.0
    return alpha, band, info


def confidence_map(alpha: np.ndarray, prior: np.ndarray, band: np.ndarray) -> np.ndarray:
    """1 outside the solved band; inside it, lower where the refined alpha
    leaves the prior and where alpha is fractional:
    (1 - |alpha - prior|) * (0.5 + 0.5 * (2 alpha - 1)^2)."""
    conf = np.ones_like(alpha)
    a, p = alpha[band], prior[band]
    conf[band] = (1.0 - np.abs(a - p)) * (0.5 + 0.5 * np.square(2.0 * a - 1.0))
    return conf


def _box(x: np.ndarray, r: int) -> np.ndarray:
    return cv2.blur(x, (2 * r + 1, 2 * r + 1), borderType=cv2.BORDER_REFLECT)


def estimate_foreground(image: np.ndarray, alpha: np.ndarray, radii: tuple[int, ...] = (90, 6)
                        ) -> np.ndarray:
    """Foreground colours with the old background removed (blur fusion).

    Our implementation of the two-pass "approximate fast foreground colour
    estimation" of Forte and Pitie (ICIP 2021): each pass takes alpha-weighted
    local means of the foreground and background colours and moves the
    foreground estimate so that alpha F + (1 - alpha) B reproduces the pixel.
    Box filters make it O(pixels) at any radius. Where alpha is 1 the result
    is the input; where alpha is 0 it is the nearby foreground colour.
    """
    img = np.ascontiguousarray(image[..., :3], np.float32)
    a = alpha.astype(np.float32)[..., None]
    f = b = img
    for r in radii:
        wa = _box(a[..., 0], r)[..., None]
        wb = 1.0 - wa
        f_blur = _box(f * a, r) / np.maximum(wa, 1e-5)
        b_blur = _box(b * (1.0 - a), r) / np.maximum(wb, 1e-5)
        f_blur = np.where(wa > 1e-5, f_blur, img)
        b_blur = np.where(wb > 1e-5, b_blur, img)
        resid = img - a * f_blur - (1.0 - a) * b_blur
        f = np.clip(f_blur + a * resid, 0.0, 1.0)
        b = np.clip(b_blur + (1.0 - a) * resid, 0.0, 1.0)
    return np.where(a >= 1.0, img, f).astype(np.float32)


def thumbnail(image: np.ndarray, size: int = 32) -> np.ndarray:
    """A tiny colour thumbnail used to detect cuts."""
    return cv2.resize(np.ascontiguousarray(image[..., :3], np.float32), (size, size),
                      interpolation=cv2.INTER_AREA)


def cut_score(prev_thumb: np.ndarray, thumb: np.ndarray) -> float:
    """Mean absolute colour change between two thumbnails (0 same, ~0.3+ new shot)."""
    return float(np.abs(prev_thumb - thumb).mean())


def still_weight(image: np.ndarray, previous: np.ndarray, sigma: float = 0.04) -> np.ndarray:
    """Per-pixel weight in [0, 1]: 1 where the colour did not change since the
    previous frame, falling off as exp(-(change / sigma)^2)."""
    small_diff = np.abs(image[..., :3] - previous[..., :3]).max(axis=2)
    # A 3x3 max keeps an edge that moved by one pixel from counting as still.
    small_diff = cv2.dilate(small_diff, np.ones((3, 3), np.uint8))
    return np.exp(-np.square(small_diff / sigma)).astype(np.float32)
