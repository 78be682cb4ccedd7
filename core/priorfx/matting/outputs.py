"""Writing mattes: EXR with named channels for compositing, PNG with alpha for stills.

EXR layout (half float by default, written atomically, provenance JSON in the
header attribute that priorfx.io.images writes for every output):

======================  ==========================================================
channel                 content
======================  ==========================================================
R, G, B                 premultiplied, decontaminated foreground (fg * alpha)
A                       alpha (flagged as the EXR's alpha channel)
matte.alpha             alpha again, as a named layer (same values as A)
matte.confidence        1 where alpha is certain, lower in the refined band
fg.R, fg.G, fg.B        unpremultiplied decontaminated foreground
                        (only when ``unpremult=True``, the default)
======================  ==========================================================

So a compositor reading the file gets a ready-to-merge premultiplied RGBA,
and the raw matte and confidence in their own layer. OpenEXR stores channels
sorted by name inside the file: read them by name, not by position.

PNG / TIFF (stills): RGBA 8-bit (16 with ``bits=16``), straight alpha, so
R, G, B are the *unpremultiplied* decontaminated foreground and A the alpha
(PNG stores straight alpha); provenance in the header as for EXR.

Video files (.mp4, .mov, ...), chosen by ``video_alpha``:
``grey`` (default) the alpha matte as a grey video; ``alpha`` the clean
foreground with its alpha, straight (unpremultiplied) RGBA -- ProRes 4444 in
.mov, FFV1 in .mkv; ``premult`` the premultiplied clean foreground (RGB, black
where alpha is 0). FrameWriter adds the provenance (container tag and sidecar).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import numpy as np

from priorfx.errors import UsageError
from priorfx.matting.params import MatteResult

EXR_CHANNELS = ["R", "G", "B", "A", "matte.alpha", "matte.confidence"]
FG_CHANNELS = ["fg.R", "fg.G", "fg.B"]
STILL_SUFFIXES = (".png", ".tif", ".tiff")
VIDEO_ALPHA = ("grey", "alpha", "premult")


def channel_names(path: str | Path, unpremult: bool = True) -> list[str] | None:
    """The channel names `matte_pixels` produces for this output type."""
    suffix = Path(str(path)).suffix.lower()
    if suffix == ".exr":
        return EXR_CHANNELS + (FG_CHANNELS if unpremult else [])
    if suffix in STILL_SUFFIXES:
        return ["R", "G", "B", "A"]
    if suffix in (".jpg", ".jpeg"):
        raise UsageError("JPEG cannot store alpha", "write the matte as .exr or .png")
    return None  # a video: grey alpha


def matte_pixels(result: MatteResult, path: str | Path, unpremult: bool = True,
                 video_alpha: str = "grey") -> np.ndarray:
    """The H x W x C float32 array to write for `result` into a file like `path`."""
    names = channel_names(path, unpremult)
    a = result.alpha[..., None]
    if names is None:
        if video_alpha == "alpha":
            return np.concatenate([result.fg, a], axis=2).astype(np.float32)
        if video_alpha == "premult":
            return np.asarray(result.fg_premult, np.float32)
        return np.repeat(a, 3, axis=2)
    if names[0:4] == ["R", "G", "B", "A"] and len(names) == 4:
        return np.concatenate([result.fg, a], axis=2).astype(np.float32)
    parts = [result.fg_premult, a, a, result.confidence[..., None]]
    if unpremult:
        parts.append(result.fg)
    return np.concatenate(parts, axis=2).astype(np.float32)


def write_matte(path: str | Path, result: MatteResult, *, unpremult: bool = True,
                provenance: Mapping[str, Any] | None = None, bits: int | str | None = None,
                metadata: Mapping[str, Any] | None = None) -> Path:
    """Write one matte as EXR (named channels, see module docstring) or PNG/TIFF (RGBA).

    Parameters
    ----------
    path : .exr, .png, .tif or .tiff
    result : MatteResult
    unpremult : add the fg.R/G/B layer to an EXR
    provenance : record to store (default: the result's own)
    bits : EXR 16 (half, default) or 32; PNG 8 (default) or 16
    metadata : extra header attributes (e.g. oiio:ColorSpace of the plate)
    """
    from priorfx.io import write_image

    channel_names(path)  # refuses JPEG with its own message
    if Path(str(path)).suffix.lower() not in (".exr",) + STILL_SUFFIXES:
        raise UsageError(f"cannot write a matte as {Path(str(path)).suffix or '(no suffix)'}",
                         "use .exr (compositing) or .png (stills)")
    return write_image(path, matte_pixels(result, path, unpremult), channel_names(path, unpremult),
                       metadata=metadata,
                       provenance=provenance if provenance is not None else result.provenance, bits=bits)
