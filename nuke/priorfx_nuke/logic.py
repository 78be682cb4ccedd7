"""Pure logic of the PriorfxMatte node: no `nuke`, no third-party imports.

Everything here runs in any Python >= 3.7 (Nuke 13 embeds 3.7) and is tested
directly: knob choices, frame ranges, cache layout and per-frame cache keys,
the command line of the core job, its progress/error protocol, and the EXR
channel layout the core writes.
"""
from __future__ import annotations

import json
import math
import os
import re
import stat
import tempfile
from typing import Iterable, List, Mapping, NamedTuple, Optional, Sequence, Tuple

import priorfx_hostkit as kit


NODE_CLASS = "PriorfxMatte"

# Knob choices: (value sent to the core / stored, label shown in Nuke).
RANGE_MODES = ("input", "custom")
QUALITIES = ("fast", "best")
ENGINES = ("local", "remote")
OUTPUTS = (
    ("rgba", "rgba: plate with the new alpha"),
    ("premult", "premultiplied clean foreground"),
    ("unpremult", "unpremultiplied clean foreground"),
    ("layer", "plate + matte layer (alpha, confidence)"),
)
MASK_CHANNELS = ("alpha", "red")
# Which people the node mattes: every one, the one under a point, or the
# one(s) in a box drawn on the plate (the core's --subject).
SUBJECT_MODES = ("all", "point", "box")

# Optional guide inputs of the node, in input order after the plate (input 0),
# and the flag of `priorfx matte` each one feeds.
GUIDE_INPUTS = ("trimap", "holdout", "garbage")
GUIDE_FLAGS = {"trimap": "--guide", "holdout": "--holdout", "garbage": "--garbage"}
INPUT_NAMES = ("plate",) + GUIDE_INPUTS

# What the core writes per frame (EXR channel names) and where each lands in
# Nuke once an internal Read loads it (Nuke's EXR reader turns a trailing
# R/G/B/A into red/green/blue/alpha): R,G,B,A are the premultiplied,
# edge-decontaminated foreground; matte.* the matte and its confidence;
# fg.* the same foreground unpremultiplied.
EXR_CHANNELS = ("R", "G", "B", "A", "matte.alpha", "matte.confidence", "fg.R", "fg.G", "fg.B")
NUKE_CHANNELS = {
    "R": "rgba.red", "G": "rgba.green", "B": "rgba.blue", "A": "rgba.alpha",
    "matte.alpha": "matte.alpha", "matte.confidence": "matte.confidence",
    "fg.R": "fg.red", "fg.G": "fg.green", "fg.B": "fg.blue",
}
MATTE_LAYER = ("matte", ("matte.alpha", "matte.confidence"))
LAYERS = (MATTE_LAYER, ("fg", ("fg.red", "fg.green", "fg.blue")))

MODEL_ID = "rvm-mobilenetv3"  # the learned person prior behind `priorfx matte`
FRAME_PATTERN = "%04d"


# A problem the artist can act on (`message` says what, `hint` what to do): the
# host kit's error, so what the node finds wrong and what the core reports are
# shown alike.
AdapterError = kit.CoreError


class CancelledByUser(AdapterError):
    def __init__(self) -> None:
        super().__init__("cancelled", "nothing was changed; press Process to start again")


class MatteSettings(NamedTuple):
    """Every knob that changes the pixels the core produces."""

    quality: str = "best"
    band_width: int = 0          # refinement band in pixels; 0 = automatic from resolution
    temporal: float = 0.5        # temporal smoothing, 0 = none .. 1 = strongest
    mask_channel: str = "alpha"  # which channel of a guide input is the mask
    colorspace: str = ""         # the plate's OCIO colour space (the project's working space)
    ocio_config: str = ""        # the OCIO config it is named in ("" = the core's $OCIO / default)
    prior: str = ""              # person prior's model id; "" = the core's default (built-in RVM)
    subject: str = ""            # the core's --subject: "x,y" or "x0,y0,x1,y1", plate pixels from
    #                              the top-left corner (`subject_guide`); "" = every person

    def validate(self) -> "MatteSettings":
        if self.subject:
            _check_subject(self.subject)
        if self.prior and not re.match(r"^[a-z0-9][a-z0-9._-]{0,63}$", self.prior):
            raise AdapterError("prior {!r} is not a model id".format(self.prior),
                               "leave it empty for the built-in prior, or give an id from `priorfx models list`")
        if self.quality not in QUALITIES:
            raise AdapterError("quality {!r} is not one of {}".format(self.quality, ", ".join(QUALITIES)))
        if self.band_width < 0 or self.band_width > 512:
            raise AdapterError("band width {} px is out of range".format(self.band_width),
                               "use 0 (automatic) or 1..512 pixels")
        if not 0.0 <= self.temporal <= 1.0:
            raise AdapterError("temporal smoothing {} is out of range".format(self.temporal),
                               "use a value from 0 (none) to 1 (strongest)")
        if self.mask_channel not in MASK_CHANNELS:
            raise AdapterError("mask channel {!r} is not one of {}".format(
                self.mask_channel, ", ".join(MASK_CHANNELS)))
        return self

    def canonical(self) -> str:
        """Stable text of the settings for cache keys (sorted keys, rounded floats)."""
        d = self._asdict()
        d["temporal"] = round(float(d["temporal"]), 4)
        d["band_width"] = int(d["band_width"])
        return json.dumps(d, sort_keys=True)


def _check_subject(text: str) -> None:
    try:
        vals = [float(v) for v in text.split(",")]
    except ValueError:
        vals = []
    if len(vals) not in (2, 4) or not all(math.isfinite(v) for v in vals):
        raise AdapterError("subject {!r} is not x,y or x0,y0,x1,y1".format(text),
                           "set the subject point or box on the plate, or choose 'all'")
    if len(vals) == 4 and not (vals[0] < vals[2] and vals[1] < vals[3]):
        raise AdapterError("the subject box {} is empty".format(text),
                           "drag the box over the person to matte")


def subject_guide(mode: str, point: Sequence[float], box: Sequence[float], height: int) -> str:
    """The core's --subject from the node's subject knobs.

    Nuke puts the image origin at the bottom-left corner with y up; the core
    counts pixels from the top-left corner with y down, so y becomes
    height - y (a box's top and bottom swap). `point` is (x, y), `box` Nuke's
    (x, y, r, t); `height` the plate's height in pixels (full resolution).
    """
    if mode == "all":
        return ""
    if mode == "point":
        x, y = point
        vals = [x, height - y]
    elif mode == "box":
        x, y, r, t = box
        vals = [min(x, r), height - max(y, t), max(x, r), height - min(y, t)]
    else:
        raise AdapterError("subject mode {!r} is not one of {}".format(mode, ", ".join(SUBJECT_MODES)))
    return ",".join("{:g}".format(round(float(v), 2)) for v in vals)


def resolve_range(mode: str, input_range: Optional[Tuple[int, int]],
                  custom: Tuple[int, int]) -> Tuple[int, int]:
    """The inclusive frame range to process.

    `input_range` is the plate's own range (None when the plate is not
    connected); `custom` the node's first/last knobs.
    """
    if mode == "input":
        if input_range is None:
            raise AdapterError("no plate is connected", "connect the plate to input 0 (plate)")
        first, last = int(input_range[0]), int(input_range[1])
    elif mode == "custom":
        first, last = int(custom[0]), int(custom[1])
    else:
        raise AdapterError("frame range mode {!r} is not input or custom".format(mode))
    if last < first:
        raise AdapterError("frame range {}-{} is empty (last frame before first)".format(first, last),
                           "set the first frame, then the last, e.g. 1001-1100")
    return first, last


def parse_range_text(text: str) -> Tuple[int, int]:
    """'1001-1100' or '1001' -> (first, last) (used for farm command lines)."""
    m = re.match(r"^\s*(-?\d+)\s*(?:-\s*(-?\d+))?\s*$", text or "")
    if not m:
        raise AdapterError("frame range {!r} is not A-B".format(text), "e.g. 1001-1100")
    first = int(m.group(1))
    last = int(m.group(2)) if m.group(2) is not None else first
    return resolve_range("custom", None, (first, last))


def format_ranges(frames: Iterable[int]) -> str:
    """[1, 2, 3, 7, 9, 10] -> '1-3 7 9-10' (compact, for status lines)."""
    out = []  # type: List[str]
    run = []  # type: List[int]
    for f in sorted(set(frames)):
        if run and f == run[-1] + 1:
            run.append(f)
            continue
        if run:
            out.append(str(run[0]) if len(run) == 1 else "{}-{}".format(run[0], run[-1]))
        run = [f]
    if run:
        out.append(str(run[0]) if len(run) == 1 else "{}-{}".format(run[0], run[-1]))
    return " ".join(out)


# --------------------------------------------------------------------------- files

def frame_path(pattern: str, frame: int) -> str:
    """Expand `%04d` / `####` in a sequence pattern for one frame."""
    if "#" in pattern:
        m = re.search(r"#+", pattern)
        assert m is not None
        return pattern[:m.start()] + str(frame).zfill(len(m.group(0))) + pattern[m.end():]
    if re.search(r"%0?\d*d", pattern):
        return pattern % frame
    raise AdapterError("{} is not a frame pattern".format(pattern), "use %04d or #### for the frame number")


class CacheLayout(NamedTuple):
    """Where one node keeps its files under the cache root.

    exports: what the internal Writes render (one sequence per input);
    store:   the core's content-addressed results (`priorfx matte --cache ROOT`),
             shared by every node, farm render and CLI run under the root;
    out:     the sequence the internal Read shows (the core writes it, served from
             the store when nothing changed).
    """

    root: str
    node_dir: str

    def export_pattern(self, name: str) -> str:
        return os.path.join(self.node_dir, "export", name, name + "." + FRAME_PATTERN + ".exr")

    def out_pattern(self) -> str:
        return os.path.join(self.node_dir, "out", "matte." + FRAME_PATTERN + ".exr")

    def manifest_path(self) -> str:
        return os.path.join(self.node_dir, "out", "manifest.json")


def cache_layout(root: str, node_id: str) -> CacheLayout:
    if not re.match(r"^[A-Za-z0-9_.-]+$", node_id or ""):
        raise AdapterError("node id {!r} is not a plain name".format(node_id))
    return CacheLayout(root, os.path.join(root, "nodes", node_id))


def resolve_cache_root(knob_value: str, script_path: str, env: Mapping[str, str]) -> str:
    """The cache root: the knob, else $PRIORFX_NUKE_CACHE, else beside the saved
    script (shared storage on a farm), else the temp folder for unsaved scripts."""
    if knob_value.strip():
        return os.path.abspath(os.path.expanduser(knob_value.strip()))
    if env.get("PRIORFX_NUKE_CACHE"):
        return os.path.abspath(env["PRIORFX_NUKE_CACHE"])
    if script_path and script_path not in ("Root", "untitled"):
        return os.path.join(os.path.dirname(os.path.abspath(script_path)), "priorfx_cache")
    return private_temp_dir("priorfx_nuke_cache")


def private_temp_dir(name: str) -> str:
    """`<temp>/<name>-<uid>`, mode 0700: an unsaved script's cache, which other
    users of a shared /tmp can neither read nor swap for a symlink."""
    base = tempfile.gettempdir()
    if not hasattr(os, "getuid"):  # Windows: the temp folder is the user's own
        return os.path.join(base, name)
    uid = os.getuid()
    path = os.path.join(base, "{}-{}".format(name, uid))
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        pass
    except OSError as exc:
        raise AdapterError("cannot create the cache folder {}: {}".format(path, exc.strerror))
    st = os.lstat(path)
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != uid or st.st_mode & 0o077:
        raise AdapterError("{} belongs to another user or others can write to it: refusing to cache "
                           "there; save the script or set the node's cache folder".format(path))
    return path


# --------------------------------------------------------------------------- core job protocol

def matte_command(exe: Sequence[str], inputs: Mapping[str, str], out_pattern: str,
                  first: int, last: int, settings: MatteSettings, remote_url: str = "",
                  cache_dir: str = "") -> List[str]:
    """The `priorfx matte` command line for one run.

    `inputs` maps input names (plate, trimap, holdout, garbage) to sequence
    patterns; only connected ones are given. `cache_dir`: the core serves
    unchanged frames from there and stores new ones (`--cache`); the JSON
    summary on stdout says how many came from it.
    """
    if "plate" not in inputs:
        raise AdapterError("no plate was exported", "connect the plate to input 0 (plate)")
    cmd = list(exe) + ["matte", inputs["plate"], "-o", out_pattern,
                       "--frames", "{}-{}".format(first, last), "--quality", settings.quality,
                       "--temporal", "{:g}".format(settings.temporal), "--progress", "json"]
    for name in GUIDE_INPUTS:
        if name in inputs:
            cmd += [GUIDE_FLAGS[name], inputs[name]]
    if settings.band_width > 0:
        cmd += ["--band", str(int(settings.band_width))]
    if settings.colorspace:
        # the plate's OCIO space: a linear plate read as display-encoded would pull a wrong matte
        cmd += ["--colorspace", settings.colorspace]
        if settings.ocio_config:
            cmd += ["--ocio", settings.ocio_config]
    if settings.prior:
        cmd += ["--prior", settings.prior]
    if settings.subject:
        # one argument: a value starting with '-' (a box reaching past the
        # left edge) would otherwise be read as an option
        cmd += ["--subject=" + settings.subject]
    if cache_dir:
        cmd += ["--cache", cache_dir, "--json"]
    if remote_url:
        cmd += ["--remote", remote_url]
    return cmd


NUKE_BUILTIN_PREFIX = "fn-nuke_"  # Nuke 15+: its OCIO 2 built-in configs, e.g. fn-nuke_cg-config-v...


def plate_colour(config_knob: str, custom_path: str, working_space: str, nuke_exe: str,
                 override: str = "", env: Optional[Mapping[str, str]] = None) -> Tuple[str, str]:
    """(OCIO config, colour space) of the pixels the node exports.

    The internal Write is raw, so the exported plate is in the script's
    working space (root ``workingSpaceLUT``: ``linear`` under nuke-default,
    ``ACES - ACEScg`` / ``scene_linear`` under ACES configs), unless the
    artist names another (`override`). The config is the one Nuke uses: $OCIO
    when set (the core reads it from the same environment: ""), the custom
    file, an OCIO built-in for Nuke's ``fn-nuke_*`` configs, else the config
    folder shipped beside the Nuke executable (nuke-default, aces_1.2, ...).
    """
    env = os.environ if env is None else env
    space = (override or working_space or "scene_linear").strip()
    if env.get("OCIO"):
        return "", space
    if config_knob == "custom":
        if not custom_path:
            raise AdapterError("the project's OCIO config is 'custom' but no config file is set",
                               "set Project Settings > Color > custom OCIO config")
        return custom_path, space
    if config_knob.startswith(NUKE_BUILTIN_PREFIX):
        return "ocio://" + config_knob[len(NUKE_BUILTIN_PREFIX):], space
    name = config_knob or "nuke-default"
    return os.path.join(os.path.dirname(nuke_exe), "plugins", "OCIOConfigs", "configs", name,
                        "config.ocio"), space


# --------------------------------------------------------------------------- status line

def status_done(n_frames: int, cached: int, seconds: float, engine: str, version: str) -> str:
    made = n_frames - cached
    return "done: {} frame{} ({} new, {} from cache) in {:.1f} s on {} engine, priorfx {}".format(
        n_frames, "" if n_frames == 1 else "s", made, cached, seconds, engine, version)


def status_progress(done: int, total: int, message: str = "") -> str:
    pct = int(100 * done / total) if total else 0
    text = "processing {}/{} ({}%)".format(done, total, pct)
    return text + (": " + message if message else "")


def status_error(err: BaseException) -> str:
    if isinstance(err, CancelledByUser):
        return "cancelled; previous result kept"
    return "error: {}".format(err)


def progress_percent(done: int, total: int) -> int:
    return max(0, min(100, int(100 * done / total))) if total else 0
