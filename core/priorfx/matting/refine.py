"""Pure functions of the refinement: band, colour model, guides, band solve,
confidence, foreground colours, cut detection. All arrays float32 in [0, 1]."""
from __future__ import annotations

import cv2
import numpy as np

from priorfx.matting.sampling import sample_alpha
from priorfx.matting.solver import clip01, solve_band_cascadic

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
# and 1.40 / 1.32 for 0.1 with power 2 / 4 (no prior: 1.46).
PRIOR_POWER = 16.0
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
COLOUR_BINS = 16
COLOUR_RING = 2
# Sensor noise: the matting Laplacian follows grain as if it were structure
# (ragged, eroded silhouettes). Where a frame's luma noise (`estimate_noise`)
# is above NOISE_FLOOR, the band solve reads an edge-preserving (bilateral,
# DENOISE_D px, spatial sigma DENOISE_SPACE) smoothing of the frame whose range
# sigma is DENOISE_K x the noise of one channel, faded in over NOISE_RAMP so
# that a shot near the floor does not switch it on and off between frames.
# Benchmark sequences with sigma 0.015 per channel, per-frame SAD: 0.51 ->
# 0.46 and 1.81 -> 1.42 (range sigma 2x: 1.57, 6x: 1.44; Gaussian blur or
# non-local means: worse than none on clean frames, 1.68 at best on noisy
# ones). Clean frames (noise 0.000-0.0033 on the sample photos and videos)
# are solved as before, bit for bit.
NOISE_FLOOR = 0.004
NOISE_RAMP = 0.002
DENOISE_K = 4.0
DENOISE_SPACE = 2.0
DENOISE_D = 5
# Colour and prior-agreement tolerances of the temporal blend (`temporal_blend`).
BLEND_SIGMA = 0.08
BLEND_TAU = 0.1


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


def estimate_noise(image: np.ndarray, block: int = 16, percentile: float = 10.0) -> float:
    """Standard deviation of white noise in a frame's luma (channel mean).

    Immerkær's estimator (the mean |response| of a Laplacian-difference
    kernel that cancels smooth image content, x sqrt(pi/2) / 6) per block of
    `block` x `block` pixels; the frame's figure is a low percentile of the
    blocks, i.e. its flattest areas, so texture and edges do not pass for noise.
    """
    if min(image.shape[:2]) < 3:
        return 0.0
    luma = cv2.transform(np.ascontiguousarray(image[..., :3], np.float32), np.full((1, 3), 1 / 3, np.float32))
    kernel = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], np.float32)
    r = np.abs(cv2.filter2D(luma, -1, kernel)[1:-1, 1:-1])
    h, w = r.shape
    b = min(block, h, w)
    h, w = h - h % b, w - w % b
    # INTER_AREA by a whole factor is the exact block mean
    blocks = cv2.resize(r[:h, :w], (w // b, h // b), interpolation=cv2.INTER_AREA)
    return float(np.percentile(blocks, percentile) * np.sqrt(np.pi / 2) / 6.0)


def denoise_for_solve(image: np.ndarray, noise: float) -> np.ndarray:
    """The frame the band solve reads: `image` itself at or below NOISE_FLOOR,
    else a bilateral smoothing with range sigma DENOISE_K x the per-channel
    noise (luma noise x sqrt 3), faded in over NOISE_RAMP."""
    if noise <= NOISE_FLOOR:
        return image
    ramp = min(1.0, (noise - NOISE_FLOOR) / NOISE_RAMP)
    sigma = float(DENOISE_K * np.sqrt(3.0) * noise * ramp)
    return cv2.bilateralFilter(np.ascontiguousarray(image, np.float32), DENOISE_D, sigma, DENOISE_SPACE)


def colour_posterior(image: np.ndarray, fg: np.ndarray, bg: np.ndarray, near: np.ndarray,
                     at: np.ndarray, bins: int = COLOUR_BINS) -> np.ndarray:
    """Probability (float32, one per pixel of `at`) that a pixel's colour is
    foreground, from colour histograms of the known foreground (`fg`) and
    background (`bg`) pixels within `near` (boolean masks, H x W).

    A GrabCut-like colour model, local to the band: q = pf / (pf + pb), pf and
    pb the normalised histogram counts of the pixel's colour bin (a small
    floor keeps colours seen on neither side at 0.5). It catches what the
    matting Laplacian cannot: a region the prior got wrong whose colours are
    seen elsewhere on the right side (a shoe, a glove, a hose).
    """
    def codes(mask: np.ndarray) -> np.ndarray:
        q = np.minimum((image[mask] * bins).astype(np.int32), bins - 1)
        return (q[:, 0] * bins + q[:, 1]) * bins + q[:, 2]

    hf = np.bincount(codes(fg & near), minlength=bins ** 3).astype(np.float64)
    hb = np.bincount(codes(bg & near), minlength=bins ** 3).astype(np.float64)
    hf /= max(hf.sum(), 1.0)
    hb /= max(hb.sum(), 1.0)
    floor = 1e-4
    post = (hf + floor) / (hf + hb + 2 * floor)
    return post[codes(at)].astype(np.float32)


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


def temporal_blend(alpha: np.ndarray, band: np.ndarray, image: np.ndarray, prior: np.ndarray,
                   previous: tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray],
                   strength: float, sigma: float = BLEND_SIGMA, tau: float = BLEND_TAU) -> np.ndarray:
    """Blend the band of a refined alpha with the previous frame's refined
    alpha, motion-compensated (in place; returns `alpha`).

    Each band pixel moves towards the previous alpha read where the flow says
    it came from, by strength x three gates in [0, 1]: the flow's own
    forward-backward reliability; how well its colour matches the previous
    frame there (`still_weight`, sigma); and whether the previous frame's
    *prior* alpha, warped the same way, matches this frame's prior (within
    tau). The last gate is what keeps a moving edge from lagging: on the
    boundary of a moving person the flow often follows the background, and
    the prior, which is recomputed every frame, tells where that happened.

    An explicit blend rather than a data term in the solve: the matting
    Laplacian overrode a data term weak enough not to blur motion (dtSSD
    0.97 x per-frame on the benchmark's sequences, against 0.91 for this).

    Parameters
    ----------
    previous : (alpha, image, flow, prior) of the previous frame of the shot;
        flow as in `sample_previous`.
    strength : largest fraction of the previous alpha taken (0: no blending).
    Blended values within SNAP of 0 or 1 become 0 or 1.
    """
    if strength <= 0 or not band.any():
        return alpha
    prev_alpha, prev_image, flow, prev_prior = previous
    ys, xs = np.nonzero(band)
    pa, pc, rel = sample_previous(prev_alpha, prev_image, flow, ys, xs)
    pp = sample_previous(prev_prior, prev_image, flow, ys, xs)[0]
    agree = np.exp(-np.square((pp - prior[ys, xs]) / tau))
    wt = (strength * rel * agree * still_weight(image[ys, xs], pc, sigma)).astype(np.float32)
    vals = alpha[ys, xs]
    vals += wt * (pa - vals)
    # snapped as the solve's own alpha is: a blend of a 0 with a 0.03 is no
    # new fractional pixel (benchmark sequences: SAD 0.967 -> 0.926, dtSSD
    # 1.978 -> 1.981, within noise)
    alpha[ys, xs] = snap01(vals)
    return alpha


def reliable_flow(backward: np.ndarray, forward: np.ndarray, grid_scale: tuple[float, float],
                  tau: float = 1.0) -> np.ndarray:
    """Backward flow (this frame -> previous) with a third channel saying how
    far to trust it: exp(-(e / tau)^2), e the forward-backward mismatch in
    full-resolution pixels (large at occlusions and where the flow is wrong).

    Both fields lie on the same small grid, in full-resolution pixels;
    `grid_scale` is (sx, sy), full-resolution pixels per grid step.
    """
    fh, fw = backward.shape[:2]
    sx, sy = grid_scale
    gy, gx = np.mgrid[0:fh, 0:fw].astype(np.float32)
    qx = gx + backward[..., 0] / sx
    qy = gy + backward[..., 1] / sy
    fwd = cv2.remap(forward, qx, qy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    err2 = np.square(backward[..., 0] + fwd[..., 0]) + np.square(backward[..., 1] + fwd[..., 1])
    rel = np.exp(-err2 / (tau * tau)).astype(np.float32)
    return np.dstack([backward[..., :2], rel])


def sample_previous(prev_alpha: np.ndarray, prev_image: np.ndarray, flow: np.ndarray | None,
                    ys: np.ndarray, xs: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The previous frame's alpha (N) and colour (N x 3) seen from pixels (ys, xs)
    of this frame, where the flow says each pixel was (bilinear), and how far
    to trust that (N; 1 without flow or without a reliability channel). Only
    the N band pixels are sampled, never the whole frame."""
    if flow is None:
        return prev_alpha[ys, xs], prev_image[ys, xs, :3], np.ones(len(ys), np.float32)
    h, w = prev_alpha.shape
    fh, fw = flow.shape[:2]
    # this pixel's position on the flow grid (pixel centres, as cv2.resize)
    gx = (xs + 0.5) * (fw / w) - 0.5
    gy = (ys + 0.5) * (fh / h) - 0.5
    f = _sample(np.ascontiguousarray(flow), gx, gy)
    mx, my = xs + f[:, 0], ys + f[:, 1]
    rel = f[:, 2] if flow.shape[2] > 2 else np.ones(len(ys), np.float32)
    return (_sample(prev_alpha, mx, my), _sample(np.ascontiguousarray(prev_image[..., :3]), mx, my),
            rel)


def _sample(img: np.ndarray, x: np.ndarray, y: np.ndarray, row: int = 4096) -> np.ndarray:
    """Bilinear samples of `img` at N points (N x C, or N for one channel).

    cv2.remap takes maps of fewer than 32767 columns, so the N points are
    laid out in rows of `row`."""
    n = x.shape[0]
    rows = max(1, -(-n // row))
    mx = np.zeros(rows * row, np.float32)
    my = np.zeros(rows * row, np.float32)
    mx[:n], my[:n] = x, y
    out = cv2.remap(img, mx.reshape(rows, row), my.reshape(rows, row), cv2.INTER_LINEAR,
                    borderMode=cv2.BORDER_REPLICATE)
    return out.reshape(rows * row, *img.shape[2:])[:n]


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


def _fusion_pass(img: np.ndarray, a: np.ndarray, f: np.ndarray, b: np.ndarray, r: int
                 ) -> tuple[np.ndarray, np.ndarray]:
    """One blur-fusion step: alpha-weighted local means of F and B, then move
    both so that a F + (1 - a) B reproduces the pixel."""
    a3 = a[..., None]
    wa = _box(a, r)[..., None]
    wb = 1.0 - wa
    f_blur = _box(f * a3, r) / np.maximum(wa, 1e-5)
    b_blur = _box(b * (1.0 - a3), r) / np.maximum(wb, 1e-5)
    f_blur = np.where(wa > 1e-5, f_blur, img)
    b_blur = np.where(wb > 1e-5, b_blur, img)
    resid = img - a3 * f_blur - (1.0 - a3) * b_blur
    return (clip01((f_blur + a3 * resid).astype(np.float32, copy=False)),
            clip01((b_blur + (1.0 - a3) * resid).astype(np.float32, copy=False)))


def estimate_foreground(image: np.ndarray, alpha: np.ndarray, radii: tuple[int, int] = (90, 6),
                        opaque: np.ndarray | None = None) -> np.ndarray:
    """Foreground colours with the old background removed (blur fusion).

    Our implementation of the two-pass "approximate fast foreground colour
    estimation" of Forte and Pitie (ICIP 2021): each pass takes alpha-weighted
    local means of the foreground and background colours and moves the
    foreground estimate so that alpha F + (1 - alpha) B reproduces the pixel.
    Box filters make it O(pixels) at any radius. The wide first pass only
    carries smooth colour, so it runs at a quarter of the resolution; the
    narrow second pass filters the box around the fractional pixels and
    updates only those pixels. Where alpha is 1 the result is the input (or
    `opaque`, e.g. the unclipped plate); where alpha is 0 it is the nearby
    foreground colour from the first pass.
    """
    img = np.ascontiguousarray(image[..., :3], np.float32)
    a = np.ascontiguousarray(alpha, np.float32)
    h, w = a.shape
    r1, r2 = radii
    q = 4 if min(h, w) >= 64 else 1
    sw, sh = max(1, w // q), max(1, h // q)
    small_img = cv2.resize(img, (sw, sh), interpolation=cv2.INTER_AREA)
    small_a = cv2.resize(a, (sw, sh), interpolation=cv2.INTER_AREA)
    f1, b1 = _fusion_pass(small_img, small_a, small_img, small_img, max(1, r1 // q))
    fg = cv2.resize(f1, (w, h), interpolation=cv2.INTER_LINEAR)
    soft = (a > 0.0) & (a < 1.0)
    if soft.any():
        rows, cols = np.nonzero(soft.any(axis=1))[0], np.nonzero(soft.any(axis=0))[0]
        m = 2 * r2 + 1
        y0, y1 = max(0, rows[0] - m), min(h, rows[-1] + m + 1)
        x0, x1 = max(0, cols[0] - m), min(w, cols[-1] + m + 1)
        crop = (slice(y0, y1), slice(x0, x1))
        ac = a[crop]
        f = fg[crop]
        # the background estimate is only needed on the box: upsample just that
        sx, sy = b1.shape[1] / w, b1.shape[0] / h
        to_small = np.float32([[sx, 0, (x0 + 0.5) * sx - 0.5], [0, sy, (y0 + 0.5) * sy - 0.5]])
        b = cv2.warpAffine(b1, to_small, (x1 - x0, y1 - y0), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                           borderMode=cv2.BORDER_REPLICATE)
        wa = _box(ac, r2)
        fa = _box(f * ac[..., None], r2)
        bb = _box(b * (1.0 - ac)[..., None], r2)
        # the update itself only at the fractional pixels
        ys, xs = np.nonzero(soft[crop])
        av, wav = ac[ys, xs][:, None], wa[ys, xs][:, None]
        f_blur = np.where(wav > 1e-5, fa[ys, xs] / np.maximum(wav, 1e-5), f[ys, xs])
        b_blur = np.where(1.0 - wav > 1e-5, bb[ys, xs] / np.maximum(1.0 - wav, 1e-5), b[ys, xs])
        resid = img[crop][ys, xs] - av * f_blur - (1.0 - av) * b_blur
        f[ys, xs] = clip01(f_blur + av * resid)
    full = a >= 1.0
    np.copyto(fg, img if opaque is None else opaque[..., :3], where=full[..., None])
    return fg


def estimate_foreground_multilevel(image: np.ndarray, alpha: np.ndarray,
                                   opaque: np.ndarray | None = None, margin: int = 8) -> np.ndarray:
    """Foreground colours by pymatting's multi-level foreground estimation
    (Germer et al. 2020: F and B smooth, alpha F + (1 - alpha) B = I, solved
    coarse to fine) on the box around the fractional pixels.

    Used with a user trimap, whose unknown region may be wide and soft
    (smoke, fire): there the blur fusion of `estimate_foreground` mixes the
    old background into the veil (smoke composite: mean |F error| 0.109
    against 0.035 for this; fire 0.084 against 0.069). Slower (0.65 s per
    megapixel of box), which a trimap run can afford.
    """
    import pymatting

    img = np.ascontiguousarray(image[..., :3], np.float32)
    fg = np.array(img if opaque is None else opaque[..., :3], np.float32, copy=True)
    soft = (alpha > 0.0) & (alpha < 1.0)
    if not soft.any():
        return fg
    ys, xs = band_box(soft, margin, *alpha.shape, align=1)
    f = pymatting.estimate_foreground_ml(img[ys, xs].astype(np.float64),
                                         np.clip(alpha[ys, xs], 0, 1).astype(np.float64))
    box = fg[ys, xs]
    np.copyto(box, clip01(f.astype(np.float32)), where=(alpha[ys, xs] < 1.0)[..., None])
    return fg


def thumbnail(image: np.ndarray, size: int = 32) -> np.ndarray:
    """A tiny colour thumbnail used to detect cuts.

    Large frames are first subsampled to every step-th pixel, keeping at
    least 8 x 8 samples per thumbnail pixel: averaging every pixel of a 4K
    frame cost 35 ms, more than the cut check is worth (now about 1 ms)."""
    h, w = image.shape[:2]
    step = max(1, min(h, w) // (8 * size))
    return cv2.resize(np.ascontiguousarray(image[::step, ::step, :3], np.float32), (size, size),
                      interpolation=cv2.INTER_AREA)


def cut_score(prev_thumb: np.ndarray, thumb: np.ndarray) -> float:
    """Mean absolute colour change between two thumbnails (0 same, ~0.3+ new shot)."""
    return float(np.abs(prev_thumb - thumb).mean())


def still_weight(colours: np.ndarray, previous: np.ndarray, sigma: float = 0.04) -> np.ndarray:
    """Weight in [0, 1] per pixel (arrays of N x 3 colours, or images): 1 where
    the colour did not change since the previous frame, falling off as
    exp(-(change / sigma)^2) of the largest channel change."""
    change = np.abs(colours[..., :3] - previous[..., :3]).max(axis=-1)
    return np.exp(-np.square(change / sigma)).astype(np.float32)
