"""Validations of publishable items: small pure functions returning `Check`s.

Each check says what is wrong in words an artist can act on (`message`) and
what to do (`hint`). Checks that need pixels share one pass over the frames
(`analyse`), cached on the item, so ten validators read each frame once.

Thresholds live in `PublishParams`; the defaults and why:
* alpha_tolerance 1e-3: half floats step by ~5e-4 just below 1.0, so a value
  written as 1.0 may read back a hair off; anything further is a real error.
* premult_tolerance 2e-3 and premult_max_fraction 1e-3: half rounding of
  colour and alpha, plus a few odd edge pixels, do not fail a premultiplied file.
* empty_alpha 0.01: a matte whose maximum is below 1 % is empty.
* flicker_threshold 0.005: flicker is alpha that reverses: per pixel
  min(|a(t) - a(t-1)|, |a(t-1) - a(t-2)|) where the two changes have opposite
  signs, averaged over the frame. An edge moving steadily changes each pixel
  one way only and scores 0; a limb popping out for one frame scores its area
  (0.005 = half a percent of the frame reversing fully). Above it the publish
  warns, it does not fail: a person turning back also reverses some pixels.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

import cv2
import numpy as np

from priorfx.io import images
from priorfx.progress import Progress, tick
from priorfx.publish.collect import MATTE, Item, Plate

PASSED, FAILED, WARNING, SKIPPED = "passed", "failed", "warning", "skipped"

MATTE_CHANNELS = ("R", "G", "B", "A", "matte.alpha", "matte.confidence")
UNDISTORT_CHANNELS = ("R", "G", "B")
PREMULT_ATTR = "priorfx/premultiplied"


@dataclass(frozen=True)
class PublishParams:
    alpha_tolerance: float = 1e-3
    premult_tolerance: float = 2e-3
    premult_max_fraction: float = 1e-3
    empty_alpha: float = 0.01
    flicker_threshold: float = 0.005
    flicker_width: int = 512    # alpha is compared at this width (noise and cost)


@dataclass
class Check:
    """The outcome of one validation of one item."""
    name: str
    label: str
    status: str
    message: str
    hint: str = ""
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status != FAILED

    def to_json(self) -> dict:
        return asdict(self)


def _ok(name: str, label: str, message: str, **details) -> Check:
    return Check(name, label, PASSED, message, details=details)


def _fail(name: str, label: str, message: str, hint: str, **details) -> Check:
    return Check(name, label, FAILED, message, hint, details)


def format_frames(numbers: Sequence[int], limit: int = 8) -> str:
    """[1, 2, 3, 7, 9, 10] -> '1-3, 7, 9-10' (shortened after `limit` runs)."""
    runs: list[str] = []
    nums = sorted(numbers)
    i = 0
    while i < len(nums):
        j = i
        while j + 1 < len(nums) and nums[j + 1] == nums[j] + 1:
            j += 1
        runs.append(str(nums[i]) if i == j else f"{nums[i]}-{nums[j]}")
        i = j + 1
    return ", ".join(runs[:limit]) + (f", ... ({len(runs) - limit} more)" if len(runs) > limit else "")


# --------------------------------------------------------------------------- headers

def headers(item: Item) -> list[images.ImageInfo]:
    """Header of every file of the item (read once, cached on the item)."""
    if "headers" not in item.data:
        item.data["headers"] = [item.info] + [images.read_image_info(p) for p in item.files[1:]]
    return item.data["headers"]


def header_premultiplied(info: images.ImageInfo) -> bool | None:
    """What the header says about alpha: True premultiplied, False straight, None no alpha."""
    if info.alpha_channel < 0 and "A" not in info.channel_names:
        return None
    flag = info.metadata.get(PREMULT_ATTR)
    if flag is not None:
        return bool(int(flag))
    if int(info.metadata.get("oiio:UnassociatedAlpha", 0) or 0):
        return False
    # format conventions: EXR colour is premultiplied, PNG straight
    return info.format == "openexr"


# --------------------------------------------------------------------------- pixels

@dataclass
class FrameStats:
    frame: int
    nonfinite: dict[str, int]                 # channel -> NaN/Inf count
    alpha_range: dict[str, tuple[float, float]]  # alpha channel -> (min, max) of finite values
    premult_violation: float | None           # fraction of pixels with colour > alpha
    transparent: float | None                 # fraction of pixels with alpha < 0.99
    matte_max: float | None
    matte_min: float | None
    flicker: float | None                     # reversal energy of the matte (see module doc)


def _matte_channel(names: Sequence[str]) -> str | None:
    for c in ("matte.alpha", "A", "alpha"):
        if c in names:
            return c
    return None


def reversal_energy(a0: np.ndarray, a1: np.ndarray, a2: np.ndarray) -> float:
    """Mean over pixels of how far alpha went back on itself across three frames."""
    d1, d2 = a1 - a0, a2 - a1
    back = np.minimum(np.abs(d1), np.abs(d2))
    return float(np.mean(np.where(d1 * d2 < 0, back, 0.0)))


def analyse(item: Item, params: PublishParams = PublishParams(),
            progress: Progress | None = None) -> list[FrameStats]:
    """One pass over the item's frames: finite values, alpha ranges, premultiplication,
    matte coverage and flicker (cached on the item)."""
    key = ("stats", params)
    if key in item.data:
        return item.data[key]
    out: list[FrameStats] = []
    hist: list[np.ndarray] = []
    total = len(item.files)
    for i, (path, number) in enumerate(zip(item.files, item.frame_numbers)):
        tick(progress, i, total, f"checking {path.name}")
        info = headers(item)[i]
        px = images.read_image(path, orient=False)
        names = list(info.channel_names)
        finite = np.isfinite(px)
        nonfinite = {n: int(np.count_nonzero(~finite[..., k])) for k, n in enumerate(names)}
        alpha_range = {}
        for n in ("A", "alpha", "matte.alpha"):
            if n in names:
                a = px[..., names.index(n)]
                a = a[np.isfinite(a)]
                alpha_range[n] = (float(a.min()), float(a.max())) if a.size else (float("nan"),) * 2
        viol = transp = None
        if "A" in names and all(c in names for c in "RGB"):
            a = px[..., names.index("A")]
            rgb = px[..., [names.index(c) for c in "RGB"]]
            with np.errstate(invalid="ignore"):
                viol = float(np.mean(rgb.max(axis=2) > a + params.premult_tolerance))
                transp = float(np.mean(a < 0.99))
        mname = _matte_channel(names)
        mmax = mmin = flick = None
        if mname is not None:
            m = np.nan_to_num(px[..., names.index(mname)], nan=0.0, posinf=1.0, neginf=0.0)
            mmax, mmin = float(m.max()), float(m.min())
            h, w = m.shape
            if w > params.flicker_width:
                m = cv2.resize(m, (params.flicker_width, max(1, round(h * params.flicker_width / w))),
                               interpolation=cv2.INTER_AREA)
            hist = (hist + [np.clip(m, 0.0, 1.0)])[-3:]
            if len(hist) == 3 and hist[0].shape == hist[2].shape:
                flick = reversal_energy(*hist)
        out.append(FrameStats(number, nonfinite, alpha_range, viol, transp, mmax, mmin, flick))
    tick(progress, total, total, "checked")
    item.data[key] = out
    return out


# --------------------------------------------------------------------------- checks

def _declared_range(item: Item) -> tuple[int, int] | None:
    """The frame range the results were made for, when their provenance records it."""
    rng = (item.provenance or {}).get("frame_range")
    if isinstance(rng, (list, tuple)) and len(rng) == 2 and all(isinstance(v, int) for v in rng):
        return int(rng[0]), int(rng[1])
    return None


def check_frames(item: Item, plate: Plate | None) -> Check:
    """Frames complete and contiguous, and complete for what was asked.

    Complete means: the range the provenance declares (``frame_range``, for a
    custom range), else the plate's frames when a plate is given. A declared
    range must lie inside the plate.
    """
    name, label = "frames", "frames complete and contiguous"
    nums = item.frame_numbers
    if len(item.files) == 1 and len(nums) == 1 and item.pattern == str(item.files[0]):
        return _ok(name, label, "single image")
    have = set(nums)
    missing = [n for n in range(nums[0], nums[-1] + 1) if n not in have]
    if missing:
        return _fail(name, label, f"{len(missing)} frame(s) missing inside {nums[0]}-{nums[-1]}: "
                     f"{format_frames(missing)}", "render the missing frames again, then publish",
                     missing=missing)
    declared = _declared_range(item)
    plate_frames = plate.frame_numbers if plate is not None else None
    if declared is not None:
        want, what = list(range(declared[0], declared[1] + 1)), f"the declared range {declared[0]}-{declared[1]}"
        if plate_frames is not None and not set(want) <= set(plate_frames):
            return _fail(name, label, f"{what} reaches outside the plate "
                         f"({format_frames(plate_frames)})", "give the plate these results were made from")
    elif plate_frames is not None:
        want, what = plate_frames, f"the plate ({format_frames(plate_frames)})"
    else:
        return _ok(name, label, f"{len(nums)} frame(s), {format_frames(nums)}")
    lacking = sorted(set(want) - have)
    extra = sorted(have - set(want))
    if lacking or extra:
        parts = []
        if lacking:
            parts.append(f"frames {format_frames(lacking)} of {what} have no result")
        if extra:
            parts.append(f"frames {format_frames(extra)} are not in {what}")
        return _fail(name, label, "; ".join(parts) + f" (results {format_frames(nums)})",
                     "process the whole range, or give the plate these results were made from",
                     missing=lacking, extra=extra)
    return _ok(name, label, f"{len(nums)} frame(s), {format_frames(nums)}, as {what.split(' (')[0]}")


def check_plate_match(item: Item, plate: Plate | None) -> Check:
    """Resolution, pixel aspect, data and display window match the plate."""
    name, label = "plate", "format matches the plate"
    if plate is None:
        return Check(name, label, SKIPPED, "no plate given", "pass --plate to compare against the source")
    problems = []
    for info in headers(item):
        if (info.width, info.height) != (plate.width, plate.height):
            problems.append(f"{info.path.name} is {info.width}x{info.height}, the plate {plate.width}x{plate.height}")
        elif abs(info.pixel_aspect - plate.pixel_aspect) > 1e-4:
            problems.append(f"{info.path.name} has pixel aspect {info.pixel_aspect:g}, "
                            f"the plate {plate.pixel_aspect:g}")
        elif plate.display_window is not None and info.format == "openexr":
            if info.display_window != plate.display_window:
                problems.append(f"{info.path.name} display window {info.display_window} "
                                f"!= plate {plate.display_window}")
            elif info.data_window != plate.data_window:
                problems.append(f"{info.path.name} data window {info.data_window} != plate {plate.data_window}")
        if len(problems) >= 3:
            break
    if problems:
        return _fail(name, label, "; ".join(problems),
                     "render at the plate's format (no proxy, no reformat, same bounding box)")
    return _ok(name, label, f"{plate.width}x{plate.height}, pixel aspect {plate.pixel_aspect:g}")


def check_alpha_range(stats: list[FrameStats], params: PublishParams = PublishParams()) -> Check:
    """Every alpha channel within [0, 1]."""
    name, label = "alpha_range", "alpha within [0, 1]"
    tol = params.alpha_tolerance
    bad = [(s.frame, ch, lo, hi) for s in stats for ch, (lo, hi) in s.alpha_range.items()
           if lo < -tol or hi > 1 + tol]
    if not any(s.alpha_range for s in stats):
        return Check(name, label, SKIPPED, "no alpha channel")
    if bad:
        f, ch, lo, hi = bad[0]
        return _fail(name, label, f"{ch} leaves [0, 1] on {len(bad)} frame/channel(s); frame {f}: "
                     f"min {lo:.4g}, max {hi:.4g}", "clamp alpha to 0..1 before writing (e.g. a Clamp node)",
                     frames=sorted({b[0] for b in bad}))
    lo = min(r[0] for s in stats for r in s.alpha_range.values())
    hi = max(r[1] for s in stats for r in s.alpha_range.values())
    return _ok(name, label, f"{', '.join(stats[0].alpha_range)} between {lo:.3g} and {hi:.3g}")


def check_finite(stats: list[FrameStats]) -> Check:
    """No NaN or Inf in any channel."""
    name, label = "finite", "no NaN or Inf"
    bad = [(s.frame, ch, n) for s in stats for ch, n in s.nonfinite.items() if n]
    if bad:
        frames = sorted({b[0] for b in bad})
        chans = sorted({b[1] for b in bad})
        return _fail(name, label, f"{sum(b[2] for b in bad)} NaN/Inf value(s) in {', '.join(chans)} "
                     f"on frame(s) {format_frames(frames)}",
                     "find the node that divides by zero (often an unpremultiply where alpha is 0)",
                     frames=frames, channels=chans)
    return _ok(name, label, "all values finite")


def check_premultiplication(item: Item, stats: list[FrameStats],
                            params: PublishParams = PublishParams()) -> Check:
    """The pixels agree with the header's premultiplication state.

    Premultiplied colour never exceeds alpha; a header that says
    premultiplied over pixels where colour exceeds alpha (beyond half-float
    rounding) is wrong. The reverse is a heuristic: a header that says
    straight, over pixels whose colour never exceeds alpha although at least
    1 % is transparent, almost surely holds premultiplied pixels.
    """
    name, label = "premultiplication", "premultiplication matches the header"
    state = header_premultiplied(item.info)
    if state is None or all(s.premult_violation is None for s in stats):
        return Check(name, label, SKIPPED, "no RGBA to check")
    if state:
        bad = [s for s in stats if s.premult_violation is not None
               and s.premult_violation > params.premult_max_fraction]
        if bad:
            worst = max(bad, key=lambda s: s.premult_violation)
            return _fail(name, label, f"the header says premultiplied, but colour exceeds alpha on "
                         f"{worst.premult_violation:.1%} of frame {worst.frame} "
                         f"({len(bad)} frame(s) affected): the pixels look unpremultiplied",
                         "premultiply before writing, or mark the file straight "
                         f"({PREMULT_ATTR}=0)", frames=[s.frame for s in bad])
        return _ok(name, label, "premultiplied, and colour never exceeds alpha")
    looks_premult = [s for s in stats if s.premult_violation == 0.0 and (s.transparent or 0) >= 0.01]
    if looks_premult and len(looks_premult) == len(stats):
        return _fail(name, label, "the header says straight (unpremultiplied) alpha, but colour never "
                     "exceeds alpha on any frame: the pixels look premultiplied",
                     f"unpremultiply before writing, or mark the file premultiplied ({PREMULT_ATTR}=1)")
    return _ok(name, label, "straight alpha, as the header says")


def check_channels(item: Item) -> Check:
    """Expected channels present (and half float for EXR mattes)."""
    name, label = "channels", "expected channels, half float"
    want = MATTE_CHANNELS if item.family == MATTE else UNDISTORT_CHANNELS
    problems = []
    for info in headers(item):
        missing = [c for c in want if c not in info.channel_names]
        if missing:
            problems.append(f"{info.path.name} lacks {', '.join(missing)} (has {', '.join(info.channel_names)})")
        elif info.format == "openexr":
            types = info.channel_types or (info.pixel_type,) * info.nchannels
            full = [c for c, t in zip(info.channel_names, types) if t != "half"]
            if full:
                problems.append(f"{info.path.name} stores {', '.join(full)} as "
                                f"{'/'.join(sorted(set(types) - {'half'}))}, not half float")
        if len(problems) >= 3:
            break
    if item.family == MATTE and item.info.format != "openexr":
        problems.insert(0, f"mattes are published as EXR, not {item.info.format}")
    if problems:
        return _fail(name, label, "; ".join(problems),
                     f"write {', '.join(want)}" + (" as half-float EXR" if item.family == MATTE else ""))
    return _ok(name, label, ", ".join(item.info.channel_names) + f" ({item.info.pixel_type})")


def _same_colorspace(a: str, b: str) -> bool:
    if a == b:
        return True
    try:
        import OpenImageIO as oiio
        return bool(oiio.ColorConfig().equivalent(a, b))
    except Exception:  # an unknown name in the active config
        return False


def check_colorspace(item: Item, plate: Plate | None) -> Check:
    """Colour-space metadata present on every frame, one for all, and the plate's.

    Compared with OIIO's colour config, so its renaming on write (ACEScg ->
    lin_ap1_scene) is not a mismatch.
    """
    name, label = "colorspace", "colour space present and consistent"
    spaces = [(i.path.name, i.colorspace) for i in headers(item)]
    missing = [n for n, c in spaces if not c]
    if missing:
        return _fail(name, label, f"{len(missing)} file(s) carry no colour space (oiio:ColorSpace), "
                     f"e.g. {missing[0]}", "write the colour space into the header (e.g. the Write node's colorspace)")
    first = spaces[0][1]
    odd = [(n, c) for n, c in spaces if not _same_colorspace(c, first)]
    if odd:
        return _fail(name, label, f"colour space changes within the sequence: {spaces[0][0]} is {first}, "
                     f"{odd[0][0]} is {odd[0][1]}", "render all frames with one colour space")
    if plate is not None and plate.colorspace and not _same_colorspace(first, plate.colorspace):
        return _fail(name, label, f"results are {first}, the plate is {plate.colorspace}",
                     "write the results in the plate's colour space")
    return _ok(name, label, first or "")


def check_provenance(item: Item) -> Check:
    """priorfx provenance present (operation, version, models) on every file."""
    name, label = "provenance", "provenance present"
    want_op = "matte" if item.family == MATTE else "undistort"
    problems = []
    for info in headers(item):
        prov = info.provenance
        if prov is None:
            problems.append(f"{info.path.name} has no priorfx provenance")
        elif not prov.get("priorfx_version") or "operation" not in prov:
            problems.append(f"{info.path.name}: provenance lacks the priorfx version or operation")
        elif prov.get("operation") != want_op:
            problems.append(f"{info.path.name} was made by {prov.get('operation')!r}, not {want_op!r}")
        elif item.family == MATTE and not prov.get("models"):
            problems.append(f"{info.path.name}: provenance names no model")
        if len(problems) >= 3:
            break
    if problems:
        return _fail(name, label, "; ".join(problems),
                     "publish files written by priorfx (its EXR/PNG headers carry priorfx/provenance)")
    prov = item.provenance or {}
    return _ok(name, label, f"{prov.get('operation')} by priorfx {prov.get('priorfx_version')}, "
               f"models {', '.join(prov.get('models') or []) or 'none'}")


def check_matte_not_empty(stats: list[FrameStats], params: PublishParams = PublishParams()) -> Check:
    """The matte holds something on every frame."""
    name, label = "matte_not_empty", "matte not empty"
    with_matte = [s for s in stats if s.matte_max is not None]
    if not with_matte:
        return _fail(name, label, "no matte channel (matte.alpha or A)", "write the matte into matte.alpha")
    empty = [s.frame for s in with_matte if s.matte_max < params.empty_alpha]
    if empty:
        return _fail(name, label, f"the matte is empty (alpha below {params.empty_alpha:g} everywhere) on "
                     f"{len(empty)} frame(s): {format_frames(empty)}",
                     "check that the plate shows a person, or guide the matte with a trimap / roto",
                     frames=empty)
    solid = [s.frame for s in with_matte if s.matte_min > 1 - params.empty_alpha]
    if solid and len(solid) == len(with_matte):
        return Check(name, label, WARNING, "the matte is solid white on every frame", "check the guides",
                     {"frames": solid})
    return _ok(name, label, f"alpha up to {max(s.matte_max for s in with_matte):.2f}")


def check_flicker(stats: list[FrameStats], params: PublishParams = PublishParams()) -> Check:
    """Temporal flicker of the matte: a warning above the threshold, never an error."""
    name, label = "flicker", "temporal flicker"
    values = [(s.frame, s.flicker) for s in stats if s.flicker is not None]
    if not values:
        return Check(name, label, SKIPPED, "fewer than three frames")
    frame, worst = max(values, key=lambda v: v[1])
    over = [f for f, v in values if v > params.flicker_threshold]
    details = {"max": worst, "frame": frame, "threshold": params.flicker_threshold, "frames": over}
    if over:
        return Check(name, label, WARNING, f"the matte flickers on {len(over)} frame(s) "
                     f"(worst {worst:.3f} at frame {frame}, threshold {params.flicker_threshold:g})",
                     "raise temporal smoothing, or review those frames", details)
    return Check(name, label, PASSED, f"steady (worst {worst:.3f} at frame {frame})", details=details)
