"""Pure logic of the PriorfxMatte node: no `nuke`, no third-party imports.

Everything here runs in any Python >= 3.7 (Nuke 13 embeds 3.7) and is tested
directly: knob choices, frame ranges, cache layout and per-frame cache keys,
the command line of the core job, its progress/error protocol, and the EXR
channel layout the core writes.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from typing import Dict, Iterable, List, Mapping, NamedTuple, Optional, Sequence, Tuple

NODE_CLASS = "PriorfxMatte"
KEY_VERSION = 1  # bump when the key recipe changes, so old caches are ignored

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


class AdapterError(Exception):
    """A problem the artist can act on: `message` says what, `hint` what to do."""

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return "{} ({})".format(self.message, self.hint) if self.hint else self.message


class CancelledByUser(AdapterError):
    def __init__(self) -> None:
        super().__init__("cancelled", "nothing was changed; press Process to start again")


class MatteSettings(NamedTuple):
    """Every knob that changes the pixels the core produces."""

    quality: str = "best"
    band_width: int = 0          # refinement band in pixels; 0 = automatic from resolution
    temporal: float = 0.5        # temporal smoothing, 0 = none .. 1 = strongest
    mask_channel: str = "alpha"  # which channel of a guide input is the mask
    prior: str = ""              # person prior's model id; "" = the core's default (built-in RVM)

    def validate(self) -> "MatteSettings":
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


def option_index(choices: Sequence, value: str) -> int:
    """Index of `value` in a choice list (plain strings or (value, label) pairs)."""
    values = [c[0] if isinstance(c, tuple) else c for c in choices]
    if value not in values:
        raise AdapterError("unknown choice {!r}".format(value), "expected one of " + ", ".join(values))
    return values.index(value)


# --------------------------------------------------------------------------- ranges

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
    store:   content-addressed results, shared by every node under the root;
    out:     the sequence the internal Read shows (links into the store);
    jobs:    scratch folders of running core jobs.
    """

    root: str
    node_dir: str

    def export_pattern(self, name: str) -> str:
        return os.path.join(self.node_dir, "export", name, name + "." + FRAME_PATTERN + ".exr")

    def out_pattern(self) -> str:
        return os.path.join(self.node_dir, "out", "matte." + FRAME_PATTERN + ".exr")

    def manifest_path(self) -> str:
        return os.path.join(self.node_dir, "out", "manifest.json")

    def store_path(self, key: str) -> str:
        return os.path.join(self.root, "store", key[:2], key + ".exr")

    def jobs_dir(self) -> str:
        return os.path.join(self.node_dir, "jobs")


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
    return os.path.join(tempfile.gettempdir(), "priorfx_nuke_cache")


def file_digest(path: str) -> str:
    """sha256 of a file's bytes (the exported EXR of one frame of one input).

    The internal Writes export without metadata, so identical pixels give
    identical bytes and any changed pixel changes the digest.
    """
    h = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    except OSError as exc:
        raise AdapterError("cannot read exported frame {}: {}".format(path, exc.strerror),
                           "check that the plate renders at this frame") from None
    return h.hexdigest()


# --------------------------------------------------------------------------- cache keys

def frame_keys(frames: Sequence[int], digests: Mapping[int, Mapping[str, str]],
               settings: MatteSettings, model_id: str, core_version: str,
               chained: bool = True) -> Dict[int, str]:
    """One cache key per frame.

    A key hashes the frame's input files (plate and guides), the settings, the
    model id and the core version. The recurrent prior makes a frame depend on
    every earlier frame of the shot, so by default each key also hashes the
    previous frame's key: a change at frame k invalidates k and everything
    after it, and the first frame of the range starts a fresh chain.
    """
    keys = {}  # type: Dict[int, str]
    prev = ""
    common = "{}|{}|{}|{}".format(KEY_VERSION, settings.canonical(), model_id, core_version)
    for f in sorted(frames):
        if f not in digests:
            raise AdapterError("frame {} was not exported".format(f))
        inputs = json.dumps(dict(digests[f]), sort_keys=True)
        text = "{}|{}|{}".format(common, inputs, prev if chained else "")
        key = hashlib.sha256(text.encode("utf-8")).hexdigest()
        keys[f] = key
        prev = key
    return keys


class Plan(NamedTuple):
    """What a Process press must do.

    cached: frames whose result is in the store already.
    todo:   frames whose result must be made.
    runs:   inclusive ranges to submit to the core. With chained keys any
            missing frame means the whole range runs again (the recurrent
            state must be rebuilt from the first frame); without chaining
            only the missing stretches run.
    """

    cached: List[int]
    todo: List[int]
    runs: List[Tuple[int, int]]


def plan_work(keys: Mapping[int, str], have: Iterable[str], chained: bool = True) -> Plan:
    present = set(have)
    frames = sorted(keys)
    cached = [f for f in frames if keys[f] in present]
    todo = [f for f in frames if keys[f] not in present]
    if not todo:
        return Plan(cached, todo, [])
    if chained:
        return Plan(cached, todo, [(frames[0], frames[-1])])
    runs = []  # type: List[Tuple[int, int]]
    for f in todo:
        if runs and runs[-1][1] == f - 1:
            runs[-1] = (runs[-1][0], f)
        else:
            runs.append((f, f))
    return Plan(cached, todo, runs)


# --------------------------------------------------------------------------- core job protocol

def matte_command(exe: Sequence[str], inputs: Mapping[str, str], out_pattern: str,
                  first: int, last: int, settings: MatteSettings,
                  supported: Optional[Iterable[str]] = None, remote_url: str = "") -> List[str]:
    """The `priorfx matte` command line for one run.

    `inputs` maps input names (plate, trimap, holdout, garbage) to sequence
    patterns; only connected ones are given. `supported` lists the long
    options this core's CLI accepts (from its --help): an optional setting
    whose flag it lacks is left out rather than failing the run, and where
    releases spelt a flag differently the first spelling it knows is used.
    """
    if "plate" not in inputs:
        raise AdapterError("no plate was exported", "connect the plate to input 0 (plate)")
    allowed = None if supported is None else set(supported)

    def flag(*spellings: str) -> Optional[str]:
        if allowed is None:
            return spellings[0]
        return next((s for s in spellings if s in allowed), None)

    cmd = list(exe) + ["matte", inputs["plate"], "-o", out_pattern,
                       "--frames", "{}-{}".format(first, last), "--quality", settings.quality]
    for name in GUIDE_INPUTS:
        if name in inputs:
            cmd += [GUIDE_FLAGS[name], inputs[name]]
    optional = [(("--band", "--band-px", "--band-width"), str(int(settings.band_width)),
                 settings.band_width > 0),
                (("--temporal",), "{:g}".format(settings.temporal), True),
                (("--prior",), settings.prior, bool(settings.prior)),
                (("--progress",), "json", True)]
    if settings.prior and flag("--prior") is None:
        raise AdapterError("this priorfx cannot choose the prior (no --prior option)",
                           "upgrade priorfx on this machine, or leave the prior knob empty")
    for spellings, value, wanted in optional:
        spelt = flag(*spellings)
        if wanted and spelt:
            cmd += [spelt, value]
    if remote_url:
        if flag("--remote") is None:
            raise AdapterError("this priorfx has no remote engine (--remote)",
                               "upgrade priorfx on this machine, or use the local engine")
        cmd += ["--remote", remote_url]
    return cmd


def supported_flags(help_text: str) -> List[str]:
    """Long options named in a `--help` text."""
    return sorted(set(re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*)", help_text)))


class ProgressEvent(NamedTuple):
    done: int
    total: int
    message: str


def parse_progress_line(line: str) -> Optional[ProgressEvent]:
    """One line of the core's machine-readable progress stream, or None.

    Accepted: a JSON object with `done` and `total` (and optional `message`),
    at the top level or under "progress".
    """
    line = line.strip()
    if not line.startswith("{"):
        return None
    try:
        obj = json.loads(line)
    except ValueError:
        return None
    if isinstance(obj, dict) and isinstance(obj.get("progress"), dict):
        obj = obj["progress"]
    if not isinstance(obj, dict) or "done" not in obj or "total" not in obj:
        return None
    try:
        return ProgressEvent(int(obj["done"]), int(obj["total"]), str(obj.get("message") or ""))
    except (TypeError, ValueError):
        return None


def parse_cli_error(stderr: str, returncode: int) -> AdapterError:
    """Turn the CLI's `priorfx: error: ...` / `priorfx: hint: ...` lines into an error."""
    message, hint = "", ""
    for line in stderr.splitlines():
        if line.startswith("priorfx: error:"):
            message = line.split(":", 2)[2].strip()
        elif line.startswith("priorfx: hint:"):
            hint = line.split(":", 2)[2].strip()
    if not message:
        tail = [ln for ln in stderr.strip().splitlines() if ln.strip()][-3:]
        message = "priorfx matte failed with exit code {}".format(returncode)
        if tail:
            message += ": " + " | ".join(tail)
    return AdapterError(message, hint)


def clean_env(environ: Mapping[str, str], host_dir: str = "", local: bool = False) -> Dict[str, str]:
    """The environment for the core process.

    Nuke sets PYTHONHOME/PYTHONPATH for its embedded Python and puts its own
    libraries (OpenEXR, OCIO, Qt) on the loader path; the core is a separate
    Python with its own copies, so those must not leak into it. `local`
    drops PRIORFX_REMOTE so the node's engine knob, not the environment,
    decides where the work runs.
    """
    drop = ("PYTHONHOME", "PYTHONPATH", "PYTHONSTARTUP", "PYTHONEXECUTABLE") + (
        ("PRIORFX_REMOTE",) if local else ())
    env = {k: v for k, v in environ.items() if k not in drop}
    if host_dir:
        host = os.path.normcase(os.path.abspath(host_dir))
        for var in ("LD_LIBRARY_PATH", "DYLD_LIBRARY_PATH"):
            if var in env:
                keep = [p for p in env[var].split(os.pathsep)
                        if p and not os.path.normcase(os.path.abspath(p)).startswith(host)]
                if keep:
                    env[var] = os.pathsep.join(keep)
                else:
                    del env[var]
    return env


def find_core(environ: Mapping[str, str], which: Optional[str]) -> List[str]:
    """The command that starts the core: $PRIORFX_EXE, else `priorfx` on PATH."""
    exe = environ.get("PRIORFX_EXE", "").strip()
    if exe:
        if not os.path.exists(exe):
            raise AdapterError("PRIORFX_EXE points to {}, which does not exist".format(exe),
                               "run `priorfx install nuke` again or fix the path in ~/.nuke/init.py")
        return [exe]
    if which:
        return [which]
    raise AdapterError("the priorfx command was not found",
                       "run `priorfx install nuke` (it records the path), or set PRIORFX_EXE")


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
