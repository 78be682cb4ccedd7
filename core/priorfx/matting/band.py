"""The refinement band: where the prior hesitates (its edge and fractional
region, widened), the data term there (the prior where it is sure, colour
models of the known sides), the band solve, and the confidence of its
result. All arrays float32 in [0, 1]."""
from __future__ import annotations

import cv2
import numpy as np

from priorfx.matting.noise import denoise_for_solve, estimate_noise
from priorfx.matting.sampling import colour_posterior, sample_alpha
from priorfx.matting.solver import solve_band_cascadic

# Prior alpha strictly between these counts as uncertain (inside the band).
LOW, HIGH = 0.03, 0.97
# Trimap coding: <= 0.1 background, >= 0.9 foreground, anything else unknown.
TRIMAP_BG, TRIMAP_FG = 0.1, 0.9
# Below / above these the refined alpha snaps to exactly 0 / 1 (the solver's
# noise floor; faint hair above 2 % coverage survives).
SNAP = 0.02
# The prior's data-term weight is |2a - 1|^PRIOR_POWER: a high power trusts the
# prior only where it is nearly sure (a ~ 0 or ~ 1), not on its soft edges.
# Tuned on the benchmark with the 768 px prior: weight 0.05 and power 16 gave
# SAD 1.21, against 1.27 for 0.01 / 32, 1.25 for 0.1 / 8, 1.24 for 0.03 / 8
# and 1.40 / 1.32 for 0.1 with power 2 / 4 (no prior: 1.46). Re-measured
# with the colour term and the rule-chosen quick subset (auto_sad_ratio_cf,
# quick / full): power 16 0.801 / 0.653, 32 0.797 / 0.648, 64 0.796 / 0.646.
PRIOR_POWER = 32.0
# The band's whole data term (prior and colour) grows with the distance d from
# the prior's edge and fractional region:
# x (1 + PRIOR_DISTANCE_GAIN * (min(d, 4 band_px) / band_px)^2). A band pixel
# far from where the prior hesitates is one it is sure of, and the colour
# term keeps its share there, so clear colour evidence can still overrule the
# prior. Benchmark SAD 0.97 -> 0.94 (the prior's term alone: 0.93, but then
# it overrules the colours of a region the prior missed), and a wider band
# costs less.
PRIOR_DISTANCE_GAIN = 20.0
# Covariance regularisation of the matting Laplacian (tuned on the benchmark:
# 1e-6 beat Levin et al.'s 1e-7 and 1e-5 on clean and noisy composites), and
# the value for a user trimap's unknown region (solved without the prior,
# where Levin et al.'s 1e-7 did best).
EPS = 1e-6
EPS_TRIMAP = 1e-7
# Colour data term (`colour_posterior`): the band's colours are classified by
# colour histograms (COLOUR_BINS levels per channel) of the known foreground
# and background within COLOUR_RING x band_px of the band; a band pixel is
# pulled towards the posterior q with weight COLOUR_WEIGHT * |2q - 1|^COLOUR_POWER
# (only where one side's colours clearly dominate). Tuned on the benchmark
# (automatic band, 16 composites): SAD 1.21 without the term, 0.97 with
# 0.08 / 16 / 16 / 2 (0.01 / 8: 1.03, 0.04 / 8: 0.99, 0.1 / 32: 0.96,
# 0.3 / 32: 1.00, 1.0 / 64: 1.06; 8 or 32 levels and rings 1 / 3 / 6 / the
# whole frame were within 0.02 or worse at 0.01 / 4).
# With a user trimap (no prior term, eps 1e-7) the known sides are the
# user's and the weight is COLOUR_WEIGHT_TRIMAP: trimap SAD 2.24 without the
# term, 1.88 with 0.001 (0.0005: 1.91; at power 8, 0.0001 / 0.01: 2.12 / 2.50).
COLOUR_WEIGHT = 0.08
COLOUR_WEIGHT_TRIMAP = 0.001
# With a user trimap, the sampling model (priorfx.matting.sampling) adds a
# data term towards each unknown pixel's sampled alpha, weighted by
# SAMPLE_WEIGHT x its confidence; and the solve keeps every fractional value
# (no snapping: a faint veil of smoke over a wide region is all 1-2 % values).
SAMPLE_WEIGHT = 0.003
SNAP_TRIMAP = 0.02
SNAP_MIXED = 0.1
SAMPLE_WEIGHT_AUTO = 0.0
COLOUR_POWER = 16
COLOUR_RING = 2


def auto_band_px(height: int, width: int) -> int:
    """Half-width of the band: ~1/200 of the long side (10 px at 1080p, 19 at 4K)."""
    return max(2, int(round(max(height, width) / 200)))


def _disk(radius: int) -> np.ndarray:
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))


def uncertainty_band(prior: np.ndarray, band_px: int) -> np.ndarray:
    """Pixels to re-solve: the prior's edge and its fractional region, widened
    by band_px (Euclidean distance).

    The band is wider where the prior is unsure over a wider area (a soft,
    blurry transition), so its width follows both the resolution (band_px) and
    the prior's uncertainty.
    """
    dist = seed_distance(prior)
    return np.zeros(prior.shape, bool) if dist is None else dist <= band_px


def seed_distance(prior: np.ndarray, reach: float | None = None) -> np.ndarray | None:
    """Euclidean distance (float32 H x W) to the prior's edge and fractional
    region; None where the prior has neither (all 0 or all 1). With `reach`,
    distances beyond it may be reported as infinity (only the box of the
    seeds widened by `reach` is measured)."""
    hard = (prior >= 0.5).astype(np.uint8)
    edge = cv2.morphologyEx(hard, cv2.MORPH_GRADIENT, _disk(1)) > 0
    soft = (prior > LOW) & (prior < HIGH)
    seeds = edge | soft
    if not seeds.any():
        return None
    # a distance transform costs the same at any width, unlike a dilation
    if reach is None:
        return cv2.distanceTransform((~seeds).astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_5)
    # Within a rectangle holding every seed, the transform's shortest paths
    # stay inside it, so the box's distances are the whole frame's.
    h, w = prior.shape
    ys, xs = band_box(seeds, int(np.ceil(reach)) + 1, h, w, align=1)
    dist = np.full((h, w), np.inf, np.float32)
    dist[ys, xs] = cv2.distanceTransform((~seeds[ys, xs]).astype(np.uint8), cv2.DIST_L2,
                                         cv2.DIST_MASK_5)
    return dist
def trimap_masks(trimap: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(known foreground, known background) boolean masks of a trimap."""
    return trimap >= TRIMAP_FG, trimap <= TRIMAP_BG


def prior_agreement(prior: np.ndarray, fg: np.ndarray, bg: np.ndarray) -> float:
    """How well the prior agrees with a user trimap's known regions, in [0, 1].

    1 - mean |prior - trimap| over the known pixels, rescaled so that a 10 %
    disagreement already gives 0 (an object that is not a person). Reported
    in the provenance only: with a trimap the solve does not use the prior.
    """
    n = int(fg.sum() + bg.sum())
    if n == 0:
        return 0.0
    err = (float((1.0 - prior[fg]).sum()) + float(prior[bg].sum())) / n
    return float(np.clip(1.0 - err / 0.1, 0.0, 1.0))


def _prior_weight(prior: np.ndarray, scale: float) -> np.ndarray:
    """scale * |2 prior - 1| ** PRIOR_POWER, by repeated squaring when the power is 2^k."""
    x = np.abs(2.0 * prior - 1.0)
    k = int(np.log2(PRIOR_POWER)) if PRIOR_POWER >= 1 else -1
    if k >= 0 and 2 ** k == PRIOR_POWER:
        for _ in range(k):
            np.multiply(x, x, out=x)
    else:
        x = x ** PRIOR_POWER
    x *= scale
    return x


def refine_alpha(image: np.ndarray, prior: np.ndarray, *, band_px: int, prior_weight: float,
                 iterations: int, trimap: np.ndarray | None = None,
                 holdout: np.ndarray | None = None, garbage: np.ndarray | None = None,
                 ) -> tuple[np.ndarray, np.ndarray, dict]:
    """Refine the prior's alpha at full resolution.

    The band is solved with the matting Laplacian and a data term made of
    two parts: the prior's alpha where it is nearly sure (`_prior_weight`),
    and a colour posterior from histograms of the known foreground and
    background next to the band (`colour_posterior`), which catches the
    regions the prior got wrong whose colours say otherwise. Both grow with
    the distance from the prior's own edge (PRIOR_DISTANCE_GAIN).

    Parameters
    ----------
    image : H x W x 3 frame.
    prior : H x W prior alpha (RVM).
    band_px : half-width of the uncertainty band.
    prior_weight : data-term weight of the prior inside the band.
    iterations : conjugate-gradient iterations.
    trimap : H x W user trimap or None. With a trimap the band is its unknown
        region, solved closer to convergence (4x the iterations, tolerance
        1e-6) and without the prior's data term: on the benchmark the prior
        did not help inside a user's unknown region, even on people, while
        it hurt on objects that are not people (fire, animals); the prior
        is not even the solve's first guess, so it has no effect at all.
        The colour terms stay, learnt from the trimap's own known regions:
        the histogram posterior (COLOUR_WEIGHT_TRIMAP) and the sampling
        model (SAMPLE_WEIGHT, priorfx.matting.sampling), which is also the
        first guess and decides where values may snap to 0 / 1.
    holdout, garbage : H x W masks (> 0.5 = set) forcing alpha to 1 / 0 exactly.
    Temporal stability is a separate step (`temporal_blend`). A noisy frame
    is solved on its edge-preserving smoothing (`denoise_for_solve`; the
    noise estimate is reported as info['noise']).

    Returns
    -------
    alpha, band (bool, the solved pixels), info dict. With a trimap,
    info['reference'] (an array, not for the provenance) is the sampling
    model's alpha, what the confidence compares the solve with instead of
    the prior.
    """
    h, w = prior.shape
    info: dict = {}
    tol, eps = 1e-4, EPS
    dist = None
    if trimap is not None:
        fg, bg = trimap_masks(trimap)
        unknown = ~(fg | bg)
        agree = prior_agreement(prior, fg, bg)
        known = np.where(fg, 1.0, 0.0).astype(np.float32)
        info["prior_agreement"] = round(agree, 4)
        prior_weight, iterations, tol, eps = 0.0, 4 * iterations, 1e-6, EPS_TRIMAP
    else:
        # the solve reads distances within the colour ring only (`_refine_box`)
        dist = seed_distance(prior, band_px * (COLOUR_RING + 1) + 1)
        unknown = np.zeros((h, w), bool) if dist is None else dist <= band_px
        known = (prior >= 0.5).astype(np.float32)
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
    alpha = known
    if unknown.any():
        # Everything the band solve reads lies within the colour ring of the
        # band, so it runs on that box alone: a person fills a fraction of
        # the frame, and whole-frame masks, weights and resizes cost more
        # than the solve at 4K.
        ys, xs = band_box(unknown, band_px * (COLOUR_RING + 1) + 4, h, w)
        # noise is a property of the frame, not of the box (and the box's
        # answer stays the whole frame's)
        noise = estimate_noise(image)
        info["noise"] = round(noise, 5)
        sub, sinfo = _refine_box(denoise_for_solve(image[ys, xs], noise), prior[ys, xs], known[ys, xs], unknown[ys, xs],
                                 None if dist is None else dist[ys, xs], band_px=band_px,
                                 prior_weight=prior_weight, iterations=iterations, tol=tol, eps=eps,
                                 trimap=trimap is not None)
        alpha[ys, xs] = sub
        sampled = sinfo.pop("sampled", None)
        if sampled is not None:
            reference = known.copy()
            reference[ys, xs] = np.where(unknown[ys, xs], sampled, reference[ys, xs])
            info["reference"] = reference
        info.update(sinfo)
    else:
        info.update({"n_unknown": 0, "iterations": 0, "residual": 0.0})
    # Guides are exact, whatever the solver did.
    if holdout is not None:
        alpha[holdout > 0.5] = 1.0
    if garbage is not None:
        alpha[garbage > 0.5] = 0.0
    return alpha, unknown, info


def band_box(mask: np.ndarray, margin: int, h: int, w: int, align: int = 16) -> tuple[slice, slice]:
    """(rows, columns) of the bounding box of `mask` widened by `margin`, its
    corners on multiples of `align` (so the cascadic solver's half-size grids
    are those of the whole frame), clipped to the frame."""
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    y0 = max(0, (rows[0] - margin) // align * align)
    x0 = max(0, (cols[0] - margin) // align * align)
    y1 = min(h, -(-(rows[-1] + 1 + margin) // align) * align)
    x1 = min(w, -(-(cols[-1] + 1 + margin) // align) * align)
    return slice(y0, y1), slice(x0, x1)


def _refine_box(image: np.ndarray, prior: np.ndarray, known: np.ndarray, unknown: np.ndarray,
                dist: np.ndarray | None, *, band_px: int, prior_weight: float, iterations: int,
                tol: float, eps: float, trimap: bool) -> tuple[np.ndarray, dict]:
    """The band solve of `refine_alpha` on a box around the band: data term
    (prior where sure, colour posterior, both growing from the prior's
    edge), cascadic solve, snapping. Returns the box's alpha and the solver's info."""
    # Data term: the prior where it is nearly sure of itself (|2a-1|^PRIOR_POWER
    # is 1 at 0 and 1, small elsewhere).
    wp = _prior_weight(prior, prior_weight)
    target = prior
    # Colour term: the known sides near the band (the user's, or where
    # the prior is sure), classified by colour.
    if not trimap:
        near = dist <= band_px * (1 + COLOUR_RING)
        sides = (prior >= 1.0 - SNAP) & ~unknown, (prior <= SNAP) & ~unknown
        weight = COLOUR_WEIGHT
    else:
        near = cv2.distanceTransform((~unknown).astype(np.uint8), cv2.DIST_L2,
                                     cv2.DIST_MASK_5) <= band_px * COLOUR_RING
        sides = (known >= 1.0) & ~unknown, (known <= 0.0) & ~unknown
        weight = COLOUR_WEIGHT_TRIMAP
    target, wp = _add_colour_term(image, unknown, sides, near, weight, target, wp)
    sampled = None
    sample_weight = SAMPLE_WEIGHT if trimap else SAMPLE_WEIGHT_AUTO
    if sample_weight > 0:
        samples = sample_alpha(image, sides[0], sides[1], unknown)
        if samples is not None:
            sampled = np.full(unknown.shape, 0.5, np.float32)
            sampled[unknown] = samples.alpha
            wsam = np.zeros(unknown.shape, np.float32)
            wsam[unknown] = sample_weight * samples.confidence
            total = wp + wsam
            target = np.where(total > 0, (wp * target + wsam * sampled) / np.maximum(total, 1e-30), target)
            wp = total
    if not trimap and PRIOR_DISTANCE_GAIN > 0:
        ys, xs = np.nonzero(unknown)
        r = np.minimum(dist[ys, xs], 4.0 * band_px) / band_px
        wp[ys, xs] *= 1.0 + PRIOR_DISTANCE_GAIN * r * r
    # With a trimap the prior has no say at all, not even in the first guess:
    # the solve starts from the sampled alpha (or 0.5).
    first = prior if not trimap else (sampled if sampled is not None else 0.5)
    start = np.where(unknown, first, known).astype(np.float32)
    # a user's trimap is solved close to convergence everywhere (no pixel skipped:
    # skipping cost trimap SAD 1.880 -> 1.886 on the benchmark)
    alpha, info = solve_band_cascadic(image, start, unknown, target.astype(np.float32),
                                      wp.astype(np.float32), iterations=iterations, eps=eps, tol=tol,
                                      skip=0.0 if trimap else None)
    if trimap and sampled is not None:
        # Snap only where the colours agree that the pixel is pure: a faint
        # veil of smoke is all 1-2 % values that the colour samples call mixed.
        vals, ref = alpha[unknown], sampled[unknown]
        vals[(vals < SNAP_TRIMAP) & (ref < SNAP_MIXED)] = 0.0
        vals[(vals > 1.0 - SNAP_TRIMAP) & (ref > 1.0 - SNAP_MIXED)] = 1.0
        alpha[unknown] = vals
    else:
        alpha[unknown] = snap01(alpha[unknown], SNAP_TRIMAP if trimap else SNAP)
    if trimap and sampled is not None:
        info["sampled"] = sampled
    return alpha, info


def snap01(vals: np.ndarray, snap: float = SNAP) -> np.ndarray:
    """Values within `snap` of 0 or 1 set to exactly 0 or 1 (in place; returns
    `vals`): below the solver's noise floor a pixel is no fractional pixel."""
    if snap > 0:
        vals[vals < snap] = 0.0
        vals[vals > 1.0 - snap] = 1.0
    return vals


def _add_colour_term(image: np.ndarray, unknown: np.ndarray, sides: tuple[np.ndarray, np.ndarray],
                     near: np.ndarray, weight: float, target: np.ndarray, wp: np.ndarray
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Target and weight of the band's data term with the colour posterior
    (`colour_posterior`) added: weights add, targets mix by weight."""
    if weight <= 0:
        return target, wp
    q = colour_posterior(image, sides[0], sides[1], near, unknown)
    wc = weight * np.abs(2.0 * q - 1.0) ** COLOUR_POWER
    ys, xs = np.nonzero(unknown)
    wu = wp[ys, xs]
    target = np.array(target, np.float32, copy=True)
    total = wu + wc
    target[ys, xs] = np.where(total > 0, (wu * target[ys, xs] + wc * q) / np.maximum(total, 1e-30),
                              target[ys, xs])
    wp = np.array(wp, np.float32, copy=True)
    wp[ys, xs] = wu + wc
    return target, wp


def confidence_map(alpha: np.ndarray, prior: np.ndarray, band: np.ndarray) -> np.ndarray:
    """1 outside the solved band; inside it, lower where the refined alpha
    leaves the prior and where alpha is fractional:
    (1 - |alpha - prior|) * (0.5 + 0.5 * (2 alpha - 1)^2)."""
    conf = np.ones_like(alpha)
    a, p = alpha[band], prior[band]
    conf[band] = (1.0 - np.abs(a - p)) * (0.5 + 0.5 * np.square(2.0 * a - 1.0))
    return conf
