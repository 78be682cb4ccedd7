"""Estimate the readout time g from the footage itself, with an interval.

A constant pan cannot reveal g (a skewed scene panned at constant speed looks
exactly like rolling-shutter footage of an unskewed one); *changing* motion
can. The flow of row y between frames k and k+1 is the motion integrated from
``k + g r(y)`` to ``k + 1 + g r(y')``: rows of one frame pair see slightly
different time windows, and neighbouring pairs must agree on one smooth
motion timeline. For each candidate g we fit that timeline (piecewise linear,
a knot every quarter frame, penalised curvature) to the per-row-band median
flows of the whole clip (or of every sampled pair of a live stream), and a
second timeline to the bands' *moving layer* (a hand waved in front of a
still camera), and measure how well they explain the flows.

Costs are kept per frame pair, in units of the flow noise (2 x negative log
likelihood). The interval is the union of a profile-likelihood interval and a
block bootstrap over frame pairs (pairs resampled in runs of consecutive
ones, the best g of each replicate found on the same cost curves), widened by
the flow's bias floor. Where the footage cannot tell (no motion, a steady
pan) the interval spans most of the range and says so.

Not used: a straight-lines cue (LSD segments moved by each candidate
correction, scored by straightness). Segments found in the *distorted* frame
are straight there by construction, so it favoured g = 0 (measured: the
benchmark's video cases all read 0.05); a sound version must detect lines on
each candidate's corrected frame.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import linalg, sparse

from priorfx.shutter.params import DEFAULT_READOUT

KNOTS_PER_FRAME = 4
_SUBSAMPLES = 12
MIN_CONFIDENCE = 0.15
"""Below this the interval spans most of the range (steady or no motion): the default is used."""
CANDIDATES = np.arange(0.05, 1.0001, 0.025)
"""The readouts reported: a video camera reads its rows out within one frame (g <= 1)."""
SEARCH_PAST = 0.25
"""How far past the largest candidate the cost curve is searched (see `_interval`)."""
BOOTSTRAP = 300
BLOCK = 4
"""Frame pairs per bootstrap block: shake and pans stay correlated over a few frames."""
BIAS_FLOOR = 0.03
"""Half-width added to every interval: the fine flow's own bias in the row-to-row change
of the motion (measured on exact renders: 0.01-0.03 of g)."""
PROFILE_INFLATION = 4.0
"""Residuals of the 12 bands of one pair are correlated (one flow field): the
chi-square level is scaled as if each pair held this many independent values."""
FULL_WIDTH = 0.6
"""An interval this wide (or wider) means confidence 0."""
MOVING_PX = 2.0
MOVING_SHARE = 0.04
LAYER_EDGE_SHARE = 0.5
"""The moving layer is read only in bands where at least this share of its fullest band's
pixels move: in its edge bands it is a thin sliver among pixels the flow smears across
its border (and ones it uncovers), whose flow is neither the layer's nor the camera's."""
NOISE_FLOOR_PX = 0.06
"""Flow accuracy (px): the noise level is never taken below it."""
ROLL_NOISE_PX = 0.125
"""Noise (px) of a column's median y-flow, for the robust roll fit."""


@dataclass
class PairEvidence:
    """What one frame pair (k, k+1) tells about g; small and picklable (the cluster ships it).

    Attributes
    ----------
    bands : bands x 2, bands x 4 or bands x 5
        `band_flows` of the flow k -> k+1 (full-resolution pixels), with the
        moving layer's in columns 2-3 when measured and, in column 4, the row
        its pixels sit at (fraction of the height).
    """

    bands: np.ndarray


@dataclass
class ReadoutEstimate:
    """A readout estimate: the value, its 95 % interval and how much the footage told.

    `informative` is False when the interval spans most of the range; `g` is
    then `DEFAULT_READOUT` (inside the interval).
    """

    g: float
    low: float
    high: float
    confidence: float
    informative: bool
    pairs: int

    def as_dict(self) -> dict:
        return {"readout": round(self.g, 4), "low": round(self.low, 4), "high": round(self.high, 4),
                "confidence": round(self.confidence, 3), "informative": self.informative,
                "frame_pairs": self.pairs}


def _robust_slope(x: np.ndarray, y: np.ndarray, iters: int = 5) -> float:
    """Slope of a line through (x, y), Cauchy-reweighted so a run of outlying points does not tilt it.

    The weights start from the residuals about the median, not from a
    least-squares line that the outliers have already tilted.
    """
    r = y - np.median(y)
    slope = 0.0
    for _ in range(iters):
        width = 2.0 * max(ROLL_NOISE_PX, 1.4826 * float(np.median(np.abs(r))))
        w = 1.0 / (1.0 + (r / width) ** 2)
        mx, my = np.average(x, weights=w), np.average(y, weights=w)
        slope = float((w * (x - mx) * (y - my)).sum() / max((w * (x - mx) ** 2).sum(), 1e-12))
        r = y - my - slope * (x - mx)
    return slope


def band_flows(flow: np.ndarray, bands: int = 12, layers: bool = False) -> np.ndarray:
    """Robust translation of `bands` equal row bands: bands x 2 (bands x 5 with `layers`).

    Camera roll adds an x-flow that changes linearly with the row, which
    would pass for rolling shutter; it also makes the y-flow change linearly
    along the row, which rolling shutter does not. So the roll rate of each
    band is measured from the x-slope of its y-flow and its x-flow share
    removed before the medians. The slope is fitted robustly: a hand moving
    up or down in a few columns made a least-squares slope read a roll the
    camera did not make, and that roll's x-flow, growing with the row, passed
    for rolling shutter (measured: a still camera behind a waving hand read
    g 1.0 for 0.85).

    With `layers`, columns 2-3 hold the median flow of the band's *moving
    layer*: the pixels that move more than MOVING_PX against the band's
    median (a hand waved in front of a still camera), NaN where fewer than
    MOVING_SHARE of the band's pixels do. That layer's own changing motion
    tells g when the camera is still. The camera's median (columns 0-1) is
    then taken over the other pixels, so the hand does not drag it. Column 4
    holds the median row of the layer's pixels (fraction of the height): a
    hand covers only part of its top and bottom bands, and its flow there was
    read out at its own rows, not at the band's centre (taken as the centre,
    the hand's rows sat further apart than they are, and g read low: 0.35 for
    0.5 on a still camera).
    """
    h, w = flow.shape[:2]
    edges = np.linspace(0, h, bands + 1).round().astype(int)
    xs = np.arange(w, dtype=np.float64) - (w - 1) / 2
    ys = np.arange(h, dtype=np.float64) - (h - 1) / 2
    out = np.full((bands, 5 if layers else 2), np.nan)
    share = np.zeros(bands)
    for i in range(bands):
        part = flow[edges[i]:max(edges[i + 1], edges[i] + 1)].astype(np.float64)
        fy_col = np.median(part[..., 1], axis=0)               # per column, robust to objects
        omega = _robust_slope(xs, fy_col) if w > 2 else 0.0
        fx = part[..., 0] + omega * ys[edges[i]:edges[i] + len(part), None]
        out[i, :2] = (np.median(fx), np.median(part[..., 1]))
        if layers:
            fy = part[..., 1] - omega * xs                     # the roll's share of the y-flow too
            moving = np.hypot(fx - out[i, 0], fy - np.median(fy)) > MOVING_PX
            share[i] = moving.mean()
            if share[i] >= MOVING_SHARE:
                rows = np.nonzero(moving)[0] + edges[i] + 0.5
                out[i, 2:] = (np.median(fx[moving]), np.median(part[..., 1][moving]), np.median(rows) / h)
                if moving.mean() < 0.5:                        # the camera: what does not move
                    out[i, :2] = (np.median(fx[~moving]), np.median(part[..., 1][~moving]))
    if layers:
        out[share < LAYER_EDGE_SHARE * share.max(), 2:] = np.nan
    return out


def pair_evidence(flow: np.ndarray, bands: int = 12) -> PairEvidence:
    """Evidence of one frame pair: the band flows of the camera and of the moving layer."""
    return PairEvidence(band_flows(flow, bands, layers=True))


# --------------------------------------------------------------------------- motion cue

def _design(obs_k: np.ndarray, obs_r0: np.ndarray, obs_r1: np.ndarray, g: float,
            n_knots: int, layer: np.ndarray) -> sparse.csr_matrix:
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
    j = (np.floor(u).astype(int) + (layer * n_knots)[:, None]).ravel()   # one timeline per layer
    f = (u - np.floor(u)).ravel()
    rows = np.repeat(np.arange(len(t0)), _SUBSAMPLES)
    dt = np.repeat((t1 - t0) / _SUBSAMPLES, _SUBSAMPLES)
    # duplicate (row, knot) entries are summed by the conversion
    return sparse.coo_matrix((np.concatenate([(1 - f) * dt, f * dt]),
                              (np.concatenate([rows, rows]), np.concatenate([j, j + 1]))),
                             shape=(len(t0), n_knots * (int(layer.max()) + 1))).tocsr()


def _solve_banded_spd(mat: sparse.spmatrix, rhs: np.ndarray) -> np.ndarray:
    """Solve a symmetric positive-definite banded system (Cholesky on the band)."""
    coo = sparse.triu(mat, format="coo")
    upper = int((coo.col - coo.row).max()) if coo.nnz else 0
    ab = np.zeros((upper + 1, mat.shape[0]))
    ab[upper + coo.row - coo.col, coo.col] = coo.data
    return linalg.solveh_banded(ab, rhs)


def _fit_residuals(a: sparse.csr_matrix, d: np.ndarray, reg: sparse.spmatrix, scale: float | None,
                   iters: int = 3) -> tuple[np.ndarray, float]:
    """Robust (Cauchy, IRLS) penalised fit of the timeline: squared residuals and penalty.

    Bands whose median follows a moving object instead of the camera are
    outliers of the camera's timeline; down-weighting them keeps them from
    flattening the cost curve. With `scale` None the first pass is plain
    least squares (the caller then fixes a scale for every g).
    """
    wgt = np.ones(len(d))
    at = a.T.tocsr()
    for it in range(iters if scale is not None else 1):
        aw = at @ sparse.diags(wgt)
        sol = _solve_banded_spd(aw @ a + reg, aw @ d)
        r2 = ((a @ sol - d) ** 2).sum(1)
        if scale is not None:
            wgt = 1.0 / (1.0 + r2 / scale)
    return r2, float((sol * (reg @ sol)).sum())


def _motion_costs(per: list[np.ndarray], ks: np.ndarray, height: int, scan: str, rate: float,
                  smooth: float, cand: np.ndarray, layers: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Per-pair costs (pairs x candidates, in noise units) and the penalty per candidate.

    Up to two timelines: the camera's (band medians) and the moving layer's
    (where measured); each observation belongs to one.
    """
    bands = len(per[0])
    centre = (np.arange(bands) + 0.5) / bands
    stack = np.stack([np.hstack([p, np.full((bands, 4 - p.shape[1]), np.nan)]) if p.shape[1] < 4 else p
                      for p in per])
    if stack.shape[-1] < 5:                                     # evidence without the layer's rows
        stack = np.concatenate([stack, np.broadcast_to(centre[None, :, None], stack.shape[:2] + (1,))], -1)
    layer_data = [stack[..., :2], stack[..., 2:4]]
    layer_rows = [np.broadcast_to(centre * height, stack.shape[:2]),
                  np.where(np.isfinite(stack[..., 4]), stack[..., 4], centre) * height]
    d, k_obs, r0, r1, lay, pair = [], [], [], [], [], []
    for li, data in enumerate(layer_data[:layers]):
        ok = np.isfinite(data).all(-1)                          # pairs x bands
        if li == 1 and ok.sum() < 3 * bands:
            break                                               # too little of a moving layer to fit
        y0 = layer_rows[li]
        y1 = np.clip(y0 + np.nan_to_num(data[..., 1]), 0, height - 1)
        rr0 = (y0 if scan == "down" else height - 1 - y0) / height
        rr1 = (y1 if scan == "down" else height - 1 - y1) / height
        pi, bi = np.nonzero(ok)
        d.append(data[pi, bi])
        k_obs.append(ks[pi].astype(float))
        r0.append(rr0[pi, bi])
        r1.append(rr1[pi, bi])
        lay.append(np.full(len(pi), li))
        pair.append(pi)
    d, k_obs, r0, r1, lay, pair = (np.concatenate(x) for x in (d, k_obs, r0, r1, lay, pair))
    n_layers = int(lay.max()) + 1
    n_knots = int((ks[-1] + 3) * KNOTS_PER_FRAME) + 2
    d2 = sparse.diags([1.0, -2.0, 1.0], [0, 1, 2], shape=(n_knots - 2, n_knots))  # second differences
    # Runs of pairs a live stream sampled far apart have their own timelines: no
    # curvature penalty where no pair looked (a tiny ridge keeps those knots defined).
    covered = np.zeros(n_knots, bool)
    for k in np.unique(ks):
        covered[int(k) * KNOTS_PER_FRAME:int(k + 2) * KNOTS_PER_FRAME + 1] = True
    d2 = d2.tocsr()[np.nonzero(covered[1:-1])[0]]
    # Both terms scale with the motion squared, so `smooth` is scale-free.
    one = (smooth * len(d) / (n_knots * n_layers)) * (d2.T @ d2)
    one = one + sparse.identity(n_knots) * (1e-6 * max(float(one.diagonal().mean()), 1e-9))
    reg = sparse.block_diag([one] * n_layers).tocsr()
    # One robust scale for every g, so costs compare across g: the middle of plain
    # fits at three g across the range (one at the truth alone would call noise-free
    # data infinitely precise, and every other g an outlier). The flow's own
    # accuracy is a floor: a camera that barely moves must not call a few
    # hundredths of a pixel of bias strong evidence.
    med = np.median([np.median(_fit_residuals(_design(k_obs, r0, r1, g0 * rate, n_knots, lay), d, reg, None)[0])
                     for g0 in (0.25, 0.6, 0.95)])
    sigma2 = max(float(med) / 1.386, NOISE_FLOOR_PX ** 2)      # 2-D residual: chi2(2) median 1.386 sigma^2
    scale = max(float(med) * 4.0, 4.0 * 1.386 * NOISE_FLOOR_PX ** 2)
    costs = np.empty((len(per), len(cand)))
    pen = np.empty(len(cand))
    for j, g in enumerate(cand):
        r2, p = _fit_residuals(_design(k_obs, r0, r1, g * rate, n_knots, lay), d, reg, scale)
        costs[:, j] = np.bincount(pair, scale * np.log1p(r2 / scale), minlength=len(per)) / sigma2
        pen[j] = p / sigma2
    return costs, pen


# --------------------------------------------------------------------------- estimate

def _best(total: np.ndarray, cand: np.ndarray) -> np.ndarray:
    """Argmin along the last axis with a parabola through the three best (vectorised)."""
    i = np.argmin(total, axis=-1)
    g = cand[i].astype(float)
    inner = (i > 0) & (i < len(cand) - 1)
    ii = np.clip(i, 1, len(cand) - 2)
    rows = np.arange(total.shape[0]) if total.ndim == 2 else None
    pick = (lambda k: total[rows, k]) if rows is not None else (lambda k: total[k])
    c0, c1, c2 = pick(ii - 1), pick(ii), pick(ii + 1)
    den = c0 - 2 * c1 + c2
    with np.errstate(divide="ignore", invalid="ignore"):
        off = np.where(inner & (den > 0), np.clip(0.5 * (c0 - c2) / den, -0.5, 0.5), 0.0)
    return g + off * float(cand[1] - cand[0])


def _interval(per_pair: np.ndarray, penalty: np.ndarray, cand: np.ndarray,
              seed: int, g_max: float | None = None) -> tuple[float, float, float, bool]:
    """(g, low, high, informative) from per-pair cost curves (see the module docstring).

    `cand` may run past `g_max`, the largest readout a camera can have: the
    curve is searched there too, so a best g at the limit is a real minimum
    with two sides, not the edge of the search. The reported g and interval
    are then cut to the limit; a best fit beyond it by d (the footage fits
    no possible g well) widens the interval down by d below the limit.
    """
    g_max = float(cand[-1]) if g_max is None else g_max
    total = per_pair.sum(0) + penalty
    g_fit = float(_best(total, cand))
    g = min(g_fit, g_max)
    # Block bootstrap over frame pairs.
    rng = np.random.default_rng(seed)
    n = len(per_pair)
    blocks = max(1, int(np.ceil(n / BLOCK)))
    starts = rng.integers(0, max(1, n - BLOCK + 1), size=(BOOTSTRAP, blocks))
    counts = np.zeros((BOOTSTRAP, n))
    for off in range(min(BLOCK, n)):
        np.add.at(counts, (np.repeat(np.arange(BOOTSTRAP), blocks), (starts + off).ravel()), 1.0)
    counts *= n / counts.sum(1, keepdims=True)
    reps = _best(counts @ per_pair + penalty, cand)
    low, high = np.percentile(reps, [2.5, 97.5])
    # Profile likelihood: every g whose cost is within the 95 % chi-square(1)
    # level of the best (costs are in noise units, 2 x negative log likelihood),
    # the level scaled by PROFILE_INFLATION for the correlation of residuals
    # within a pair. The bootstrap misses a flat curve whose noise happens to dip
    # the same way in every replicate; this catches it.
    inside = cand[total - total.min() <= 3.84 * PROFILE_INFLATION]
    low, high = min(low, float(inside.min())), max(high, float(inside.max()))
    step = float(cand[1] - cand[0])
    low = float(max(cand[0], min(low, g, g_max - (g_fit - g_max)) - BIAS_FLOOR - step / 2))
    high = float(min(g_max, max(high, g) + BIAS_FLOOR + step / 2))
    informative = 1.0 - (high - low) / FULL_WIDTH >= MIN_CONFIDENCE
    if not informative:
        g = DEFAULT_READOUT
        low, high = min(low, g), max(high, g)
    return g, low, high, informative


def estimate_readout(evidence: list, height: int, scan: str = "down", rate: float = 1.0,
                     smooth: float = 0.05, candidates: np.ndarray | None = None,
                     frame_index: list[int] | None = None, seed: int = 0) -> ReadoutEstimate:
    """Readout g with a 95 % interval from the evidence of a whole clip.

    Parameters
    ----------
    evidence : list of PairEvidence (or of bands x 2 band-flow arrays)
        Frame pairs (k, k+1) in order.
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
    frame_index : list of int, optional
        k of each pair (default 0, 1, 2, ...): a live stream that skipped
        pairs passes their real positions, so the timeline keeps its gaps.
    seed : int
        Bootstrap seed (the result is deterministic).

    Returns
    -------
    ReadoutEstimate
    """
    cand = CANDIDATES if candidates is None else np.asarray(candidates, float)
    g_max = float(cand[-1])
    if len(cand) > 1:                       # search past the limit (see `_interval`)
        step = float(cand[1] - cand[0])
        cand = np.concatenate([cand, g_max + step * np.arange(1, int(round(SEARCH_PAST / step)) + 1)])
    ev = [e if isinstance(e, PairEvidence) else PairEvidence(np.asarray(e, float)) for e in evidence]
    if len(ev) < 3:
        return ReadoutEstimate(DEFAULT_READOUT, float(cand[0]), g_max, 0.0, False, len(ev))
    ks = np.arange(len(ev)) if frame_index is None else np.asarray(frame_index, int)
    # Long gaps (a live stream that did not sample) shrink to three frames: nothing is known there.
    gaps = np.diff(ks, prepend=ks[0])
    ks = np.cumsum(np.minimum(gaps, 3))
    bands = [e.bands for e in ev]
    # The camera's timeline first; the moving layer's only when the camera tells
    # too little (a still camera): objects moving their own ways (cars in traffic)
    # fit one timeline badly and would only blur a camera that does tell.
    est = _interval(*_motion_costs(bands, ks, height, scan, rate, smooth, cand, layers=1), cand, seed, g_max)
    if not est[3] and any(b.shape[1] >= 4 and np.isfinite(b[:, 2:4]).any() for b in bands):
        est = _interval(*_motion_costs(bands, ks, height, scan, rate, smooth, cand, layers=2), cand, seed, g_max)
    g, low, high, informative = est
    confidence = float(np.clip(1.0 - (high - low) / FULL_WIDTH, 0.0, 1.0))
    return ReadoutEstimate(float(np.clip(g, cand[0], g_max)), low, high, confidence, informative, len(ev))
