"""`priorfx bench matting`: priorfx matting vs. raw RVM, closed-form and KNN.

Data (built in memory, deterministic):
- composites of the RGBA cut-outs in DATA/fg/*.png over DATA/bg/*.jpg
  (I = a F + (1 - a) B; ground-truth alpha by construction);
- the same with procedural hair-like strands (thin, anti-aliased curves with
  fractional coverage) growing from the top of the cut-out;
- procedural smoke (multi-octave noise in a rising plume, soft almost
  everywhere, opaque only in its core) over the real backgrounds;
- short sequences: a cut-out moving over a background (temporal metrics).
Without a trimap only the person cut-outs (--people glob) are used: the
prior is a person prior. With a user trimap (made from the ground truth by
widening its edge by each of TRIMAP_WIDTHS) every cut-out is used, people or
not, and each case has a kind: person (--people), transparent (--transparent
and the smoke) or animal (the rest). The quick run (640 x 360) is a
subset chosen by a fixed rule on the data's order, never by result
(`quick_picks`, `quick_trimap_background`): every background, person,
strands variant and trimap kind appears. A
trimap that leaves no pixel known as foreground or background (the fire
cut-out under the widest trimap of the full run) cannot be given to
closed-form or KNN: the case is listed under `trimap_skipped`.

Beside dtSSD of our mattes and of per-frame matting (fresh prior state, no
temporal blend) the sequences report `dtssd_consistent`: per-frame matting
made perfectly consistent over time from the known motion
(metrics.dtssd_consistent), the floor that temporal handling alone can reach.

`--prior ID` scores a registered prior instead of the built-in RVM, the same
way: its raw alpha fills the *_rvm columns and it drives our refinement.

Ratios (mean over cases of ours / peer, so each case weighs the same):
trimap_sad_ratio_cf, its worst kind (trimap_sad_ratio_cf_worst_kind, over
person / animal / transparent), trimap_sad_ratio_knn; automatic mode
auto_sad_ratio_rvm and auto_sad_ratio_cf; speed s_ratio_rvm_1080p / _4k (the
matte's time per frame over the prior's inference time, same process) and
cpu_ratio_rvm_1080p / _4k (the same in process CPU time, which other
processes on a shared machine stretch less than wall time).

Peers, in the same run: raw RVM alpha (or the chosen prior's); pymatting closed-form from the same
automatic trimap (our band); with a user trimap, pymatting closed-form and
KNN. OpenCV alphamat (information-flow matting) lives in opencv-contrib-python,
which cannot be installed beside opencv-python-headless (both provide `cv2`),
so it is not run.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from priorfx.models.contract import DEFAULT_PRIOR
from priorfx.matting import metrics
from priorfx.scenes.matting import (DEFAULT_DATA, SEQUENCE_KINDS, TRIMAP_PX, WORK_SIZE, add_strands, compose,
                                    crop_bg, load_backgrounds, load_cutouts, make_sequence, make_smoke, place,
                                    user_trimap)


# The user trimap's half-widths at WORK_SIZE (a tight one, the usual one, a
# loose one drawn with a big brush); the quick run uses the first and last.
TRIMAP_WIDTHS = (4, TRIMAP_PX, 20)
TRIMAP_KINDS = ("person", "animal", "transparent")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", type=Path, default=DEFAULT_DATA,
                   help="folder with fg/*.png (RGBA cut-outs) and bg/*.jpg (default: %(default)s)")
    p.add_argument("--people", default="fireman*",
                   help="glob of the cut-outs that show people (used without a trimap; default: %(default)s)")
    p.add_argument("--transparent", default="fire",
                   help="glob of the cut-outs that are semi-transparent (smoke, fire; default: %(default)s)")
    p.add_argument("--no-speed", action="store_true", help="skip the 1080p / 4K speed runs")
    p.add_argument("--prior", default=DEFAULT_PRIOR, metavar="ID",
                   help="the person prior to score (a registered model with a person role, "
                        "`priorfx models list`); its raw alpha is the *_rvm columns (default: %(default)s)")


# ---------------------------------------------------------------- data


# ---------------------------------------------------------------- peers

def _crop_box(mask: np.ndarray, pad: int = 4) -> tuple[slice, slice]:
    ys, xs = np.nonzero(mask)
    return (slice(max(0, ys.min() - pad), ys.max() + pad + 1),
            slice(max(0, xs.min() - pad), xs.max() + pad + 1))


def pymatting_alpha(image: np.ndarray, trimap: np.ndarray, method: str) -> np.ndarray:
    """pymatting closed-form ('cf') or KNN ('knn') alpha, solved on the
    bounding box of the unknown region (the rest is known)."""
    import pymatting

    alpha = np.where(trimap >= 0.9, 1.0, 0.0).astype(np.float32)
    unknown = (trimap > 0.1) & (trimap < 0.9)
    if not unknown.any():
        return alpha
    ys, xs = _crop_box(unknown)
    img = image[ys, xs].astype(np.float64)
    tri = trimap[ys, xs].astype(np.float64)
    fn = {"cf": pymatting.estimate_alpha_cf, "knn": pymatting.estimate_alpha_knn}[method]
    # pymatting prints its preconditioner's warnings on stdout, where the
    # benchmark's JSON goes
    with contextlib.redirect_stdout(sys.stderr):
        alpha[ys, xs] = np.clip(fn(np.clip(img, 0, 1), tri), 0, 1)
    return alpha


def automatic_trimap(result) -> np.ndarray:
    """The trimap our refinement used: known outside the band (prior rounded), 0.5 inside."""
    from priorfx.matting import uncertainty_band

    prior = result.prior_alpha
    band = uncertainty_band(prior, result.provenance["frame"]["band_px"])
    tri = (prior >= 0.5).astype(np.float32)
    tri[band] = 0.5
    return tri


# ---------------------------------------------------------------- runs

def _mean(rows: list[dict], key: str) -> float:
    return float(np.mean([r[key] for r in rows])) if rows else float("nan")


def subject_kind(name: str, person_names: set[str], transparent_names: set[str]) -> str:
    """person / transparent / animal: the kind a trimap case is reported under."""
    if name in person_names:
        return "person"
    if name in transparent_names or name == "smoke":
        return "transparent"
    return "animal"


def trimap_widths(size: tuple[int, int], quick: bool) -> list[int]:
    """TRIMAP_WIDTHS scaled to the run's frame size (the quick run: first and last)."""
    widths = (TRIMAP_WIDTHS[0], TRIMAP_WIDTHS[-1]) if quick else TRIMAP_WIDTHS
    return [max(2, int(round(px * size[0] / WORK_SIZE[0]))) for px in widths]


def quick_picks(n_people: int, n_backgrounds: int, n_variants: int) -> set[tuple[int, int, int]]:
    """The automatic-mode cases of the quick run, as (person, background,
    variant) indices: one case per background, the person and the variant
    turning with the background's index (background b gets person b mod P and
    variant (b div P) mod V). A fixed rule on positions in the sorted data,
    never on results: every background, person and variant appears (with the
    shared data: 4 backgrounds, 2 people, plain / strands -> 4 of the full
    run's 16 combinations, each person once plain and once with strands)."""
    return {(b % n_people, b, (b // n_people) % n_variants) for b in range(n_backgrounds)}


def quick_trimap_background(subject_index: int, n_backgrounds: int) -> int:
    """The one background each trimap subject gets in the quick run: the
    subjects (sorted cut-outs, then the smoke) take the backgrounds in turn,
    so every background and every kind appears."""
    return subject_index % n_backgrounds


def quality_runs(data: Path, people: str, quick: bool, transparent: str = "fire",
                 prior: str = DEFAULT_PRIOR) -> dict:
    """The automatic-mode and trimap cases (the quick run: the subset chosen
    by `quick_picks` / `quick_trimap_background`, at 640 x 360 and the first
    and last trimap width)."""
    from priorfx.matting import MattingParams, matte_image

    cutouts = load_cutouts(data)
    bgs = load_backgrounds(data)
    size = (640, 360) if quick else WORK_SIZE
    rng = np.random.default_rng(7)
    person_names = {p.stem for p in (data / "fg").glob(people)}
    transparent_names = {p.stem for p in (data / "fg").glob(transparent + ".png")}
    auto_rows, tri_rows, tri_skipped = [], [], []
    params = MattingParams(prior=prior)
    widths = trimap_widths(size, quick)
    subjects = [(name, F0, A0) for name, F0, A0 in cutouts] + [("smoke", None, None)]
    people_order = [name for name, _, _ in subjects if name in person_names]
    picks = quick_picks(len(people_order), len(bgs), 2) if quick else None
    for si, (fname, F0, A0) in enumerate(subjects):
        kind = subject_kind(fname, person_names, transparent_names)
        for bi, (bname, bg) in enumerate(bgs):
            trimap_here = not quick or bi == quick_trimap_background(si, len(bgs))
            auto_variants = {0, 1} if kind == "person" else set()
            if quick and kind == "person":
                auto_variants = {v for p_, b_, v in picks if p_ == people_order.index(fname) and b_ == bi}
            if not trimap_here and not auto_variants:
                continue
            B = crop_bg(bg, size)
            if F0 is None:
                F, A = make_smoke(size, np.random.default_rng(11 + bi))
            else:
                F, A = place(F0, A0, size, x_frac=0.35 + 0.3 * (bi % 2))
            variants = [("plain", F, A)]
            if 1 in auto_variants:
                variants.append(("strands", *add_strands(F, A, rng)))
            for vi, (vname, Fv, Av) in enumerate(variants):
                img = compose(Fv, Av, B)
                tag = f"{fname}/{bname}/{vname}"
                if vi in auto_variants:
                    r = matte_image(img, params)
                    cf = pymatting_alpha(img, automatic_trimap(r), "cf")
                    row = {"case": tag}
                    for who, a in (("ours", r.alpha), ("rvm", r.prior_alpha), ("cf", cf)):
                        for k, v in metrics.all_metrics(a, Av).items():
                            row[f"{k}_{who}"] = v
                    row["sad_ratio_rvm"] = row["sad_ours"] / max(row["sad_rvm"], 1e-9)
                    row["sad_ratio_cf"] = row["sad_ours"] / max(row["sad_cf"], 1e-9)
                    auto_rows.append(row)
                if vname == "plain" and trimap_here:
                    for px in widths:
                        row = _trimap_case(img, Av, px, params, f"{tag}/{px}px", kind)
                        if "skipped" in row:
                            tri_skipped.append(row)
                        else:
                            tri_rows.append(row)
    return {"automatic": auto_rows, "trimap": tri_rows, "trimap_skipped": tri_skipped, "size": list(size)}


def _trimap_case(img: np.ndarray, gt: np.ndarray, px: int, params, tag: str, kind: str) -> dict:
    """Ours, closed-form and KNN from one user trimap of half-width px; a case
    whose trimap has no foreground or no background left (thin smoke under
    a wide trimap) is returned as skipped: the peers need both sides."""
    from priorfx.matting import matte_image

    tri = user_trimap(gt, px)
    missing = [side for side, known in (("foreground", tri >= 0.9), ("background", tri <= 0.1)) if not known.any()]
    if missing:
        return {"case": tag, "kind": kind, "trimap_px": px,
                "skipped": f"the trimap has no known {' or '.join(missing)}; closed-form and KNN need both"}
    t0 = time.perf_counter()
    r = matte_image(img, params, guides={"trimap": tri})
    row = {"case": tag, "kind": kind, "trimap_px": px, "s_ours": time.perf_counter() - t0,
           "unknown_share": float(((tri > 0.1) & (tri < 0.9)).mean()),
           "prior_agreement": r.provenance["frame"].get("prior_agreement")}
    for who, a in (("ours", r.alpha), ("cf", pymatting_alpha(img, tri, "cf")),
                   ("knn", pymatting_alpha(img, tri, "knn"))):
        row[f"sad_{who}"] = metrics.sad(a, gt)
        row[f"mse_{who}"] = metrics.mse(a, gt)
    row["sad_ratio_cf"] = row["sad_ours"] / max(row["sad_cf"], 1e-9)
    row["sad_ratio_knn"] = row["sad_ours"] / max(row["sad_knn"], 1e-9)
    return row


def temporal_runs(data: Path, people: str, quick: bool, prior: str = DEFAULT_PRIOR) -> dict:
    from priorfx.matting import MattingParams, matte_clip

    cutouts = [c for c in load_cutouts(data) if c[0] in {p.stem for p in (data / "fg").glob(people)}]
    bgs = load_backgrounds(data)
    size = (640, 360) if quick else WORK_SIZE
    n = 5 if quick else 12
    if quick:
        cutouts = cutouts[:1]
    rows = []
    for (fname, F0, A0), (bname, bg) in zip(cutouts, bgs[1:] + bgs[:1]):
        for kind in SEQUENCE_KINDS:
            frames, gts, positions = make_sequence(F0, A0, bg, size, n, kind)
            ours = list(matte_clip(frames, MattingParams(prior=prior)))
            # no temporal handling at all: fresh prior state, no temporal term
            per_frame_results = [next(iter(matte_clip([fr], MattingParams(temporal=0.0, prior=prior)))) for fr in frames]
            per_frame = [r.alpha for r in per_frame_results]
            # Skip the first frames: a recurrent prior needs a few frames to settle.
            k = 2
            rows.append({"case": f"{fname}/{bname}/{kind}", "kind": kind, "frames": n,
                         "dtssd_ours": metrics.dtssd([r.alpha for r in ours][k:], gts[k:]),
                         "dtssd_rvm": metrics.dtssd([r.prior_alpha for r in ours][k:], gts[k:]),
                         "dtssd_per_frame": metrics.dtssd(per_frame[k:], gts[k:]),
                         # the best any temporal filter of these per-frame mattes could do
                         "dtssd_consistent": metrics.dtssd_consistent(per_frame[k:], gts[k:],
                                                                      positions[k:]),
                         "dtssd_rvm_per_frame": metrics.dtssd([r.prior_alpha for r in per_frame_results][k:],
                                                              gts[k:]),
                         "sad_ours": float(np.mean([metrics.sad(r.alpha, g) for r, g in zip(ours, gts)])),
                         "sad_rvm": float(np.mean([metrics.sad(r.prior_alpha, g) for r, g in zip(ours, gts)]))})
    return {"sequences": rows}


def speed_child(width: int, height: int, frames: int, prior: str = DEFAULT_PRIOR) -> dict:
    """Time matting and raw RVM on a `frames`-frame clip at width x height (in
    a fresh process, so ru_maxrss is this run's peak)."""
    from priorfx.matting import MattingParams, matte_clip
    from priorfx.matting.solver import warm_up
    from priorfx.priors.person import PersonMatter

    warm_up()
    data = DEFAULT_DATA if (DEFAULT_DATA / "fg").is_dir() else None
    if data is not None:
        name, F0, A0 = [c for c in load_cutouts(data) if c[0].startswith("fireman")][0]
        bg = load_backgrounds(data)[0][1]
        clip = []
        for t in range(frames):
            F, A = add_strands(*place(F0, A0, (width, height), x_frac=0.45 + 0.01 * t),
                               np.random.default_rng(t))
            clip.append(compose(F, A, crop_bg(bg, (width, height), dx=3 * t)))
    else:
        rng = np.random.default_rng(0)
        clip = [rng.random((height, width, 3), dtype=np.float32) for _ in range(frames)]
    # wall time, and the process's CPU time (all its threads): on a shared
    # machine other processes stretch the wall time of both unevenly
    times, cpu = [], []
    t0, c0 = time.perf_counter(), time.process_time()
    for r in matte_clip(clip, MattingParams(prior=prior)):
        t1, c1 = time.perf_counter(), time.process_time()
        times.append(t1 - t0)
        cpu.append(c1 - c0)
        t0, c0 = t1, c1
    raw_prior = PersonMatter(prior=prior)
    rvm, rvm_cpu = [], []
    for fr in clip:
        t0, c0 = time.perf_counter(), time.process_time()
        raw_prior(fr)
        rvm.append(time.perf_counter() - t0)
        rvm_cpu.append(time.process_time() - c0)
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"s_per_frame": statistics.median(times[1:] or times), "s_first_frame": times[0],
            "s_rvm": statistics.median(rvm[1:] or rvm), "peak_mb": peak_kb / 1024.0,
            "cpu_per_frame": statistics.median(cpu[1:] or cpu), "cpu_rvm": statistics.median(rvm_cpu[1:] or rvm_cpu),
            "band_pixels": r.provenance["frame"].get("n_unknown"), "frames": frames}


def _speed(width: int, height: int, frames: int, prior: str = DEFAULT_PRIOR) -> dict:
    code = (f"import json; from priorfx.bench.matting import speed_child; "
            f"print(json.dumps(speed_child({width}, {height}, {frames}, {prior!r})))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=1800)
    if proc.returncode != 0:
        raise RuntimeError(f"speed run {width}x{height} failed: {proc.stderr.strip()[-500:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run(args: argparse.Namespace) -> dict:
    from priorfx.priors.person import prior_entry

    data = Path(args.data)
    t0 = time.perf_counter()
    prior = prior_entry(args.prior)  # an unknown prior fails before any work
    q = quality_runs(data, args.people, args.quick, getattr(args, "transparent", "fire"), prior.id)
    tq = temporal_runs(data, args.people, args.quick, prior.id)
    speed = {}
    if not args.no_speed:
        n = 2 if args.quick else 6
        speed = {"1080p": _speed(1920, 1080, n, prior.id), "4k": _speed(3840, 2160, n, prior.id)}
    auto, tri, seq = q["automatic"], q["trimap"], tq["sequences"]
    summary = {
        "sad_ours": _mean(auto, "sad_ours"), "sad_rvm": _mean(auto, "sad_rvm"),
        "sad_cf": _mean(auto, "sad_cf"), "mse_ours": _mean(auto, "mse_ours"),
        "mse_rvm": _mean(auto, "mse_rvm"), "grad_ours": _mean(auto, "grad_ours"),
        "conn_ours": _mean(auto, "conn_ours"), "dtssd_ours": _mean(seq, "dtssd_ours"),
        "dtssd_rvm": _mean(seq, "dtssd_rvm"), "trimap_sad_ours": _mean(tri, "sad_ours"),
        "trimap_sad_cf": _mean(tri, "sad_cf"), "trimap_sad_knn": _mean(tri, "sad_knn"),
        "s_1080p": speed.get("1080p", {}).get("s_per_frame"), "s_4k": speed.get("4k", {}).get("s_per_frame"),
        "s_rvm_1080p": speed.get("1080p", {}).get("s_rvm"), "peak_mb_4k": speed.get("4k", {}).get("peak_mb"),
        # mean over cases of ours / peer (each case weighs the same, whatever its size)
        "trimap_sad_ratio_cf": _mean(tri, "sad_ratio_cf"),
        "trimap_sad_ratio_cf_worst_kind": max(
            (_mean([r for r in tri if r["kind"] == k], "sad_ratio_cf") for k in TRIMAP_KINDS
             if any(r["kind"] == k for r in tri)), default=float("nan")),
        "trimap_sad_ratio_knn": _mean(tri, "sad_ratio_knn"),
        "auto_sad_ratio_rvm": _mean(auto, "sad_ratio_rvm"),
        "auto_sad_ratio_cf": _mean(auto, "sad_ratio_cf"),
        # the matte's time per frame over the prior's inference time, same run
        "s_ratio_rvm_1080p": _speed_ratio(speed.get("1080p")),
        "s_ratio_rvm_4k": _speed_ratio(speed.get("4k")),
        # the same with CPU time (all threads of the process), robust to load
        "cpu_ratio_rvm_1080p": _speed_ratio(speed.get("1080p"), "cpu_per_frame", "cpu_rvm"),
        "cpu_ratio_rvm_4k": _speed_ratio(speed.get("4k"), "cpu_per_frame", "cpu_rvm"),
    }
    extra = {"trimap_by_kind": {k: {key: _mean([r for r in tri if r["kind"] == k], key)
                                     for key in ("sad_ratio_cf", "sad_ratio_knn", "sad_ours", "sad_cf", "sad_knn")}
                                 for k in TRIMAP_KINDS},
             "trimap_by_width": {str(px): {key: _mean([r for r in tri if r["trimap_px"] == px], key)
                                           for key in ("sad_ratio_cf", "sad_ratio_knn")}
                                 for px in sorted({r["trimap_px"] for r in tri})},
             "dtssd_per_frame": _mean(seq, "dtssd_per_frame"),
             "dtssd_consistent": _mean(seq, "dtssd_consistent"),
             "dtssd_rvm_per_frame": _mean(seq, "dtssd_rvm_per_frame"),
             # per kind of shot: a locked-off noisy shot is where per-frame
             # matting flickers; on a walk the error moves with the person
             "dtssd_by_kind": {kind: {key: _mean([r for r in seq if r["kind"] == kind], key)
                                      for key in ("dtssd_ours", "dtssd_per_frame", "dtssd_consistent")}
                               for kind in SEQUENCE_KINDS},
             "mad_ours": _mean(auto, "mad_ours"), "mad_rvm": _mean(auto, "mad_rvm"),
             "mad_cf": _mean(auto, "mad_cf"), "grad_rvm": _mean(auto, "grad_rvm"),
             "grad_cf": _mean(auto, "grad_cf"), "conn_rvm": _mean(auto, "conn_rvm"),
             "conn_cf": _mean(auto, "conn_cf"), "mse_cf": _mean(auto, "mse_cf")}
    s = summary
    targets = {
        "sad_vs_rvm<=0.8": _ratio_ok(s["sad_ours"], s["sad_rvm"], 0.8),
        "sad_vs_cf<=0.7": _ratio_ok(s["sad_ours"], s["sad_cf"], 0.7),
        "trimap_beats_cf_and_knn": bool(s["trimap_sad_ours"] < min(s["trimap_sad_cf"], s["trimap_sad_knn"])),
        "trimap_sad_ratio_cf<=0.85": bool(s["trimap_sad_ratio_cf"] <= 0.85),
        "trimap_sad_ratio_cf_worst_kind<=1.0": bool(s["trimap_sad_ratio_cf_worst_kind"] <= 1.0),
        "trimap_sad_ratio_knn<1": bool(s["trimap_sad_ratio_knn"] < 1.0),
        "auto_sad_ratio_rvm<=0.6": bool(s["auto_sad_ratio_rvm"] <= 0.6),
        "auto_sad_ratio_cf<=0.8": bool(s["auto_sad_ratio_cf"] <= 0.8),
        "dtssd_vs_per_frame<=0.8": _ratio_ok(s["dtssd_ours"], extra["dtssd_per_frame"], 0.8),
        "1080p<=0.5s": None if s["s_1080p"] is None else bool(s["s_1080p"] <= 0.5),
        "4k<=2s": None if s["s_4k"] is None else bool(s["s_4k"] <= 2.0),
        "4k_peak<=4GB": None if s["peak_mb_4k"] is None else bool(s["peak_mb_4k"] <= 4096),
    }
    return {"summary": summary, "extra": extra, "targets": targets,
            "peers_skipped": {"opencv_alphamat": "needs opencv-contrib-python, which conflicts with "
                                                 "opencv-python-headless (both install cv2)"},
            "metric_definitions": "SAD/Grad/Conn in thousands (sum/1000), MSE/MAD means over the whole "
                                  "image, dtSSD x100 (priorfx.matting.metrics); sizes in pixels",
            "prior": {"id": prior.id, "sha256": prior.sha256, "runtime": prior.runtime},
            "data": str(data), "size": q["size"], "automatic": auto, "trimap": tri,
            "trimap_skipped": q["trimap_skipped"],
            "sequences": seq, "speed": speed, "seconds": round(time.perf_counter() - t0, 1)}


def _speed_ratio(run: dict | None, ours: str = "s_per_frame", floor: str = "s_rvm") -> float | None:
    if not run or not run.get(floor):
        return None
    return run[ours] / run[floor]


def _ratio_ok(ours: float, peer: float, ratio: float) -> bool:
    return bool(np.isfinite(ours) and np.isfinite(peer) and ours <= ratio * peer)
