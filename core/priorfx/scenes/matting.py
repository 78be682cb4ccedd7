"""Matting scenes: real cut-outs composited over real backgrounds, still and moving.

Cut-outs (people, animals, fire, smoke: RGBA with their true alpha) and
backgrounds come from the project's benchmark data (shared/data/matting, or
$PRIORFX_MATTING_DATA); `make_smoke` draws a procedural smoke plume with a
known alpha. `place` scales a cut-out into the frame, `compose` lays it over a
background (I = F a + B (1 - a)), `user_trimap` erodes/dilates the true alpha
into the trimap a compositor would draw, and `make_sequence` builds short
shots (a walk with a panning camera, a sway with per-frame sensor noise).
"""
from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from priorfx.errors import InputError



def _default_data() -> Path:
    """$PRIORFX_MATTING_DATA, else the project's shared/data/matting beside the
    checkout (where CI and developers have it), else the current folder's."""
    env = os.environ.get("PRIORFX_MATTING_DATA")
    if env:
        return Path(env)
    beside_checkout = Path(__file__).resolve().parents[3].parent / "shared" / "data" / "matting"
    return beside_checkout if beside_checkout.is_dir() else Path("shared/data/matting")


DEFAULT_DATA = _default_data()


WORK_SIZE = (960, 540)  # (width, height) of the quality composites


TRIMAP_PX = 8  # half-width of the unknown region of the user trimap at WORK_SIZE


def load_cutouts(data: Path) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(name, straight-alpha RGB float32, alpha float32) for each fg/*.png."""
    out = []
    for f in sorted((data / "fg").glob("*.png")):
        img = cv2.imread(str(f), cv2.IMREAD_UNCHANGED)
        if img is None or img.ndim != 3 or img.shape[2] != 4:
            raise InputError(f"{f} is not an RGBA PNG", "the benchmark's fg/ folder holds RGBA cut-outs")
        scale = 255.0 if img.dtype == np.uint8 else 65535.0
        rgba = img.astype(np.float32) / scale
        out.append((f.stem, rgba[..., 2::-1].copy(), rgba[..., 3].copy()))
    if not out:
        raise InputError(f"no fg/*.png in {data}", "pass --data DIR with fg/*.png and bg/*.jpg")
    return out


def load_backgrounds(data: Path) -> list[tuple[str, np.ndarray]]:
    out = []
    for f in sorted((data / "bg").glob("*.jpg")):
        img = cv2.imread(str(f), cv2.IMREAD_COLOR)
        if img is None:
            raise InputError(f"{f} cannot be read as an image")
        out.append((f.stem, img[..., ::-1].astype(np.float32) / 255.0))
    if not out:
        raise InputError(f"no bg/*.jpg in {data}", "pass --data DIR with fg/*.png and bg/*.jpg")
    return out


def place(fg: np.ndarray, alpha: np.ndarray, size: tuple[int, int], height_frac: float = 0.85,
          x_frac: float = 0.5, y_off: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Scale a cut-out to `height_frac` of the frame height and place it
    (bottom-aligned, centred at x_frac) on an empty W x H canvas."""
    w, h = size
    fw, fh = _placed_size(fg.shape, size, height_frac)
    s = height_frac * h / fg.shape[0]
    interp = cv2.INTER_AREA if s < 1 else cv2.INTER_CUBIC
    # Resize the premultiplied colours so that edges do not pick up the
    # cut-out's undefined colours where alpha is 0.
    a = np.clip(cv2.resize(alpha, (fw, fh), interpolation=interp), 0, 1)
    pm = np.clip(cv2.resize(fg * alpha[..., None], (fw, fh), interpolation=interp), 0, 1)
    f = np.where(a[..., None] > 1e-4, np.clip(pm / np.maximum(a[..., None], 1e-4), 0, 1), 0)
    F = np.zeros((h, w, 3), np.float32)
    A = np.zeros((h, w), np.float32)
    x0, y0 = _origin(fw, fh, size, x_frac, y_off)
    ys, xs = slice(max(0, y0), min(h, y0 + fh)), slice(max(0, x0), min(w, x0 + fw))
    cy, cx = slice(ys.start - y0, ys.stop - y0), slice(xs.start - x0, xs.stop - x0)
    F[ys, xs] = f[cy, cx]
    A[ys, xs] = a[cy, cx]
    return F, A


def _placed_size(shape: tuple[int, ...], size: tuple[int, int], height_frac: float = 0.85) -> tuple[int, int]:
    """(width, height) of a cut-out of `shape` once `place` has scaled it."""
    s = height_frac * size[1] / shape[0]
    return max(1, int(round(shape[1] * s))), max(1, int(round(shape[0] * s)))


def _origin(fw: int, fh: int, size: tuple[int, int], x_frac: float, y_off: int) -> tuple[int, int]:
    """Top-left corner of a fw x fh cut-out placed by `place`."""
    w, h = size
    return int(round(x_frac * w - fw / 2)), h - fh - int(round(0.02 * h)) + y_off


def add_strands(F: np.ndarray, A: np.ndarray, rng: np.random.Generator, count: int = 160,
                supersample: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """Grow thin hair-like strands from the top edge of the cut-out.

    Strands are curved polylines drawn anti-aliased at `supersample` x the
    resolution and averaged down, so their coverage (alpha) is fractional,
    like real hair at plate resolution.
    """
    h, w = A.shape
    cols = np.nonzero((A > 0.5).any(axis=0))[0]
    if cols.size == 0:
        return F, A
    tops = np.array([np.argmax(A[:, c] > 0.5) for c in cols])
    # roots: the upper 15 % of the silhouette's top outline
    cut = np.percentile(tops, 15)
    roots = [(c, t) for c, t in zip(cols, tops) if t <= cut]
    s = supersample
    cover = np.zeros((h * s, w * s), np.uint8)
    colour = np.array([0.25, 0.17, 0.1], np.float32) if rng.random() < 0.5 else np.array([0.85, 0.7, 0.45], np.float32)
    for _ in range(count):
        x, y = roots[int(rng.integers(len(roots)))]
        y = y + 2
        length = rng.uniform(0.04, 0.12) * h
        angle = rng.uniform(-np.pi * 0.85, -np.pi * 0.15)  # upwards, fanning out
        bend = rng.uniform(-0.02, 0.02)
        pts = []
        for t in np.linspace(0, 1, 12):
            a = angle + bend * t * 40
            pts.append((x + np.cos(a) * length * t, y + np.sin(a) * length * t))
        pts = (np.array(pts) * s * 16).astype(np.int32)  # 4 fractional bits
        cv2.polylines(cover, [pts], False, 255, thickness=int(rng.integers(1, 3)), lineType=cv2.LINE_AA, shift=4)
    cov = cv2.resize(cover.astype(np.float32) / 255.0, (w, h), interpolation=cv2.INTER_AREA)
    cov = np.clip(cov * 0.9, 0, 1)
    A2 = cov + (1 - cov) * A
    F2 = (cov[..., None] * colour + ((1 - cov) * A)[..., None] * F) / np.maximum(A2[..., None], 1e-6)
    return np.clip(F2, 0, 1).astype(np.float32), A2.astype(np.float32)


def make_smoke(size: tuple[int, int], rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Procedural smoke: (straight colour, alpha) on a W x H canvas.

    Alpha is a rising plume (a Gaussian across that widens upwards, fading
    towards its top) modulated by multi-octave noise (blurred random fields
    at 4 to 64 px, cf. fractal noise), so it is fractional over most of its
    area and opaque in its dense core; the colour is a light grey with a slow warm
    or cool drift, as lit smoke has.
    """
    w, h = size

    def noise(octaves: tuple[int, ...]) -> np.ndarray:
        acc = np.zeros((h, w), np.float32)
        for i, cell in enumerate(octaves):
            field = rng.random((max(2, h // cell), max(2, w // cell))).astype(np.float32)
            acc += cv2.resize(field, (w, h), interpolation=cv2.INTER_CUBIC) * 0.6 ** i
        acc -= acc.min()
        return acc / max(float(acc.max()), 1e-6)

    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    rise = 1.0 - yy / h  # 0 at the bottom, 1 at the top
    cx = w * (0.5 + 0.08 * np.sin(rise * 5.0 + rng.uniform(0, 6)))
    spread = w * (0.06 + 0.14 * rise)
    plume = np.exp(-np.square((xx - cx) / spread)) * np.clip(1.2 - rise, 0, 1)
    density = plume * (0.3 + 0.7 * noise((64, 32, 16, 8, 4)))
    alpha = np.clip(3.4 * density - 0.45, 0, 1)
    tint = noise((128, 64))[..., None]
    colour = 0.72 + 0.16 * tint + np.array([0.03, 0.0, -0.03], np.float32) * (2 * tint - 1)
    return np.clip(colour, 0, 1).astype(np.float32), alpha.astype(np.float32)


def crop_bg(bg: np.ndarray, size: tuple[int, int], dx: int = 0) -> np.ndarray:
    """A W x H view of a background scaled to cover the frame (dx pans it)."""
    w, h = size
    s = max(w / bg.shape[1], h / bg.shape[0]) * 1.05
    big = cv2.resize(bg, (int(np.ceil(bg.shape[1] * s)), int(np.ceil(bg.shape[0] * s))),
                     interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_CUBIC)
    x0 = min(max(0, (big.shape[1] - w) // 2 + dx), big.shape[1] - w)
    y0 = (big.shape[0] - h) // 2
    return big[y0:y0 + h, x0:x0 + w]


def compose(F: np.ndarray, A: np.ndarray, B: np.ndarray) -> np.ndarray:
    return (A[..., None] * F + (1 - A[..., None]) * B).astype(np.float32)


def user_trimap(gt: np.ndarray, px: int = TRIMAP_PX) -> np.ndarray:
    """A trimap a user would draw: 0 / 1 where the ground truth is 0 / 1 away
    from its edge, 0.5 in a band of +-px around every fractional or edge pixel."""
    k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * px + 1, 2 * px + 1))
    unknown = cv2.dilate(((gt > 0.01) & (gt < 0.99)).astype(np.uint8), k) > 0
    tri = np.where(gt >= 0.5, 1.0, 0.0).astype(np.float32)
    tri[unknown] = 0.5
    return tri


SEQUENCE_KINDS = ("walk", "sway")


def make_sequence(F0: np.ndarray, A0: np.ndarray, bg: np.ndarray, size: tuple[int, int], n: int,
                  kind: str) -> tuple[list[np.ndarray], list[np.ndarray], list[tuple[int, int]]]:
    """Frames, ground-truth alphas and the person's (x, y) position (whole
    pixels, top-left corner of the placed cut-out) in each frame of a short shot.

    walk: the person crosses the frame (about 1 % of the width per frame)
    and bobs while the camera pans. sway: a locked-off camera, the person
    moves by about a pixel, and every frame carries its own sensor noise
    (sigma 0.015), the case where per-frame matting flickers.
    """
    frames, gts, positions = [], [], []
    rng = np.random.default_rng(3)
    fw, fh = _placed_size(A0.shape, size)
    for t in range(n):
        if kind == "walk":
            x_frac, y_off = 0.3 + 0.012 * t, int(round(3 * np.sin(t)))
            F, A = place(F0, A0, size, x_frac=x_frac, y_off=y_off)
            img = compose(F, A, crop_bg(bg, size, dx=2 * t))
        else:
            x_frac, y_off = 0.5 + 0.0015 * np.sin(t), 0
            F, A = place(F0, A0, size, x_frac=x_frac)
            img = compose(F, A, crop_bg(bg, size))
            img = np.clip(img + rng.normal(0, 0.015, img.shape).astype(np.float32), 0, 1)
        frames.append(img)
        gts.append(A)
        positions.append(_origin(fw, fh, size, x_frac, y_off))
    return frames, gts, positions
