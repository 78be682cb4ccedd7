"""Demo section: rolling-shutter correction on real footage, before / after / truth."""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from priorfx.shutter.params import ShutterParams

READOUT = 0.8


def _strip(images: list[np.ndarray]) -> np.ndarray:
    """Side by side with a thin white gap."""
    h = images[0].shape[0]
    gap = np.ones((h, 6, 3), np.float32)
    parts = []
    for i, img in enumerate(images):
        parts += ([gap] if i else []) + [img]
    return np.concatenate(parts, axis=1)


def section(out_dir: Path, engine) -> dict:
    """Render bikes.mp4 (real panning street footage) as a rolling-shutter camera
    would have seen it, correct it with the engine, and compare with the truth."""
    from priorfx.bench.shutter import psnr
    from priorfx.scenes.shutter import (PHOTOS, PhotoScene, VideoScene, load_photo, load_video_frames,
                                        object_patch, render_rs)
    from priorfx.demo import save_png

    t0 = time.perf_counter()
    d = out_dir / "shutter"
    d.mkdir(parents=True, exist_ok=True)
    figures: dict = {}
    pairs = []

    # Real footage: a fast, changing pan (bikes.mp4 frames 92-103).
    scene = VideoScene(load_video_frames("bikes.mp4", 92, 12))
    frames, truth = render_rs(scene, list(range(1, 10)), READOUT)
    res = engine.deshutter(frames, ShutterParams(readout=READOUT))
    auto = engine.deshutter(frames, ShutterParams(readout=None))
    m = 5
    save_png(d / "bikes_rs.png", frames[m])
    save_png(d / "bikes_corrected.png", res.frames[m])
    save_png(d / "bikes_truth.png", truth[m])
    pairs.append({"caption": f"bikes.mp4 (real footage) rendered with a rolling shutter (readout {READOUT} "
                             "of the frame time): input (left) vs corrected (right)",
                  "before": "shutter/bikes_rs.png", "after": "shutter/bikes_corrected.png"})
    inner = slice(1, -1)
    pairs.append({"caption": "global-shutter truth (left) vs corrected (right)",
                  "before": "shutter/bikes_truth.png", "after": "shutter/bikes_corrected.png"})
    figures["bikes: PSNR input -> corrected (dB)"] = (
        f"{np.mean([psnr(f, t) for f, t in zip(frames[inner], truth[inner])]):.2f} -> "
        f"{np.mean([psnr(f, t) for f, t in zip(res.frames[inner], truth[inner])]):.2f}")
    figures["bikes: readout estimated / true"] = (
        f"{auto.readout:.2f} / {READOUT} (confidence {auto.readout_confidence:.2f}"
        + ("; too little changing motion, the default was used" if auto.readout_confidence < 0.15 else "")
        + ")")
    figures["bikes: PSNR with the estimated readout (dB)"] = (
        f"{np.mean([psnr(f, t) for f, t in zip(auto.frames[inner], truth[inner])]):.2f}")

    # A real photo patch moving fast across a panning real photo: only a dense,
    # per-pixel correction straightens the object.
    obj = object_patch(load_photo(PHOTOS[1], 1.0), 120)
    mov = PhotoScene(load_photo(PHOTOS[0], 1.6), (640, 360), seed=7, speed=4.0, obj=obj, obj_speed=22.0)
    frames, truth = render_rs(mov, list(range(5)), READOUT)
    res = engine.deshutter(frames, ShutterParams(readout=READOUT))
    save_png(d / "object.png", _strip([frames[2], res.frames[2], truth[2]]))
    pairs.append({"caption": "object moving at 22 px/frame over a panning photo: input (left) vs "
                             "corrected (right); the strip on the right shows input | corrected | truth",
                  "before": "shutter/object_input.png", "after": "shutter/object.png"})
    save_png(d / "object_input.png", frames[2])
    figures["object: PSNR input -> corrected (dB)"] = (
        f"{np.mean([psnr(f, t) for f, t in zip(frames[1:-1], truth[1:-1])]):.2f} -> "
        f"{np.mean([psnr(f, t) for f, t in zip(res.frames[1:-1], truth[1:-1])]):.2f}")
    figures["seconds"] = f"{time.perf_counter() - t0:.1f}"
    return {
        "title": "Rolling shutter (image sensor)",
        "text": ("A rolling-shutter sensor exposes row y at t0 + g*y/H, so motion skews and wobbles the "
                 "picture. priorfx measures the motion with optical flow, works out each pixel's velocity "
                 "knowing both frames were sampled row by row, and moves every row to the middle row's "
                 "instant with one warp. The readout g is estimated from the footage. Frames of real "
                 "footage are used as global-shutter instants and rendered row by row into rolling-"
                 "shutter frames, so the truth is known. CLI: priorfx deshutter IN -o OUT; live: the OBS "
                 "filter."),
        "pairs": pairs,
        "figures": figures,
    }
