"""Closed-form matting restricted to an uncertainty band, with a prior term.

We solve, for the alpha values of the unknown (band) pixels only,

    minimise  a^T L a  +  sum_i d_i (a_i - t_i)^2

where L is the matting Laplacian of Levin et al. (closed-form matting: alpha is
locally an affine function of colour in every 3x3 window), pixels outside the
band are fixed to their known alpha, and the data term pulls each band pixel
towards a target t (the person prior's alpha, and the previous frame's refined
alpha where the picture did not change) with a weight d (how much that target
is trusted). Setting the gradient to zero gives the sparse SPD system

    (L_uu + D) a_u = D t_u - L_uk a_k

which we solve matrix-free with Jacobi-preconditioned conjugate gradients,
starting from the prior. Only the band is stored (a 5x5 stencil per unknown
pixel), so memory and time follow the band's area, not the frame's: this is
what lets a 4K frame fit in a few hundred megabytes.

The kernels are compiled by numba on first use and cached on disk
(NUMBA_CACHE_DIR, default PRIORFX_HOME/numba-cache).
"""
from __future__ import annotations

import os

import numpy as np

if "NUMBA_CACHE_DIR" not in os.environ:  # must be set before numba is imported
    try:
        from priorfx import config as _config

        os.environ["NUMBA_CACHE_DIR"] = str(_config.home() / "numba-cache")
    except Exception:  # a read-only or odd home: numba picks its own place
        pass

import numba  # noqa: E402
from numba import njit  # noqa: E402


@njit(cache=True, nogil=True)
def _band_laplacian(img, index, eps, rows, vals):  # pragma: no cover - compiled
    """Accumulate the 3x3-window matting Laplacian rows of the unknown pixels.

    img: H x W x 3 float32; index: H x W int32, the unknown pixel's row in
    `vals` or -1; vals: n_unknown x 5 x 5 float64, vals[u, dy, dx] is the
    coefficient of pixel (y + dy - 2, x + dx - 2) in row u; rows: the window
    centre rows to visit. Serial on purpose: on a few shared cores a thread
    pool costs more in start-up and contention than it gains.
    """
    h, w, _ = img.shape
    c = np.empty((3, 3, 3))
    for t in range(rows.shape[0]):
        y = rows[t]
        for x in range(1, w - 1):
            any_unknown = False
            for dy in range(-1, 2):
                for dx in range(-1, 2):
                    if index[y + dy, x + dx] >= 0:
                        any_unknown = True
            if not any_unknown:
                continue
            m0 = 0.0
            m1 = 0.0
            m2 = 0.0
            for dy in range(3):
                for dx in range(3):
                    m0 += img[y + dy - 1, x + dx - 1, 0]
                    m1 += img[y + dy - 1, x + dx - 1, 1]
                    m2 += img[y + dy - 1, x + dx - 1, 2]
            m0 /= 9.0
            m1 /= 9.0
            m2 /= 9.0
            a00 = 0.0
            a01 = 0.0
            a02 = 0.0
            a11 = 0.0
            a12 = 0.0
            a22 = 0.0
            for dy in range(3):
                for dx in range(3):
                    r = img[y + dy - 1, x + dx - 1, 0] - m0
                    g = img[y + dy - 1, x + dx - 1, 1] - m1
                    b = img[y + dy - 1, x + dx - 1, 2] - m2
                    c[dy, dx, 0] = r
                    c[dy, dx, 1] = g
                    c[dy, dx, 2] = b
                    a00 += r * r
                    a01 += r * g
                    a02 += r * b
                    a11 += g * g
                    a12 += g * b
                    a22 += b * b
            e = eps / 9.0
            a00 = a00 / 9.0 + e
            a01 = a01 / 9.0
            a02 = a02 / 9.0
            a11 = a11 / 9.0 + e
            a12 = a12 / 9.0
            a22 = a22 / 9.0 + e
            # inverse of the symmetric 3x3 covariance by cofactors
            i00 = a11 * a22 - a12 * a12
            i01 = a02 * a12 - a01 * a22
            i02 = a01 * a12 - a02 * a11
            i11 = a00 * a22 - a02 * a02
            i12 = a01 * a02 - a00 * a12
            i22 = a00 * a11 - a01 * a01
            det = a00 * i00 + a01 * i01 + a02 * i02
            inv = 1.0 / det
            i00 *= inv
            i01 *= inv
            i02 *= inv
            i11 *= inv
            i12 *= inv
            i22 *= inv
            for py in range(3):
                for px in range(3):
                    u = index[y + py - 1, x + px - 1]
                    if u < 0:
                        continue
                    r = c[py, px, 0]
                    g = c[py, px, 1]
                    b = c[py, px, 2]
                    k0 = i00 * r + i01 * g + i02 * b
                    k1 = i01 * r + i11 * g + i12 * b
                    k2 = i02 * r + i12 * g + i22 * b
                    for qy in range(3):
                        for qx in range(3):
                            dot = k0 * c[qy, qx, 0] + k1 * c[qy, qx, 1] + k2 * c[qy, qx, 2]
                            v = -(1.0 + dot) / 9.0
                            if py == qy and px == qx:
                                v += 1.0
                            vals[u, qy - py + 2, qx - px + 2] += v


@njit(cache=True, nogil=True)
def _apply(vals, ys, xs, field, out):  # pragma: no cover - compiled
    """out[u] = sum over the 5x5 stencil of vals[u] * field around pixel u."""
    h, w = field.shape
    for u in range(ys.shape[0]):
        y = ys[u]
        x = xs[u]
        s = 0.0
        if 2 <= y < h - 2 and 2 <= x < w - 2:
            for dy in range(5):
                for dx in range(5):
                    s += vals[u, dy, dx] * field[y + dy - 2, x + dx - 2]
        else:
            for dy in range(5):
                yy = y + dy - 2
                if yy < 0 or yy >= h:
                    continue
                for dx in range(5):
                    xx = x + dx - 2
                    if 0 <= xx < w:
                        s += vals[u, dy, dx] * field[yy, xx]
        out[u] = s


@njit(cache=True, nogil=True)
def _pcg(vals, ys, xs, field, d, b, x, iterations, tol):  # pragma: no cover - compiled
    """Jacobi-preconditioned CG on (L_uu + D) x = b; `field` is an all-zero H x W
    scratch image through which the stencil reads the unknowns. Returns
    (iterations, relative residual); x is updated in place."""
    n = x.shape[0]
    inv_diag = np.empty(n)
    for u in range(n):
        dd = vals[u, 2, 2] + d[u]
        inv_diag[u] = 1.0 / dd if dd > 1e-12 else 1e12
    ap = np.empty(n)
    for u in range(n):
        field[ys[u], xs[u]] = x[u]
    _apply(vals, ys, xs, field, ap)
    r = b - ap - d * x
    z = inv_diag * r
    p = z.copy()
    rz = np.dot(r, z)
    bnorm = np.sqrt(np.dot(b, b))
    if bnorm == 0.0:
        bnorm = 1.0
    res = np.sqrt(np.dot(r, r)) / bnorm
    it = 0
    while it < iterations and res > tol:
        for u in range(n):
            field[ys[u], xs[u]] = p[u]
        _apply(vals, ys, xs, field, ap)
        ap += d * p
        pap = np.dot(p, ap)
        if pap <= 0.0:
            break
        step = rz / pap
        x += step * p
        r -= step * ap
        res = np.sqrt(np.dot(r, r)) / bnorm
        it += 1
        z = inv_diag * r
        rz_new = np.dot(r, z)
        p = z + (rz_new / rz) * p
        rz = rz_new
    return it, res


def solve_band(image: np.ndarray, known_alpha: np.ndarray, unknown: np.ndarray,
               target: np.ndarray, weight: np.ndarray, *, eps: float = 1e-5,
               iterations: int = 100, tol: float = 1e-4) -> tuple[np.ndarray, dict]:
    """Alpha for the `unknown` pixels from the matting Laplacian plus a data term.

    Parameters
    ----------
    image : float32 H x W x 3 in [0, 1] (the colours the Laplacian follows).
    known_alpha : float32 H x W; used outside `unknown` (fixed values).
    unknown : bool H x W; the pixels to solve for.
    target, weight : float32 H x W; per-pixel data term (t, d). d = 0 leaves
        a pixel to the Laplacian alone (plain closed-form matting).
    eps : covariance regularisation of the Laplacian (bigger = smoother).
    iterations, tol : conjugate-gradient limits (relative residual).

    Returns
    -------
    alpha : float32 H x W, `known_alpha` with the band filled in, clipped to [0, 1].
    info : dict with n_unknown, iterations, residual.
    """
    h, w = unknown.shape
    alpha = np.array(known_alpha, np.float32, copy=True)
    ys, xs = np.nonzero(unknown)
    n = ys.size
    if n == 0:
        return alpha, {"n_unknown": 0, "iterations": 0, "residual": 0.0}
    # Pixels on the frame border have no full window around them; the
    # stencil handles them through the windows that do exist.
    index = np.full((h, w), -1, np.int32)
    index[ys, xs] = np.arange(n, dtype=np.int32)
    vals = np.zeros((n, 5, 5), np.float64)
    img = np.ascontiguousarray(image[..., :3], np.float32)
    rows = np.nonzero(unknown.any(axis=1))[0]
    lo, hi = max(1, rows.min() - 1), min(h - 2, rows.max() + 1)
    _band_laplacian(img, index, float(eps), np.arange(lo, hi + 1, dtype=np.int64), vals)

    ys64, xs64 = ys.astype(np.int64), xs.astype(np.int64)
    d = weight[ys, xs].astype(np.float64)
    t = target[ys, xs].astype(np.float64)
    field = np.where(unknown, 0.0, alpha).astype(np.float64)
    lk = np.empty(n)
    _apply(vals, ys64, xs64, field, lk)  # L_uk a_k (the known part of each row)
    b = d * t - lk
    field[:] = 0.0
    x = np.clip(known_alpha[ys, xs].astype(np.float64), 0.0, 1.0)
    it, res = _pcg(vals, ys64, xs64, field, d, b, x, int(iterations), float(tol))
    alpha[ys, xs] = np.clip(x, 0.0, 1.0)
    return alpha, {"n_unknown": int(n), "iterations": it, "residual": res}


def warm_up() -> None:
    """Compile (or load from the cache) the kernels on a tiny problem."""
    rng = np.random.default_rng(0)
    img = rng.random((8, 8, 3), dtype=np.float32)
    unknown = np.zeros((8, 8), bool)
    unknown[3:5, 3:5] = True
    z = np.zeros((8, 8), np.float32)
    solve_band(img, z, unknown, z, z + 1.0, iterations=2)


__all__ = ["solve_band", "warm_up", "numba"]
