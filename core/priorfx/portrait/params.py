"""Parameters and result of the portrait undistortion.

`PortraitParams` holds JSON scalars only: the server sends it as
``dataclasses.asdict(params)`` and rebuilds it with ``PortraitParams(**d)``, so
every field must survive a JSON round trip and every check lives in
``__post_init__`` (a bad value sent over HTTP fails the same way as a bad
value typed on the command line or in the GIMP dialog). Each check raises the
core's UsageError with a message naming the bad value and a hint naming the fix.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from priorfx.errors import UsageError

FOCAL_HINT = "give the 35 mm-equivalent focal length, e.g. --focal-mm 26 for a phone front camera"


def _check_number(name: str, value: Any, lo: float, hi: float, hint: str) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise UsageError(f"{name} {value!r} is not a finite number", hint)
    if not lo <= value <= hi:
        raise UsageError(f"{name} {value!r} is outside {lo:g}..{hi:g}", hint)


def _check_int(name: str, value: Any, lo: int, hint: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < lo:
        raise UsageError(f"{name} {value!r} is not an integer >= {lo}", hint)


@dataclass
class PortraitParams:
    """Parameters of the portrait undistortion (JSON scalars only).

    Attributes
    ----------
    distance_m : target camera-to-face distance in metres (default 1.5). Any
        value > 0; values beyond the estimated distance flatten the
        perspective, values closer exaggerate it; the change is continuous.
    focal_mm : 35 mm-equivalent focal length of the camera, a hard override.
        None: the distance and the focal length are estimated together from the
        face's perspective (see geometry.estimate_distance).
    exif_focal_mm : 35 mm-equivalent focal length from the file's EXIF: a
        prior (~20 %) weighed against the perspective, not a fact (a crop or
        digital zoom lengthens it). Ignored when focal_mm is given.
    strength : 0..1, blends between no change (0) and the full correction (1),
        linearly in inverse distance.
    face : index of the one face to correct (faces sorted largest first), or
        None for all faces.
    max_faces : at most this many faces are corrected.
    debug_overlay : also return a picture with landmarks, head proxy and
        estimated distances.
    """

    distance_m: float = 1.5
    focal_mm: float | None = None
    exif_focal_mm: float | None = None
    strength: float = 1.0
    face: int | None = None
    max_faces: int = 8
    debug_overlay: bool = False

    def __post_init__(self) -> None:
        _check_number("distance_m", self.distance_m, 0.05, 100.0,
                      "give the target camera distance in metres, e.g. --distance 1.5")
        for name in ("focal_mm", "exif_focal_mm"):
            if getattr(self, name) is not None:
                _check_number(name, getattr(self, name), 5.0, 1200.0, FOCAL_HINT)
        _check_number("strength", self.strength, 0.0, 1.0,
                      "strength is a fraction: 0 = unchanged, 1 = full correction")
        if self.face is not None:
            _check_int("face", self.face, 0, "faces are numbered from 0, largest first; omit it to correct all faces")
        _check_int("max_faces", self.max_faces, 1, "give how many faces to correct at most, e.g. 8")
        if not isinstance(self.debug_overlay, bool):
            raise UsageError(f"debug_overlay {self.debug_overlay!r} is not true or false",
                             "pass a boolean (JSON true/false)")


@dataclass
class PortraitResult:
    """The corrected image and what was found.

    image : same shape and dtype as the input (alpha warped with the colour).
    faces : one dict per face found: box (x0, y0, x1, y1 pixels), score,
        distance_m (estimated) with distance_low_m / distance_high_m (the
        interval; high None = no upper bound), corrected, target_m, focal_mm
        and focal_px used, focal_source, fit_rms_px, warp_scale (1 = full warp;
        < 1 when scaled down to avoid tearing; 0 = left unchanged).
    provenance : models, parameters, priorfx version.
    debug : optional RGB overlay (landmarks, head proxy, distances).
    """

    image: np.ndarray
    faces: list[dict[str, Any]]
    provenance: dict[str, Any]
    debug: np.ndarray | None = None
    field: Any = field(default=None, repr=False)   # the warp (for benchmarks): see portrait.Plan
