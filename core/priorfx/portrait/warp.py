"""Dense, smooth re-projection warp over the head, and the full-resolution remap.

The fitted face moves under the dolly zoom (geometry.FaceFit.reproject). Its
468 landmark displacements, plus those of a head proxy (an ellipsoid behind
the face standing in for forehead, hair and ears), are interpolated by a thin
plate spline into a backward displacement field. The face-outline landmarks
are treated as sliding points: their motion is anchored halfway between the
detected point and the fitted head's own projection; their motion leans
(OUTLINE_SURFACE_BLEND) from the motion of their own surface point towards
that of the fitted surface visible where they are placed (the visible outline
moves less than a point folded behind it at close range: more of that gives
better landmarks inside the outline, less a better placed outline in the
picture); and the spline approximates rather than interpolates them (the
motion changes fastest there, and that is where the landmarks are least
sure). Outline vertices folded behind the cheek at close range (about one in
five at 25 cm) cannot be followed by any warp: the picture shows the cheek
in front of them, which moves less. The field is multiplied by a weight that is 1 over the head and fades to 0 over the
background: a feather around the projected head ellipsoid times the
(slightly dilated) person mask, so background lines stay straight. Both
weights cover where the head is and where it goes (the outline moves out);
they are smooth, so the caller builds them on a small copy of the image.
The field is computed on a coarse grid, checked for fold-over (scaled down
if the warp would tear), and upsampled strip by strip into one
full-resolution cv2.remap of the head's bounding box.

Honest limits: a warp can only move pixels the near camera saw. Ears and the
sides of the head hidden at 25 cm cannot appear; the face widens by
stretching the visible cheek/hair band next to the silhouette instead. The
body below the neck is left almost unchanged (a true dolly zoom would enlarge
it, and the background even more), so the result is a corrected head on the
original body and background.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

from priorfx.portrait.geometry import FaceFit, rim_mask

HEAD_VERTEX_ABOVE_FOREHEAD_M = 0.085   # mid-forehead landmark -> top of the skull
HEAD_LENGTH_M = 0.19                   # glabella -> back of the head (adult mean ~19 cm)
HEAD_WIDER_THAN_FACE = 1.12            # head breadth / face-outline width
MIN_JACOBIAN = 0.3                     # below this the warp is scaled down (no tearing)
PROXY_MARGIN = 1.25                    # head-proxy points start this far out of the face hull
SPLINE_SMOOTHING = 1e-3                # thin-plate smoothing (coordinates in head widths)
RIM_SMOOTHING = 1e-2                   # ... for the face-outline landmarks (see spline_smoothing)
OUTLINE_FIT_BLEND = 0.5                # outline anchors: this much of the way to the fitted model's points
OUTLINE_SURFACE_BLEND = 0.35           # outline motion: this much of the visible surface's motion there
PERSON_MARGIN = 0.06                   # the warp may reach this far (x head width) into the background


@dataclass
class FaceWarp:
    """Backward displacement samples of one face (analysis-image pixels)."""

    at: np.ndarray            # N x 2 output positions
    disp: np.ndarray          # N x 2 backward displacement (output -> input)
    silhouette: np.ndarray    # M x 2 polygon of the projected head proxy, before and after the warp
    head_width_px: float
    face_hull: np.ndarray     # K x 2 convex hull of the face landmarks, before and after the warp


def scale_points(xy: np.ndarray, sx: float, sy: float) -> np.ndarray:
    """Pixel positions (N x 2) in an image resized by (sx, sy) (pixel centres kept)."""
    return (xy + 0.5) * np.array([sx, sy]) - 0.5


def scaled(fw: FaceWarp, sx: float, sy: float) -> FaceWarp:
    """The same face warp in an image resized by (sx, sy) (for the smaller weight images)."""
    return FaceWarp(scale_points(fw.at, sx, sy), fw.disp * np.array([sx, sy]), scale_points(fw.silhouette, sx, sy),
                    fw.head_width_px * sx, scale_points(fw.face_hull, sx, sy))


def head_proxy(shape: np.ndarray, n_lat: int = 24, n_lon: int = 48) -> np.ndarray:
    """Points of an ellipsoid head behind the fitted face (face frame, metres)."""
    top = shape[10, 1] - HEAD_VERTEX_ABOVE_FOREHEAD_M
    bottom = shape[152, 1]
    a = 0.5 * abs(shape[454, 0] - shape[234, 0]) * HEAD_WIDER_THAN_FACE
    b = 0.5 * (bottom - top)
    c = 0.5 * HEAD_LENGTH_M
    center = np.array([0.5 * (shape[454, 0] + shape[234, 0]), 0.5 * (bottom + top), shape[10, 2] + c])
    th, ph = np.meshgrid(np.linspace(0.02, np.pi - 0.02, n_lat), np.linspace(0, 2 * np.pi, n_lon, endpoint=False),
                         indexing="ij")
    unit = np.stack([np.sin(th) * np.cos(ph), -np.cos(th), np.sin(th) * np.sin(ph)], -1).reshape(-1, 3)
    return center + unit * np.array([a, b, c])


def face_warp(fit: FaceFit, landmarks: np.ndarray, target_m: float) -> FaceWarp:
    """Displacement samples for one face: mesh landmarks plus the visible head proxy."""
    before, after = fit.reproject(fit.shape, target_m)
    obs = landmarks[:, :2].astype(np.float64)
    # Outline landmarks slide along the face contour: the landmark model puts
    # them on whatever outline is visible, a few pixels from the surface point
    # of that index. The fitted head's projection of the point is a second,
    # independent estimate of where it is; the motion is anchored between the two.
    rim = rim_mask()[:, None]
    obs = np.where(rim, OUTLINE_FIT_BLEND * before + (1 - OUTLINE_FIT_BLEND) * obs, obs)
    disp_face = after - before
    # Where an outline anchor sits, what the camera sees is the visible
    # surface: near the occluding contour that is a point in front of the
    # outline vertex (folded behind it at close range), and it moves less. Both
    # are estimates of the motion there (see OUTLINE_SURFACE_BLEND).
    disp_face[rim[:, 0]] = outline_motion(fit, obs[rim[:, 0]], disp_face[rim[:, 0]], target_m)
    head = head_proxy(fit.shape)
    cam = fit.camera_points(head)
    hb, ha = fit.reproject(head, target_m)
    # Visible half of the ellipsoid: its outward normal faces the camera.
    centre_cam = fit.camera_points(head.mean(0, keepdims=True))[0]
    visible = ((cam - centre_cam) * cam).sum(1) < 0
    hull = cv2.convexHull(obs.astype(np.float32)).reshape(-1, 2)
    # Proxy points over the face itself are left to the mesh (which is exact there).
    centroid = obs.mean(0)
    grown = centroid + (hull - centroid) * PROXY_MARGIN
    outside = np.array([cv2.pointPolygonTest(grown.astype(np.float32), (float(x), float(y)), False) < 0
                        for x, y in hb])
    # Only the skull above the jaw: under the jaw the ellipsoid stands for
    # nothing real (neck, or the jaw itself hides it).
    upper = head[:, 1] < fit.shape[152, 1] - 0.035
    keep = visible & outside & upper
    src = np.concatenate([obs, hb[keep]])
    disp = np.concatenate([disp_face, (ha - hb)[keep]])
    # The weights that gate the field live in output positions: cover where the
    # head is and where it goes (the outline moves out by up to a few % of the
    # face width), or the rim's motion would be cut by the fade.
    sil = cv2.convexHull(np.concatenate([hb, ha]).astype(np.float32)).reshape(-1, 2)
    both = cv2.convexHull(np.concatenate([obs, obs + disp_face]).astype(np.float32)).reshape(-1, 2)
    width = float(np.ptp(cv2.convexHull(hb.astype(np.float32)).reshape(-1, 2)[:, 0]))
    return FaceWarp(src + disp, -disp, sil.astype(np.float64), width, both.astype(np.float64))


def outline_motion(fit: FaceFit, xy: np.ndarray, vertex_motion: np.ndarray, target_m: float) -> np.ndarray:
    """Motion of outline anchors at xy: OUTLINE_SURFACE_BLEND of the way from
    their own vertices' motion to that of the fitted surface visible at xy
    (the vertices' own motion where no surface is found)."""
    depth = fit.visible_depth(xy)
    found = np.isfinite(depth)
    surface = vertex_motion.copy()
    surface[found] = fit.dolly(xy[found], depth[found], target_m)
    return OUTLINE_SURFACE_BLEND * surface + (1 - OUTLINE_SURFACE_BLEND) * vertex_motion


def head_weights(shape_hw: tuple[int, int], warps: list[FaceWarp], protect: list[list[np.ndarray]] | None = None,
                 feather: float = 0.3) -> list[np.ndarray]:
    """One weight per face in [0, 1]: 1 over its head, fading to 0 around it.

    The projected head proxy and the face hull, grown by 10 % and by
    `feather` x head width, then blurred. `protect[i]` lists face hulls (other people's faces, input
    pixels) that face i's warp must not touch: its weight is cut to 0 there.
    """
    h, w = shape_hw
    out = []
    for i, fw in enumerate(warps):
        m = np.zeros((h, w), np.uint8)
        # The head proxy and the face itself (the jaw is wider than the ellipsoid's bottom).
        for poly, grow in ((fw.silhouette, 1.1), (fw.face_hull, 1.1)):
            c = poly.mean(0)
            cv2.fillPoly(m, [np.round(c + (poly - c) * grow).astype(np.int32)], 255)
        r = max(1.0, feather * fw.head_width_px)
        weight = fade_outside(m > 0, r)
        if protect and protect[i]:
            keep = np.zeros((h, w), np.uint8)
            for hull in protect[i]:
                hc = hull.mean(0)
                cv2.fillConvexPoly(keep, np.round(hc + (hull - hc) * 1.15).astype(np.int32), 1)
            soft = cv2.GaussianBlur(keep.astype(np.float32), (0, 0), max(1.0, 0.05 * fw.head_width_px))
            weight *= 1.0 - np.clip(soft * 2.0, 0, 1)
        out.append(weight)
    return out


def fade_outside(mask: np.ndarray, width: float) -> np.ndarray:
    """1 inside `mask`, falling smoothly (smoothstep) to 0 at `width` pixels outside it."""
    dist = cv2.distanceTransform((~mask).astype(np.uint8), cv2.DIST_L2, 5)
    t = np.clip(dist / max(width, 1e-6), 0.0, 1.0)
    return (1.0 - t * t * (3.0 - 2.0 * t)).astype(np.float32)


def person_weight(person: np.ndarray, warps: list[FaceWarp]) -> np.ndarray:
    """The person probability, dilated by a few % of the head width and softened.

    Multiplying the field by it keeps the background still (straight lines),
    while the silhouette may still move a little into the background next to it.
    The face itself (hull of its landmarks) always counts as person: the
    segmentation can be unsure over glasses, beards or make-up.
    """
    k = max(1, int(PERSON_MARGIN * max(fw.head_width_px for fw in warps))) | 1
    p = cv2.dilate(person.astype(np.float32), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k)))
    p = cv2.GaussianBlur(np.clip((p - 0.2) / 0.6, 0, 1), (0, 0), k / 2)
    face = np.zeros(person.shape, np.uint8)
    for fw in warps:
        c = fw.face_hull.mean(0)
        cv2.fillConvexPoly(face, np.round(c + (fw.face_hull - c) * 1.15).astype(np.int32), 1)
    face = cv2.GaussianBlur(face.astype(np.float32), (0, 0), k / 2)
    return np.maximum(p, np.clip(face * 2.0, 0, 1))


def sample_bilinear(img: np.ndarray, pts: np.ndarray, border: int = cv2.BORDER_CONSTANT) -> np.ndarray:
    """Bilinear samples of a one-channel float image at N x 2 points (x, y); 0 outside."""
    n = len(pts)
    cols = 1024   # cv2.remap wants maps shorter than 32767 in each direction
    rows = max(1, -(-n // cols))
    mx = np.zeros(rows * cols, np.float32)
    my = np.zeros(rows * cols, np.float32)
    mx[:n], my[:n] = pts[:, 0], pts[:, 1]
    out = cv2.remap(np.ascontiguousarray(img, np.float32), mx.reshape(rows, cols), my.reshape(rows, cols),
                    cv2.INTER_LINEAR, borderMode=border, borderValue=0)
    return out.reshape(-1)[:n]


def coarse_field(warps: list[FaceWarp], heads: list[np.ndarray], person: np.ndarray | None,
                 gx: np.ndarray, gy: np.ndarray, weight_scale: tuple[float, float] = (1.0, 1.0)) -> np.ndarray:
    """Backward field (ny x nx x 2, analysis px) at grid positions gx (nx), gy (ny).

    Each face's thin-plate spline counts only under its own head weight; where
    heads overlap the fields are averaged; the person weight multiplies all.
    The weight images may be smaller than the analysis image by `weight_scale`.
    """
    with _one_blas_thread():
        return _coarse_field(warps, heads, person, gx, gy, weight_scale)


@lru_cache(maxsize=1)
def _blas_controller():
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:        # optional: without it BLAS keeps its own thread count
        return None
    return ThreadpoolController()


def _one_blas_thread():
    """Context: BLAS on one thread. The spline's systems are small (a few hundred
    unknowns): on a few shared, busy cores OpenBLAS's threads spin and wait far
    longer than the work takes (measured: 3x the CPU time for the 1080p plan)."""
    ctl = _blas_controller()
    return ctl.limit(limits=1, user_api="blas") if ctl is not None else contextlib.nullcontext()


SPLINE_GRID_STEP = 2        # the spline is evaluated on every 2nd grid node, linearly in between


def _subgrid(n: int, step: int) -> np.ndarray:
    """Every `step`-th index of 0..n-1, the last one always included."""
    idx = np.arange(0, n, step)
    return idx if idx[-1] == n - 1 else np.append(idx, n - 1)


def _coarse_field(warps, heads, person, gx, gy, weight_scale) -> np.ndarray:
    pts = np.stack(np.meshgrid(gx, gy), -1).reshape(-1, 2)
    wpts = scale_points(pts, *weight_scale)
    # The spline is smooth on the grid's scale (a few % of a head width per
    # node): evaluating it on every 2nd node and interpolating linearly moves
    # the field by well under a pixel and saves 3/4 of the kernel evaluations,
    # the plan's largest cost. The weights stay at full grid resolution.
    ix, iy = _subgrid(len(gx), SPLINE_GRID_STEP), _subgrid(len(gy), SPLINE_GRID_STEP)
    sub = np.stack(np.meshgrid(gx[ix], gy[iy]), -1).reshape(-1, 2)
    acc = np.zeros((len(pts), 2))
    total = np.zeros(len(pts))
    for fw, head in zip(warps, heads):
        wts = sample_bilinear(head, wpts)
        if not (wts > 1e-4).any():
            continue
        # Zero-displacement anchors on a ring well outside the head keep the
        # spline from extrapolating (its linear part) across the image.
        c = fw.silhouette.mean(0)
        ang = np.linspace(0, 2 * np.pi, 36, endpoint=False)
        ring = c + 1.7 * np.stack([np.cos(ang), np.sin(ang)], 1) * np.ptp(fw.silhouette, 0) / 2
        # Work in head-width units so that the smoothing means the same at any size.
        unit = max(fw.head_width_px, 1.0)
        at = (np.concatenate([fw.at, ring]) - c) / unit
        val = np.concatenate([fw.disp, np.zeros_like(ring)])
        spline = fit_tps(at, val, spline_smoothing(fw, len(ring)))
        coarse = eval_tps(spline, (sub - c) / unit).reshape(len(iy), len(ix), 2)
        acc += _interp_grid(coarse, ix, iy, len(gx), len(gy)).reshape(-1, 2) * wts[:, None]
        total += wts
    field = acc / np.maximum(total, 1.0)[:, None]
    if person is not None:
        field *= sample_bilinear(person, wpts)[:, None]
    return field.reshape(len(gy), len(gx), 2)


def _interp_grid(values: np.ndarray, ix: np.ndarray, iy: np.ndarray, nx: int, ny: int) -> np.ndarray:
    """Values (len(iy) x len(ix) x k) at grid nodes (iy, ix) -> all ny x nx nodes, linearly."""
    wx, wy = _linear_weights(ix, nx), _linear_weights(iy, ny)
    return np.stack([wy @ values[..., k] @ wx.T for k in range(values.shape[2])], -1)


def _linear_weights(nodes: np.ndarray, n: int) -> np.ndarray:
    """n x len(nodes): row i interpolates linearly between the nodes around i."""
    return np.stack([np.interp(np.arange(n), nodes, np.eye(len(nodes))[j]) for j in range(len(nodes))], 1)


def _tps_kernel(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """r^2 log r between the rows of a (N x 2) and b (M x 2)."""
    # |a|^2 + |b|^2 - 2 a.b: one matrix product and in-place operations (the
    # broadcast difference costs an N x M x 2 temporary and three passes more).
    r2 = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * (a @ b.T)
    np.maximum(r2, 1e-300, out=r2)
    k = np.log(r2)
    k *= r2
    k *= 0.5
    return k


def fit_tps(at: np.ndarray, val: np.ndarray, smoothing: np.ndarray) -> tuple:
    """Smoothing thin-plate spline through values `val` (N x k) at `at` (N x 2).

    Minimises sum_i |f(at_i) - val_i|^2 / smoothing_i + bending energy
    (the same system as scipy's RBFInterpolator with the thin_plate_spline
    kernel and a degree-1 polynomial), solved directly: a few hundred
    centres, so one dense solve is cheaper than scipy's general machinery.
    """
    n = len(at)
    a = np.zeros((n + 3, n + 3))
    a[:n, :n] = _tps_kernel(at, at) + np.diag(smoothing)
    poly = np.column_stack([np.ones(n), at])
    a[:n, n:] = poly
    a[n:, :n] = poly.T
    rhs = np.zeros((n + 3, val.shape[1]))
    rhs[:n] = val
    coef = np.linalg.solve(a, rhs)
    return at, coef[:n], coef[n:]


def eval_tps(spline: tuple, pts: np.ndarray, chunk: int = 4096) -> np.ndarray:
    """Values of a fit_tps spline at pts (M x 2), in chunks (bounded memory)."""
    at, w, lin = spline
    # r^2 from |p|^2 + |c|^2 - 2 p.c, so that the kernel matrix is one matrix
    # product. Float64 throughout: the spline's weights are large and of
    # alternating sign, and in float32 the rounding (1e-4 px) would make the
    # output depend on tiny input changes (a host's export round trip).
    cc = (at * at).sum(1)[None, :]
    out = np.empty((len(pts), w.shape[1]))
    for i in range(0, len(pts), chunk):
        p = pts[i:i + chunk]
        r2 = (p * p).sum(1)[:, None] + cc - 2.0 * (p @ at.T)
        np.maximum(r2, 1e-300, out=r2)
        k = np.log(r2)
        k *= r2
        out[i:i + chunk] = 0.5 * (k @ w) + lin[0] + p @ lin[1:]
    return out


def spline_smoothing(fw: FaceWarp, n_ring: int) -> np.ndarray:
    """Per-sample thin-plate smoothing: approximate the face outline, interpolate the rest.

    The motion changes fastest at the face outline (its points lie deepest
    behind the face centre), and that is where the landmark model is least
    sure of its points: outline landmarks slide along the contour and sit on
    whatever is visible there, several pixels from the surface point of the
    same index. Interpolating them exactly puts a steep ramp at the wrong
    place; smoothing them spreads it over their uncertainty.
    """
    sm = np.full(len(fw.at) + n_ring, SPLINE_SMOOTHING)
    rim = rim_mask()
    sm[:len(rim)][rim] = RIM_SMOOTHING      # the mesh landmarks come first in fw.at
    return sm


def jacobian_det(field: np.ndarray, step_x: float, step_y: float) -> np.ndarray:
    """Determinant of d(x + field)/dx on the grid (1 = no change, <= 0 = fold-over)."""
    dfx_dx = np.gradient(field[..., 0], step_x, axis=1)
    dfx_dy = np.gradient(field[..., 0], step_y, axis=0)
    dfy_dx = np.gradient(field[..., 1], step_x, axis=1)
    dfy_dy = np.gradient(field[..., 1], step_y, axis=0)
    return (1 + dfx_dx) * (1 + dfy_dy) - dfx_dy * dfy_dx


def min_jacobian(field: np.ndarray, step_x: float, step_y: float) -> float:
    det = jacobian_det(field, step_x, step_y)
    return float(det.min()) if det.size else 1.0


def safe_field(field: np.ndarray, step_x: float, step_y: float) -> tuple[np.ndarray, float]:
    """Remove fold-over (tearing) from the warp; returns the field and a global factor.

    Where the warp would fold (the face rim moving out over what lies next to
    it: an occlusion a warp cannot show), the field is smoothed locally, a
    few cells at a time, which spreads the motion instead of shrinking it.
    Only if that does not suffice is the whole field scaled down (the factor
    returned, 1 = full strength).
    """
    field = field.astype(np.float32).copy()
    if field.size == 0:
        return field, 1.0
    for _ in range(30):
        bad = jacobian_det(field, step_x, step_y) < MIN_JACOBIAN
        if not bad.any():
            break
        grow = cv2.dilate(bad.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(np.float32)
        mask = cv2.GaussianBlur(grow, (0, 0), 1.0)[..., None]
        smooth = cv2.GaussianBlur(field, (0, 0), 1.5)
        field = field * (1 - mask) + smooth * mask
    factor = 1.0
    while factor > 0.05 and min_jacobian(field * factor, step_x, step_y) < MIN_JACOBIAN:
        factor *= 0.8
    return field * factor, factor


def remap_region(image: np.ndarray, field: np.ndarray, box: tuple[int, int, int, int],
                 out: np.ndarray, rows_per_strip: int = 512, progress=None) -> None:
    """Warp `image` inside `box` (x0, y0, x1, y1, full px) into `out` (a copy of image).

    `field` is the backward displacement (full-res pixels) on a coarse grid
    whose samples sit where cv2.resize puts pixel centres, so a linear
    upsampling of it to the box is exact. The upsampling is done per strip of
    rows (vertical interpolation in numpy, horizontal by cv2.resize), so
    memory stays bounded by the strip size whatever the image size.
    """
    x0, y0, x1, y1 = box
    bw, bh = x1 - x0, y1 - y0
    ny, nx = field.shape[:2]
    xs = np.arange(x0, x1, dtype=np.float32)[None, :]
    for s0 in range(0, bh, rows_per_strip):
        s1 = min(bh, s0 + rows_per_strip)
        rows = np.arange(s0, s1)
        cy = np.clip((rows + 0.5) * ny / bh - 0.5, 0, ny - 1)
        i0 = np.floor(cy).astype(int)
        i1 = np.minimum(i0 + 1, ny - 1)
        t = (cy - i0)[:, None, None]
        band = (field[i0] * (1 - t) + field[i1] * t).astype(np.float32)
        up = cv2.resize(band, (bw, s1 - s0), interpolation=cv2.INTER_LINEAR)
        map_x = up[..., 0] + xs
        map_y = up[..., 1] + (rows + y0).astype(np.float32)[:, None]
        out[y0 + s0:y0 + s1, x0:x1] = cv2.remap(image, map_x, map_y, cv2.INTER_LINEAR,
                                                borderMode=cv2.BORDER_REPLICATE).reshape(
            s1 - s0, bw, *image.shape[2:])
        if progress is not None:
            progress.check()    # cancellable between strips
