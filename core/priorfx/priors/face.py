"""Face prior: BlazeFace detection and the 468-point face mesh (LiteRT).

Both models come out of the mediapipe 0.10.21 wheel (see the model store);
the pre- and post-processing here is our own:

- detection: letterboxed 128x128 input in [-1, 1], 896 SSD anchors (strides
  8, 16, 16, 16; fixed anchor size), sigmoid scores, box/keypoint decoding and a
  score-weighted non-maximum suppression;
- landmarks: a square crop rotated so that the eye line is horizontal, 1.5x
  the detected box, resampled to 192x192 in [0, 1]; the model returns 468
  points (x, y in crop pixels, z relative depth in the same scale as x), which
  are un-projected to image pixels. A second pass re-centres the crop on the
  first pass's landmarks, which is how the mesh is meant to be tracked. The
  last pass also runs on the mirrored crop and averages the two meshes (the
  mirrored mesh un-mirrored and renumbered by the topology's left-right map):
  test-time mirror averaging, which halves the model's left-right bias and
  some of its noise for one more inference.

Public functions take an RGB float32 image in [0, 1] and return numpy arrays.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources

import cv2
import numpy as np

DETECTOR_ID = "blazeface-short-range"
LANDMARK_ID = "face-landmark"

# Mesh indices used across the core (the mediapipe face-mesh topology).
RIGHT_EYE_OUTER, RIGHT_EYE_INNER = 33, 133    # the subject's right eye (image left)
LEFT_EYE_OUTER, LEFT_EYE_INNER = 263, 362
NOSE_TIP, CHIN, FOREHEAD = 1, 152, 10

_DET_SIZE = 128
_LM_SIZE = 192


@dataclass
class Detection:
    """One detected face in image pixels."""

    box: np.ndarray          # x0, y0, x1, y1
    keypoints: np.ndarray    # 6 x 2: right eye, left eye, nose, mouth, right ear, left ear
    score: float


@dataclass
class FaceMesh:
    """468 landmarks of one face in image pixels (z in the same pixel scale)."""

    points: np.ndarray       # 468 x 3 float32: x, y (pixels), z (relative depth, pixels)
    score: float             # face presence probability of the landmark model
    detection: Detection | None = None
    crop: dict = field(default_factory=dict)

    @property
    def box(self) -> np.ndarray:
        xy = self.points[:, :2]
        return np.concatenate([xy.min(0), xy.max(0)]).astype(np.float32)

    @property
    def eye_distance(self) -> float:
        """Outer-eye-corner distance in pixels (the NME normaliser)."""
        return float(np.linalg.norm(self.points[RIGHT_EYE_OUTER, :2] - self.points[LEFT_EYE_OUTER, :2]))


# ---------------------------------------------------------------- adapters

def detect_faces(rgb: np.ndarray, min_score: float = 0.5, iou: float = 0.3) -> list[Detection]:
    """BlazeFace short-range detections, best first, in image pixels.

    The short-range model wants faces that fill a good part of its 128 px
    input, so besides the whole (letterboxed) image it also looks at
    overlapping square tiles (side = the short image side, and half of it);
    the detections of all views are merged by weighted NMS.
    """
    from priorfx.models import runtimes

    model = runtimes.load(DETECTOR_ID)
    all_b, all_k, all_s = [], [], []
    short = min(rgb.shape[:2])
    for x0, y0, view in detection_views(rgb):
        if view.shape[0] < short and any(len(s) for s in all_s):
            # Half-size tiles find small faces in group photos; skip them when a
            # face already fills a fair part of the picture (a portrait).
            widths = np.concatenate([b[:, 2] - b[:, 0] for b in all_b])
            if widths.max() >= 0.2 * short:
                break
        inp, scale, pad = letterbox(view, _DET_SIZE)
        reg, cls = model.run((inp[None] * 2.0 - 1.0).astype(np.float32))
        boxes, kps, scores = decode_detections(reg[0], cls[0, :, 0], anchors())
        keep = scores >= min_score
        # Back from normalised letterbox coordinates to image pixels.
        off = np.array([x0, y0], np.float64)
        all_b.append((boxes[keep] * _DET_SIZE - np.tile(pad, 2)) / scale + np.tile(off, 2))
        all_k.append((kps[keep] * _DET_SIZE - pad) / scale + off)
        all_s.append(scores[keep])
    dets = weighted_nms(np.concatenate(all_b), np.concatenate(all_k), np.concatenate(all_s), iou)
    return [Detection(b.astype(np.float32), k.astype(np.float32), s) for b, k, s in dets]


def detection_views(rgb: np.ndarray, min_side: int = 160):
    """(x0, y0, view) for the whole image and overlapping square tiles."""
    h, w = rgb.shape[:2]
    yield 0, 0, rgb
    side = min(h, w)
    for tile in (side, side // 2):
        if tile < min_side or (tile == side and h == w):
            continue
        step = max(1, tile // 2)
        ys = sorted(set(list(range(0, h - tile + 1, step)) + [h - tile]))
        xs = sorted(set(list(range(0, w - tile + 1, step)) + [w - tile]))
        for y in ys:
            for x in xs:
                yield x, y, rgb[y:y + tile, x:x + tile]


def face_mesh(rgb: np.ndarray, det: Detection, passes: int = 2, mirror_average: bool = True) -> FaceMesh:
    """468 landmarks for one detection (crop aligned on the eye line).

    mirror_average: the last pass also reads the mirrored crop and averages
    the two meshes (see the module docstring).
    """
    from priorfx.models import runtimes

    model = runtimes.load(LANDMARK_ID)
    center, size, angle = roi_from_detection(det)
    mesh = None
    for i in range(passes):
        crop, inv = crop_rotated(rgb, center, size, angle, _LM_SIZE)
        lm, logit = model.run(crop[None].astype(np.float32))
        pts = lm.reshape(468, 3).astype(np.float64)
        if mirror_average and i == passes - 1:
            pts = 0.5 * (pts + _mirrored_pass(model, crop))
        xy = pts[:, :2] @ inv[:, :2].T + inv[:, 2]
        z = pts[:, 2] * (size / _LM_SIZE)
        score = float(1.0 / (1.0 + np.exp(-float(logit.ravel()[0]))))
        mesh = FaceMesh(np.column_stack([xy, z]).astype(np.float32), score, det,
                        {"center": center.tolist(), "size": float(size), "angle": float(angle)})
        center, size, angle = roi_from_landmarks(mesh.points)
    return mesh


def _mirrored_pass(model, crop: np.ndarray) -> np.ndarray:
    """The mesh of the left-right mirrored crop, mirrored back (468 x 3, crop pixels).

    The model's x runs over [0, 192] with pixel centres at +0.5, so mirroring
    maps x to 192 - x; each point then takes its mirror partner's place.
    """
    lm, _ = model.run(np.ascontiguousarray(crop[:, ::-1])[None].astype(np.float32))
    pts = lm.reshape(468, 3).astype(np.float64)
    pts[:, 0] = _LM_SIZE - pts[:, 0]
    return pts[mirror_map()]


@lru_cache(maxsize=1)
def mirror_map() -> np.ndarray:
    """Index of each mesh point's left-right partner (the mesh topology's symmetry).

    Data shipped beside this module (face_mesh_mirror.json), computed once from
    the metric mean face by core/tools/build_mean_face.py; it is a property of
    the topology, not of a face.
    """
    d = json.loads(resources.files("priorfx.priors").joinpath("face_mesh_mirror.json").read_text())
    return np.array(d["mirror"], np.int64)


def find_faces(rgb: np.ndarray, min_score: float = 0.5, max_faces: int = 8,
               mirror_average: bool = True) -> list[FaceMesh]:
    """Detect faces and fit the mesh to each; sorted by face size, largest first.

    Faces whose mesh has a low presence score (a false detection) are dropped.
    mirror_average: see face_mesh.
    """
    meshes = []
    for det in detect_faces(rgb, min_score=min_score)[:max_faces]:
        m = face_mesh(rgb, det, mirror_average=mirror_average)
        if m.score >= 0.5:
            meshes.append(m)
    meshes.sort(key=lambda m: -m.eye_distance)
    return meshes


# ---------------------------------------------------------------- pure functions

def letterbox(rgb: np.ndarray, size: int) -> tuple[np.ndarray, float, np.ndarray]:
    """Resize keeping the aspect ratio into a size x size square (zero padding).

    Returns the square, the scale (square px per image px) and the padding
    (x, y) in square pixels.
    """
    h, w = rgb.shape[:2]
    scale = size / max(h, w)
    nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
    small = cv2.resize(rgb[..., :3], (nw, nh), interpolation=cv2.INTER_AREA)
    out = np.zeros((size, size, 3), np.float32)
    px, py = (size - nw) // 2, (size - nh) // 2
    out[py:py + nh, px:px + nw] = small
    return out, scale, np.array([px, py], np.float32)


def anchors() -> np.ndarray:
    """The 896 anchor centres (x, y normalised) of BlazeFace short-range.

    Strides 8, 16, 16, 16 on a 128 input; layers with the same stride share a
    grid, so the 16x16 grid has 2 anchors per cell and the 8x8 grid 6.
    """
    out = []
    for stride, per_cell in ((8, 2), (16, 6)):
        n = _DET_SIZE // stride
        ys, xs = np.mgrid[0:n, 0:n]
        c = np.stack([(xs + 0.5) / n, (ys + 0.5) / n], -1).reshape(-1, 1, 2)
        out.append(np.repeat(c, per_cell, axis=1).reshape(-1, 2))
    return np.concatenate(out).astype(np.float32)


def decode_detections(reg: np.ndarray, logits: np.ndarray, anc: np.ndarray):
    """Raw regressors (896 x 16) and logits -> boxes (x0,y0,x1,y1), keypoints, scores."""
    r = reg.astype(np.float64) / _DET_SIZE
    cx, cy = r[:, 0] + anc[:, 0], r[:, 1] + anc[:, 1]
    w, h = r[:, 2], r[:, 3]
    boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], -1)
    kps = r[:, 4:16].reshape(-1, 6, 2) + anc[:, None, :]
    scores = 1.0 / (1.0 + np.exp(-np.clip(logits.astype(np.float64), -100, 100)))
    return boxes, kps, scores


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of one box against many (x0, y0, x1, y1)."""
    x0 = np.maximum(a[0], b[:, 0]); y0 = np.maximum(a[1], b[:, 1])
    x1 = np.minimum(a[2], b[:, 2]); y1 = np.minimum(a[3], b[:, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area = lambda r: (r[..., 2] - r[..., 0]) * (r[..., 3] - r[..., 1])  # noqa: E731
    return inter / np.maximum(area(a) + area(b) - inter, 1e-12)


def weighted_nms(boxes, kps, scores, iou: float = 0.3):
    """Score-weighted NMS: overlapping detections are averaged, not just dropped.

    Averaging the boxes of one face stabilises them (BlazeFace fires on
    several anchors per face); the cluster keeps its best score.
    """
    order = np.argsort(-scores)
    boxes, kps, scores = boxes[order], kps[order], scores[order]
    alive = np.ones(len(scores), bool)
    out = []
    for i in range(len(scores)):
        if not alive[i]:
            continue
        members = alive & (box_iou(boxes[i], boxes) >= iou)
        members[i] = True
        wts = scores[members][:, None]
        b = (boxes[members] * wts).sum(0) / wts.sum()
        k = (kps[members] * wts[:, :, None]).sum(0) / wts.sum()
        out.append((b, k, float(scores[i])))
        alive &= ~members
    return out


def roi_from_detection(det: Detection) -> tuple[np.ndarray, float, float]:
    """Crop centre, side and rotation (radians) from a detection: 1.5x box, eye line level."""
    b = det.box
    center = np.array([(b[0] + b[2]) / 2, (b[1] + b[3]) / 2], np.float64)
    size = 1.5 * max(b[2] - b[0], b[3] - b[1])
    re, le = det.keypoints[0], det.keypoints[1]
    angle = float(np.arctan2(le[1] - re[1], le[0] - re[0]))
    return center, float(size), angle


def roi_from_landmarks(pts: np.ndarray) -> tuple[np.ndarray, float, float]:
    """Crop for the next pass from a mesh: rotated bounding box of the points, 1.5x."""
    re, le = pts[RIGHT_EYE_OUTER, :2], pts[LEFT_EYE_OUTER, :2]
    angle = float(np.arctan2(le[1] - re[1], le[0] - re[0]))
    c, s = np.cos(-angle), np.sin(-angle)
    rot = np.array([[c, -s], [s, c]])
    xy = pts[:, :2].astype(np.float64) @ rot.T
    lo, hi = xy.min(0), xy.max(0)
    center = ((lo + hi) / 2) @ rot   # back to image axes (rot is orthonormal)
    size = 1.5 * float(max(hi - lo))
    return center, size, angle


def crop_rotated(rgb: np.ndarray, center, size: float, angle: float, out: int):
    """Crop a rotated square; returns the crop and the 2x3 crop->image affine."""
    c, s = np.cos(angle), np.sin(angle)
    k = size / out
    # crop pixel (u, v) -> image: centre + R(angle) * k * (u - out/2, v - out/2)
    inv = np.array([[c * k, -s * k, 0.0], [s * k, c * k, 0.0]])
    inv[:, 2] = np.asarray(center, np.float64) - inv[:, :2] @ np.array([out / 2, out / 2])
    fwd = cv2.invertAffineTransform(inv)
    crop = cv2.warpAffine(np.ascontiguousarray(rgb[..., :3]), fwd, (out, out),
                          flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    return crop, inv
