"""Selfie perspective undistortion: re-render a close-up face from farther away.

A selfie taken at 20-60 cm enlarges the nose and narrows the face, because of
perspective. `undistort` fits a metric 3D face to each detected face under
full perspective, estimates the camera-to-face distance with an interval
(from the face's own perspective, the EXIF focal length as a prior, or the
user's focal length as a fact), leaves faces that may already be far alone,
and moves the camera back to
`distance_m` while lengthening the focal length so that the face keeps its
size (a dolly zoom). The landmark motion becomes a smooth warp over the head
that fades out over the background, applied with one full-resolution remap.

Example
-------
>>> from priorfx.portrait import PortraitParams, undistort
>>> res = undistort(rgb, PortraitParams(distance_m=1.5))      # doctest: +SKIP
>>> res.faces[0]["distance_m"], res.image.shape                # doctest: +SKIP

The focal length matters: the face's perspective alone tells near from far
only coarsely (a wide interval), so give `focal_mm` (or `exif_focal_mm`) when
known; it is the 35 mm-equivalent of the image as given (a crop of a photo
has a longer equivalent focal length).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import cv2
import numpy as np

from priorfx.errors import InputError, LimitError, NoFaceError, UsageError
from priorfx.portrait.params import PortraitParams, PortraitResult
from priorfx.progress import Progress, tick
from priorfx.provenance import provenance

# The face priors were trained on display-encoded photos (priorfx.colour
# converts scene-linear and log plates there and back).
WORKING_ENCODING = "display"
MAX_PIXELS = 100_000_000      # 100 MP; above it undistort refuses (LimitError)
ANALYSIS_MAX_SIDE = 1024      # the priors and the fit run on a copy this large at most (an integer fraction)
WEIGHT_MAX_SIDE = 384         # the head and person weights (smooth, feathered) are built this large at most
GRID_CELLS = 96              # the warp is computed on this many cells across the head box, then upsampled
DEFAULT_FOCAL_MM = 26.0       # 35 mm-equivalent focal of a typical phone front camera (the old default; now a peer)
FAR_ENOUGH_M = 1.0            # a face estimated this far (or whose interval reaches the target) is left unchanged
MODELS = ["blazeface-short-range", "face-landmark", "selfie-segmentation"]

__all__ = ["PortraitParams", "PortraitResult", "undistort", "face_message", "DEFAULT_FOCAL_MM", "MAX_PIXELS"]


@dataclass
class Plan:
    """The warp for a full-resolution image: backward displacement on a coarse grid."""

    box: tuple[int, int, int, int]     # full-res x0, y0, x1, y1 the warp touches
    grid: np.ndarray                   # ny x nx x 2, full-res pixels
    faces: list[dict[str, Any]]
    overlay: np.ndarray | None = None

    def backward(self, xy: np.ndarray) -> np.ndarray:
        """Backward displacement at full-res points (N x 2), bilinear on the grid."""
        x0, y0, x1, y1 = self.box
        ny, nx = self.grid.shape[:2]
        gx = (xy[:, 0] - x0 + 0.5) * nx / max(1, x1 - x0) - 0.5
        gy = (xy[:, 1] - y0 + 0.5) * ny / max(1, y1 - y0) - 0.5
        inside = (xy[:, 0] >= x0) & (xy[:, 0] < x1) & (xy[:, 1] >= y0) & (xy[:, 1] < y1)
        out = np.zeros((len(xy), 2), np.float64)
        if self.grid.size and inside.any():
            from priorfx.portrait.warp import sample_bilinear
            g = np.column_stack([gx, gy])
            for c in range(2):
                out[:, c] = sample_bilinear(self.grid[..., c], g, cv2.BORDER_REPLICATE)
        return out * inside[:, None]

    def forward(self, xy: np.ndarray, iterations: int = 20) -> np.ndarray:
        """Where input points land in the output (inverts the backward map)."""
        q = xy.astype(np.float64).copy()
        for _ in range(iterations):
            q = xy - self.backward(q)
        return q


def _check_image(image: np.ndarray) -> None:
    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] not in (3, 4):
        shape = getattr(image, "shape", None)
        raise InputError(f"expected an H x W x 3 (RGB) or H x W x 4 (RGBA) image, got shape {shape}",
                         "convert greyscale images to RGB first")
    h, w = image.shape[:2]
    if h * w > MAX_PIXELS:
        raise LimitError(f"image is {w}x{h} = {h * w / 1e6:.0f} MP, over the {MAX_PIXELS / 1e6:.0f} MP limit",
                         "downscale it first, or crop around the face")
    if min(h, w) < 32:
        raise InputError(f"image is {w}x{h}, too small to find a face", "use a larger image")


def plan(image: np.ndarray, params: PortraitParams, progress: Progress | None = None) -> Plan:
    """Find the faces, fit them and compute the warp (no full-res pixels touched)."""
    from priorfx.portrait import geometry, warp
    from priorfx.priors import face as face_prior
    from priorfx.priors import segmentation

    _check_image(image)
    h, w = image.shape[:2]
    # An integer fraction of the size: OpenCV's area resampling has a fast path
    # for those (1080p -> 960 px: 3 ms instead of 15 ms to 1024 px; 12 MP -> 1000 px:
    # 31 ms instead of 102 ms); the landmark model reads a 192 px crop anyway.
    scale = 1.0 / max(1, math.ceil(max(h, w) / ANALYSIS_MAX_SIDE))
    aw, ah = max(1, round(w * scale)), max(1, round(h * scale))
    rgb = image[..., :3]
    small = (cv2.resize(rgb, (aw, ah), interpolation=cv2.INTER_AREA) if scale < 1.0
             else np.ascontiguousarray(rgb))
    small = np.clip(small.astype(np.float32), 0.0, 1.0)
    sx, sy = aw / w, ah / h
    tick(progress, 1, 5, "finding faces")
    meshes = face_prior.find_faces(small, max_faces=params.max_faces)
    if not meshes:
        raise NoFaceError("no face found in the image",
                          "the portrait filter needs a visible face; try a larger or less rotated face")
    hulls = [cv2.convexHull(np.ascontiguousarray(m.points[:, :2], np.float32)).reshape(-1, 2).astype(np.float64) for m in meshes]
    chosen = list(range(len(meshes)))
    if params.face is not None:
        if params.face >= len(meshes):
            raise UsageError(f"face index {params.face} does not exist: {len(meshes)} face(s) found",
                             f"use 0..{len(meshes) - 1}, or omit it to correct all faces")
        chosen = [params.face]
    # Each face's warp keeps off the other faces (neighbours in a group photo).
    protect = [[hulls[j] for j in range(len(meshes)) if j != i] for i in chosen]
    meshes = [meshes[i] for i in chosen]
    tick(progress, 2, 5, "fitting the 3D face")
    user_f = None if params.focal_mm is None else geometry.focal_px(params.focal_mm, aw, ah)
    exif_f = None if params.exif_focal_mm is None else geometry.focal_px(params.exif_focal_mm, aw, ah)
    estimates = [geometry.estimate_distance(m.points, (aw, ah), exif_focal_px=exif_f, user_focal_px=user_f)
                 for m in meshes]
    to_px = geometry.focal_px(1.0, aw, ah)                   # analysed-image px per 35 mm-equivalent mm
    # The weights are smooth (feathered over a third of a head width): build
    # them on a smaller copy; that saves most of the blurs and distance transforms.
    ws = min(1.0, WEIGHT_MAX_SIDE / max(aw, ah))
    ww, wh = max(1, round(aw * ws)), max(1, round(ah * ws))
    wsx, wsy = ww / aw, wh / ah
    tick(progress, 3, 5, "building the warp")
    face_warps, faces = [], []
    for m, est in zip(meshes, estimates):
        fit = est.fit
        d = fit.distance_m
        # Strength blends linearly in inverse distance (perspective strength).
        inv = (1.0 - params.strength) / d + params.strength / params.distance_m
        target = 1.0 / inv
        # Do no harm: a face that may already be as far as the target, or is beyond
        # about 1 m, is left as it is (a wrong warp is worse than none).
        far = est.distance_m >= FAR_ENOUGH_M or est.low_m <= params.distance_m <= est.high_m
        correct = params.strength > 0 and not far
        face_warps.append(warp.face_warp(fit, m.points, target) if correct else None)
        b = m.box
        focal_mm = est.focal_px / to_px
        faces.append({"box": [float(b[0] / sx), float(b[1] / sy), float(b[2] / sx), float(b[3] / sy)],
                      "score": round(m.score, 4), "distance_m": round(est.distance_m, 4),
                      "distance_low_m": round(est.low_m, 4),
                      "distance_high_m": round(est.high_m, 4) if math.isfinite(est.high_m) else None,
                      "target_m": round(target, 4) if correct else None, "corrected": correct,
                      "focal_mm": round(focal_mm, 2), "focal_source": est.source,
                      "focal_px": round(geometry.focal_px(focal_mm, w, h), 2),
                      "fit_rms_px": round(fit.rms_px / sx, 3)})
    warps = [fw for fw in face_warps if fw is not None]
    for f in faces:
        f["warp_scale"] = 1.0 if f["corrected"] else 0.0
    if not warps:                                   # nothing to correct: no segmentation, no warp
        return Plan((0, 0, 0, 0), np.zeros((0, 0, 2)), faces, _overlay(small, meshes, face_warps, faces, None)
                    if params.debug_overlay else None)
    person = segmentation.person_probability(small, out_size=(ww, wh))
    small_warps = [warp.scaled(fw, wsx, wsy) for fw in warps]
    small_protect = [[warp.scale_points(hull, wsx, wsy) for hull in hs]
                     for hs, fw in zip(protect, face_warps) if fw is not None]
    heads = warp.head_weights((wh, ww), small_warps, small_protect)
    pweight = warp.person_weight(person, small_warps)
    weight = np.max(heads, axis=0) * pweight
    ys, xs = np.nonzero(weight > 1e-3)
    if len(xs) == 0:
        return Plan((0, 0, 0, 0), np.zeros((0, 0, 2)), faces, None)
    # Bounding box of the warp in full-res pixels (one weight pixel of margin), and a coarse grid over it.
    kx, ky = sx * wsx, sy * wsy           # weight px per full-res px
    mx, my = int(np.ceil(1 / kx)) + 2, int(np.ceil(1 / ky)) + 2
    x0, x1 = int(max(0, np.floor(xs.min() / kx) - mx)), int(min(w, np.ceil((xs.max() + 1) / kx) + mx))
    y0, y1 = int(max(0, np.floor(ys.min() / ky) - my)), int(min(h, np.ceil((ys.max() + 1) / ky) + my))
    bw, bh = x1 - x0, y1 - y0
    step = max(2.0, max(bw, bh) / GRID_CELLS)
    nx, ny = max(2, int(np.ceil(bw / step))), max(2, int(np.ceil(bh / step)))
    gx_full = x0 + (np.arange(nx) + 0.5) * bw / nx - 0.5
    gy_full = y0 + (np.arange(ny) + 0.5) * bh / ny - 0.5
    grid = warp.coarse_field(warps, heads, pweight, (gx_full + 0.5) * sx - 0.5, (gy_full + 0.5) * sy - 0.5,
                             weight_scale=(wsx, wsy))
    grid[..., 0] /= sx
    grid[..., 1] /= sy
    grid, factor = warp.safe_field(grid, bw / nx, bh / ny)
    for f in faces:
        if f["corrected"]:
            f["warp_scale"] = round(factor, 3)
    overlay = (_overlay(small, meshes, face_warps, faces, cv2.resize(weight, (aw, ah), interpolation=cv2.INTER_LINEAR))
               if params.debug_overlay else None)
    tick(progress, 4, 5, "warping")
    return Plan((x0, y0, x1, y1), grid.astype(np.float32), faces, overlay)


def undistort(image: np.ndarray, params: PortraitParams | None = None,
              progress: Progress | None = None) -> PortraitResult:
    """Re-render a close-up portrait as if shot from `params.distance_m`.

    Parameters
    ----------
    image : float32 H x W x 3 (RGB) or H x W x 4 (RGBA, alpha warped with the
        colour), values in [0, 1] (other float ranges pass through unchanged).
    params : PortraitParams (default: 1.5 m, all faces, full strength)
    progress : optional Progress for reporting and cancelling

    Raises
    ------
    NoFaceError when no face is found; LimitError above MAX_PIXELS;
    InputError for a wrong array shape.
    """
    params = params or PortraitParams()
    _check_image(image)
    p = plan(image, params, progress)
    src = np.ascontiguousarray(image, dtype=np.float32)
    out = src.copy()
    if p.grid.size:
        from priorfx.portrait.warp import remap_region
        remap_region(src, p.grid, p.box, out, progress=progress)
    tick(progress, 5, 5, "done")
    prov = provenance("undistort", params=asdict(params), models=MODELS,
                      faces=[{k: v for k, v in f.items() if k != "box"} for f in p.faces])
    overlay, p.overlay = p.overlay, None      # carried once, as `debug`
    return PortraitResult(out, p.faces, prov, overlay, p)


def distance_text(face: dict[str, Any]) -> str:
    """'about 45 cm (30-80 cm)' or 'about 2.5 m (1.2 m or more)': a face's distance and interval."""
    def length(m: float) -> str:
        return f"{m * 100:.0f} cm" if m < 1.0 else f"{m:.1f} m"

    lo, hi = face["distance_low_m"], face["distance_high_m"]
    span = f"{length(lo)} or more" if hi is None else f"{length(lo)}-{length(hi)}"
    return f"about {length(face['distance_m'])} ({span})"


def face_message(i: int, face: dict[str, Any]) -> str:
    """One line per face for the CLI and the GIMP message."""
    where = f"face {i}: {distance_text(face)} from the camera"
    if not face["corrected"]:
        return f"{where}; nothing to correct"
    return f"{where} -> re-rendered at {face['target_m'] * 100:.0f} cm"


def _overlay(small, meshes, warps, faces, weight) -> np.ndarray:
    """Landmarks (green), head proxy (yellow), warp weight (red tint), distances."""
    img = np.clip(small[..., :3], 0, 1).copy()
    if weight is not None:
        img[..., 0] = np.clip(img[..., 0] + 0.35 * weight, 0, 1)
    canvas = np.ascontiguousarray((img * 255).astype(np.uint8))
    s = max(1, round(max(canvas.shape[:2]) / 500))
    for m, fw, f in zip(meshes, warps, faces):
        for x, y in m.points[:, :2]:
            cv2.circle(canvas, (int(x), int(y)), s, (0, 255, 0), -1)
        x0, y0 = m.box[:2]
        if fw is None:
            cv2.putText(canvas, f"{distance_text(f)}: left as is", (int(x0), max(12 * s, int(y0) - 6)),
                        cv2.FONT_HERSHEY_SIMPLEX, 0.45 * s, (255, 255, 255), s)
            continue
        cv2.polylines(canvas, [np.round(fw.silhouette).astype(np.int32)], True, (255, 255, 0), s)
        for (x, y), (dx, dy) in zip(fw.at[::7], fw.disp[::7]):
            cv2.arrowedLine(canvas, (int(x), int(y)), (int(x + 3 * dx), int(y + 3 * dy)), (255, 0, 255), 1)
        cv2.putText(canvas, f"{distance_text(f)} -> {f['target_m'] * 100:.0f} cm",
                    (int(x0), max(12 * s, int(y0) - 6)), cv2.FONT_HERSHEY_SIMPLEX, 0.45 * s, (255, 255, 255), s)
    return canvas.astype(np.float32) / 255.0
