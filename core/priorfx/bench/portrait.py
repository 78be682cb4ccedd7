"""`priorfx bench portrait`: selfie undistortion vs. the input and a 2D peer.

Data: textured 3D heads rendered with our own z-buffer rasteriser. Each head
is built from a real portrait among the sample media: its 468 face-mesh
points (x, y and the mesh's relative depth) become a metric 3D face, an
ellipsoid skull behind it carries the rest of the photo (hair, ears), and the
photo is the texture. So that the benchmark does not confirm the fitter's
own assumptions, these are other people than the fitter's mean face and its
distance calibration were built from (multi_face.jpg, single_face.jpg/.mp4,
carphone_pristine.mp4), and the geometry is jittered: inter-pupillary
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
  landmarks, which no real 2D method has). `nme_ratio_25cm_visible` is the
  25 cm ratio over the landmarks the near picture shows (outline points
  behind the cheek are left out: a warp moves what is seen there, the
  cheek), `hidden_error_share_25cm` the share of our 25 cm error the hidden
  ones carry;
- PSNR / SSIM over the face region (hull of the far landmarks);
- relative error of the estimated camera-to-face distance (the true focal
  length given as EXIF would: a prior, not a fact);

Cases without EXIF (`noexif`): each head at 0.25, 0.35, 0.5, 0.6, 1, 1.5, 2 and
3 m with a 35 mm-equivalent focal length of 16-135 mm that makes the face fill
20-55 % of the frame, posed, every other one a 640 px crop of a 1.6x larger
render (off-centre principal point, longer equivalent focal). Summary:
distance_rel_err_noexif (median over 0.25-0.6 m), ..._max_near (worst there),
far_detected (cases at >= 1.5 m reported >= 1 m), far_change (mean absolute
face change, 0-255, at >= 1.5 m with target 1.5 m), interval_coverage (truth
inside the reported interval, these and the EXIF cases). Peer: today's fixed
26 mm estimate from the same landmarks;
- speed: undistort on a 12 MP and a 1080p upscaled real selfie (EXIF 26 mm:
  the perspective fit, the EXIF prior and the warp all run), the same with the
  focal length given (today's path), and one cv2.remap of each size, in the
  same run.
"""
from __future__ import annotations

import argparse
import time

import cv2
import numpy as np

from priorfx.bench.common import median_ms
from priorfx.scenes.portrait import BACKGROUND, FAR_M, SOURCES, build_head, load_photo, render_pair, render_shot

NEAR_M = (0.25, 0.35, 0.50)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--size", type=int, default=640, help="rendered image side in pixels (default 640)")
    p.add_argument("--poses", type=int, default=2, help="random poses per head and distance (default 2)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--save-dir", metavar="DIR", help="also write near | ours | far PNGs of every case here")


# ---------------------------------------------------------------- metrics

def nme(pred: np.ndarray, gt: np.ndarray, among: np.ndarray | None = None) -> float:
    """Mean landmark error over the outer-eye-corner distance (over the landmarks `among` selects)."""
    iod = np.linalg.norm(gt[33] - gt[263])
    err = np.linalg.norm(pred - gt, axis=1)
    return float((err if among is None else err[among]).mean() / iod)


def hidden_share(pred: np.ndarray, gt: np.ndarray, visible: np.ndarray) -> float:
    """Fraction of the summed landmark error carried by the landmarks hidden in the near picture."""
    err = np.linalg.norm(pred - gt, axis=1)
    return float(err[~visible].sum() / max(err.sum(), 1e-12))


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
    bg = load_photo(BACKGROUND)
    cases = []
    for name in sources:
        head = build_head(load_photo(name), rng)
        for d in NEAR_M:
            for _ in range(poses):
                pair = render_pair(head, bg, d, rng, size)
                near, far = pair["near"], pair["far"]
                # The true focal length given as EXIF would give it: a prior, weighed with the perspective.
                res = undistort(near["image"], PortraitParams(distance_m=FAR_M, exif_focal_mm=pair["f35"], face=0))
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
                    "in_interval": _inside(res.faces[0], d),
                    "nme_input": nme(near["landmarks"], far["landmarks"]),
                    "nme_ours": nme(ours_lm, far["landmarks"]),
                    "nme_peer": nme(peer_lm, far["landmarks"]),
                    # The same over the landmarks the near picture shows (no warp can follow hidden ones).
                    "nme_input_visible": nme(near["landmarks"], far["landmarks"], near["visible"]),
                    "nme_ours_visible": nme(ours_lm, far["landmarks"], near["visible"]),
                    "hidden_error_share": hidden_share(ours_lm, far["landmarks"], near["visible"]),
                    "psnr_face_input": psnr(near["image"], far["image"], mask),
                    "psnr_face_ours": psnr(res.image, far["image"], mask),
                    "psnr_face_peer": psnr(peer_img, far["image"], mask),
                    "ssim_face_input": ssim(near["image"], far["image"], mask),
                    "ssim_face_ours": ssim(res.image, far["image"], mask),
                    "ssim_face_peer": ssim(peer_img, far["image"], mask),
                    "warp_scale": res.faces[0]["warp_scale"],
                })
                if d == NEAR_M[0]:
                    # Peer at 25 cm: the same focal length taken as a fact (today's path).
                    given = undistort(near["image"], PortraitParams(distance_m=FAR_M, focal_mm=pair["f35"], face=0))
                    cases[-1]["nme_ours_focal_given"] = nme(given.field.forward(near["landmarks"]), far["landmarks"])
                if args.save_dir:
                    from pathlib import Path

                    from priorfx.demo import save_png
                    tag = f"{Path(name).stem}_{int(d * 100)}cm_{len(cases)}"
                    save_png(Path(args.save_dir) / f"{tag}.png",
                             np.concatenate([near["image"], res.image, far["image"]], 1))
    return {"cases": cases}


def _inside(face: dict, d: float) -> bool:
    hi = face["distance_high_m"]
    return face["distance_low_m"] <= d <= (np.inf if hi is None else hi)


NOEXIF_M = (0.25, 0.35, 0.5, 0.6, 1.0, 1.5, 2.0, 3.0)
NEAR_MAX_M = 0.6          # "near" for distance_rel_err_noexif*
FAR_MIN_M = 1.5           # "far" for far_detected and far_change


def _noexif(args, rng) -> list[dict]:
    """Shots without EXIF (0.25-3 m, 16-135 mm, poses, every other one a crop of a
    larger render): the distance the method estimates from the face alone, its
    interval, and how much it changes far faces; the peer is today's fixed 26 mm."""
    from priorfx.errors import NoFaceError
    from priorfx.portrait import DEFAULT_FOCAL_MM, PortraitParams, geometry, undistort
    from priorfx.priors import face as face_prior

    sources = SOURCES[:3] if args.quick else SOURCES
    distances = (0.25, 0.5, 1.5, 3.0) if args.quick else NOEXIF_M
    size = min(args.size, 480) if args.quick else args.size
    bg = load_photo(BACKGROUND)
    cases = []
    for name in sources:
        head = build_head(load_photo(name), rng)
        for i, d in enumerate(distances):
            shot = render_shot(head, bg, d, rng, size, crop=bool(i % 2))
            img = shot["image"]
            case = {"source": name, "distance_m": d, "focal_mm": round(shot["f35"], 2), "crop": shot["crop"]}
            try:
                res = undistort(img, PortraitParams(distance_m=FAR_M, face=0))
            except NoFaceError:
                cases.append({**case, "found": False})
                continue
            f = res.faces[0]
            mask = face_mask(shot["landmarks"], size)
            # Today's estimate: the same landmarks, a fixed 26 mm focal length.
            mesh = face_prior.find_faces(img, max_faces=1)[0]
            d26 = geometry.fit_face(mesh.points, (size, size), geometry.focal_px(DEFAULT_FOCAL_MM, size, size)).distance_m
            cases.append({**case, "found": True, "distance_est_m": f["distance_m"],
                          "distance_low_m": f["distance_low_m"], "distance_high_m": f["distance_high_m"],
                          "distance_rel_err": abs(f["distance_m"] - d) / d, "in_interval": _inside(f, d),
                          "corrected": f["corrected"], "focal_est_mm": f["focal_mm"],
                          "change": float(np.abs(res.image - img)[mask].mean() * 255),
                          "distance_est_m_peer26": d26, "distance_rel_err_peer26": abs(d26 - d) / d})
    return cases


def _mean(cases, key, where=lambda c: True) -> float:
    vals = [c[key] for c in cases if where(c)]
    return float(np.mean(vals)) if vals else float("nan")


def _speed(args) -> dict:
    from priorfx.portrait import PortraitParams, undistort

    selfie = load_photo("single_face.jpg")
    out = {}
    repeat = 2 if args.quick else 5
    for key, (w, h) in (("12mp", (4000, 3000)), ("1080p", (1920, 1080))):
        # Letterbox the real selfie into the frame at full height (a portrait in a landscape photo).
        img = np.zeros((h, w, 3), np.float32)
        fh = h
        fw = round(selfie.shape[1] * h / selfie.shape[0])
        img[:, (w - fw) // 2:(w - fw) // 2 + fw] = cv2.resize(selfie, (fw, fh), interpolation=cv2.INTER_CUBIC)
        # EXIF says 26 mm: the perspective fit runs, the EXIF prior makes the selfie near, the warp runs.
        params = PortraitParams(distance_m=FAR_M, exif_focal_mm=26.0)
        out[f"ms_{key}"] = median_ms(lambda: undistort(img, params), repeat=repeat, warmup=1)
        # Today's path: the focal length taken as a fact, one fit per face, the same warp.
        fixed = PortraitParams(distance_m=FAR_M, focal_mm=26.0)
        out[f"ms_{key}_fixed_focal"] = median_ms(lambda: undistort(img, fixed), repeat=repeat, warmup=1)
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
    noexif = _noexif(args, rng)
    found = [c for c in noexif if c["found"]]
    near = [c for c in found if c["distance_m"] <= NEAR_MAX_M]
    far = [c for c in found if c["distance_m"] >= FAR_MIN_M]
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
        "distance_rel_err_noexif": float(np.median([c["distance_rel_err"] for c in near])),
        "distance_rel_err_noexif_max_near": max(c["distance_rel_err"] for c in near),
        "far_detected": float(np.mean([c["distance_est_m"] >= 1.0 for c in far])),
        "far_change": float(np.mean([c["change"] for c in far])),
        "interval_coverage": float(np.mean([c["in_interval"] for c in found + cases])),
    }
    nme25 = [c for c in cases if c["distance_m"] == 0.25]
    summary["nme_ratio_25cm"] = _mean(nme25, "nme_ours") / _mean(nme25, "nme_input")
    summary["nme_ratio_25cm_visible"] = _mean(nme25, "nme_ours_visible") / _mean(nme25, "nme_input_visible")
    summary["hidden_error_share_25cm"] = _mean(nme25, "hidden_error_share")
    nme_ratio_25cm_focal_given = _mean(nme25, "nme_ours_focal_given") / _mean(nme25, "nme_input")
    noexif_extra = {
        "cases": len(noexif), "faces_found": len(found),
        "distance_rel_err_noexif_all": float(np.median([c["distance_rel_err"] for c in found])),
        "near_corrected": float(np.mean([c["corrected"] for c in near])),
        "interval_coverage_noexif": float(np.mean([c["in_interval"] for c in found])),
        "interval_coverage_exif": float(np.mean([c["in_interval"] for c in cases])),
        "peer26_distance_rel_err_noexif": float(np.median([c["distance_rel_err_peer26"] for c in near])),
        "peer26_distance_rel_err_noexif_max_near": max(c["distance_rel_err_peer26"] for c in near),
        "peer26_far_detected": float(np.mean([c["distance_est_m_peer26"] >= 1.0 for c in far])),
        "by_distance": {f"{int(d * 100)}cm": {
            "distance_est_m_median": float(np.median([c["distance_est_m"] for c in found if c["distance_m"] == d])),
            "peer26_est_m_median": float(np.median([c["distance_est_m_peer26"] for c in found
                                                    if c["distance_m"] == d]))}
            for d in sorted({c["distance_m"] for c in found})},
        "cases_list": noexif,
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
        "distance_noexif_median_within_25pct": summary["distance_rel_err_noexif"] <= 0.25,
        "distance_noexif_worst_near_within_40pct": summary["distance_rel_err_noexif_max_near"] <= 0.40,
        "far_detected_eq_1": summary["far_detected"] >= 1.0,
        "far_change_le_1": summary["far_change"] <= 1.0,
        "interval_coverage_ge_0.9": summary["interval_coverage"] >= 0.9,
        "nme_ratio_25cm_le_0.4": summary["nme_ratio_25cm"] <= 0.4,
    }
    return {"summary": summary, "targets": targets, "per_distance": per_distance, "noexif": noexif_extra,
            "nme_ratio_25cm_focal_given": nme_ratio_25cm_focal_given,
            "ssim_face": {"input": _mean(cases, "ssim_face_input"), "ours": _mean(cases, "ssim_face_ours"),
                          "peer": _mean(cases, "ssim_face_peer")},
            "psnr_face_peer": _mean(cases, "psnr_face_peer"),
            "distance_rel_err_max": max(c["distance_rel_err"] for c in cases),
            "remap_ms_1080p": speed["remap_ms_1080p"],
            "speed_ratios": {k: round(speed[f"ms_{k}"] / speed[f"remap_ms_{k}"], 2) for k in ("12mp", "1080p")}
            | {f"{k}_fixed_focal": round(speed[f"ms_{k}_fixed_focal"] / speed[f"remap_ms_{k}"], 2)
               for k in ("12mp", "1080p")},
            "peer": "oracle affine map of the true near landmarks onto the true far landmarks",
            "cases": cases, "seconds": time.perf_counter() - t0}
