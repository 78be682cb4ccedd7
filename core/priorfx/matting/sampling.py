"""Colour models of the known regions, data terms for the band solve.

`colour_posterior`: histograms of the known foreground and background colours
near the band say how likely each band colour is foreground (any band).
`sample_alpha`: colour sampling of a trimap's known regions, an alpha
estimate and its confidence for every unknown pixel.

The matting Laplacian only carries alpha from the known regions inward along
colour; across a wide unknown region (smoke, fire, fur) it drifts towards the
smoothest answer, and where the region holds no edge at all it has nothing to
go on. A sampling model says directly what each unknown pixel is made of:
for pixel colour I, candidate foreground colours F and background colours B
are taken from the known regions, and the pair that best explains I as
alpha F + (1 - alpha) B gives alpha (the projection of I onto the line B-F).
The pair's fit and the separation of F and B say how far to trust it (the
"robust matting" idea of Wang and Cohen, 2007; our own sampling: nearest
neighbours in colour and position among the known pixels next to the unknown
region, with scipy's KD-tree).
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

# Known pixels within RING px of the unknown region are the candidates (a
# user's known region far away from the unknown one says little about it),
# at most MAX_SAMPLES of each side (evenly subsampled).
RING = 12
MAX_SAMPLES = 6000
# Nearest candidates per side; K x K pairs are tried per pixel.
K = 8
# Position weight in the neighbour search: a frame's long side counts as
# SPATIAL colour units, so candidates near the pixel win among similar colours.
SPATIAL = 8.0
# The pair's fit |I - (a F + (1 - a) B)| at which confidence falls to 1/e,
# and the F-B separation below which alpha is ill-defined (confidence falls).
FIT_SIGMA = 0.02
SEPARATION = 0.15
CHUNK = 16384
# Levels per channel of the histogram colour model (`colour_posterior`).
COLOUR_BINS = 16


@dataclass
class Samples:
    """Per unknown pixel (in the order of np.nonzero(unknown)): alpha
    estimate, confidence in [0, 1], and the chosen foreground colour."""

    alpha: np.ndarray
    confidence: np.ndarray
    fg: np.ndarray


def _candidates(image: np.ndarray, side: np.ndarray, unknown: np.ndarray, ring: int,
                scale: float) -> np.ndarray:
    """Features (r, g, b, x s, y s) of the known pixels of `side` within
    `ring` px of the unknown region, evenly subsampled to MAX_SAMPLES."""
    near = cv2.distanceTransform((~unknown).astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_5) <= ring
    ys, xs = np.nonzero(side & near)
    if ys.size == 0:  # a side with no known pixel near: use all of it
        ys, xs = np.nonzero(side)
    if ys.size > MAX_SAMPLES:
        pick = np.linspace(0, ys.size - 1, MAX_SAMPLES).astype(np.int64)
        ys, xs = ys[pick], xs[pick]
    return np.column_stack([image[ys, xs], xs * scale, ys * scale]).astype(np.float32)


def sample_alpha(image: np.ndarray, fg: np.ndarray, bg: np.ndarray, unknown: np.ndarray,
                 ring: int = RING) -> Samples | None:
    """Alpha, confidence and foreground colour of each unknown pixel from
    the best (F, B) pair among the K nearest known colours of each side.
    None when a side has no known pixel at all."""
    from scipy.spatial import cKDTree

    if not fg.any() or not bg.any() or not unknown.any():
        return None
    img = np.ascontiguousarray(image[..., :3], np.float32)
    h, w = unknown.shape
    scale = SPATIAL / max(h, w)
    cf = _candidates(img, fg, unknown, ring, scale)
    cb = _candidates(img, bg, unknown, ring, scale)
    kf, kb = min(K, len(cf)), min(K, len(cb))
    tf, tb = cKDTree(cf), cKDTree(cb)
    ys, xs = np.nonzero(unknown)
    n = ys.size
    alpha = np.empty(n, np.float32)
    conf = np.empty(n, np.float32)
    fgc = np.empty((n, 3), np.float32)
    for s in range(0, n, CHUNK):
        sl = slice(s, min(n, s + CHUNK))
        colour = img[ys[sl], xs[sl]]
        q = np.column_stack([colour, xs[sl] * scale, ys[sl] * scale])
        fi = tf.query(q, kf)[1].reshape(len(q), kf)
        bi = tb.query(q, kb)[1].reshape(len(q), kb)
        F = cf[fi, :3][:, :, None, :]          # m x kf x 1 x 3
        B = cb[bi, :3][:, None, :, :]          # m x 1 x kb x 3
        I = colour[:, None, None, :]
        d = F - B
        dd = np.maximum((d * d).sum(-1), 1e-6)
        a = np.clip(((I - B) * d).sum(-1) / dd, 0.0, 1.0)
        resid = I - (a[..., None] * d + B)
        fit = np.sqrt((resid * resid).sum(-1))  # m x kf x kb
        best = fit.reshape(len(q), -1).argmin(1)
        jf, jb = np.divmod(best, kb)
        rows = np.arange(len(q))
        a_best = a[rows, jf, jb]
        sep = np.sqrt(dd[rows, jf, jb])
        alpha[sl] = a_best
        conf[sl] = np.exp(-np.square(fit[rows, jf, jb] / FIT_SIGMA)) * np.minimum(1.0, sep / SEPARATION)
        fgc[sl] = F[rows, jf, 0]
    return Samples(alpha, conf, fgc)


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
    # One bin code per pixel, then three gathers of it: gathering the three
    # float channels per mask cost 2.6x more (a 1024 px grid: 145 -> 56 ms
    # on a busy core), the same codes.
    q = np.minimum((image[..., :3] * bins).astype(np.int16 if bins ** 3 <= 2 ** 15 else np.int32), bins - 1)
    code = (q[..., 0] * bins + q[..., 1]) * bins + q[..., 2]
    hf = np.bincount(code[fg & near], minlength=bins ** 3).astype(np.float64)
    hb = np.bincount(code[bg & near], minlength=bins ** 3).astype(np.float64)
    hf /= max(hf.sum(), 1.0)
    hb /= max(hb.sum(), 1.0)
    floor = 1e-4
    post = (hf + floor) / (hf + hb + 2 * floor)
    return post[code[at]].astype(np.float32)
