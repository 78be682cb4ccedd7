"""Build the metric mean face shipped in `mean_face.json` (maintainer script).

mediapipe's canonical face geometry is not in the wheel the landmark model
comes from, so priorfx builds its own metric 3D mean face:

1. run the 468-point face mesh on seven people: the five faces of
   multi_face.jpg (a group photo taken from 1-2 m, so little perspective;
   men and women), the man of single_face.jpg and of 8 frames of
   single_face.mp4 (the same person, other expressions and head poses) and
   the man of 4 frames of carphone_pristine.mp4 (a QCIF video call, upscaled
   4x before the mesh runs). Each person weighs as one face in the mean
   (their frames are averaged after alignment). The portraits used by
   `priorfx bench portrait` (grace_hopper, astronaut, obama, biden) are
   deliberately left out, so the benchmark's heads are not the faces the mean
   was made of;
2. the mesh's relative depth is in the same scale as x (crop pixels), so each
   face is a 3D point set up to scale; align them (similarity Procrustes,
   iterated to a common mean), average, and make the result symmetric with a
   mirror correspondence found by optimal assignment;
3. turn it to a frontal pose (symmetry plane x = 0, face plane normal = +z,
   eye line horizontal) and scale it to an inter-pupillary distance of 63 mm
   (adult mean, both sexes), with the pupils taken as the midpoints of the eye
   corners. A check against anthropometry: nose tip 46 mm in front of the
   outer eye corners, face outline width 140 mm, forehead-chin 164 mm.

Axes are the camera's: x right, y down, z away from the camera, metres.
Run: python core/tools/build_mean_face.py  (a maintainer script, not shipped; needs the samples).
Writes priorfx/portrait/mean_face.json and the mesh topology's mirror map,
priorfx/priors/face_mesh_mirror.json.
"""
from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import numpy as np

SOURCES = ["multi_face.jpg", "single_face.jpg", "single_face.mp4", "carphone_pristine.mp4"]
VIDEO_FRAMES = {"single_face.mp4": 8, "carphone_pristine.mp4": 4}
VIDEO_UPSCALE = {"carphone_pristine.mp4": 4}
SAME_PERSON = {"single_face.mp4": "single_face.jpg"}
N_MODES = 6
IPD_M = 0.063


def procrustes(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """src aligned onto dst with the best rotation, scale and translation."""
    a, b = src - src.mean(0), dst - dst.mean(0)
    u, s, vt = np.linalg.svd(a.T @ b)
    d = np.sign(np.linalg.det(u @ vt))
    fix = np.diag([1.0, 1.0, d])
    r = u @ fix @ vt
    scale = (s * np.diag(fix)).sum() / (a ** 2).sum()
    return scale * a @ r + dst.mean(0)


def mirror_map(points: np.ndarray) -> np.ndarray:
    """Index of each point's mirror partner across x = 0 (a bijection)."""
    from scipy.optimize import linear_sum_assignment

    flipped = points * np.array([-1.0, 1.0, 1.0])
    cost = ((points[:, None, :] - flipped[None, :, :]) ** 2).sum(-1)
    _, col = linear_sum_assignment(cost)
    return col


def mean_face(meshes: list[np.ndarray], n_modes: int = N_MODES, person: list[str] | None = None):
    """Metric, frontal, symmetric mean of several 468 x 3 meshes.

    Returns the mean (468 x 3), the mirror map and `n_modes` shape modes
    (n_modes x 468 x 3, each scaled to one standard deviation): a tiny
    linear shape model from the principal components of the aligned faces.
    `person` gives each mesh's person: the meshes of one person are averaged
    (after alignment) into one face, so a video's many frames count once.
    """
    person = [str(i) for i in range(len(meshes))] if person is None else person
    people = sorted(set(person))
    ref = meshes[0] - meshes[0].mean(0)
    for _ in range(5):
        aligned = [procrustes(m, ref) for m in meshes]
        per_person = [np.mean([a for a, q in zip(aligned, person) if q == who], 0) for who in people]
        ref = np.mean(per_person, 0)
        ref -= ref.mean(0)
    # Frontal pose from anatomy: x along the eye line (subject's right eye ->
    # left eye, i.e. image left -> right), y forehead -> chin, z = x cross y.
    x = ref[263] - ref[33]
    x /= np.linalg.norm(x)
    y = ref[152] - ref[10]
    y -= x * (x @ y)
    y /= np.linalg.norm(y)
    rot = np.stack([x, y, np.cross(x, y)])
    pts = ref @ rot.T
    # Symmetrise: the mirror partner of every point, flipped, averaged in.
    for _ in range(3):
        pts[:, 0] -= pts[:, 0].mean()
        mir = mirror_map(pts)
        pts = 0.5 * (pts + pts[mir] * np.array([-1.0, 1.0, 1.0]))
    # Eye line horizontal, metric scale from the inter-pupillary distance.
    pupils = np.array([(pts[33] + pts[133]) / 2, (pts[263] + pts[362]) / 2])
    scale = IPD_M / np.linalg.norm(pupils[1] - pupils[0])
    pts *= scale
    pts -= pts.mean(0)
    dev = np.stack([procrustes(m @ rot.T * scale, pts) - pts for m in per_person])
    n_modes = min(n_modes, len(dev) - 1)
    _, sv, vt = np.linalg.svd(dev.reshape(len(dev), -1), full_matrices=False)
    modes = (vt[:n_modes] * (sv[:n_modes, None] / np.sqrt(len(dev)))).reshape(n_modes, -1, 3)
    return pts, mirror_map(pts), modes


def build(out: Path) -> dict:
    from priorfx.priors import face

    meshes, person = [], []
    for name in SOURCES:
        for rgb in _pictures(name):
            # Plain meshes: the mirror averaging uses the mirror map built here.
            found = face.find_faces(rgb, mirror_average=False)
            if name in VIDEO_FRAMES:
                found = found[:1]                      # the one person of the video
            meshes += [m.points.astype(np.float64) for m in found]
            person += [f"{SAME_PERSON.get(name, name)}#{i}" for i in range(len(found))]
    pts, mir, modes = mean_face(meshes, person=person)
    record = {
        "description": "priorfx metric mean face on the mediapipe 468-point mesh topology; "
                       "see core/tools/build_mean_face.py",
        "units": "metres; x right, y down, z away from the camera; origin at the centroid",
        "ipd_m": IPD_M, "sources": SOURCES, "faces": len(set(person)), "meshes": len(meshes),
        "points": np.round(pts, 5).tolist(),
        "modes": np.round(modes, 5).tolist(),
    }
    out.write_text(json.dumps(record, separators=(",", ":")))
    mirror = Path(str(resources.files("priorfx.priors").joinpath("face_mesh_mirror.json")))
    topology = json.loads(mirror.read_text())
    topology["mirror"] = mir.tolist()
    mirror.write_text(json.dumps(topology, separators=(",", ":")) + "\n")
    return record


def _pictures(name: str):
    """RGB float pictures of one source: the photo, or evenly spaced video frames."""
    import cv2

    from priorfx.samples import sample_path

    path = str(sample_path(name))
    if name not in VIDEO_FRAMES:
        yield cv2.cvtColor(cv2.imread(path, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB).astype(np.float32) / 255.0
        return
    cap = cv2.VideoCapture(path)
    n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    up = VIDEO_UPSCALE.get(name, 1)
    for i in np.linspace(0, n - 1, VIDEO_FRAMES[name]).astype(int):
        cap.set(cv2.CAP_PROP_POS_FRAMES, int(i))
        ok, bgr = cap.read()
        if ok:
            bgr = cv2.resize(bgr, None, fx=up, fy=up, interpolation=cv2.INTER_CUBIC) if up > 1 else bgr
            yield cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB).astype(np.float32) / 255.0
    cap.release()


if __name__ == "__main__":
    rec = build(Path(str(resources.files("priorfx.portrait").joinpath("mean_face.json"))))
    p = np.array(rec["points"])
    print(f"{rec['faces']} faces; nose ahead of outer eye corners {1000 * ((p[33, 2] + p[263, 2]) / 2 - p[1, 2]):.1f} mm, "
          f"width 234-454 {1000 * np.linalg.norm(p[234] - p[454]):.1f} mm, "
          f"forehead-chin {1000 * np.linalg.norm(p[10] - p[152]):.1f} mm")
