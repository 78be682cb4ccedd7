"""The matting section of `priorfx demo`: a real portrait matted without a
screen and composited over a new background."""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from priorfx import samples
from priorfx.engines import Engine


def new_background(h: int, w: int) -> np.ndarray:
    """A studio-like backdrop: a vertical teal-to-amber gradient with a soft vignette."""
    y = np.linspace(0.0, 1.0, h, dtype=np.float32)[:, None, None]
    top = np.array([0.10, 0.45, 0.55], np.float32)
    bottom = np.array([0.85, 0.60, 0.25], np.float32)
    bg = top * (1 - y) + bottom * y
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    r = np.hypot((xx - w / 2) / w, (yy - h / 2) / h)
    return np.clip(bg * (1.0 - 0.6 * r[..., None] ** 2), 0, 1).astype(np.float32)


def checker(h: int, w: int, cell: int = 16) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w]
    c = ((yy // cell + xx // cell) % 2).astype(np.float32) * 0.25 + 0.6
    return np.repeat(c[..., None], 3, axis=2)


def section(out_dir: Path, engine: Engine) -> dict:
    from priorfx.demo import save_png
    from priorfx.io import read_image
    from priorfx.matting import MattingParams

    pairs, figures = [], {}
    d = out_dir / "matting"
    d.mkdir(parents=True, exist_ok=True)
    for name in ("grace_hopper.jpg", "astronaut.png"):
        image = read_image(samples.sample_path(name))[..., :3]
        t0 = time.perf_counter()
        (r,) = list(engine.matte([image], MattingParams(quality="best")))
        secs = time.perf_counter() - t0
        h, w = r.alpha.shape
        stem = Path(name).stem
        comp = r.fg_premult + (1.0 - r.alpha[..., None]) * new_background(h, w)
        # the clean foreground on a checkerboard shows the matte's edges
        cut = r.fg_premult + (1.0 - r.alpha[..., None]) * checker(h, w)
        # a naive composite with the input colours shows what decontamination removes
        save_png(d / f"{stem}_input.png", image)
        save_png(d / f"{stem}_alpha.png", r.alpha)
        save_png(d / f"{stem}_cutout.png", cut)
        save_png(d / f"{stem}_composite.png", comp)
        save_png(d / f"{stem}_confidence.png", r.confidence)
        pairs.append({"caption": f"{name}: alpha matte (RVM person prior, refined at full resolution)",
                      "before": f"matting/{stem}_input.png", "after": f"matting/{stem}_alpha.png"})
        pairs.append({"caption": f"{name}: clean foreground over a new background",
                      "before": f"matting/{stem}_cutout.png", "after": f"matting/{stem}_composite.png"})
        figures[f"{name} size"] = f"{w}x{h}"
        figures[f"{name} seconds"] = round(secs, 2)
        band = r.provenance.get("frame", {}).get("n_unknown")
        if band is not None:
            figures[f"{name} refined band pixels"] = band
    return {"title": "Matting: people without a green screen",
            "text": "A learned person prior (Robust Video Matting, recurrent) gives a confident "
                    "matte; a band around its edges is re-solved at full resolution with "
                    "closed-form matting and the foreground colours are cleaned of the old "
                    "background, then composited over a new one. CLI: priorfx matte IN -o OUT.exr",
            "pairs": pairs, "figures": figures}
