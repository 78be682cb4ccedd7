"""Rolling-shutter geometry: from optical flow to one backward warp per frame.

Model
-----
Row y of a rolling-shutter frame is exposed at ``t0 + g * r(y)`` with
``r(y) = y / H`` (scan down) or ``(H - 1 - y) / H`` (scan up); times are in
frame intervals. Every pixel moves with a velocity ``v`` (pixels per frame)
that is constant over the short time involved. Relative to the target instant
``t*``, row y is ``tau(y) = a + b * y`` frames late, so a scene point that is
at ``p`` at ``t*`` shows up in the rolling-shutter frame at

    q = p + tau(q_y) * v.

Both frames of a flow pair were sampled row by row: a point at row y in frame k
and row y + dy in frame k + 1 was seen ``1 + b * dy`` frames apart (not 1), so
``v = flow / (1 + b * flow_y)`` (`velocity_from_flow`).

Correction (all on the small flow grid, then one full-resolution remap):
1. velocity per rolling-shutter pixel (from the flow to the next and/or the
   previous frame, temporally smoothed);
2. forward-splat each pixel to where it is at ``t*`` (`splat_velocity`): where
   two layers land on one place the one that moves against the dominant motion
   (the foreground) wins, and holes (disocclusions) take the foreground's
   velocity, which samples the background just beyond the object instead of
   smearing the object (no halos);
3. solve ``q = p + tau(q_y) v`` in closed form (tau is linear in y) for the
   displacement ``q - p`` (`displacement`);
4. upsample the displacement and ``cv2.remap`` the frame once (`WarpMaps`).
"""
from __future__ import annotations

import cv2
import numpy as np

from priorfx.priors.motion import grid_positions

_MIN_DT = 0.25  # frames: no two rows of neighbouring frames are seen closer than this


def time_coefficients(height: int, readout: float, scan: str = "down",
                      target: str = "middle") -> tuple[float, float]:
    """(a, b) with ``tau(y) = a + b * y``: how late row y is exposed vs the target instant.

    Parameters
    ----------
    height : int
        Frame height H in pixels.
    readout : float
        g, readout time as a fraction of the frame time.
    scan : {'down', 'up'}
    target : {'middle', 'top'}
        Instant to move every row to: the middle row's, or the image's top row's.
    """
    h = float(height)
    # r(y) = y / H (down) or (H - 1 - y) / H (up): tau(y) = g (r(y) - r(y_t)) = b (y - y_t)
    b = readout / h if scan == "down" else -readout / h
    y_t = (h - 1) / 2 if target == "middle" else 0.0
    return -b * y_t, b


def velocity_from_flow(flow: np.ndarray, b: float, direction: int) -> np.ndarray:
    """Per-pixel velocity (pixels per frame) from the flow to the next (+1) or previous (-1) frame.

    A point at row y and row ``y + flow_y`` of the other frame was seen
    ``direction + b * flow_y`` frames apart, so the flow is divided by that.
    """
    dt = direction + b * flow[..., 1]
    # Clamp: |dt| < 0.25 would mean a point crossing most of the frame during
    # readout; it only happens with a wrong flow and must not blow up.
    dt = np.where(np.abs(dt) < _MIN_DT, np.float32(_MIN_DT * np.sign(direction)), dt)
    return (flow / dt[..., None]).astype(np.float32, copy=False)


def combine_velocities(v_next: np.ndarray | None, v_prev: np.ndarray | None,
                       acceleration: np.ndarray | None = None) -> np.ndarray:
    """Motion field h x w x 4: velocity (vx, vy) at the pixel's own instant and acceleration.

    With both neighbours, the flow to the next frame measures the velocity
    half a frame later and the flow to the previous one half a frame
    earlier: their mean is the velocity now, their difference the
    acceleration (camera shake changes direction within a few frames, and a
    constant-velocity model leaves a pixel of error at the frame edges).
    With one neighbour, `acceleration` (a global (ax, ay), or None for zero)
    carries that half-frame-old velocity to now.
    """
    if v_next is not None and v_prev is not None:
        out = np.empty(v_next.shape[:2] + (4,), np.float32)
        np.add(v_next, v_prev, out=out[..., :2])
        out[..., :2] *= 0.5
        np.subtract(v_next, v_prev, out=out[..., 2:])
        return out
    v = v_prev if v_next is None else v_next
    out = np.empty(v.shape[:2] + (4,), np.float32)
    acc = np.zeros(2, np.float32) if acceleration is None else np.asarray(acceleration, np.float32)
    # v was measured half a frame before (prev) or after (next) the frame
    half = 0.5 if v_next is None else -0.5
    for c in (0, 1):  # per channel with scalars: much faster than broadcasting into the interleaved array
        np.add(v[..., c], half * float(acc[c]), out=out[..., c])
        out[..., 2 + c] = float(acc[c])
    return out


def smooth_velocity(v: np.ndarray, v_before: np.ndarray | None, amount: float,
                    tolerance_px: float = 2.0) -> np.ndarray:
    """Blend with the previous frame's velocity where the two agree.

    Camera jitter in the flow is noise and is averaged out; where the
    velocity really changes (a moving object arrives, a hand stops) the
    weight falls off as ``exp(-|dv|^2 / tolerance^2)`` so nothing trails.
    """
    if v_before is None or amount <= 0 or v_before.shape != v.shape:
        return v
    diff = v_before - v
    w = amount * np.exp(-(diff[..., 0] ** 2 + diff[..., 1] ** 2) / (tolerance_px ** 2))
    return (v + w[..., None] * diff).astype(np.float32, copy=False)


_SRC_BITS = 24
_SRC_MASK = (1 << _SRC_BITS) - 1


def _fill_holes(key: np.ndarray, steps: int) -> np.ndarray:
    """Give each hole (key -1) the highest key among its 8 neighbours, `steps` times.

    Works on the hole indices only (few), on a padded copy so that border
    cells need no special case. Keys carry the source index, so the filled
    cell takes over that source's motion.
    """
    h, w = key.shape
    pw = w + 2
    padded = np.full((h + 2, pw), -1, np.int64)
    padded[1:-1, 1:-1] = key
    flat = padded.ravel()
    iy, ix = np.nonzero(key < 0)
    holes = (iy + 1) * pw + ix + 1
    offs = np.array([-pw - 1, -pw, -pw + 1, -1, 1, pw - 1, pw, pw + 1])
    for _ in range(steps):
        if holes.size == 0:
            break
        best = flat[holes[:, None] + offs].max(axis=1)
        ok = best >= 0
        flat[holes[ok]] = best[ok]
        holes = holes[~ok]
    return padded[1:-1, 1:-1]


def dominant_velocity(v: np.ndarray) -> np.ndarray:
    """Median (vx, vy) of a motion field (every third sample: plenty, and fast)."""
    return np.median(v[::3, ::3, :2].reshape(-1, 2), axis=0)


def splat_velocity(v: np.ndarray, full: tuple[int, int], a: float, b: float,
                   fill_steps: int = 6, dominant: np.ndarray | None = None) -> np.ndarray:
    """Motion at the target instant's pixel grid (occlusion-aware forward splat).

    Parameters
    ----------
    v : h x w x C float32
        Motion of each rolling-shutter pixel of the small grid: velocity in
        the first two channels (more channels, e.g. acceleration, travel along).
    full : (W, H)
        Full-resolution size.
    a, b : float
        `time_coefficients`.
    fill_steps : int
        How many pixels (of the small grid) a hole is filled from its neighbours.
    dominant : (vx, vy), optional
        `dominant_velocity(v)` when the caller has it already.

    Returns
    -------
    h x w x C float32 motion, indexed by where pixels are at the target instant.
    """
    h, w = v.shape[:2]
    sx, sy = full[0] / w, full[1] / h
    xq, yq = grid_positions((w, h), full)
    tau = a + b * yq
    jx = np.rint((xq - tau * v[..., 0] + 0.5) / sx - 0.5).astype(np.int64)
    iy = np.rint((yq - tau * v[..., 1] + 0.5) / sy - 0.5).astype(np.int64)
    inside = (jx >= 0) & (jx < w) & (iy >= 0) & (iy < h)
    # Priority: distance from the dominant (median) motion. The layer that
    # moves against the crowd is in front: an object over a background, or a
    # person the camera follows while the background streams by.
    med = dominant_velocity(v) if dominant is None else dominant
    prio = np.hypot(v[..., 0] - med[0], v[..., 1] - med[1])
    prio_q = np.minimum(prio * 64.0, 2.0 ** 30).astype(np.int64)
    src = np.arange(h * w, dtype=np.int64).reshape(h, w)
    key = np.full(h * w, -1, np.int64)
    np.maximum.at(key, (iy * w + jx)[inside], ((prio_q << _SRC_BITS) | src)[inside])
    key = _fill_holes(key.reshape(h, w), fill_steps)
    # Holes wider than the fill reach keep the pixel's own motion.
    own = key < 0
    key[own] = src[own]
    return v.reshape(-1, v.shape[2])[key & _SRC_MASK]


def displacement(motion: np.ndarray, full: tuple[int, int], a: float, b: float,
                 strength: float = 1.0) -> np.ndarray:
    """Backward displacement ``q - p`` on the small grid, full-resolution pixels.

    Solves ``q = p + v tau - acc tau^2 / 2`` with ``tau = a + b q_y``: first
    exactly without the acceleration, ``q_y = (p_y + a v_y) / (1 - b v_y)``,
    then one fixed-point step for the (small) quadratic term.
    """
    h, w = motion.shape[:2]
    _, py = grid_positions((w, h), full)
    vx, vy = motion[..., 0], motion[..., 1]
    den = 1.0 - b * vy
    den = np.where(den < _MIN_DT, _MIN_DT, den)
    qy = (py + a * vy) / den
    d = np.empty(motion.shape[:2] + (2,), np.float32)
    tau = a + b * qy
    if motion.shape[2] >= 4:
        half_t2 = 0.5 * tau * tau
        qy = py + vy * tau - motion[..., 3] * half_t2
        tau = a + b * qy
        half_t2 = 0.5 * tau * tau
        d[..., 0] = vx * tau - motion[..., 2] * half_t2
        d[..., 1] = vy * tau - motion[..., 3] * half_t2
    else:
        d[..., 0] = vx * tau
        d[..., 1] = qy - py
    if strength != 1.0:
        d *= strength
    return d


class WarpMaps:
    """Full-resolution remap maps from a small displacement field.

    The map of a plane is its identity grid plus the upscaled displacement.
    Upscaling (bilinear) is linear, so the grid is added on the *small* field
    (the grid's own values at the small samples) and one resize makes the
    absolute map: a frame costs one resize, not a resize plus a full-size add.
    Only where the resize clamps (the outer pixel or two of each side, where
    the grid would freeze) is the grid's true value restored, on those strips.
    """

    def __init__(self) -> None:
        self._plans: dict[tuple, tuple] = {}
        self._buf: dict[tuple[int, int], np.ndarray] = {}

    @staticmethod
    def _axis(full: int, small: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Grid values at the small samples, and (positions, corrections) where the
        resize clamps: the same rule as cv2.resize, src = (x + 0.5) * small / full - 0.5."""
        scale = full / small
        at_samples = ((np.arange(small) + 0.5) * scale - 0.5).astype(np.float32)
        xs = np.arange(full, dtype=np.float64)
        src = np.clip((xs + 0.5) / scale - 0.5, 0, small - 1)
        corr = xs - ((src + 0.5) * scale - 0.5)
        where = np.nonzero(np.abs(corr) > 1e-4)[0]
        return at_samples, where, corr[where].astype(np.float32)

    def _plan(self, small_hw: tuple[int, int], size: tuple[int, int], sub: tuple[int, int]) -> tuple:
        key = (small_hw, size, sub)
        plan = self._plans.get(key)
        if plan is None:
            gx, cols, cx = self._axis(size[0], small_hw[1])
            gy, rows, cy = self._axis(size[1], small_hw[0])
            grid = np.dstack(np.meshgrid(gx, gy)).astype(np.float32)
            inv = np.array([1.0 / sub[0], 1.0 / sub[1]], np.float32)
            plan = self._plans[key] = (grid, inv, cols, cx, rows, cy)
        return plan

    def map_for(self, disp: np.ndarray, size: tuple[int, int], sub: tuple[int, int] = (1, 1)) -> np.ndarray:
        """Absolute map (h x w x 2) for a plane of `size` subsampled by `sub` (chroma: (2, 2) or (2, 1))."""
        disp = np.asarray(disp, np.float32)
        size = tuple(size)
        grid, inv, cols, cx, rows, cy = self._plan(disp.shape[:2], size, tuple(sub))
        # Chroma sample j sits at luma j * sub + (sub - 1) / 2: displacements scale by 1/sub.
        small = disp * inv + grid if sub != (1, 1) else disp + grid
        buf = self._buf.get(size)
        if buf is None:
            buf = self._buf[size] = np.empty((size[1], size[0], 2), np.float32)
        cv2.resize(small, size, dst=buf, interpolation=cv2.INTER_LINEAR)
        buf[:, cols, 0] += cx
        buf[rows, :, 1] += cy[:, None]
        return buf


def warp(plane: np.ndarray, mapping: np.ndarray, dst: np.ndarray | None = None,
         cubic: bool = False) -> np.ndarray:
    """One backward remap; pixels from outside the frame repeat the edge.

    Bilinear for live video (the floor the speed target is measured against);
    bicubic for clips, where a bilinear sub-pixel resample visibly softens
    fine texture (and costs PSNR on footage with little motion).
    """
    interp = cv2.INTER_CUBIC if cubic else cv2.INTER_LINEAR
    out = cv2.remap(plane, mapping, None, interp, dst=dst, borderMode=cv2.BORDER_REPLICATE)
    if cubic and out.dtype == np.float32:
        np.clip(out, 0.0, 1.0, out=out)  # bicubic overshoots at edges
    return out
