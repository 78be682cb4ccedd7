"""Parameters and result of the rolling-shutter correction.

`ShutterParams` holds JSON scalars only: the server sends it as
``dataclasses.asdict(params)`` and rebuilds it with ``ShutterParams(**d)``, so
every field must survive a JSON round trip and every check lives in
``__post_init__`` (a bad value sent over HTTP fails the same way as a bad
value typed on the command line).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from priorfx.errors import UsageError

MODES = ("rs", "rsgr")
SCANS = ("down", "up")
TARGETS = ("middle", "top")
FLOW_PRESETS = ("ultrafast", "fast", "medium")
LIVE_FLOW = (320, "fast")     # (width, DIS preset) for live sessions: ~1 ms
CLIP_FLOW = (640, "medium")   # for clips: finer, ~10x slower, about 1-3 dB better
DEFAULT_READOUT = 0.6
"""Readout used before an estimate exists (a live stream's first frames) or when
the footage holds too little changing motion to estimate it; typical of
webcam and phone sensors at 30 fps (15-25 ms of a 33 ms frame)."""


def _check_fraction(name: str, value: Any, low_open: bool, hint: str) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise UsageError(f"{name} {value!r} is not a number", hint) from None
    if not np.isfinite(v) or v > 1.0 or v < 0.0 or (low_open and v == 0.0):
        rng = "(0, 1]" if low_open else "[0, 1]"
        raise UsageError(f"{name} {value!r} is outside {rng}", hint)
    return v


@dataclass
class ShutterParams:
    """How to correct rolling-shutter footage.

    Parameters
    ----------
    readout : float or None
        Readout time g as a fraction of the frame time, in (0, 1]: row y is
        exposed at ``t0 + g * y / H``. None estimates it from the footage
        (`ShutterResult.readout` reports the value used).
    mode : {'rs', 'rsgr'}
        'rs': rolling shutter (rows exposed one after another; the picture is
        skewed and wobbles). 'rsgr': global reset then rolling readout (all
        rows start together, row y integrates longer; the picture gets
        row-dependent brightness and blur instead of skew).
    scan : {'down', 'up'}
        Readout direction: 'down' reads the top row first (almost every
        sensor), 'up' the bottom row first (sensor mounted upside down).
    lookahead : bool
        Live streams: also use the next frame (one frame of latency, better
        motion). Clips always use both neighbours.
    strength : float
        0..1, how much of the estimated correction to apply.
    target : {'middle', 'top'}
        RS mode: the instant every row is moved to, that of the middle row or
        of the image's top row. RSGR mode always restores the reset instant
        (when every row started integrating).
    exposure : float
        RSGR mode: exposure of the first row read, as a fraction of the frame
        time, in (0, 1]. Row y integrates ``exposure + g * y / H``.
    smoothing : float
        0..1, temporal smoothing of the motion (0: none). Motion that changes
        more than a few pixels per frame is not smoothed, so moving objects
        do not leave trails.
    flow_width : int or None
        Width (pixels) at which the optical flow is computed, 160..1920; the
        warp always runs at full resolution. None: 320 for live sessions
        (speed), 640 for clips (accuracy).
    flow_preset : {'ultrafast', 'fast', 'medium'} or None
        OpenCV DIS preset. None: 'fast' for live sessions, 'medium' for clips.
    """

    readout: float | None = None
    mode: str = "rs"
    scan: str = "down"
    lookahead: bool = False
    strength: float = 1.0
    target: str = "middle"
    exposure: float = 0.25
    smoothing: float = 0.3
    flow_width: int | None = None
    flow_preset: str | None = None

    def __post_init__(self) -> None:
        if isinstance(self.readout, str) and self.readout.strip().lower() == "auto":
            self.readout = None
        if self.readout is not None:
            self.readout = _check_fraction(
                "readout", self.readout, True,
                "the readout time is a fraction of the frame time in (0, 1]; "
                "use 'auto' (None) to estimate it from the footage")
        for name, allowed in (("mode", MODES), ("scan", SCANS), ("target", TARGETS)):
            value = getattr(self, name)
            key = str(value).strip().lower() if isinstance(value, str) else value
            if key not in allowed:
                raise UsageError(f"{name} {value!r} is not one of {', '.join(allowed)}",
                                 f"use --{name} {allowed[0]} (or {', '.join(allowed[1:])})")
            setattr(self, name, key)
        if not isinstance(self.lookahead, (bool, np.bool_)):
            raise UsageError(f"lookahead {self.lookahead!r} is not true or false", "pass a boolean")
        self.lookahead = bool(self.lookahead)
        self.strength = _check_fraction("strength", self.strength, False,
                                        "0 leaves frames unchanged, 1 applies the full correction")
        self.exposure = _check_fraction("exposure", self.exposure, True,
                                        "the first row's exposure as a fraction of the frame time, e.g. 0.25")
        self.smoothing = _check_fraction("smoothing", self.smoothing, False, "0 (none) .. 1 (strong)")
        if self.flow_width is not None:
            try:
                fw = int(self.flow_width)
            except (TypeError, ValueError):
                fw = -1
            if fw != self.flow_width or not 160 <= fw <= 1920:
                raise UsageError(f"flow_width {self.flow_width!r} is not an integer in 160..1920",
                                 "leave it unset (auto), or e.g. 320 for speed, 640 for accuracy")
            self.flow_width = fw
        if self.flow_preset is not None and self.flow_preset not in FLOW_PRESETS:
            raise UsageError(f"flow_preset {self.flow_preset!r} is not one of {', '.join(FLOW_PRESETS)}",
                             "leave it unset (auto)")


@dataclass
class ShutterResult:
    """What `correct_clip` returns.

    Attributes
    ----------
    frames : list of np.ndarray
        Corrected frames, float32 RGB in [0, 1], one per input frame.
    readout : float
        Readout time used (given, or estimated from the footage).
    readout_estimated : bool
        True when `readout` was estimated.
    readout_confidence : float
        0..1: how strongly the footage constrains the estimate, one minus the
        interval's width over 0.6 (0 when it holds no changing motion and
        `readout` fell back to the default).
    readout_interval : (float, float)
        95 % interval of the readout (the value itself when it was given).
    mean_motion_px : float
        Mean magnitude of the estimated motion, pixels per frame.
    params : dict
        The parameters used (``dataclasses.asdict``), for provenance.
    """

    frames: list
    readout: float
    readout_estimated: bool
    readout_confidence: float = 1.0
    readout_interval: tuple = (0.0, 1.0)
    mean_motion_px: float = 0.0
    params: dict = field(default_factory=dict)
