"""Correct a whole clip (offline): both neighbours of every frame, readout estimated once."""
from __future__ import annotations

from dataclasses import asdict
from typing import Sequence

import numpy as np

from priorfx.errors import InputError
from priorfx.progress import Progress, tick
from priorfx.shutter.params import ShutterParams, ShutterResult
from priorfx.shutter.readout import ReadoutEstimate, estimate_readout, pair_evidence
from priorfx.shutter.corrector import FrameCorrector, check_frame


def correct_clip(frames: Sequence[np.ndarray], params: ShutterParams | None = None,
                 progress: Progress | None = None, keep: range | None = None) -> ShutterResult:
    """Remove rolling-shutter skew and wobble (RS) or ramp and blur (RSGR) from a clip.

    Parameters
    ----------
    frames : sequence of np.ndarray
        Frames in order, float32 RGB in [0, 1] (uint8 accepted), all one size.
        Any sequence with len() and indexing; each frame is read up to three
        times, so pass a list (``list(priorfx.io.read_frames(path))``) rather
        than a video reader, whose indexing seeks.
    params : ShutterParams, optional
        ``readout=None`` estimates the readout from the clip. `lookahead` is
        ignored: a clip always uses both neighbours of each frame.
    progress : Progress, optional
        Ticked per frame; cancelling raises CancelledError.
    keep : range, optional
        Positions to correct and return (default: all). Frames before it are
        warm-up: they only prime the temporally smoothed motion (flow, no
        warp), as a chunk of a longer shot needs; frames after it are only
        the last kept frame's neighbour. The readout estimate, when asked
        for, still uses every frame.

    Returns
    -------
    ShutterResult

    Raises
    ------
    InputError
        No frames, a frame that is not an image, or frames of different sizes.
    """
    params = params or ShutterParams()
    n = len(frames)
    if n == 0:
        raise InputError("the clip has no frames", "check the input path or pattern")
    keep = range(n) if keep is None else keep
    if keep.step != 1 or not 0 <= keep.start <= keep.stop <= n:
        raise InputError(f"frames to keep {keep.start}-{keep.stop - 1} are not inside the clip's 0-{n - 1}",
                         "pass a range of positions within the clip")
    first = check_frame(frames[0], "frame 0")
    h, w = first.shape[:2]
    corr = FrameCorrector(params, w, h, live=False)

    smalls: list[np.ndarray] = []
    for i in range(n):
        f = first if i == 0 else check_frame(frames[i], f"frame {i}")
        if f.shape[:2] != (h, w):
            raise InputError(f"frame {i} is {f.shape[1]}x{f.shape[0]}, frame 0 is {w}x{h}",
                             "all frames of a clip must have one size")
        smalls.append(corr.gray(f))

    readout, estimated = params.readout, params.readout is None
    total = (n if estimated else 0) + keep.stop
    estimate = None
    if estimated:
        estimate = clip_readout(frames, corr, params, progress, total)
        readout = estimate.g

    done = n if estimated else 0
    for i in range(keep.start):  # warm-up: advance the motion state only
        corr.velocity(smalls[i], smalls[i - 1] if i > 0 else None, smalls[i + 1] if i + 1 < n else None, readout)
        done += 1
        tick(progress, done, total, "warming up")
    out, speeds = [], []
    for i in keep:
        f = check_frame(frames[i], f"frame {i}")
        disp = corr.displacement(smalls[i], smalls[i - 1] if i > 0 else None,
                                 smalls[i + 1] if i + 1 < n else None, readout)
        res = corr.correct_rgb(f, disp, readout)
        if res.dtype != np.float32:
            res = res.astype(np.float32) * np.float32(1 / 255)
        out.append(res)
        if corr.last_velocity is not None:
            speeds.append(float(np.hypot(corr.last_velocity[..., 0], corr.last_velocity[..., 1]).mean()))
        done += 1
        tick(progress, done, total, f"readout {readout:.2f}")
    return ShutterResult(frames=out, readout=float(readout), readout_estimated=estimated,
                         readout_confidence=estimate.confidence if estimate else 1.0,
                         readout_interval=(estimate.low, estimate.high) if estimate else (readout, readout),
                         mean_motion_px=float(np.mean(speeds)) if speeds else 0.0,
                         params=asdict(params))


def clip_readout(frames: Sequence[np.ndarray], corr: FrameCorrector, params: ShutterParams,
                 progress: Progress | None = None, total: int | None = None) -> ReadoutEstimate:
    """Readout of a whole clip with its interval: fine flow of every neighbouring pair,
    band flows and straight-line samples, one fit over all of them (`estimate_readout`)."""
    return fit_readout(readout_evidence(frames, params, progress, total, corr), corr.full[1], params)


def readout_evidence(frames: Sequence[np.ndarray], params: ShutterParams, progress: Progress | None = None,
                     total: int | None = None, corr: FrameCorrector | None = None) -> list:
    """The readout scan: the evidence (`pair_evidence`) of each neighbouring pair
    of frames, in order. The cluster scans a long shot part by part in parallel
    and fits the concatenated evidence once (`fit_readout`), as one machine does."""
    first = check_frame(frames[0], "frame 0")
    if corr is None:
        corr = FrameCorrector(params, first.shape[1], first.shape[0], live=False)
    evidence = []
    prev = corr.estimation_gray(first)
    for i in range(1, len(frames)):
        cur = corr.estimation_gray(check_frame(frames[i], f"frame {i}"))
        evidence.append(pair_evidence(corr.estimation_flow(prev, cur)))
        prev = cur
        tick(progress, i, total or len(frames), "estimating the readout")
    return evidence


def fit_readout(evidence: list, height: int, params: ShutterParams) -> ReadoutEstimate:
    """The readout (with its interval) that fits the scan's evidence of a clip `height` rows high."""
    rate = 0.5 if params.mode == "rsgr" else 1.0
    return estimate_readout(evidence, height, params.scan, rate)
