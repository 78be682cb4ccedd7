"""`priorfx bench portrait`: selfie undistortion vs. the input and a 2D peer.

Data: textured 3D heads rendered with our own z-buffer rasteriser. Each head
is built from a real portrait among the sample media: its 468 face-mesh
points (x, y and the mesh's relative depth) become a metric 3D face, an
ellipsoid skull behind it carries the rest of the photo (hair, ears), and the
photo is the texture. So that the benchmark does not confirm the fitter's
own assumptions, these are other people than the fitter's mean face was
built from (multi_face.jpg), and the geometry is jittered: inter-pupillary
distance (the fitter assumes 63 mm) +-7 %, axis scales +-8 %, nose depth
+-15 %, a smooth random deformation, head yaw/pitch, focal length 22-32 mm
and the face off-centre.
Each head is rendered at 25, 35 and 50 cm and, as the ground truth, at 150 cm
with the focal length scaled so the face keeps its size (a dolly zoom), over
a far textured background plane.

Scores, against the far render:
- NME: mean landmark error over the 468 true mesh points, divided by the
  outer-eye-corner distance. "ours" maps the true near points through our
  warp; the peer is the best affine map of the true near points onto the
  true far points (an oracle 2D correction: it is given the answer's
  landmarks, which no real 2D method has);
- PSNR / SSIM over the face region (hull of the far landmarks);
- relative error of the estimated camera-to-face distance (the focal length is
  given, as EXIF would);
- speed: undistort on a 12 MP and a 1080p upscaled real selfie, and one
  cv2.remap of each size in the same run.
"""
from __future__ import annotations

import argparse
import time

import cv2
import numpy as np

from priorfx.bench.common import median_ms

NEAR_M = (0.25, 0.35, 0.50)
FAR_M = 1.5
SOURCES = ["single_face.jpg", "grace_hopper.jpg", "astronaut.png", "obama.jpg", "biden.jpg"]
BACKGROUND = "china.jpg"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--size", type=int, default=640, help="rendered image side in pixels (default 640)")
    p.add_argument("--poses", type=int, default=2, help="random poses per head and distance (default 2)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--save-dir", metavar="DIR", help="also write near | ours | far PNGs of every case here")


# ---------------------------------------------------------------- rasteriser

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


# ---------------------------------------------------------------- heads from photos

def _load(name: str) -> np.ndarray:
    from priorfx.samples import sample_path

    bgr = cv2.imread(str(sample_path(name)), cv2.IMREAD_COLOR)
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB).astype(np.float32) / 255.0


def build_head(photo: np.ndarray, rng: np.random.Generator) -> dict:
    """A jittered, textured 3D head (metres, photo-camera frame) from a real portrait."""
    from scipy.spatial import Delaunay

    from priorfx.priors import face

    # The heads are the same with or without the prior's mirror averaging (the
    # benchmark's data does not move with the method under test).
    mesh = face.find_faces(photo, mirror_average=False)[0]
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


def render_pair(head: dict, bg: np.ndarray, d: float, rng: np.random.Generator, size: int,
                max_yaw: float = 15.0, max_pitch: float = 10.0) -> dict:
    """Near render at d and the far (dolly-zoom) render at FAR_M of one posed head.

    Pose: yaw and pitch uniform within +-max_yaw / +-max_pitch degrees, roll +-5.
    """
    from priorfx.portrait.geometry import focal_px, rodrigues

    f35 = rng.uniform(22.0, 32.0)
    f = focal_px(f35, size, size)
    rot = rodrigues(np.array([np.radians(rng.uniform(-max_pitch, max_pitch)),
                              np.radians(rng.uniform(-max_yaw, max_yaw)),
                              np.radians(rng.uniform(-5, 5))]))
    v = head["verts"] @ rot.T
    v -= v[:head["n_face"]].mean(0)                         # face centroid at the origin
    off = rng.uniform(-0.06, 0.06, 2) * d                   # face a little off-centre
    n = head["n_face"]
    out = {"f35": f35, "d": d}
    for key, dist, focal in (("near", d, f), ("far", FAR_M, f * FAR_M / d)):
        cam = v + np.array([off[0], off[1], dist])
        # Background: a plane 2.5 m behind the face, fixed in the world (moves with the dolly).
        zb = dist + 2.5
        half = zb * size / focal
        bgv = np.array([[-half, -half, zb], [half, -half, zb], [half, half, zb], [-half, half, zb]]) * [1.05, 1.05, 1]
        bw, bh = bg.shape[1], bg.shape[0]
        scale_bg = min(bw, bh) / (2 * (d + 2.5) * size / f * 1.05)   # the near view sees the whole photo
        bguv = np.array([[bw / 2, bh / 2]]) + bgv[:, :2] * scale_bg
        verts = np.concatenate([cam, bgv])
        tris = np.concatenate([head["tris"], np.array([[0, 1, 2], [0, 2, 3]]) + len(cam)])
        uv = np.concatenate([head["uv"], bguv])
        ids = np.concatenate([np.zeros(len(cam), np.int32), np.ones(4, np.int32)])
        ub, vb, ib, _ = rasterise(verts, tris, uv, ids, focal, (size, size))
        img = shade(ub, vb, ib, [head["texture"], bg])
        lm = focal * cam[:n, :2] / cam[:n, 2:3] + size / 2.0
        out[key] = {"image": img, "landmarks": lm}
    return out


# ---------------------------------------------------------------- metrics

def nme(pred: np.ndarray, gt: np.ndarray) -> float:
    iod = np.linalg.norm(gt[33] - gt[263])
    return float(np.linalg.norm(pred - gt, axis=1).mean() / iod)


def affine_peer(near: np.ndarray, far: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares affine map near -> far landmarks (2 x 3) and the mapped points."""
    a = np.column_stack([near, np.ones(len(near))])
    m, *_ = np.linalg.lstsq(a, far, rcond=None)
    return m.T, a @ m


def face_mask(lm: np.ndarray, size: int) -> np.ndarray:
    m = np.zeros((size, size), np.uint8)
    cv2.fillConvexPoly(m, cv2.convexHull(lm.astype(np.float32)).astype(np.int32).reshape(-1, 2), 1)
    return cv2.erode(m, np.ones((5, 5), np.uint8)).astype(bool)


def psnr(a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> float:
    mse = float(((a - b) ** 2)[mask].mean())
    return 10 * np.log10(1.0 / max(mse, 1e-12))


def ssim(a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> float:
    """Mean SSIM (Gaussian window, sigma 1.5) of the luminance over the mask."""
    ga = a @ np.array([0.299, 0.587, 0.114], np.float32)
    gb = b @ np.array([0.299, 0.587, 0.114], np.float32)
    blur = lambda x: cv2.GaussianBlur(x, (0, 0), 1.5)  # noqa: E731
    mu_a, mu_b = blur(ga), blur(gb)
    va = blur(ga * ga) - mu_a ** 2
    vb = blur(gb * gb) - mu_b ** 2
    cov = blur(ga * gb) - mu_a * mu_b
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    s = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a ** 2 + mu_b ** 2 + c1) * (va + vb + c2))
    return float(s[mask].mean())


# ---------------------------------------------------------------- run

def _quality(args, rng) -> dict:
    from priorfx.portrait import PortraitParams, undistort

    sources = SOURCES[:3] if args.quick else SOURCES
    poses = 1 if args.quick else args.poses
    size = min(args.size, 480) if args.quick else args.size
    bg = _load(BACKGROUND)
    cases = []
    for name in sources:
        head = build_head(_load(name), rng)
        for d in NEAR_M:
            for _ in range(poses):
                pair = render_pair(head, bg, d, rng, size)
                near, far = pair["near"], pair["far"]
                res = undistort(near["image"], PortraitParams(distance_m=FAR_M, focal_mm=pair["f35"], face=0))
                plan = res.field
                ours_lm = plan.forward(near["landmarks"])
                m, peer_lm = affine_peer(near["landmarks"], far["landmarks"])
                peer_img = cv2.warpAffine(near["image"], m, (size, size), flags=cv2.INTER_LINEAR,
                                          borderMode=cv2.BORDER_REFLECT)
                mask = face_mask(far["landmarks"], size)
                d_est = res.faces[0]["distance_m"]
                cases.append({
                    "source": name, "distance_m": d, "focal_mm": round(pair["f35"], 2),
                    "distance_est_m": d_est, "distance_rel_err": abs(d_est - d) / d,
                    "nme_input": nme(near["landmarks"], far["landmarks"]),
                    "nme_ours": nme(ours_lm, far["landmarks"]),
                    "nme_peer": nme(peer_lm, far["landmarks"]),
                    "psnr_face_input": psnr(near["image"], far["image"], mask),
                    "psnr_face_ours": psnr(res.image, far["image"], mask),
                    "psnr_face_peer": psnr(peer_img, far["image"], mask),
                    "ssim_face_input": ssim(near["image"], far["image"], mask),
                    "ssim_face_ours": ssim(res.image, far["image"], mask),
                    "ssim_face_peer": ssim(peer_img, far["image"], mask),
                    "warp_scale": res.faces[0]["warp_scale"],
                })
                if args.save_dir:
                    from pathlib import Path

                    from priorfx.demo import save_png
                    tag = f"{Path(name).stem}_{int(d * 100)}cm_{len(cases)}"
                    save_png(Path(args.save_dir) / f"{tag}.png",
                             np.concatenate([near["image"], res.image, far["image"]], 1))
    return {"cases": cases}


def _mean(cases, key, where=lambda c: True) -> float:
    vals = [c[key] for c in cases if where(c)]
    return float(np.mean(vals)) if vals else float("nan")


def _speed(args) -> dict:
    from priorfx.portrait import PortraitParams, undistort

    selfie = _load("single_face.jpg")
    out = {}
    repeat = 2 if args.quick else 5
    for key, (w, h) in (("12mp", (4000, 3000)), ("1080p", (1920, 1080))):
        # Letterbox the real selfie into the frame at full height (a portrait in a landscape photo).
        img = np.zeros((h, w, 3), np.float32)
        fh = h
        fw = round(selfie.shape[1] * h / selfie.shape[0])
        img[:, (w - fw) // 2:(w - fw) // 2 + fw] = cv2.resize(selfie, (fw, fh), interpolation=cv2.INTER_CUBIC)
        params = PortraitParams(distance_m=FAR_M)
        out[f"ms_{key}"] = median_ms(lambda: undistort(img, params), repeat=repeat, warmup=1)
        mx, my = np.meshgrid(np.arange(w, dtype=np.float32) + 0.3, np.arange(h, dtype=np.float32) - 0.2)
        out[f"remap_ms_{key}"] = median_ms(lambda: cv2.remap(img, mx, my, cv2.INTER_LINEAR,
                                                             borderMode=cv2.BORDER_REPLICATE),
                                           repeat=repeat, warmup=1)
        del img, mx, my
    return out


def run(args: argparse.Namespace) -> dict:
    t0 = time.perf_counter()
    if not hasattr(args, "save_dir"):
        args.save_dir = None
    rng = np.random.default_rng(args.seed)
    q = _quality(args, rng)
    cases = q["cases"]
    speed = _speed(args)
    summary = {
        "nme_input": _mean(cases, "nme_input"),
        "nme_ours": _mean(cases, "nme_ours"),
        "nme_peer": _mean(cases, "nme_peer"),
        "psnr_face_input": _mean(cases, "psnr_face_input"),
        "psnr_face_ours": _mean(cases, "psnr_face_ours"),
        "distance_rel_err": _mean(cases, "distance_rel_err"),
        "ms_12mp": speed["ms_12mp"],
        "ms_1080p": speed["ms_1080p"],
        "remap_ms_12mp": speed["remap_ms_12mp"],
    }
    per_distance = {}
    for d in NEAR_M:
        sel = lambda c, d=d: c["distance_m"] == d  # noqa: E731
        per_distance[f"{int(d * 100)}cm"] = {k: _mean(cases, k, sel) for k in (
            "nme_input", "nme_ours", "nme_peer", "psnr_face_input", "psnr_face_ours", "psnr_face_peer",
            "ssim_face_input", "ssim_face_ours", "ssim_face_peer", "distance_rel_err")}
    targets = {
        "nme_ours_le_0.4x_input": summary["nme_ours"] <= 0.4 * summary["nme_input"],
        "nme_ours_below_peer": summary["nme_ours"] < summary["nme_peer"],
        "distance_within_15pct": max(c["distance_rel_err"] for c in cases) <= 0.15,
        "ms_12mp_le_1000": summary["ms_12mp"] <= 1000,
        "ms_1080p_le_250": summary["ms_1080p"] <= 250,
    }
    return {"summary": summary, "targets": targets, "per_distance": per_distance,
            "ssim_face": {"input": _mean(cases, "ssim_face_input"), "ours": _mean(cases, "ssim_face_ours"),
                          "peer": _mean(cases, "ssim_face_peer")},
            "psnr_face_peer": _mean(cases, "psnr_face_peer"),
            "distance_rel_err_max": max(c["distance_rel_err"] for c in cases),
            "remap_ms_1080p": speed["remap_ms_1080p"],
            "peer": "oracle affine map of the true near landmarks onto the true far landmarks",
            "cases": cases, "seconds": time.perf_counter() - t0}
