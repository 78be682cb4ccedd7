"""Calibrate the perspective distance estimate (maintainer script).

`geometry.perspective_strength` fits the landmarks with the focal length free
and reads the perspective strength p = 1 / distance off them. Two things make
that raw reading biased: the face-mesh model reports landmarks with less
perspective than the image has (on renders whose true landmarks give p back
with slope ~1, the model's give a slope of ~0.5: it pulls faces towards the
weak-perspective faces it was trained on), and a person's own face shape
moves p (a longer nose looks like a nearer camera). So the raw reading is
mapped to a distance through a calibration measured here:

    p_raw = a + b * p_true + noise,  noise ~ N(0, (s0 + s1 * p_true)^2)

on renders (`scenes.portrait.render_shot`, 0.25-3 m, 16-135 mm, poses, half
of them crops) of heads built from the people the mean face was built from
(multi_face.jpg's five faces, single_face.jpg), never the benchmark's
portraits. The result goes into mean_face.json ("distance_calibration").

Run: python core/tools/portrait_calibration.py  (a maintainer script, not shipped; needs the samples; ~5 min)
"""
from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import numpy as np

# (photo, face index): the people of mean_face.json, none of scenes.portrait.SOURCES.
HEADS = [("multi_face.jpg", i) for i in range(5)] + [("single_face.jpg", 0)]
DISTANCES = (0.25, 0.3, 0.4, 0.5, 0.6, 0.8, 1.0, 1.5, 2.0, 3.0)
SIZE = 480


def collect(seed: int = 1, heads=HEADS, distances=DISTANCES, size: int = SIZE) -> list[dict]:
    """(p_true, p_raw) of every calibration render."""
    from priorfx.scenes import portrait as scenes
    from priorfx.portrait import geometry
    from priorfx.priors import face

    rng = np.random.default_rng(seed)
    bg = scenes.load_photo(scenes.BACKGROUND)
    rows = []
    for name, index in heads:
        head = scenes.build_head(scenes.load_photo(name), rng, index=index)
        for d in distances:
            for crop in (False, True):
                shot = scenes.render_shot(head, bg, d, rng, size, crop)
                found = face.find_faces(shot["image"], max_faces=1)
                if not found:
                    continue
                p, _ = geometry.perspective_strength(found[0].points, (size, size))
                rows.append({"head": f"{name}#{index}", "d": d, "crop": crop, "p_true": 1.0 / d, "p_raw": p})
    return rows


def fit(rows: list[dict]) -> dict:
    """Least-squares line p_raw = a + b p_true, and a noise sd linear in p_true
    (from the absolute residuals, scaled to a Gaussian sd by sqrt(pi / 2))."""
    pt = np.array([r["p_true"] for r in rows])
    pr = np.array([r["p_raw"] for r in rows])
    a_mat = np.column_stack([np.ones_like(pt), pt])
    (a, b), *_ = np.linalg.lstsq(a_mat, pr, rcond=None)
    res = np.abs(pr - (a + b * pt)) * np.sqrt(np.pi / 2)
    (s0, s1), *_ = np.linalg.lstsq(a_mat, res, rcond=None)
    s0 = max(float(s0), 0.05)
    return {"a": round(float(a), 4), "b": round(float(b), 4), "s0": round(s0, 4), "s1": round(max(float(s1), 0.0), 4),
            "renders": len(rows), "heads": sorted({r["head"] for r in rows})}


def main() -> None:
    rows = collect()
    cal = fit(rows)
    path = Path(str(resources.files("priorfx.portrait").joinpath("mean_face.json")))
    record = json.loads(path.read_text())
    record["distance_calibration"] = cal
    path.write_text(json.dumps(record, separators=(",", ":")))
    for r in rows:
        print(f"{r['head']:20s} {r['d']:.2f} m crop={r['crop']!s:5s} p_true {r['p_true']:.2f} p_raw {r['p_raw']:.2f}")
    print(json.dumps(cal))


if __name__ == "__main__":
    main()
