"""`priorfx demo`: fetch and verify models and samples, run each manipulation
on real sample media, and write an HTML report with before/after pictures.

Each manipulation has a module here (demo/shutter.py, demo/portrait.py,
demo/matting.py) with `section(out_dir, engine) -> dict`, keys: title, text, pairs (list of {caption, before, after} image paths
relative to out_dir), figures (dict of numbers shown in a table).
"""
from __future__ import annotations

import html
import importlib
import json
import traceback
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from priorfx import samples
from priorfx.atomic import write_bytes_atomic
from priorfx.engines import Engine
from priorfx.models import entries, store
from priorfx.provenance import provenance, provenance_json

MANIPULATIONS = ["shutter", "portrait", "matting"]


def _thumbnail(src: Path, dst: Path, width: int = 320) -> None:
    if src.suffix.lower() in (".mp4", ".mov", ".avi"):
        cap = cv2.VideoCapture(str(src))
        ok, img = cap.read()
        cap.release()
        if not ok:
            raise RuntimeError(f"cannot read a frame of {src}")
    else:
        img = cv2.imread(str(src), cv2.IMREAD_COLOR)
    h, w = img.shape[:2]
    img = cv2.resize(img, (width, max(1, round(h * width / w))), interpolation=cv2.INTER_AREA)
    ok, buf = cv2.imencode(".png", img)
    write_bytes_atomic(dst, buf.tobytes())


def _models_table() -> str:
    rows = "".join(
        f"<tr><td>{html.escape(e.id)}</td><td>{store.status(e.id)}</td><td>{html.escape(e.license)}</td>"
        f"<td>{html.escape(e.source)}</td><td><code>{e.sha256[:16]}…</code></td></tr>"
        for e in entries().values())
    return ("<table><tr><th>model</th><th>status</th><th>license</th><th>source</th><th>sha256</th></tr>"
            f"{rows}</table>")


def _section_html(sec: dict) -> str:
    parts = [f"<h2>{html.escape(sec['title'])}</h2>", f"<p>{html.escape(sec.get('text', ''))}</p>"]
    for pair in sec.get("pairs", []):
        parts.append(
            "<figure class=pair>"
            f"<div><img src='{html.escape(pair['before'])}'><figcaption>before</figcaption></div>"
            f"<div><img src='{html.escape(pair['after'])}'><figcaption>after</figcaption></div>"
            f"<figcaption>{html.escape(pair.get('caption', ''))}</figcaption></figure>")
    if sec.get("figures"):
        rows = "".join(f"<tr><td>{html.escape(str(k))}</td><td>{html.escape(str(v))}</td></tr>"
                       for k, v in sec["figures"].items())
        parts.append(f"<table>{rows}</table>")
    return "\n".join(parts)


CSS = """body{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}
img{max-width:100%;border:1px solid #ccc} table{border-collapse:collapse;margin:1em 0}
td,th{border:1px solid #ccc;padding:4px 8px;text-align:left;font-size:90%}
.grid{display:flex;flex-wrap:wrap;gap:8px} .grid figure{width:240px;margin:0}
.pair{display:flex;flex-wrap:wrap;gap:8px;margin:1em 0} .pair div{flex:1;min-width:300px}
.error{color:#a00}"""


def run_demo(out_dir: Path, engine: Engine, log: Callable[[str], None] = print) -> Path:
    """Fetch models and samples, run every available manipulation, write index.html."""
    out_dir.mkdir(parents=True, exist_ok=True)
    log("fetching and verifying models ...")
    store.fetch_many(list(entries()), log=log)
    log("fetching sample media ...")
    paths = samples.fetch(log=log)
    thumbs = out_dir / "samples"
    thumbs.mkdir(exist_ok=True)
    figures = []
    for p in paths:
        _thumbnail(p, thumbs / f"{p.stem}.png")
        lic = samples.catalogue()[p.name]["license"]
        figures.append(f"<figure><img src='samples/{p.stem}.png'><figcaption>{html.escape(p.name)} "
                       f"({html.escape(lic)})</figcaption></figure>")
    sections = []
    for name in MANIPULATIONS:
        module = importlib.import_module(f"priorfx.demo.{name}")
        log(f"running the {name} demo ...")
        try:
            sections.append(_section_html(module.section(out_dir, engine)))
        except Exception as exc:  # one broken section must not hide the others
            log(f"{name} demo failed: {exc}")
            sections.append(f"<h2>{name}</h2><pre class=error>{html.escape(traceback.format_exc())}</pre>")
    prov = provenance("demo", models=list(entries()))
    page = f"""<!doctype html><html><head><meta charset=utf-8><title>priorfx demo</title>
<style>{CSS}</style></head><body><h1>priorfx demo</h1>
<p>Engine: {html.escape(json.dumps(engine.info()))}</p>
{''.join(sections)}
<h2>Models (from PyPI wheels, verified by sha256)</h2>{_models_table()}
<h2>Sample media (from PyPI packages)</h2><div class=grid>{''.join(figures)}</div>
<script type="application/json" id="provenance">{provenance_json(prov)}</script>
</body></html>"""
    report = out_dir / "index.html"
    write_bytes_atomic(report, page.encode())
    return report


def save_png(path: Path, rgb: np.ndarray) -> None:
    """Write a float32 [0,1] RGB(A) array as an 8-bit PNG for the report."""
    arr = np.clip(rgb * 255.0 + 0.5, 0, 255).astype(np.uint8)
    if arr.ndim == 3 and arr.shape[2] >= 3:
        arr = cv2.cvtColor(arr, cv2.COLOR_RGBA2BGRA if arr.shape[2] == 4 else cv2.COLOR_RGB2BGR)
    ok, buf = cv2.imencode(".png", arr)
    write_bytes_atomic(path, buf.tobytes())
