"""`priorfx bench colour`: the same matte, warp and correction whatever the plate's encoding.

Real photos of people (and a real clip for deshutter) are written, as a
compositor would receive them, as an sRGB PNG, a scene-linear Rec.709 EXR, an
ACEScg EXR and an ACEScct EXR (half float, converted by OCIO from the sRGB
original, the header naming the space). Every command then runs through the
CLI with its defaults: auto detection picks the space, the benchmark never
tells the method what the encoding is. Figures:

* matte_diff_*_pct: mean |alpha - alpha of the sRGB run| over pixels where
  either alpha > 0.02, in percent, mean over images (max: the worst image).
  Peer in the same run: the engine with no colour management (values as
  stored, the behaviour before OCIO), `peer_matte_diff_*_pct`.
* undistort_diff / deshutter_diff: mean absolute difference on the 0-255
  scale after converting the output back to sRGB with OCIO, vs the sRGB run.
* roundtrip_max_err: the largest change of a pixel no manipulation touched
  (opaque foreground and unwarped background, in the plate's own encoding).
* speed: the conversions' share of a 4K matte (ACEScg plate), and ms per
  1080p frame for a live Rec.709 frame and for an EXR frame.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from priorfx import colour

STILLS = ["grace_hopper.jpg", "astronaut.png", "obama.jpg", "biden.jpg", "multi_face.jpg", "single_face.jpg"]
QUICK_STILLS = ["grace_hopper.jpg", "astronaut.png"]
CLIP = "single_face.mp4"
CONFIG = colour.DEFAULT_CONFIG
# encoding key -> (file suffix, OCIO colour space written into the header)
ENCODINGS = {"srgb": (".png", "sRGB Encoded Rec.709 (sRGB)"), "lin": (".exr", "Linear Rec.709 (sRGB)"),
             "acescg": (".exr", "ACEScg"), "acescct": (".exr", "ACEScct")}
SRGB = ENCODINGS["srgb"][1]
ALPHA_MIN = 0.02


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--no-speed", action="store_true", help="skip the 4K speed measurement")


def encode(rgb_srgb: np.ndarray, key: str, path: Path) -> Path:
    """Write an sRGB picture in encoding `key`, converted by OCIO, header naming the space."""
    from priorfx import io as pio

    suffix, space = ENCODINGS[key]
    px = np.ascontiguousarray(rgb_srgb[..., :3], np.float32).copy()
    if key != "srgb":
        colour.convert(px, CONFIG, SRGB, space)
    out = path.with_name(path.name + suffix)
    pio.write_image(out, px, metadata={"oiio:ColorSpace": space}, bits=16 if suffix == ".exr" else 8)
    return out


def to_srgb(px: np.ndarray, key: str) -> np.ndarray:
    out = np.ascontiguousarray(px[..., :3], np.float32).copy()
    if key != "srgb":
        colour.convert(out, CONFIG, ENCODINGS[key][1], SRGB)
    return out


def _cli(*argv: str) -> None:
    from priorfx.cli import main

    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()) as err:
        code = main(list(argv))
    if code not in (0, 6):  # 6: no face found (undistort leaves the image alone)
        raise RuntimeError(f"priorfx {' '.join(argv)} failed ({code}): {err.getvalue()[-500:]}")


def _alpha_diff_pct(a: np.ndarray, ref: np.ndarray) -> float:
    m = (a > ALPHA_MIN) | (ref > ALPHA_MIN)
    return float(np.abs(a - ref)[m].mean() * 100.0) if m.any() else 0.0


def _stills(names: list[str], work: Path, quick: bool) -> dict[str, Any]:
    from priorfx import io as pio
    from priorfx.engines import LocalEngine
    from priorfx.matting import MattingParams
    from priorfx.samples import sample_path

    import cv2

    per_image: list[dict[str, Any]] = []
    roundtrip = 0.0
    engine = LocalEngine()
    for name in names:
        rgb = pio.read_image(sample_path(name))[..., :3]
        if quick and max(rgb.shape[:2]) > 480:
            s = 480 / max(rgb.shape[:2])
            rgb = cv2.resize(rgb, (round(rgb.shape[1] * s), round(rgb.shape[0] * s)), interpolation=cv2.INTER_AREA)
        row: dict[str, Any] = {"image": name, "size": [rgb.shape[1], rgb.shape[0]]}
        alphas, warped = {}, {}
        for key in ENCODINGS:
            src = encode(rgb, key, work / f"{Path(name).stem}_{key}")
            plate = pio.read_image(src)[..., :3]
            matte = work / f"{src.stem}_matte.exr"
            _cli("matte", str(src), "-o", str(matte), "--quiet")
            m = pio.read_image(matte, channels=["matte.alpha", "matte.confidence", "fg.R", "fg.G", "fg.B"])
            alphas[key] = m[..., 0]
            # opaque, certain foreground is the plate's own pixels
            untouched = (m[..., 0] >= 1.0) & (m[..., 1] >= 1.0)
            if key != "srgb" and untouched.any():
                roundtrip = max(roundtrip, float(np.abs(m[..., 2:5][untouched] - plate[untouched]).max()))
            out = work / f"{src.stem}_undistorted{src.suffix}"
            _cli("undistort", str(src), "-o", str(out), "--quiet")
            if out.exists():
                res = pio.read_image(out)[..., :3]
                warped[key] = (to_srgb(res, key), res, plate)
            if key != "srgb":
                # peer: the engine with no colour management (values as stored)
                r = next(iter(engine.matte([plate], MattingParams())))
                row[f"peer_matte_diff_{key}_pct"] = round(_alpha_diff_pct(r.alpha, alphas["srgb"]), 3)
        for key in ENCODINGS:
            if key != "srgb":
                row[f"matte_diff_{key}_pct"] = round(_alpha_diff_pct(alphas[key], alphas["srgb"]), 3)
                if key in warped and "srgb" in warped:
                    row[f"undistort_diff_{key}"] = round(float(
                        np.abs(warped[key][0] - warped["srgb"][0]).mean() * 255.0), 3)
                    # pixels the warp left alone in the sRGB run, away from its fading
                    # edge (it moves a little with the face fit), come back exactly
                    still = np.all(warped["srgb"][1] == warped["srgb"][2], axis=-1)
                    still = cv2.erode(still.astype(np.uint8), np.ones((41, 41), np.uint8)).astype(bool)
                    if still.any():
                        roundtrip = max(roundtrip, float(np.abs(warped[key][1][still] - warped[key][2][still]).max()))
        row["faces_found"] = "srgb" in warped
        per_image.append(row)
    return {"images": per_image, "roundtrip_max_err": roundtrip}


def _deshutter(work: Path, quick: bool) -> dict[str, Any]:
    from priorfx import io as pio
    from priorfx.samples import sample_path

    n = 6 if quick else 16
    frames = list(pio.read_frames(str(sample_path(CLIP)), (0, n - 1)))
    outs = {}
    for key in ENCODINGS:
        seq = work / f"clip_{key}"
        seq.mkdir()
        for i, f in enumerate(frames):
            encode(f, key, seq / f"f.{i + 1:04d}")
        suffix = ENCODINGS[key][0]
        out = work / f"clip_{key}_out"
        out.mkdir()
        _cli("deshutter", str(seq / f"f.%04d{suffix}"), "-o", str(out / f"o.%04d{suffix}"), "--quiet")
        outs[key] = [to_srgb(pio.read_image(out / f"o.{i + 1:04d}{suffix}"), key) for i in range(n)]
    diffs = {key: round(float(np.mean([np.abs(a - b).mean() for a, b in zip(outs[key], outs["srgb"])]) * 255.0), 3)
             for key in ENCODINGS if key != "srgb"}
    return {"clip": CLIP, "frames": n, "size": [frames[0].shape[1], frames[0].shape[0]], "diff": diffs}


def _speed(quick: bool) -> dict[str, Any]:
    """Conversion cost vs a 4K matte (1080p in quick mode), and per 1080p frame."""
    import cv2

    from priorfx import io as pio
    from priorfx.engines import LocalEngine
    from priorfx.matting import MattingParams
    from priorfx.samples import sample_path

    w, h = (1920, 1080) if quick else (3840, 2160)
    rgb = pio.read_image(sample_path("grace_hopper.jpg"))[..., :3]
    big = cv2.resize(rgb, (h * rgb.shape[1] // rgb.shape[0], h), interpolation=cv2.INTER_CUBIC)
    pad = np.zeros((h, w, 3), np.float32) + np.float32(0.4)
    x0 = (w - big.shape[1]) // 2
    pad[:, x0:x0 + big.shape[1]] = np.clip(big, 0, 1)
    plate = to_srgb(pad, "srgb")
    colour.convert(plate, CONFIG, SRGB, "ACEScg")
    spec = colour.ColourSpec(CONFIG, "ACEScg", "user")
    boundary = colour.Boundary(spec)
    engine = LocalEngine()
    t0 = time.perf_counter()
    result = next(iter(engine.matte([boundary.into(plate)], MattingParams())))
    matte_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    working = boundary.into(plate)
    into_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    boundary.back(result.fg, working, plate)
    back_s = time.perf_counter() - t0
    # 1080p: a live Rec.709 frame (display-encoded: nothing to convert) and an EXR frame
    hd = np.ascontiguousarray(cv2.resize(plate, (1920, 1080), interpolation=cv2.INTER_AREA))
    video = colour.Boundary(colour.ColourSpec(CONFIG, colour.resolve_space(CONFIG, "g24_rec709"), "format"))
    from priorfx.bench.common import median_ms
    live_ms = median_ms(lambda: video.into(hd), repeat=21)
    exr_ms = median_ms(lambda: boundary.into(hd), repeat=5)
    return {"size": [w, h], "matte_s": round(matte_s, 3), "into_s": round(into_s, 4), "back_s": round(back_s, 4),
            "ratio_vs_matte": round((into_s + back_s) / matte_s, 4),
            "live_1080p_ms": round(live_ms, 4), "exr_1080p_into_ms": round(exr_ms, 2)}


def run(args: argparse.Namespace) -> dict[str, Any]:
    quick = bool(args.quick)
    with tempfile.TemporaryDirectory(prefix="priorfx-bench-colour-") as tmp:
        work = Path(tmp)
        stills = _stills(QUICK_STILLS if quick else STILLS, work, quick)
        clip = _deshutter(work, quick)
    speed = None if args.no_speed else _speed(quick)
    rows = stills["images"]
    summary: dict[str, Any] = {}
    for key in ("lin", "acescg", "acescct"):
        summary[f"matte_diff_{key}_pct"] = round(float(np.mean([r[f"matte_diff_{key}_pct"] for r in rows])), 3)
    summary["matte_diff_max_pct"] = max(r[f"matte_diff_{k}_pct"] for r in rows for k in ("lin", "acescg", "acescct"))
    und = [r[k] for r in rows for k in r if k.startswith("undistort_diff_")]
    summary["undistort_diff"] = round(float(np.mean(und)), 3) if und else None
    summary["undistort_diff_max"] = max(und) if und else None
    summary["deshutter_diff"] = round(float(np.mean(list(clip["diff"].values()))), 3)
    summary["deshutter_diff_max"] = max(clip["diff"].values())
    summary["roundtrip_max_err"] = stills["roundtrip_max_err"]
    for key in ("lin", "acescg", "acescct"):
        summary[f"peer_matte_diff_{key}_pct"] = round(float(np.mean([r[f"peer_matte_diff_{key}_pct"] for r in rows])), 3)
    if speed:
        summary["conversion_vs_matte"] = speed["ratio_vs_matte"]
        summary["live_1080p_ms"] = speed["live_1080p_ms"]
        summary["exr_1080p_into_ms"] = speed["exr_1080p_into_ms"]
    targets = {"matte_diff_pct": 0.5, "matte_diff_max_pct": 1.0, "undistort_diff": 1.0, "deshutter_diff": 1.0,
               "roundtrip_max_err": "half-float precision (0 here: untouched pixels are copied)",
               "conversion_vs_matte": 0.10, "live_1080p_ms": 2.0}
    return {"summary": summary, "targets": targets, "images": rows, "deshutter": clip, "speed": speed,
            "config": CONFIG, "encodings": {k: v[1] for k, v in ENCODINGS.items()}}
