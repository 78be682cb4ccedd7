"""Camera, distance and face-shape fit under full perspective; dolly-zoom re-projection.

Camera model: pinhole, principal point at the image centre, focal length
`f` in pixels, no lens distortion. The face is the metric mean face
(`mean_face.json`, built by core/tools/build_mean_face.py) deformed by three axis scales and
a few shape modes, rotated by R and placed at T = (tx, ty, d): d is the
camera-to-face distance (to the centroid of the 468 mesh points).

Focal length and distance are ambiguous together: a face far away with a
long lens and one close with a short lens have the same size in the image.
As in the thesis (DisCO), the fit is parameterised by the face's image
position (u0, v0) and its scale k = f / d (pixels per metre at the face),
which the image pins down well, plus the perspective strength p = 1 / d =
k / f. With f known (the user's value) p follows; without it p is fitted too
(`perspective_strength`) and only the depth-dependent magnification across
the 468 points (nose against outline) tells it. That signal is weak in the
face mesh's landmarks: on renders, the true landmarks give p back with a
slope of ~1, the model's landmarks with a slope of ~0.4 and a scatter of
~0.45 /m over people and poses (the model pulls faces towards weak
perspective). `estimate_distance` therefore maps the raw p through a
calibration measured on renders (core/tools/portrait_calibration.py) to a
posterior over p, with the EXIF focal length as a prior, and reports an
interval. Metric scale comes from the mean face (IPD 63 mm), so the shape's
global size is held by a prior, not fitted.

Fit in two stages (also the thesis' lesson): the camera first, with the mean
face; then camera and shape jointly, the shape regularised towards the mean.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

import numpy as np

SENSOR_DIAGONAL_MM = 43.2666   # 36 x 24 mm: 35 mm-equivalent focal lengths refer to it

# Weights of the residual terms (pixels of landmark error vs. prior sigmas).
_SHAPE_SCALE_SIGMA = 0.06      # axis scales ~ N(1, 6%)
_DEPTH_WEIGHT = 0.3            # the mesh's own relative depth, a weak cue for pose
RIM_WEIGHT = 0.6               # weight of the face-outline landmarks in the fit (they slide along the contour)


@dataclass(frozen=True)
class FaceModel:
    mean: np.ndarray      # 468 x 3 metres
    modes: np.ndarray     # m x 468 x 3 metres (1 sigma each)
    mirror: np.ndarray    # 468 ints


@lru_cache(maxsize=1)
def face_model() -> FaceModel:
    """The shipped metric mean face and its shape modes."""
    from priorfx.priors.face import mirror_map

    d = json.loads(resources.files("priorfx.portrait").joinpath("mean_face.json").read_text())
    return FaceModel(np.array(d["points"], np.float64), np.array(d["modes"], np.float64), mirror_map())


def focal_px(focal_mm_35: float, width: int, height: int) -> float:
    """35 mm-equivalent focal length -> pixels (by the image diagonal)."""
    return float(focal_mm_35) * float(np.hypot(width, height)) / SENSOR_DIAGONAL_MM


def rodrigues(r: np.ndarray) -> np.ndarray:
    """Rotation matrix of a rotation vector."""
    theta = float(np.linalg.norm(r))
    if theta < 1e-12:
        return np.eye(3)
    k = r / theta
    kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + np.sin(theta) * kx + (1 - np.cos(theta)) * (kx @ kx)


@dataclass
class FaceFit:
    """A fitted face: camera, pose and metric shape."""

    f: float                  # focal length, pixels (of the analysed image)
    center: np.ndarray        # principal point (cx, cy), pixels
    rotation: np.ndarray      # 3 x 3
    translation: np.ndarray   # (tx, ty, d), metres; d = distance to the face centroid
    shape: np.ndarray         # 468 x 3 metres, face frame
    rms_px: float             # landmark residual after the fit

    @property
    def distance_m(self) -> float:
        return float(self.translation[2])

    def camera_points(self, pts: np.ndarray | None = None) -> np.ndarray:
        """Face-frame points (default: the fitted shape) in camera coordinates."""
        pts = self.shape if pts is None else pts
        return pts @ self.rotation.T + self.translation

    def project(self, pts_cam: np.ndarray, f: float | None = None) -> np.ndarray:
        f = self.f if f is None else f
        z = np.maximum(pts_cam[:, 2:3], 1e-6)
        return f * pts_cam[:, :2] / z + self.center

    def dolly(self, xy: np.ndarray, depth: np.ndarray, target_m: float) -> np.ndarray:
        """Image motion under the dolly zoom of points at image positions `xy`
        (N x 2) whose camera depth is `depth` (N): see `reproject`."""
        d = self.distance_m
        scale = (target_m / d) * depth / (depth + target_m - d)
        return (xy - self.center) * (scale - 1.0)[:, None]

    def visible_depth(self, xy: np.ndarray, max_steps: int = 12) -> np.ndarray:
        """Camera depth of the fitted face's surface that is visible at image points xy (N x 2).

        The fitted shape is triangulated (`triangles`); a point takes the
        nearest of the triangles over it (perspective-correct depth). A point
        off the face is walked towards the face centre (4 % of the way per
        step) until it meets the surface: its depth is that of the outline
        next to it. NaN where it never does (far off the face).
        """
        tri = triangles()
        cam = self.camera_points()
        proj = self.project(cam)
        a, b, c = proj[tri[:, 0]], proj[tri[:, 1]], proj[tri[:, 2]]
        inv_z = 1.0 / cam[tri, 2]                                   # T x 3
        den = (b[:, 1] - c[:, 1]) * (a[:, 0] - c[:, 0]) + (c[:, 0] - b[:, 0]) * (a[:, 1] - c[:, 1])
        ok = np.abs(den) > 1e-12                                     # edge-on triangles cover nothing
        den = np.where(ok, den, 1.0)
        centre = proj.mean(0)
        pts = np.asarray(xy, np.float64)
        out = np.full(len(pts), np.nan)
        q = pts.copy()
        todo = np.arange(len(pts))
        for _ in range(max_steps):
            if not len(todo):
                break
            p = q[todo]
            dx, dy = p[:, 0:1] - c[None, :, 0], p[:, 1:2] - c[None, :, 1]
            l1 = ((b[:, 1] - c[:, 1]) * dx + (c[:, 0] - b[:, 0]) * dy) / den
            l2 = ((c[:, 1] - a[:, 1]) * dx + (a[:, 0] - c[:, 0]) * dy) / den
            l3 = 1.0 - l1 - l2
            inside = (l1 >= 0) & (l2 >= 0) & (l3 >= 0) & ok
            iz = np.where(inside, l1 * inv_z[:, 0] + l2 * inv_z[:, 1] + l3 * inv_z[:, 2], 0.0)
            best = iz.max(1)                                         # largest 1/z: the front surface
            hit = best > 0
            out[todo[hit]] = 1.0 / best[hit]
            todo = todo[~hit]
            q[todo] += 0.04 * (centre - pts[todo])
        return out

    def reproject(self, pts: np.ndarray, target_m: float) -> tuple[np.ndarray, np.ndarray]:
        """Image positions now and after the dolly zoom to `target_m`.

        The camera moves back along its optical axis until the face centroid
        is `target_m` away and the focal length grows by target/d, so the face
        keeps its size and place; only the perspective changes.
        """
        cam = self.camera_points(pts)
        d = self.distance_m
        before = self.project(cam)
        moved = cam + np.array([0.0, 0.0, target_m - d])
        after = self.project(moved, f=self.f * target_m / d)
        return before, after


def _unpack(x: np.ndarray, model: FaceModel, n_modes: int, with_shape: bool, free_p: bool):
    r, u0, v0, logk = x[0:3], x[3], x[4], x[5]
    i = 6
    p = None
    if free_p:
        p = x[6]
        i = 7
    shape = model.mean
    scales = np.ones(3)
    coeffs = np.zeros(n_modes)
    if with_shape:
        scales = 1.0 + x[i:i + 3]
        coeffs = x[i + 3:i + 3 + n_modes]
        i += 3 + n_modes
        shape = model.mean * scales + np.tensordot(coeffs, model.modes[:n_modes], 1)
    return r, u0, v0, np.exp(logk), p, shape, scales, coeffs


def _camera(u0: float, v0: float, k: float, f: float, center: np.ndarray):
    """Translation (tx, ty, d) from the (u0, v0, k) parameterisation and f."""
    d = f / k
    return np.array([(u0 - center[0]) / k, (v0 - center[1]) / k, d])


def _fit(landmarks: np.ndarray, image_size: tuple[int, int], focal: float | None, n_modes: int | None,
         start: np.ndarray | None = None):
    """Least-squares fit of pose, scale k, shape and (focal None) the perspective strength p.

    The projection is written in (k, p): a point s (face frame, rotated) lands at
    c + (k s_xy + (u0, v0) - c) / (1 + p s_z), which is the pinhole projection
    with f = k / p at distance d = 1 / p and stays finite at p = 0 (orthographic).
    With `focal` given, p = k / focal (the fit of today); without it p is free.
    `start`: the solution vector of a fit with the focal length free (the
    perspective fit); with it the camera-only first stage is skipped and the
    joint fit starts from that pose, scale and shape (same minimum, about
    half the work).
    Returns (params, shape, rms_px, p, center, solution vector).
    """
    from scipy.optimize import least_squares

    model = face_model()
    n_modes = len(model.modes) if n_modes is None else min(n_modes, len(model.modes))
    w, h = image_size
    center = np.array([w / 2.0, h / 2.0])
    obs = landmarks[:, :2].astype(np.float64)
    zobs = landmarks[:, 2].astype(np.float64)
    zobs = zobs - zobs.mean()
    free_p = focal is None
    # Initial guess: scale from the spread of the points (k ~ px per metre), pose from
    # the mesh's own 3D points aligned to the mean face.
    spread_px = np.sqrt(((obs - obs.mean(0)) ** 2).sum(1).mean())
    spread_m = np.sqrt((model.mean[:, :2] ** 2).sum(1).mean())
    k0 = spread_px / spread_m
    r0 = _initial_rotation(np.column_stack([obs, zobs]), model.mean)
    x0 = np.concatenate([r0, obs.mean(0), [np.log(k0)], [2.0] if free_p else []])
    # Landmark pixel errors are relative to the face size: normalise by it so
    # that the prior weights mean the same for a small and a large face.
    norm = 100.0 / max(spread_px, 1.0)
    wts = np.where(rim_mask(), RIM_WEIGHT, 1.0)[:, None]

    def project(x, with_shape):
        r, u0, v0, k, p, shape, scales, coeffs = _unpack(x, model, n_modes, with_shape, free_p)
        p = k / focal if p is None else p
        s = shape @ rodrigues(r).T
        proj = center + (k * s[:, :2] + (np.array([u0, v0]) - center)) / np.maximum(1.0 + p * s[:, 2:3], 1e-6)
        return proj, s, k, p, scales, coeffs, shape, r, u0, v0

    def residuals(x, with_shape):
        proj, s, k, _, scales, coeffs, *_ = project(x, with_shape)
        res = [((proj - obs) * norm * wts).ravel()]
        # The mesh's relative depth is weak-perspective depth in image pixels.
        res.append(((s[:, 2] - s[:, 2].mean()) * k - zobs) * norm * _DEPTH_WEIGHT)
        if with_shape:
            res.append((scales - 1.0) / _SHAPE_SCALE_SIGMA)
            res.append(coeffs)
        return np.concatenate(res)

    if start is not None and not free_p:
        # Pose and scale (r, u0, v0, log k), then the shape after the free fit's p.
        shape0 = start[7:]
        coeffs0 = np.zeros(n_modes)
        coeffs0[:min(n_modes, len(shape0) - 3)] = shape0[3:3 + n_modes]
        x1 = np.concatenate([start[:6], shape0[:3], coeffs0])
    else:
        # Stage 1: camera only, mean face.
        s1 = least_squares(residuals, x0, args=(False,), method="lm", x_scale="jac", max_nfev=200)
        # Stage 2: camera and shape jointly, starting from stage 1.
        x1 = np.concatenate([s1.x, np.zeros(3 + n_modes)])
    s2 = least_squares(residuals, x1, args=(True,), method="lm", x_scale="jac", max_nfev=300)
    proj, _, k, p, _, _, shape, r, u0, v0 = project(s2.x, True)
    rms = float(np.sqrt(((proj - obs) ** 2).sum(1).mean()))
    return (r, u0, v0, k), shape, rms, float(p), center, s2.x


def fit_face(landmarks: np.ndarray, image_size: tuple[int, int], focal: float,
             n_modes: int | None = None, start: np.ndarray | None = None) -> FaceFit:
    """Fit camera, pose and shape to 468 landmarks (x, y pixels, z relative depth).

    Parameters
    ----------
    landmarks : 468 x 3, pixels of the analysed image (z in the same scale)
    image_size : (width, height) of the analysed image
    focal : focal length in pixels
    n_modes : shape modes used in the second stage (default: all of the model's)
    start : the perspective fit's solution (`perspective_strength`), to start from
    """
    (r, u0, v0, k), shape, rms, _, center, _ = _fit(landmarks, image_size, float(focal), n_modes, start)
    t = _camera(u0, v0, k, focal, center)
    return FaceFit(float(focal), center, rodrigues(r), t, shape, rms)


PERSPECTIVE_MODES = 2          # shape modes free while p is: more modes soak up the perspective


def perspective_strength(landmarks: np.ndarray, image_size: tuple[int, int], n_modes: int = PERSPECTIVE_MODES,
                         with_solution: bool = False):
    """The fit with the focal length free: (p, k), p = 1 / distance in 1/m as the
    landmarks' perspective says (raw, before calibration), k = f / d in px per metre
    (with_solution: and the solution vector, a start for `fit_face`).

    n_modes: measured on the calibration renders (raw slope / scatter of p):
    0 modes 0.54 / 0.44, 2 modes 0.52 / 0.31, all 6 modes 0.29 / 0.41."""
    (_, _, _, k), _, _, p, _, x = _fit(landmarks, image_size, None, n_modes)
    return (p, float(k), x) if with_solution else (p, float(k))


@lru_cache(maxsize=1)
def triangles() -> np.ndarray:
    """Triangles (T x 3 indices) over the 468 points: a Delaunay triangulation of
    the frontal mean face, wound so that their normals face the camera (-z)."""
    from scipy.spatial import Delaunay

    mean = face_model().mean
    tri = Delaunay(mean[:, :2]).simplices.astype(np.int64)
    p = mean[tri]
    normal_z = np.cross(p[:, 1] - p[:, 0], p[:, 2] - p[:, 0])[:, 2]
    tri[normal_z > 0] = tri[normal_z > 0][:, [0, 2, 1]]
    return tri


@lru_cache(maxsize=1)
def rim_mask() -> np.ndarray:
    """Landmarks within 12 mm of the face outline (of the frontal mean face)."""
    import cv2

    mean = face_model().mean
    poly = cv2.convexHull(mean[:, :2].astype(np.float32)).reshape(-1, 2)
    return np.array([cv2.pointPolygonTest(poly, (float(x), float(y)), True) < 0.012 for x, y in mean[:, :2]])


def _initial_rotation(mesh3d: np.ndarray, mean: np.ndarray) -> np.ndarray:
    """Rotation vector aligning the mean face to the mesh's own 3D points (Kabsch)."""
    a = mean - mean.mean(0)
    b = mesh3d - mesh3d.mean(0)
    u, _, vt = np.linalg.svd(a.T @ b)
    d = np.sign(np.linalg.det(u @ vt))
    rot = (u @ np.diag([1.0, 1.0, d]) @ vt).T
    # Rotation matrix -> vector.
    angle = np.arccos(np.clip((np.trace(rot) - 1) / 2, -1, 1))
    if angle < 1e-9:
        return np.zeros(3)
    v = np.array([rot[2, 1] - rot[1, 2], rot[0, 2] - rot[2, 0], rot[1, 0] - rot[0, 1]])
    return v / (2 * np.sin(angle)) * angle


# ---------------------------------------------------------------- distance from perspective

INTERVAL_LEVEL = 0.9           # central posterior mass of the reported distance interval
NEAREST_M, FARTHEST_M = 0.2, 5.0   # the prior: log-uniform camera distance in this range
EXIF_LOG_SIGMA = 0.2           # EXIF focal length: log-normal, ~20 % (crops and digital zoom lengthen it)
USER_SCALE_SIGMA = 0.06        # with a known focal length only the face's metric size is uncertain (IPD)


@dataclass(frozen=True)
class DistanceEstimate:
    """Camera-to-face distance of one face, with an interval."""

    distance_m: float          # posterior median
    low_m: float               # INTERVAL_LEVEL interval
    high_m: float              # math.inf when it reaches the far end of the prior
    focal_px: float            # focal length (analysed image's pixels) at the estimate
    source: str                # "user" (focal given), "perspective+exif" or "perspective"
    perspective_raw: float     # the uncalibrated perspective strength of the fit (1/m)
    fit: FaceFit | None = None  # the face fitted at focal_px


@lru_cache(maxsize=1)
def distance_calibration() -> dict:
    """The map raw perspective strength -> distance (core/tools/portrait_calibration.py)."""
    d = json.loads(resources.files("priorfx.portrait").joinpath("mean_face.json").read_text())
    return d["distance_calibration"]


def estimate_distance(landmarks: np.ndarray, image_size: tuple[int, int], exif_focal_px: float | None = None,
                      user_focal_px: float | None = None) -> DistanceEstimate:
    """Distance of a face from its landmarks' perspective, the EXIF focal length a prior.

    The fit with the focal length free gives a raw perspective strength and the
    face's image scale k = f / d. The calibration says how the raw strength
    scatters around the true p = 1 / d (the landmark model under-reports
    perspective and people differ); the posterior over p on a grid combines it
    with a log-uniform distance prior and, if EXIF gave a focal length, a
    log-normal prior on f = k / p. A user's focal length is a fact: then d = f / k
    and only the face's metric size is uncertain.
    """
    # The standard library's normal quantile: importing scipy.stats costs half a
    # second of every command's start.
    from statistics import NormalDist

    tail = (1.0 - INTERVAL_LEVEL) / 2.0
    if user_focal_px is not None:
        fit = fit_face(landmarks, image_size, float(user_focal_px))
        d = fit.distance_m
        z = NormalDist().inv_cdf(1.0 - tail) * USER_SCALE_SIGMA
        return DistanceEstimate(d, d * (1.0 - z), d * (1.0 + z), float(user_focal_px), "user", float("nan"), fit)
    cal = distance_calibration()
    p_raw, k, solution = perspective_strength(landmarks, image_size, with_solution=True)
    p = np.linspace(1.0 / FARTHEST_M, 1.0 / NEAREST_M, 2000)
    sd = cal["s0"] + cal["s1"] * p
    logpost = -0.5 * ((p_raw - cal["a"] - cal["b"] * p) / sd) ** 2 - np.log(sd) - np.log(p)
    source = "perspective"
    if exif_focal_px is not None:
        logpost += -0.5 * ((np.log(k / p) - np.log(exif_focal_px)) / EXIF_LOG_SIGMA) ** 2
        source = "perspective+exif"
    post = np.exp(logpost - logpost.max())
    cdf = np.cumsum(post)
    cdf /= cdf[-1]
    p_lo, p_med, p_hi = np.interp([tail, 0.5, 1.0 - tail], cdf, p)
    high = math.inf if p_lo <= p[0] + 2 * (p[1] - p[0]) else 1.0 / p_lo
    focal = float(k / p_med)
    # The face at the estimated focal length, started from the perspective fit.
    fit = fit_face(landmarks, image_size, focal, start=solution)
    return DistanceEstimate(float(1.0 / p_med), float(1.0 / p_hi), float(high), focal, source, float(p_raw), fit)
