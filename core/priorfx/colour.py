"""Colour management through OpenColorIO: which encoding a plate is in, and
the conversion into the encoding a manipulation's priors want and back.

Plates come scene-linear (EXR, often ACEScg under an ACES config), in camera
log (ACEScct, LogC, ...), as display-encoded photos (sRGB) or video
(Rec.709). The priors were trained on display-encoded photos and video, so
each manipulation declares a *working encoding* (``WORKING_ENCODING`` in its
package; today all three say ``"display"``) and the engine converts there and
back with a `Boundary`:

* `Boundary.into(plate)`: the plate's RGB in the working encoding. For
  ``"display"``: sdr-video encodings (sRGB, Rec.709, ...) are taken as they
  are, exactly what the priors saw in training; anything else (scene-linear,
  log, HDR) goes through OCIO to the config's sRGB texture space, and values
  above 1 are rolled off softly into 1 .. 1.25 (not clipped), so
  highlights keep their texture.
* `Boundary.back(out, working_in, plate)`: an output in the plate's own
  encoding. Pixels the manipulation left as they came in (opaque foreground,
  unwarped background, still rows) get the plate's values back exactly, so
  values above 1, negatives and half-float bits survive; only changed pixels
  are converted back (few, so cheap).

Names are resolved as OCIO resolves them (colour-space names, aliases, roles
such as ``scene_linear``), plus OpenImageIO's interop names; an unknown name
is a UsageError listing the close ones. The config comes from ``--ocio``,
else ``$OCIO``, else OCIO's built-in ``ocio://default`` (the CG config, whose
scene-linear space is ACEScg). Configs and processors are cached.

OCIO's CPU call on a whole frame is the costly part (about 0.3-0.6 s per 4K
frame here): it runs only for plates that need it, once per frame on the way
in and on the changed pixels only on the way back.
"""
from __future__ import annotations

import difflib
import functools
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from priorfx.errors import InputError, UsageError

DEFAULT_CONFIG = "ocio://default"
AUTO = "auto"
DISPLAY = "display"
WORKING_ENCODINGS = (DISPLAY,)

# Soft roll-off of display values above 1 (values up to 1 are left alone, so
# a linear EXR and the sRGB PNG of one photo give the priors the same
# numbers): with t = (x - 1) / h, x -> 1 + h t / (1 + t), below 1 + h for
# every input. Continuous in value and slope at 1 and invertible in float32
# far up (display 3, linear ~16, maps to 1.22), so highlights keep their
# gradients and come back. (tanh flattens too fast to invert in float32.)
ROLLOFF_START = 1.0
ROLLOFF_HEADROOM = 0.25

# The sRGB texture space under its usual names (the CG/studio configs' alias
# first, then ACES 1.x and nuke-default spellings).
_SRGB_NAMES = ("srgb_tx", "sRGB - Texture", "sRGB Encoded Rec.709 (sRGB)", "Utility - sRGB - Texture",
               "sRGB", "srgb")
# Video files are Rec.709 (BT.1886 / gamma 2.4 in the CG configs).
_VIDEO_NAMES = ("g24_rec709", "Gamma 2.4 Rec.709 - Texture", "rec709_display", "Utility - Rec.709 - Display",
                "rec709", "Rec709")
# Names OpenImageIO and older tools write that a config may not know.
_SYNONYMS = {"srgb": _SRGB_NAMES, "linear": ("lin_rec709", "Linear Rec.709 (sRGB)", "linear", "scene_linear"),
             "rec709": _VIDEO_NAMES, "acescg": ("ACEScg", "lin_ap1", "ACES - ACEScg"),
             "aces": ("ACES2065-1", "lin_ap0", "ACES - ACES2065-1")}
# EXR chromaticities (red, green, blue, white x/y) of the linear spaces auto detection knows.
_CHROMATICITIES = {
    "lin_rec709": (0.64, 0.33, 0.30, 0.60, 0.15, 0.06, 0.3127, 0.3290),
    "ACEScg": (0.713, 0.293, 0.165, 0.830, 0.128, 0.044, 0.32168, 0.33767),
    "ACES2065-1": (0.7347, 0.2653, 0.0, 1.0, 0.0001, -0.077, 0.32168, 0.33767),
}
_LINEAR_SUFFIXES = (".exr", ".hdr")
ROW_PIXELS = 4096  # pixels per row when a list of pixels is converted


def _ocio():
    import PyOpenColorIO as ocio  # imported on first use: the live worker never needs it
    return ocio


def config_name(arg: str | None = None) -> str:
    """The config to use: the argument (--ocio), else $OCIO, else ocio://default."""
    return (arg or os.environ.get("OCIO") or DEFAULT_CONFIG).strip()


def is_builtin(name: str) -> bool:
    return name.startswith("ocio://")


def builtin_configs() -> list[str]:
    """Names of the configs built into OpenColorIO (ocio://...)."""
    reg = _ocio().BuiltinConfigRegistry()
    return ["ocio://default"] + [f"ocio://{name}" for name, *_ in reg.getBuiltinConfigs()]


@functools.lru_cache(maxsize=8)
def load_config(name: str):
    """The OCIO config `name` (a built-in ocio://... or a config file path)."""
    ocio = _ocio()
    if is_builtin(name):
        try:
            return ocio.Config.CreateFromFile(name)
        except ocio.Exception:
            raise UsageError(f"{name} is not an OCIO built-in config",
                             "use one of: " + ", ".join(builtin_configs()[:6]) + ", ...") from None
    path = Path(name).expanduser()
    if not path.is_file():
        raise UsageError(f"OCIO config {name} does not exist",
                         "give a config.ocio file with --ocio or $OCIO, or a built-in one such as "
                         f"{DEFAULT_CONFIG}")
    try:
        cfg = ocio.Config.CreateFromFile(str(path))
        cfg.validate()
    except ocio.Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else "unknown error"
        raise InputError(f"OCIO config {name} cannot be used: {first}",
                         f"fix the config (ociocheck tells more) or use a built-in one such as {DEFAULT_CONFIG}"
                         ) from None
    return cfg


def _known_names(cfg) -> list[str]:
    names: list[str] = []
    for n in cfg.getColorSpaceNames():
        names.append(n)
        names.extend(cfg.getColorSpace(n).getAliases())
    names.extend(cfg.getRoleNames())
    return names


def find_space(config: str, name: str) -> str | None:
    """The canonical name of colour space `name` in `config` (name, alias,
    role, or an OpenImageIO interop name), or None."""
    cfg = load_config(config)
    for candidate in (name, name.removeprefix("ocio:")):
        cs = cfg.getColorSpace(candidate)
        if cs is not None:
            return cs.getName()
    for candidate in _SYNONYMS.get(name.strip().lower(), ()):
        cs = cfg.getColorSpace(candidate)
        if cs is not None:
            return cs.getName()
    return None


def resolve_space(config: str, name: str) -> str:
    """`find_space`, or a UsageError naming the close names the config knows."""
    found = find_space(config, name)
    if found is not None:
        return found
    known = _known_names(load_config(config))
    lower = {k.lower(): k for k in known}
    close = [lower[c] for c in difflib.get_close_matches(name.lower(), list(lower), n=6, cutoff=0.4)]
    hint = ("close names: " + ", ".join(close)) if close else \
        "names in this config include: " + ", ".join(known[:8])
    raise UsageError(f"colour space {name!r} is not in the OCIO config {config}", hint)


def _first_space(config: str, names: tuple[str, ...], what: str) -> str:
    cfg = load_config(config)
    for n in names:
        cs = cfg.getColorSpace(n)
        if cs is not None:
            return cs.getName()
    raise UsageError(f"the OCIO config {config} has no {what} colour space (tried {', '.join(names[:4])})",
                     f"add one with the alias {names[0]}, or use {DEFAULT_CONFIG}")


@functools.lru_cache(maxsize=64)
def processor(config: str, src: str, dst: str):
    """A cached OCIO CPU processor from `src` to `dst` (canonical names)."""
    return load_config(config).getProcessor(src, dst).getDefaultCPUProcessor()


def convert(pixels: np.ndarray, config: str, src: str, dst: str) -> np.ndarray:
    """Convert float32 RGB (H x W x 3, or N x 3) from `src` to `dst` in place; returns it."""
    if pixels.dtype != np.float32 or not pixels.flags.c_contiguous or pixels.shape[-1] != 3:
        raise UsageError("colour conversion needs a contiguous float32 array of RGB pixels (... x 3), "
                         f"got {pixels.dtype} {pixels.shape}")
    if pixels.size:
        # a packed image description: about 4x faster than applyRGB on the same
        # array; a long list of pixels goes as rows of ROW_PIXELS (OCIO is
        # slower on one very long row)
        n = pixels.size // 3
        width = pixels.shape[-2] if pixels.ndim == 3 else (ROW_PIXELS if n % ROW_PIXELS == 0 else n)
        if pixels.ndim == 2 and width == n and n > ROW_PIXELS:
            whole = n - n % ROW_PIXELS
            convert(pixels[:whole], config, src, dst)
            convert(pixels[whole:], config, src, dst)
            return pixels
        rows = pixels.reshape(-1, width, 3)
        desc = _ocio().PackedImageDesc(rows, rows.shape[1], rows.shape[0], 3)
        processor(config, src, dst).apply(desc)
    return pixels


def _above(x: np.ndarray, k: float) -> tuple[np.ndarray, np.ndarray]:
    """(flat view, flat indices of the values above k): flat indices are a
    few times cheaper than a boolean mask when few values are above."""
    flat = x.reshape(-1)
    if not np.shares_memory(flat, x):
        raise UsageError("the roll-off works in place on a contiguous array")
    return flat, np.flatnonzero(flat > k)


def rolloff(x: np.ndarray) -> np.ndarray:
    """Soft roll-off of values above ROLLOFF_START, in place (see ROLLOFF_HEADROOM)."""
    k, h = ROLLOFF_START, ROLLOFF_HEADROOM
    flat, idx = _above(x, k)
    if idx.size:
        t = (flat[idx] - k) / h
        flat[idx] = k + h * t / (1.0 + t)
    return x


def unrolloff(x: np.ndarray) -> np.ndarray:
    """The inverse of `rolloff`, in place (values at the ceiling are held just below it)."""
    k, h = ROLLOFF_START, ROLLOFF_HEADROOM
    flat, idx = _above(x, k)
    if idx.size:
        s = np.minimum((flat[idx] - k) / h, np.float32(0.999))
        flat[idx] = k + h * s / (1.0 - s)
    return x


# --------------------------------------------------------------------------- the input's space

@dataclass(frozen=True)
class ColourSpec:
    """Which encoding an input is in: the OCIO config, the colour space's
    canonical name in it, and how it was chosen ('user', 'metadata',
    'chromaticities' or 'format'). JSON-safe (it travels to the server and
    to cluster workers) and recorded in provenance."""

    config: str
    space: str
    chosen_by: str = "user"

    def to_json(self) -> dict[str, str]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Any, *, remote: bool = False) -> "ColourSpec":
        """Rebuild and check a spec. `remote`: it came in a request, so only a
        built-in config is accepted (a server never opens a path it is sent)."""
        if not isinstance(data, dict) or set(data) - {"config", "space", "chosen_by"} \
                or not all(isinstance(data.get(k), str) for k in ("config", "space")):
            raise UsageError("'colour' must be an object with string fields config and space (and chosen_by)")
        if remote and not is_builtin(data["config"]):
            raise UsageError(f"the OCIO config {data['config']} is a file; a server never opens paths "
                             "from a request", "use a built-in config (--ocio ocio://...) with --remote, "
                             "or run locally or on a cluster")
        return cls(data["config"], resolve_space(data["config"], data["space"]),
                   str(data.get("chosen_by", "user")))

    def header(self, output: str | os.PathLike) -> dict[str, str] | None:
        """Header attributes saying what an output file is: its colour space
        (EXR only: PNG/TIFF headers have no place for an OCIO name)."""
        return {"oiio:ColorSpace": self.space} if Path(str(output)).suffix.lower() == ".exr" else None

    def provenance(self, working: str = DISPLAY) -> dict[str, Any]:
        """What provenance records: config, input space, how chosen, working encoding."""
        b = Boundary(self, working)
        return {"ocio_config": self.config, "input_space": self.space, "chosen_by": self.chosen_by,
                "working": "as encoded" if b.identity else f"{b.target} (roll-off above {ROLLOFF_START:g})"}


def detect_space(path: str | os.PathLike, config: str, info: Any = None) -> ColourSpec:
    """The colour space of an image or video file from its metadata, else its format.

    Metadata: ``oiio:ColorSpace`` (as OpenImageIO reports it, e.g.
    lin_ap1_scene), then EXR ``chromaticities`` (linear by the EXR
    convention). Format: EXR/HDR and float TIFF -> the config's scene_linear
    role; 8/16-bit images -> sRGB; video files -> Rec.709.
    """
    p = Path(path)
    suffix = p.suffix.lower()
    from priorfx.io.video import IMAGE_SUFFIXES

    if suffix not in IMAGE_SUFFIXES:
        return ColourSpec(config, _first_space(config, _VIDEO_NAMES, "Rec.709 video"), "format")
    if info is None:
        from priorfx.io.images import read_image_info
        info = read_image_info(p)
    # OIIO guesses sRGB for every PNG/JPEG: that is the format's convention too.
    tagged = info.metadata.get("oiio:ColorSpace")
    if isinstance(tagged, str) and tagged:
        found = find_space(config, tagged)
        if found is not None:
            return ColourSpec(config, found, "metadata")
    chroma = info.metadata.get("chromaticities")
    if isinstance(chroma, tuple) and len(chroma) == 8:
        for name, ref in _CHROMATICITIES.items():
            if np.allclose(chroma, ref, atol=2e-3):
                found = find_space(config, name)
                if found is not None:
                    return ColourSpec(config, found, "chromaticities")
    if suffix in _LINEAR_SUFFIXES or info.pixel_type in ("half", "float", "double"):
        return ColourSpec(config, resolve_space(config, "scene_linear"), "format")
    return ColourSpec(config, _first_space(config, _SRGB_NAMES, "sRGB"), "format")


def input_spec(path: str | os.PathLike, colorspace: str | None = AUTO, ocio: str | None = None,
               info: Any = None) -> ColourSpec:
    """The CLI's choice: --colorspace NAME (resolved) or auto (`detect_space`), under --ocio/$OCIO."""
    config = config_name(ocio)
    load_config(config)  # a bad config is reported first, whatever the space
    if colorspace and colorspace.strip().lower() != AUTO:
        return ColourSpec(config, resolve_space(config, colorspace.strip()), "user")
    return detect_space(path, config, info)


# --------------------------------------------------------------------------- the boundary

class Boundary:
    """Conversions between a plate's encoding and a manipulation's working encoding."""

    def __init__(self, spec: ColourSpec | None, working: str = DISPLAY):
        if working not in WORKING_ENCODINGS:
            raise UsageError(f"unknown working encoding {working!r}", f"one of {', '.join(WORKING_ENCODINGS)}")
        self.spec = spec
        self.working = working
        self.target: str | None = None
        self.identity = True
        if spec is None:
            return
        cfg = load_config(spec.config)
        cs = cfg.getColorSpace(spec.space)
        encoding = cs.getEncoding() if cs is not None else ""
        # Display-encoded values (sRGB, Rec.709 video) are what the priors were
        # trained on; "data" is by definition not colour; both pass as they are.
        if encoding in ("sdr-video", "data") or (cs is not None and cs.isData()):
            return
        self.target = _first_space(spec.config, _SRGB_NAMES, "sRGB")
        self.identity = cfg.getProcessor(spec.space, self.target).isNoOp()

    def into(self, plate: np.ndarray) -> np.ndarray:
        """The plate in the working encoding: the same array when nothing
        changes, else a new float32 array (alpha and extra channels as they are)."""
        if self.identity:
            return plate
        out = np.array(plate, dtype=np.float32, order="C", copy=True)
        rgb = out if out.shape[-1] == 3 else np.ascontiguousarray(out[..., :3])
        convert(rgb, self.spec.config, self.spec.space, self.target)
        rolloff(rgb)
        if rgb is not out:
            out[..., :3] = rgb
        return out

    def back(self, out: np.ndarray, working_in: np.ndarray, plate: np.ndarray) -> np.ndarray:
        """An output (same size as the plate; RGB first) in the plate's encoding.

        Pixels whose RGB equals the working input are the plate's own values;
        the others are converted back (inverse roll-off, then OCIO), and kept
        within the plate's range, so a solver's clip at the roll-off's ceiling
        cannot become an arbitrarily bright value."""
        if self.identity:
            return out
        res = np.array(out, dtype=np.float32, order="C", copy=True)
        same = _same_rgb(out, working_in)
        np.copyto(res[..., :3], plate[..., :3], where=same[..., None])
        idx = np.flatnonzero(~same)
        if idx.size:
            flat = res.reshape(-1, res.shape[-1])
            px = np.ascontiguousarray(flat[idx, :3])
            unrolloff(px)
            convert(px, self.spec.config, self.target, self.spec.space)
            rgb = plate[..., :3]
            np.clip(px, rgb.min(), rgb.max(), out=px)
            flat[idx, :3] = px
        return res


def _same_rgb(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """H x W: True where the RGB of a and b are equal (channel by channel is
    about 10x faster than numpy's all(axis=-1) on interleaved pixels)."""
    return (a[..., 0] == b[..., 0]) & (a[..., 1] == b[..., 1]) & (a[..., 2] == b[..., 2])
