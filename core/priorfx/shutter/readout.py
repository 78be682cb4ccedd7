"""Estimate the readout time g from the footage itself.

A constant pan cannot reveal g (a skewed scene panned at constant speed looks
exactly like rolling-shutter footage of an unskewed one); *changing* motion
can. The flow of row y between frames k and k+1 is the camera motion
integrated from ``k + g r(y)`` to ``k + 1 + g r(y')``: rows of one frame pair
see slightly different time windows, and neighbouring pairs must agree on one
smooth motion timeline. For each candidate g we fit that timeline (piecewise
linear, a knot every quarter frame, penalised curvature) to the per-row-band
median flows of the whole clip, and keep the g whose fit explains the flows
best. The fit's contrast across g says how much the footage constrains it.
"""
from __future__ import annotations

import numpy as np
from scipy import linalg, sparse

from priorfx.shutter.params import DEFAULT_READOUT

KNOTS_PER_FRAME = 4
_SUBSAMPLES = 12
MIN_CONFIDENCE = 0.15
"""Below this the cost curve is too flat to trust (steady or no motion): the default is used."""


def band_flows(flow: np.ndarray, bands: int = 12) -> np.ndarray:
    """Robust translation of `bands` equal row bands: bands x 2.

    Camera roll adds an x-flow that changes linearly with the row, which
    would pass for rolling shutter; it also makes the y-flow change linearly
    along the row, which rolling shutter does not. So the roll rate of each
    band is measured from the x-slope of its y-flow and its x-flow share
    removed before the medians.
    """
    h, w = flow.shape[:2]
    edges = np.linspace(0, h, bands + 1).round().astype(int)
    xs = np.arange(w, dtype=np.float64) - (w - 1) / 2
    ys = np.arange(h, dtype=np.float64) - (h - 1) / 2
    out = np.empty((bands, 2))
    for i in range(bands):
        part = flow[edges[i]:max(edges[i + 1], edges[i] + 1)].astype(np.float64)
        fy_col = np.median(part[..., 1], axis=0)               # per column, robust to objects
        omega = float(np.polyfit(xs, fy_col, 1)[0]) if w > 2 else 0.0
        fx = part[..., 0] + omega * ys[edges[i]:edges[i] + len(part), None]
        out[i] = (np.median(fx), np.median(part[..., 1]))
    return out


def _design(obs_k: np.ndarray, obs_r0: np.ndarray, obs_r1: np.ndarray, g: float,
            n_knots: int) -> sparse.csr_matrix:
    """Rows: integral of the piecewise-linear timeline over each observation window.

    Sparse: a window spans about one frame, so each row touches a handful of
    knots, and the normal matrix of the fit is banded. (A dense matrix made a
    250-frame clip take seconds per candidate g and grew as N^3 with length.)
    """
    t0 = obs_k + g * obs_r0
    t1 = obs_k + 1.0 + g * obs_r1
    m = (np.arange(_SUBSAMPLES) + 0.5) / _SUBSAMPLES
    ts = t0[:, None] + (t1 - t0)[:, None] * m[None, :]          # obs x S sample times
    u = np.clip(ts * KNOTS_PER_FRAME, 0, n_knots - 1 - 1e-9)
    j = np.floor(u).astype(int).ravel()
    f = (u - np.floor(u)).ravel()
    rows = np.repeat(np.arange(len(t0)), _SUBSAMPLES)
    dt = np.repeat((t1 - t0) / _SUBSAMPLES, _SUBSAMPLES)
    # duplicate (row, knot) entries are summed by the conversion
    return sparse.coo_matrix((np.concatenate([(1 - f) * dt, f * dt]),
                              (np.concatenate([rows, rows]), np.concatenate([j, j + 1]))),
                             shape=(len(t0), n_knots)).tocsr()


def _solve_banded_spd(mat: sparse.spmatrix, rhs: np.ndarray) -> np.ndarray:
    """Solve a symmetric positive-definite banded system (Cholesky on the band)."""
    coo = sparse.triu(mat, format="coo")
    upper = int((coo.col - coo.row).max()) if coo.nnz else 0
    ab = np.zeros((upper + 1, mat.shape[0]))
    ab[upper + coo.row - coo.col, coo.col] = coo.data
    return linalg.solveh_banded(ab, rhs)


def _fit_cost(a: sparse.csr_matrix, d: np.ndarray, reg: sparse.spmatrix, iters: int = 3) -> float:
    """Robust (Cauchy, IRLS) penalised fit of the timeline; returns the robust cost.

    Bands whose median follows a moving object instead of the camera are
    outliers of the camera's timeline; down-weighting them keeps them from
    flattening the cost curve.
    """
    wgt = np.ones(len(d))
    scale = None
    at = a.T.tocsr()
    for _ in range(iters):
        aw = at @ sparse.diags(wgt)
        sol = _solve_banded_spd(aw @ a + reg, aw @ d)
        r2 = ((a @ sol - d) ** 2).sum(1)
        if scale is None:  # fixed once, so costs of different g compare
            scale = max(float(np.median(r2)) * 4.0, 1e-4)
        wgt = 1.0 / (1.0 + r2 / scale)
    return float(np.log1p(r2 / scale).sum() * scale + (sol * (reg @ sol)).sum())


def estimate_readout(flows: list[np.ndarray], height: int, scan: str = "down",
                     rate: float = 1.0, bands: int = 12, smooth: float = 0.05,
                     candidates: np.ndarray | None = None) -> tuple[float, float]:
    """`estimate_from_bands` on whole flow fields (see there)."""
    return estimate_from_bands([band_flows(f, bands) for f in flows], height, scan, rate, smooth, candidates)


def estimate_from_bands(per: list[np.ndarray], height: int, scan: str = "down",
                        rate: float = 1.0, smooth: float = 0.05,
                        candidates: np.ndarray | None = None) -> tuple[float, float]:
    """Readout g that best explains the row-dependent part of the flow.

    Parameters
    ----------
    per : list of bands x 2 arrays
        `band_flows` of the flow from frame k to k+1 (full-resolution pixels), k = 0..N-2.
    height : int
        Full-resolution frame height.
    scan : {'down', 'up'}
    rate : float
        How fast the observed sample instants move per unit of g: 1 for RS,
        0.5 for RSGR (blur centres move at half the readout speed).
    smooth : float
        Curvature penalty of the motion timeline (relative to the data).
    candidates : array, optional
        g values to try (default 0.05 .. 1.0).

    Returns
    -------
    (g, confidence)
        confidence in [0, 1]; below about 0.15 the footage does not constrain
        g (steady or no motion) and g is `DEFAULT_READOUT`.
    """
    if len(per) < 3:
        return DEFAULT_READOUT, 0.0
    bands = len(per[0])
    cand = np.arange(0.05, 1.0001, 0.025) if candidates is None else np.asarray(candidates, float)
    d = np.concatenate(per)                                     # obs x 2
    # Band centre rows in full-res pixels; the point ends at row y + dy in frame k+1.
    yc = (np.arange(bands) + 0.5) * height / bands
    ks, r0, r1 = [], [], []
    for k, bf in enumerate(per):
        y1 = np.clip(yc + bf[:, 1], 0, height - 1)
        rr0 = yc / height if scan == "down" else (height - 1 - yc) / height
        rr1 = y1 / height if scan == "down" else (height - 1 - y1) / height
        ks.append(np.full(bands, float(k)))
        r0.append(rr0)
        r1.append(rr1)
    ks, r0, r1 = np.concatenate(ks), np.concatenate(r0), np.concatenate(r1)
    n_knots = int((len(per) + 2) * KNOTS_PER_FRAME) + 2
    d2 = sparse.diags([1.0, -2.0, 1.0], [0, 1, 2], shape=(n_knots - 2, n_knots))  # second differences
    # Both terms scale with the motion squared, so `smooth` is scale-free.
    reg = (smooth * len(d) / n_knots) * (d2.T @ d2).tocsr()
    costs = np.array([_fit_cost(_design(ks, r0, r1, g * rate, n_knots), d, reg) for g in cand])
    i = int(np.argmin(costs))
    g = float(cand[i])
    if 0 < i < len(cand) - 1:  # parabola through the three best
        c0, c1, c2 = costs[i - 1:i + 2]
        den = c0 - 2 * c1 + c2
        if den > 0:
            g += float(np.clip(0.5 * (c0 - c2) / den, -0.5, 0.5)) * float(cand[1] - cand[0])
    spread = float(np.median(costs))
    confidence = float(np.clip((spread - costs[i]) / max(spread, 1e-12), 0.0, 1.0))
    if confidence < MIN_CONFIDENCE:
        return DEFAULT_READOUT, confidence
    return float(np.clip(g, cand[0], cand[-1])), confidence
