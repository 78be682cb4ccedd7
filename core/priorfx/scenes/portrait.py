"""Portrait scenes: textured 3D heads built from real portraits, rendered near and far.

Each head is built from a real portrait among the sample media: its 468
face-mesh points (x, y and the mesh's relative depth) become a metric 3D
face, an ellipsoid skull behind it carries the rest of the photo (hair, ears),
and the photo is the texture. The geometry is jittered (inter-pupillary
distance, axis scales, nose depth, a smooth random deformation), so a
benchmark built on these heads does not confirm the fitter's own
assumptions. Rendering is our own z-buffer rasteriser over a far textured
background plane; `render_pair` gives a near view and its dolly-zoom far
truth, `render_shot` one posed view at a given distance and focal length.
"""
from __future__ import annotations

import cv2
import numpy as np

SOURCES = ["grace_hopper.jpg", "astronaut.png", "obama.jpg", "biden.jpg"]
BACKGROUND = "china.jpg"
FAR_M = 1.5   # the far truth of render_pair: a dolly zoom to 1.5 m
HIDDEN_BEHIND_M = 0.002   # a landmark this far behind the visible surface counts as hidden


def rasterise(verts_cam: np.ndarray, tris: np.ndarray, uv: np.ndarray, tex_id: np.ndarray,
              f: float, size: tuple[int, int]):
    """Z-buffer rasterisation with perspective-correct texture coordinates.

    Returns per-pixel (u, v) texture coordinates, texture id (-1 = empty) and
    1/z. Pixel centres are at integer coordinates + 0.5.
    """
    w, h = size
    c = np.array([w / 2.0, h / 2.0])
    z = verts_cam[:, 2]
    scr = f * verts_cam[:, :2] / z[:, None] + c
    invz_v = 1.0 / z
    zbuf = np.zeros((h, w))
    ubuf = np.zeros((h, w))
    vbuf = np.zeros((h, w))
    ibuf = -np.ones((h, w), np.int32)
    for t in tris:
        p = scr[t]
        x0, y0 = np.floor(p.min(0) - 0.5).astype(int)
        x1, y1 = np.ceil(p.max(0) - 0.5).astype(int)
        x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, w - 1), min(y1, h - 1)
        if x1 < x0 or y1 < y0 or np.any(z[t] <= 0):
            continue
        area = (p[1, 0] - p[0, 0]) * (p[2, 1] - p[0, 1]) - (p[2, 0] - p[0, 0]) * (p[1, 1] - p[0, 1])
        if abs(area) < 1e-12:
            continue
        xs, ys = np.meshgrid(np.arange(x0, x1 + 1) + 0.5, np.arange(y0, y1 + 1) + 0.5)
        b1 = ((xs - p[0, 0]) * (p[2, 1] - p[0, 1]) - (p[2, 0] - p[0, 0]) * (ys - p[0, 1])) / area
        b2 = ((p[1, 0] - p[0, 0]) * (ys - p[0, 1]) - (xs - p[0, 0]) * (p[1, 1] - p[0, 1])) / area
        b0 = 1.0 - b1 - b2
        inside = (b0 >= -1e-9) & (b1 >= -1e-9) & (b2 >= -1e-9)
        iz = b0 * invz_v[t[0]] + b1 * invz_v[t[1]] + b2 * invz_v[t[2]]
        sub = zbuf[y0:y1 + 1, x0:x1 + 1]
        win = inside & (iz > sub)
        if not win.any():
            continue
        wz = np.stack([b0, b1, b2], -1) * invz_v[t] / iz[..., None]   # perspective-correct weights
        sub[win] = iz[win]
        ubuf[y0:y1 + 1, x0:x1 + 1][win] = (wz @ uv[t, 0])[win]
        vbuf[y0:y1 + 1, x0:x1 + 1][win] = (wz @ uv[t, 1])[win]
        ibuf[y0:y1 + 1, x0:x1 + 1][win] = tex_id[t[0]]
    return ubuf, vbuf, ibuf, zbuf


def shade(ubuf, vbuf, ibuf, textures: list[np.ndarray]) -> np.ndarray:
    out = np.zeros((*ubuf.shape, 3), np.float32)
    for i, tex in enumerate(textures):
        m = ibuf == i
        if m.any():
            s = cv2.remap(tex, (ubuf - 0.5).astype(np.float32), (vbuf - 0.5).astype(np.float32),
                          cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
            out[m] = s[m]
    return out


def load_photo(name: str) -> np.ndarray:
    from priorfx.samples import sample_path

    bgr = cv2.imread(str(sample_path(name)), cv2.IMREAD_COLOR)
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB).astype(np.float32) / 255.0


def build_head(photo: np.ndarray, rng: np.random.Generator, index: int = 0) -> dict:
    """A jittered, textured 3D head (metres, photo-camera frame) from face `index` of a real portrait."""
    from scipy.spatial import Delaunay

    from priorfx.priors import face

    # The heads are the same with or without the prior's mirror averaging (the
    # benchmark's data does not move with the method under test).
    mesh = face.find_faces(photo, mirror_average=False)[index]
    pts = mesh.points.astype(np.float64)
    ipd_px = np.linalg.norm((pts[33, :2] + pts[133, :2]) / 2 - (pts[263, :2] + pts[362, :2]) / 2)
    ipd_m = 0.063 * rng.uniform(0.93, 1.07)
    s = ipd_px / ipd_m                                  # photo px per metre
    c = pts.mean(0)
    v = (pts - c) / s
    v *= rng.uniform(0.92, 1.08, 3)
    # Nose depth: scale the protrusion of points near the nose tip.
    near_nose = np.exp(-((v[:, :2] - v[1, :2]) ** 2).sum(1) / (2 * 0.025 ** 2))
    v[:, 2] += near_nose * (v[1, 2] - v[:, 2].mean()) * rng.uniform(-0.15, 0.15)
    # Smooth random deformation, a few millimetres.
    for _ in range(3):
        k = rng.normal(size=3) * 25.0
        v += 0.002 * rng.normal(size=3) * np.sin(v @ k + rng.uniform(0, 2 * np.pi))[:, None]
    uv_face = pts[:, :2]
    tris_face = Delaunay(v[:, :2]).simplices
    # Skull: an ellipsoid behind the face, textured by projecting it onto the photo.
    top = v[10, 1] - rng.uniform(0.075, 0.095)
    bottom = v[152, 1] - rng.uniform(0.0, 0.02)
    a = 0.5 * abs(v[454, 0] - v[234, 0]) * rng.uniform(1.08, 1.18)
    b = 0.5 * (bottom - top)
    cz = 0.5 * rng.uniform(0.18, 0.20)
    center = np.array([0.5 * (v[454, 0] + v[234, 0]), 0.5 * (top + bottom), v[10, 2] + 0.008 + cz])
    nl, no = 20, 40
    th, ph = np.meshgrid(np.linspace(0.05, np.pi - 0.05, nl), np.linspace(0, 2 * np.pi, no, endpoint=False),
                         indexing="ij")
    unit = np.stack([np.sin(th) * np.cos(ph), -np.cos(th), np.sin(th) * np.sin(ph)], -1).reshape(-1, 3)
    hv = center + unit * np.array([a, b, cz])
    idx = np.arange(nl * no).reshape(nl, no)
    q = np.stack([idx[:-1, :], idx[:-1, np.r_[1:no, 0]], idx[1:, :], idx[1:, np.r_[1:no, 0]]], -1).reshape(-1, 4)
    tris_head = np.concatenate([q[:, [0, 1, 2]], q[:, [1, 3, 2]]]) + len(v)
    uv_head = hv[:, :2] * s + c[:2]
    return {"verts": np.concatenate([v, hv]), "tris": np.concatenate([tris_face, tris_head]),
            "uv": np.concatenate([uv_face, uv_head]), "n_face": len(v), "texture": photo}


def random_rotation(rng: np.random.Generator, max_yaw: float = 15.0, max_pitch: float = 10.0) -> np.ndarray:
    """Head pose: yaw and pitch uniform within +-max_yaw / +-max_pitch degrees, roll +-5."""
    from priorfx.portrait.geometry import rodrigues

    return rodrigues(np.array([np.radians(rng.uniform(-max_pitch, max_pitch)),
                               np.radians(rng.uniform(-max_yaw, max_yaw)),
                               np.radians(rng.uniform(-5, 5))]))


def render_view(head: dict, bg: np.ndarray, rot: np.ndarray, offset: np.ndarray, dist: float, focal: float,
                size: tuple[int, int], bg_scale: float) -> dict:
    """One view of a posed head: face centroid at (offset, dist) metres, focal in pixels,
    principal point at the image centre, over a textured plane 2.5 m behind the face
    (fixed in the world: `bg_scale` photo px per metre)."""
    w, h = size
    v = head["verts"] @ rot.T
    n = head["n_face"]
    v -= v[:n].mean(0)                                      # face centroid at the origin
    cam = v + np.array([offset[0], offset[1], dist])
    zb = dist + 2.5
    hx, hy = zb * w / focal * 1.05, zb * h / focal * 1.05
    bgv = np.array([[-hx, -hy, zb], [hx, -hy, zb], [hx, hy, zb], [-hx, hy, zb]])
    bguv = np.array([[bg.shape[1] / 2, bg.shape[0] / 2]]) + bgv[:, :2] * bg_scale
    verts = np.concatenate([cam, bgv])
    tris = np.concatenate([head["tris"], np.array([[0, 1, 2], [0, 2, 3]]) + len(cam)])
    uv = np.concatenate([head["uv"], bguv])
    ids = np.concatenate([np.zeros(len(cam), np.int32), np.ones(4, np.int32)])
    ub, vb, ib, inv_z = rasterise(verts, tris, uv, ids, focal, (w, h))
    img = shade(ub, vb, ib, [head["texture"], bg])
    lm = focal * cam[:n, :2] / cam[:n, 2:3] + np.array([w / 2.0, h / 2.0])
    # A landmark is hidden where the picture shows a surface more than 2 mm in
    # front of it (outline points behind the cheek at close range).
    px = np.clip(np.floor(lm).astype(int), 0, [w - 1, h - 1])
    front = 1.0 / np.maximum(inv_z[px[:, 1], px[:, 0]], 1e-9)
    return {"image": img, "landmarks": lm, "visible": front > cam[:n, 2] - HIDDEN_BEHIND_M}


def render_pair(head: dict, bg: np.ndarray, d: float, rng: np.random.Generator, size: int,
                max_yaw: float = 15.0, max_pitch: float = 10.0) -> dict:
    """Near render at d and the far (dolly-zoom) render at FAR_M of one posed head
    (focal length 22-32 mm, the face a little off-centre)."""
    from priorfx.portrait.geometry import focal_px

    f35 = rng.uniform(22.0, 32.0)
    f = focal_px(f35, size, size)
    rot = random_rotation(rng, max_yaw, max_pitch)
    off = rng.uniform(-0.06, 0.06, 2) * d                   # face a little off-centre
    # The near view sees the whole background photo.
    bg_scale = min(bg.shape[:2]) / (2 * (d + 2.5) * size / f * 1.05)
    out = {"f35": f35, "d": d}
    for key, dist, focal in (("near", d, f), ("far", FAR_M, f * FAR_M / d)):
        out[key] = render_view(head, bg, rot, off, dist, focal, (size, size), bg_scale)
    return out


def render_shot(head: dict, bg: np.ndarray, d: float, rng: np.random.Generator, size: int,
                crop: bool) -> dict:
    """A shot without EXIF: the head at d metres with a 35 mm-equivalent focal length
    of 16-135 mm chosen so that the face fills 20-55 % of the frame, posed.

    crop: the shot is a size x size crop (off-centre, around the face) of a
    render 1.6x as wide with the same focal length, so its principal point is
    off-centre and its equivalent focal length 1.6x longer than the lens's.
    Returns the image, the true landmarks and the true focal length of the
    image as given (35 mm equivalent, of the crop when cropped).
    """
    from priorfx.portrait.geometry import SENSOR_DIAGONAL_MM, focal_px

    frac = rng.uniform(0.20, 0.55)
    full = round(size * 1.6) if crop else size
    f35_image = float(np.clip(frac * size * d / 0.15 * SENSOR_DIAGONAL_MM / np.hypot(size, size), 16.0, 135.0))
    f = focal_px(f35_image, size, size)                     # the focal in pixels is the crop's too
    rot = random_rotation(rng)
    off = rng.uniform(-0.04, 0.04, 2) * d
    if crop:
        # Face off-centre in the larger frame, by up to a quarter of its width.
        off = off + rng.uniform(-0.25, 0.25, 2) * full / f * d
    bg_scale = min(bg.shape[:2]) / (2 * (d + 2.5) * full / f * 1.05)
    view = render_view(head, bg, rot, off, d, f, (full, full), bg_scale)
    img, lm = view["image"], view["landmarks"]
    if crop:
        c = lm.mean(0)
        x0 = int(np.clip(round(c[0] - size / 2 + rng.uniform(-0.15, 0.15) * size), 0, full - size))
        y0 = int(np.clip(round(c[1] - size / 2 + rng.uniform(-0.15, 0.15) * size), 0, full - size))
        img = np.ascontiguousarray(img[y0:y0 + size, x0:x0 + size])
        lm = lm - np.array([x0, y0])
    return {"image": img, "landmarks": lm, "d": d, "f35": f35_image, "crop": crop}
