"""Still images through OpenImageIO: EXR, PNG, JPEG, TIFF (and whatever else
OIIO reads).

* `read_image(path)` -> float32 H x W x C, values as stored (display-encoded
  for PNG/JPEG/TIFF, scene-linear for EXR by convention; nothing is converted).
* `read_image_info(path)` -> `ImageInfo`: size, channels, windows, metadata,
  EXIF focal length (35 mm equivalent), orientation, provenance.
* `write_image(path, pixels, ...)`: atomic (temporary name beside the target,
  then rename), with provenance.

Conventions
-----------
Alpha is passed through as stored: EXR pixels are premultiplied (the EXR
convention), PNG/TIFF pixels straight (theirs). OIIO would otherwise
premultiply PNGs on read and un-premultiply on write; we ask it not to
(``oiio:UnassociatedAlpha``), so what you write is what you read.

EXIF orientation (JPEG, TIFF, PNG eXIf) is applied on read, so the array is
upright as a viewer shows it; `ImageInfo.width/height` are the upright size and
`ImageInfo.orientation` the stored tag. Pass ``orient=False`` to get the stored
pixels.

Provenance (a dict, see priorfx.provenance) is stored as the JSON string
attribute ``priorfx/provenance`` in EXR headers and PNG text chunks. JPEG and
TIFF keep only standard tags, so there it goes into ``ImageDescription`` with a
``priorfx/provenance:`` prefix (and ``Software``). `ImageInfo.provenance`
reads either back.
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from priorfx.atomic import atomic_path
from priorfx.errors import InputError, LimitError, OutputError, UsageError
from priorfx.provenance import provenance_json

PROVENANCE_ATTR = "priorfx/provenance"
_DESC_PREFIX = "priorfx/provenance:"

DEFAULT_MAX_PIXELS = 268_435_456
"""Largest image (width * height) read or written without complaint: 16384^2,
about 1 GiB as float32 RGB. Override with `max_pixels=` or PRIORFX_MAX_PIXELS."""

WRITE_FORMATS = {".exr": "openexr", ".png": "png", ".jpg": "jpeg", ".jpeg": "jpeg",
                 ".tif": "tiff", ".tiff": "tiff"}

# Tags worth carrying from a camera JPEG into a derived one (not Orientation:
# pixels come back upright, so copying it would rotate them twice).
_EXIF_PREFIXES = ("Exif:", "GPS:")
_EXIF_NAMES = ("Make", "Model", "DateTime", "ExposureTime", "FNumber", "Artist", "Copyright")


def _oiio():
    import OpenImageIO as oiio  # heavy; imported on first use
    return oiio


def set_threads(threads: int) -> None:
    """Threads OpenImageIO and OpenEXR may use to encode and decode (0: as
    many as cores, their default). A farm worker given one core sets 1: by
    default an EXR write compresses on every core, so one worker per core
    would oversubscribe the machine."""
    oiio = _oiio()
    n = max(0, int(threads))
    oiio.attribute("threads", n)
    oiio.attribute("exr_threads", n)


def max_pixels_setting(max_pixels: int | None = None) -> int:
    """The pixel-count guard: argument, else PRIORFX_MAX_PIXELS, else the default."""
    if max_pixels is not None:
        return int(max_pixels)
    env = os.environ.get("PRIORFX_MAX_PIXELS")
    if env:
        try:
            return int(env)
        except ValueError:
            raise UsageError(f"PRIORFX_MAX_PIXELS={env!r} is not a whole number",
                             "set it to a pixel count, e.g. 100000000") from None
    return DEFAULT_MAX_PIXELS


def _check_pixels(path: Path | str, width: int, height: int, max_pixels: int | None) -> None:
    limit = max_pixels_setting(max_pixels)
    if width * height > limit:
        raise LimitError(f"{path}: {width}x{height} is {width * height / 1e6:.0f} megapixels, "
                         f"over the limit of {limit / 1e6:.0f}",
                         "downscale it first, or raise the limit (max_pixels= or PRIORFX_MAX_PIXELS)")


# --------------------------------------------------------------------------- info

@dataclass
class ImageInfo:
    """What the header of an image file says (no pixels read)."""
    path: Path
    format: str                      # OIIO format name: openexr, png, jpeg, tiff, ...
    width: int                       # upright size (after EXIF orientation)
    height: int
    nchannels: int
    channel_names: tuple[str, ...]
    pixel_type: str                  # stored type: uint8, uint16, half, float, ...
    channel_types: tuple[str, ...]   # per channel (EXR may mix); empty when all equal
    alpha_channel: int               # index of alpha, -1 when none
    orientation: int                 # EXIF orientation tag as stored (1 = upright)
    pixel_aspect: float
    data_window: tuple[int, int, int, int]     # x, y, width, height (stored orientation)
    display_window: tuple[int, int, int, int]  # x, y, width, height
    colorspace: str | None           # oiio:ColorSpace after OIIO's renaming
    metadata: dict[str, Any] = field(default_factory=dict)
    focal_mm: float | None = None    # EXIF FocalLength
    focal_35mm: float | None = None  # 35 mm equivalent focal length
    focal_35mm_source: str | None = None  # which tags gave focal_35mm
    subimages: int = 1

    @property
    def provenance(self) -> dict | None:
        """The priorfx provenance record stored in the file, or None."""
        text = self.metadata.get(PROVENANCE_ATTR)
        if text is None:
            desc = self.metadata.get("ImageDescription")
            if isinstance(desc, str) and desc.startswith(_DESC_PREFIX):
                text = desc[len(_DESC_PREFIX):]
        if not isinstance(text, str):
            return None
        try:
            rec = json.loads(text)
        except json.JSONDecodeError:
            return None
        return rec if isinstance(rec, dict) else None

    @property
    def exif(self) -> dict[str, Any]:
        """EXIF/GPS and camera tags to copy into a derived JPEG (`write_image(metadata=...)`)."""
        return {k: v for k, v in self.metadata.items()
                if k.startswith(_EXIF_PREFIXES) or k in _EXIF_NAMES}


def _value(v: Any) -> Any:
    """OIIO attribute value -> plain Python (small arrays as tuples, blobs as bytes)."""
    if isinstance(v, np.ndarray):
        if v.dtype == np.uint8 and v.size > 16:
            return v.tobytes()
        return tuple(v.tolist())
    if isinstance(v, np.generic):
        return v.item()
    return v


# sensor size unit codes of EXIF FocalPlaneResolutionUnit, in millimetres
_FP_UNITS_MM = {2: 25.4, 3: 10.0, 4: 1.0, 5: 0.001}
_FULL_FRAME_DIAGONAL_MM = math.hypot(36.0, 24.0)


def focal_35mm_from_exif(meta: Mapping[str, Any]) -> tuple[float | None, str | None]:
    """35 mm equivalent focal length from EXIF tags, and which tags gave it.

    1. ``Exif:FocalLengthIn35mmFilm`` (phones and most cameras write it).
    2. ``Exif:FocalLength`` scaled by the sensor diagonal derived from
       ``Exif:FocalPlaneX/YResolution`` and ``Exif:PixelX/YDimension``. That
       derivation is wrong for cropped or resized files (the focal-plane
       resolution describes the original sensor), so a result outside
       8..300 mm (or a sensor outside 3..60 mm diagonal) is rejected as
       implausible and None returned instead of a wrong number.
    """
    f35 = meta.get("Exif:FocalLengthIn35mmFilm")
    if isinstance(f35, (int, float)) and f35 > 0:
        return float(f35), "Exif:FocalLengthIn35mmFilm"
    f = meta.get("Exif:FocalLength")
    if not isinstance(f, (int, float)) or not f > 0:
        return None, None
    unit = _FP_UNITS_MM.get(int(meta.get("Exif:FocalPlaneResolutionUnit", 2) or 2))
    xres, yres = meta.get("Exif:FocalPlaneXResolution"), meta.get("Exif:FocalPlaneYResolution")
    px, py = meta.get("Exif:PixelXDimension"), meta.get("Exif:PixelYDimension")
    if unit is None or not all(isinstance(v, (int, float)) and v > 0 for v in (xres, yres, px, py)):
        return None, None
    sensor_w, sensor_h = px / xres * unit, py / yres * unit
    diag = math.hypot(sensor_w, sensor_h)
    if not 3.0 <= diag <= 60.0:
        return None, None
    f35 = float(f) * _FULL_FRAME_DIAGONAL_MM / diag
    if not 8.0 <= f35 <= 300.0:
        return None, None
    return f35, "Exif:FocalLength+FocalPlaneResolution"


def _open(path: Path, config=None):
    oiio = _oiio()
    if not path.exists():
        raise InputError(f"{path}: no such file", "check the path")
    if path.is_dir():
        raise InputError(f"{path} is a folder, not an image", "give an image file")
    inp = oiio.ImageInput.open(str(path), config) if config is not None else oiio.ImageInput.open(str(path))
    if inp is None:
        msg = oiio.geterror() or "unknown error"
        if "could not find a format reader" in msg or "format reader" in msg:
            raise InputError(f"{path}: not an image format priorfx can read",
                             "use EXR, PNG, JPEG or TIFF")
        raise InputError(f"{path}: cannot read the image: {msg.strip()}",
                         "the file may be corrupt or truncated; re-export it")
    return inp


def _read_config():
    cfg = _oiio().ImageSpec()
    cfg.attribute("oiio:UnassociatedAlpha", 1)  # pass alpha through as stored
    return cfg


def read_image_info(path: str | os.PathLike) -> ImageInfo:
    """Read an image's header: size, channels, windows, metadata, focal length.

    Raises
    ------
    InputError
        Missing, unreadable or unsupported file (the message names it).
    """
    path = Path(path)
    inp = _open(path, _read_config())
    try:
        spec = inp.spec()
        nsub = 1
        while inp.seek_subimage(nsub, 0):
            nsub += 1
        return _info_from_spec(path, inp.format_name(), spec, nsub)
    finally:
        inp.close()


def _info_from_spec(path: Path, fmt: str, spec, nsub: int = 1) -> ImageInfo:
    meta = {a.name: _value(a.value) for a in spec.extra_attribs}
    orientation = int(meta.get("Orientation", 1) or 1)
    w, h = spec.width, spec.height
    if orientation in (5, 6, 7, 8):
        w, h = h, w
    f35, src = focal_35mm_from_exif(meta)
    focal = meta.get("Exif:FocalLength")
    return ImageInfo(
        path=path, format=fmt, width=w, height=h, nchannels=spec.nchannels,
        channel_names=tuple(spec.channelnames), pixel_type=str(spec.format),
        channel_types=tuple(str(t) for t in spec.channelformats),
        alpha_channel=spec.alpha_channel, orientation=orientation,
        pixel_aspect=float(meta.get("PixelAspectRatio", 1.0) or 1.0),
        data_window=(spec.x, spec.y, spec.width, spec.height),
        display_window=(spec.full_x, spec.full_y, spec.full_width, spec.full_height),
        colorspace=meta.get("oiio:ColorSpace"), metadata=meta,
        focal_mm=float(focal) if isinstance(focal, (int, float)) else None,
        focal_35mm=f35, focal_35mm_source=src, subimages=nsub)


# --------------------------------------------------------------------------- read

def apply_orientation(pixels: np.ndarray, orientation: int) -> np.ndarray:
    """Turn stored pixels upright according to the EXIF orientation tag (1..8)."""
    if orientation == 2:
        return pixels[:, ::-1]
    if orientation == 3:
        return pixels[::-1, ::-1]
    if orientation == 4:
        return pixels[::-1]
    if orientation == 5:
        return pixels.swapaxes(0, 1)
    if orientation == 6:
        return np.rot90(pixels, k=-1)
    if orientation == 7:
        return pixels[::-1, ::-1].swapaxes(0, 1)
    if orientation == 8:
        return np.rot90(pixels, k=1)
    return pixels


def read_image(path: str | os.PathLike, *, max_pixels: int | None = None, orient: bool = True,
               channels: Sequence[str] | None = None) -> np.ndarray:
    """Read an image as float32 H x W x C.

    Parameters
    ----------
    path : path-like
    max_pixels : int, optional
        Refuse larger images (LimitError) before reading their pixels.
    orient : bool
        Apply the EXIF orientation (default), so the array is upright.
    channels : sequence of str, optional
        Read only these channels, in this order (e.g. ``["matte.alpha"]``).

    Returns
    -------
    np.ndarray
        float32, integer formats scaled to [0, 1]; alpha as stored. For an
        EXR, the pixels of its data window (`ImageInfo.data_window`, which may
        differ from the display window) of the first part (subimage 0).
    """
    path = Path(path)
    inp = _open(path, _read_config())
    try:
        spec = inp.spec()
        _check_pixels(path, spec.width, spec.height, max_pixels)
        idx = None
        if channels is not None:
            names = list(spec.channelnames)
            missing = [c for c in channels if c not in names]
            if missing:
                raise InputError(f"{path}: no channel(s) {', '.join(missing)}",
                                 f"the file has {', '.join(names)}")
            idx = [names.index(c) for c in channels]
        pixels = inp.read_image(0, 0, 0, spec.nchannels, "float")
        if pixels is None or not isinstance(pixels, np.ndarray):
            raise InputError(f"{path}: cannot read the pixels: {(inp.geterror() or 'unknown error').strip()}",
                             "the file may be corrupt or truncated; re-export it")
        orientation = int(spec.get_int_attribute("Orientation", 1) or 1)
    finally:
        inp.close()
    pixels = pixels.reshape(spec.height, spec.width, spec.nchannels)
    if idx is not None:
        pixels = pixels[..., idx]
    if orient and orientation != 1:
        pixels = apply_orientation(pixels, orientation)
    return np.ascontiguousarray(pixels, dtype=np.float32)


# --------------------------------------------------------------------------- write

_BITS = {  # (format, bits) -> OIIO type
    ("openexr", 16): "half", ("openexr", 32): "float",
    ("png", 8): "uint8", ("png", 16): "uint16",
    ("jpeg", 8): "uint8",
    ("tiff", 8): "uint8", ("tiff", 16): "uint16", ("tiff", 32): "float",
}
_DEFAULT_BITS = {"openexr": 16, "png": 8, "jpeg": 8, "tiff": 8}
_BITS_ALIASES = {"half": 16, "float": 32, "uint8": 8, "uint16": 16}


def _default_names(n: int) -> list[str]:
    return {1: ["Y"], 2: ["Y", "A"], 3: ["R", "G", "B"], 4: ["R", "G", "B", "A"]}.get(n) or \
        ["R", "G", "B", "A"] + [f"channel{i}" for i in range(4, n)]


def write_image(path: str | os.PathLike, pixels: np.ndarray, channel_names: Sequence[str] | None = None,
                metadata: Mapping[str, Any] | None = None, provenance: Mapping[str, Any] | None = None,
                bits: int | str | None = None, *, quality: int = 95, compression: str | None = None,
                max_pixels: int | None = None) -> Path:
    """Write an image atomically; the format comes from the file suffix.

    Parameters
    ----------
    path : path-like
        ``.exr``, ``.png``, ``.jpg``/``.jpeg``, ``.tif``/``.tiff``.
    pixels : np.ndarray
        H x W or H x W x C; float in [0, 1] (EXR/float TIFF keep any value) or
        uint8/uint16. Alpha as the format stores it (EXR premultiplied, PNG straight).
    channel_names : sequence of str, optional
        E.g. ``["R", "G", "B", "A", "matte.alpha", "matte.confidence"]``;
        default Y / YA / RGB / RGBA by channel count. A channel named "A" (or
        "*.A"/"alpha") is flagged as the alpha channel.
    metadata : mapping, optional
        Extra header attributes (strings, ints, floats), e.g. ``info.exif``
        to keep a camera JPEG's EXIF, or ``{"oiio:ColorSpace": "ACEScg"}``.
    provenance : mapping, optional
        priorfx.provenance.provenance(...) record, stored as JSON.
    bits : {8, 16, 32, 'half', 'float'}, optional
        EXR: 16 (half, default) or 32 (float). PNG: 8 (default) or 16.
        JPEG: 8. TIFF: 8 (default), 16 or 32 (float).
    quality : int
        JPEG quality 1..100.
    compression : str, optional
        Override the format's default compression (e.g. EXR "zip", "piz", "none";
        PNG "none" or "zip:N", N the deflate level 0-9 (default 6): level 1
        writes a 12 MP PNG several times faster for a ~30 % larger file).

    Returns
    -------
    Path
        The written file.

    Raises
    ------
    UsageError
        Unknown suffix, bits the format cannot store, bad channel names.
    OutputError
        The folder does not exist or cannot be written.
    """
    oiio = _oiio()
    path = Path(path)
    fmt = WRITE_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise UsageError(f"cannot write {path.name}: unknown image type {path.suffix or '(no suffix)'}",
                         "use .exr, .png, .jpg or .tif")
    pixels = np.asarray(pixels)
    if pixels.ndim == 2:
        pixels = pixels[..., None]
    if pixels.ndim != 3 or pixels.shape[0] == 0 or pixels.shape[1] == 0:
        raise UsageError(f"cannot write {path.name}: pixels have shape {pixels.shape}",
                         "expected H x W or H x W x C")
    h, w, c = pixels.shape
    _check_pixels(path, w, h, max_pixels)
    names = list(channel_names) if channel_names is not None else _default_names(c)
    if len(names) != c:
        raise UsageError(f"cannot write {path.name}: {c} channels but {len(names)} channel names",
                         "give one name per channel")
    if fmt in ("png", "jpeg") and c not in (1, 2, 3, 4):
        raise UsageError(f"{fmt.upper()} cannot store {c} channels ({', '.join(names)})",
                         "write an EXR for extra channels")
    if fmt == "jpeg" and c in (2, 4):
        raise UsageError("JPEG cannot store alpha", "drop the alpha channel or write PNG/EXR")
    nbits = _BITS_ALIASES.get(bits, bits) if bits is not None else _DEFAULT_BITS[fmt]
    ptype = _BITS.get((fmt, nbits))
    if ptype is None:
        ok = sorted(b for (f, b) in _BITS if f == fmt)
        raise UsageError(f"{fmt.upper()} cannot be written with {bits} bits", f"use one of {ok}")
    if pixels.dtype not in (np.float32, np.uint8, np.uint16):
        pixels = pixels.astype(np.float32)
    if not pixels.flags.c_contiguous:
        pixels = np.ascontiguousarray(pixels)

    spec = oiio.ImageSpec(w, h, c, ptype)
    spec.channelnames = tuple(names)
    alpha = next((i for i, n in enumerate(names) if n in ("A", "alpha") or n.endswith(".A")), -1)
    if alpha >= 0 and names[alpha] in ("A", "alpha"):
        spec.alpha_channel = alpha
    if fmt != "openexr":
        spec.attribute("oiio:UnassociatedAlpha", 1)  # store what we were given
    if fmt == "jpeg":
        if not 1 <= int(quality) <= 100:
            raise UsageError(f"JPEG quality {quality} is outside 1..100", "e.g. quality=95")
        spec.attribute("Compression", f"jpeg:{int(quality)}")
    if compression and fmt == "png" and compression.startswith("zip:"):
        # OpenImageIO's PNG writer takes its deflate level from this attribute only.
        spec.attribute("png:compressionLevel", _png_level(compression))
    elif compression:
        spec.attribute("Compression", compression)
    for key, value in (metadata or {}).items():
        _set_attr(spec, key, value)
    if provenance is not None:
        text = provenance_json(dict(provenance))
        if fmt in ("openexr", "png"):
            spec.attribute(PROVENANCE_ATTR, text)
        else:  # JPEG/TIFF writers keep only standard tags
            spec.attribute("ImageDescription", _DESC_PREFIX + text)
        spec.attribute("Software", f"priorfx {provenance.get('priorfx_version', '')}".strip())

    try:
        with atomic_path(path) as tmp:
            _write_oiio(oiio, tmp, path, spec, pixels)
    except OSError as exc:  # e.g. the target is a folder, permission denied, disk full
        raise OutputError(f"cannot write {path}: {exc.strerror or exc}",
                          "check that the path is a writable file location") from None
    return path


def _png_level(compression: str) -> int:
    level = compression.partition(":")[2]
    if not (level.isdigit() and 0 <= int(level) <= 9):
        raise UsageError(f"PNG compression {compression!r} is not zip:0 .. zip:9", "e.g. zip:1 for a fast write")
    return int(level)


def _write_oiio(oiio, tmp: Path, path: Path, spec, pixels: np.ndarray) -> None:
    out = oiio.ImageOutput.create(str(tmp))
    if out is None:
        raise OutputError(f"cannot write {path}: {oiio.geterror().strip()}")
    try:
        if not out.open(str(tmp), spec):
            raise OutputError(f"cannot write {path}: {out.geterror().strip()}",
                              "check that the folder is writable and the disk not full")
        if not out.write_image(pixels):
            raise OutputError(f"cannot write {path}: {out.geterror().strip()}",
                              "check that the disk is not full")
    finally:
        out.close()


def _set_attr(spec, key: str, value: Any) -> None:
    if isinstance(value, (bool, np.bool_)):
        spec.attribute(key, int(value))
    elif isinstance(value, (int, np.integer)):
        spec.attribute(key, int(value))
    elif isinstance(value, (float, np.floating)):
        spec.attribute(key, float(value))
    elif isinstance(value, str):
        spec.attribute(key, value)
    elif isinstance(value, (dict, list)):
        spec.attribute(key, json.dumps(value, sort_keys=True, default=str))
    elif isinstance(value, tuple) and value and all(isinstance(v, (int, float)) for v in value):
        # e.g. Exif:LensSpecification; OIIO takes a typed tuple
        oiio = _oiio()
        if all(isinstance(v, int) for v in value):
            spec.attribute(key, oiio.TypeDesc(f"int[{len(value)}]"), value)
        else:
            spec.attribute(key, oiio.TypeDesc(f"float[{len(value)}]"), tuple(float(v) for v in value))
    # other types (bytes blobs such as ICC profiles) are skipped on purpose
